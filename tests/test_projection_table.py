"""experiments/projection_table.py's bookkeeping: which test images, and the 'distance fell every quarter' share."""

import importlib.util
import pathlib

import numpy as np

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / 'experiments' / 'projection_table.py'
spec = importlib.util.spec_from_file_location('projection_table', SCRIPT)
projection_table = importlib.util.module_from_spec(spec)
spec.loader.exec_module(projection_table)


def test_first_of_each_class_and_the_next_ones():
  labels = np.array([3, 0, 1, 0, 2, 1, 3, 4, 5, 6, 7, 8, 9, 2, 4, 5, 6, 7, 8, 9, 3])
  chosen = projection_table.first_of_each_class(labels, 1)
  np.testing.assert_array_equal(labels[chosen], np.arange(10))
  assert chosen[:4].tolist() == [1, 2, 4, 0]
  others = projection_table.first_of_each_class(labels, 1, skip=1)
  np.testing.assert_array_equal(labels[others], np.arange(10))
  assert not set(chosen) & set(others)


def test_falling_share():
  falls = np.linspace(1, 0, 21)  # 20 calls: the quarter points are rows 0, 5, 10, 15, 20
  between, on_quarter = falls.copy(), falls.copy()
  between[11], on_quarter[10] = 2.0, 2.0
  history = np.stack([falls, falls[::-1], between, on_quarter], axis=1)
  assert projection_table.falling_share(history) == 0.5  # falls, and the spike between quarter points
