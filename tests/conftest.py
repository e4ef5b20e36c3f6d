"""Shared test fixtures: the reference material in ../shared and a float32-exact matmul precision."""

import os
import pathlib

import jax
import pytest

# Parity with the official float32 outputs needs full-precision matmuls and convolutions.
jax.config.update('jax_default_matmul_precision', 'highest')

SHARED = pathlib.Path(os.environ.get('STYLEGAN_SHARED', pathlib.Path(__file__).resolve().parents[2] / 'shared'))
GOLDEN = SHARED / 'golden'


@pytest.fixture(scope='session')
def golden_dir() -> pathlib.Path:
  path = GOLDEN / 'sg1_small32'
  assert path.is_dir(), f'golden reference data not found at {path} (set STYLEGAN_SHARED to the shared/ folder)'
  return path
