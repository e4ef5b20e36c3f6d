"""The Fréchet distance between Gaussians fitted to two feature sets (FID when the features are Inception's).

As the official `metrics/frechet_inception_distance.py`: mu = np.mean(features, axis=0), sigma = np.cov(features,
rowvar=False) (normalised by N - 1), and

  FD = ||mu1 - mu2||² + Tr(sigma1 + sigma2 - 2 sqrtm(sigma1 @ sigma2)),

with scipy's `sqrtm` and the real part of the result. Near-singular covariances (fewer samples than dimensions,
dead features) can make `sqrtm` return non-finite values; then, and only then, both covariances get `eps` on
their diagonal and the square root is taken again (the fallback of the TTUR and pytorch-fid code).
"""

import numpy as np
import scipy.linalg

EPS = 1e-6


def statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """features [N, D] -> (mu [D], sigma [D, D]) as the official code computes them."""
  features = np.asarray(features)
  if features.ndim != 2 or len(features) < 2:
    raise ValueError(f'need features [N >= 2, D], got shape {features.shape}')
  return np.mean(features, axis=0), np.cov(features, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, *,
                     eps: float = EPS) -> float:
  """The Fréchet distance of N(mu1, sigma1) and N(mu2, sigma2) (see the module docstring)."""
  mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
  sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
  if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
    raise ValueError(f'mismatched statistics: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs {sigma2.shape}')
  covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
  if not np.isfinite(covmean).all():
    offset = np.eye(len(mu1)) * eps
    covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
  diff = mu1 - mu2
  return float(np.real(diff @ diff + np.trace(sigma1 + sigma2 - 2 * covmean)))


def frechet_distance_of(features1: np.ndarray, features2: np.ndarray) -> float:
  """The Fréchet distance of two feature sets [N1, D], [N2, D]."""
  return frechet_distance(*statistics(features1), *statistics(features2))
