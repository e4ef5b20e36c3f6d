"""Shared test fixtures: the reference material in ../shared and a float32-exact matmul precision."""

import os
import pathlib

# Multi-device code is tested on 8 CPU devices; this must precede the first JAX import.
os.environ['XLA_FLAGS'] = os.environ.get('XLA_FLAGS', '') + ' --xla_force_host_platform_device_count=8'

import jax  # noqa: E402
import pytest  # noqa: E402

# Parity with the official float32 outputs needs full-precision matmuls and convolutions.
jax.config.update('jax_default_matmul_precision', 'highest')

SHARED = pathlib.Path(os.environ.get('STYLEGAN_SHARED', pathlib.Path(__file__).resolve().parents[2] / 'shared'))
GOLDEN = SHARED / 'golden'


@pytest.fixture(scope='session', autouse=True)
def compilation_cache_dir(tmp_path_factory) -> pathlib.Path:
  """JAX's persistent compilation cache for the whole session: tests that build the same steps compile them once."""
  path = tmp_path_factory.mktemp('compile_cache')
  jax.config.update('jax_compilation_cache_dir', str(path))
  return path


@pytest.fixture(scope='session')
def golden_dir() -> pathlib.Path:
  path = GOLDEN / 'sg1_small32'
  assert path.is_dir(), f'golden reference data not found at {path} (set STYLEGAN_SHARED to the shared/ folder)'
  return path


FASHION_MNIST = pathlib.Path('/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz')


@pytest.fixture(scope='session')
def fashion_mnist_data_dir(tmp_path_factory) -> str:
  """A data_dir with Fashion-MNIST prepared (32x32x1, all levels), once per session."""
  if not FASHION_MNIST.exists():
    pytest.skip('Debian package dataset-fashion-mnist is not installed (run.sh installs it)')
  from stylegan_jax.configs import default
  from stylegan_jax.data import prepare
  config = default.get_config()
  config.data.data_dir = str(tmp_path_factory.mktemp('fashion_mnist_data'))
  prepare.prepare(config.data)
  return config.data.data_dir
