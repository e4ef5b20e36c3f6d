"""Kernel Inception Distance (Bińkowski et al. 2018): the unbiased MMD² with the cubic polynomial kernel
k(x, y) = (x·y / D + 1)³, averaged over random subsets, as the reference KID code computes it.

Each of `num_subsets` (100) draws `m = min(N_fake, N_real, max_subset_size)` (1000) fakes and reals without
replacement; its unbiased estimate is

  MMD² = [sum_{i != j} k(x_i, x_j) + k(y_i, y_j)] / (m (m - 1)) - 2 sum_{i, j} k(x_i, y_j) / m²,

and KID is the mean over subsets. It is 0 in expectation for identical distributions (and can be negative).
"""

import numpy as np


def kernel_distance(fake: np.ndarray, real: np.ndarray, *, num_subsets: int = 100, max_subset_size: int = 1000,
                    seed: int = 0) -> float:
  """KID of features fake [N1, D] and real [N2, D] (float64 arithmetic; subsets drawn from `seed`)."""
  fake, real = np.asarray(fake, np.float64), np.asarray(real, np.float64)
  if fake.ndim != 2 or real.ndim != 2 or fake.shape[1] != real.shape[1]:
    raise ValueError(f'need features [N1, D] and [N2, D], got {fake.shape} and {real.shape}')
  d = fake.shape[1]
  m = min(len(fake), len(real), max_subset_size)
  if m < 2:
    raise ValueError(f'KID needs at least 2 samples on each side, got {len(fake)} and {len(real)}')
  rng = np.random.RandomState(seed)
  total = 0.0
  for _ in range(num_subsets):
    x = fake[rng.choice(len(fake), m, replace=False)]
    y = real[rng.choice(len(real), m, replace=False)]
    kxx, kyy, kxy = (u @ v.T / d + 1 for u, v in ((x, x), (y, y), (x, y)))
    a = kxx * kxx * kxx + kyy * kyy * kyy
    b = kxy * kxy * kxy
    total += (a.sum() - np.diag(a).sum()) / (m - 1) - b.sum() * 2 / m
  return float(total / num_subsets / m)
