"""Comparing training states in tests (imported by test modules, like torch_files.py)."""

import jax
import numpy as np


def assert_same_state(a, b):
  """Two pytrees have the same paths and bitwise-equal leaves; a failure names the leaf."""
  leaves_a, leaves_b = jax.tree_util.tree_leaves_with_path(a), jax.tree_util.tree_leaves_with_path(b)
  assert [p for p, _ in leaves_a] == [p for p, _ in leaves_b]
  for (path, x), (_, y) in zip(leaves_a, leaves_b):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=jax.tree_util.keystr(path))
