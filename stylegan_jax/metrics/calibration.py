"""How the domain metrics respond to known degradations of real images: the calibration table.

The reference is the first `num` records of a level (as for generated images); each condition transforms later,
disjoint records of the same level and compares them with it:

  real vs real      the next `num` records, unchanged (the floor of the metric at this `num`)
  blur 0.5 / 1 px   Gaussian blur with sigma 0.5 and 1 pixel (scipy.ndimage.gaussian_filter over H and W)
  noise 10          additive Gaussian noise of standard deviation 10 (uint8 levels)
  mirrored          every image flipped left-right (what mirror augmentation adds to the data a GAN learns)
  half mirrored     a random half of them flipped (the distribution a mirror-augmented GAN learns)
  half the classes  only records of classes 0 .. K/2 - 1
  one class         only records of class 0

Images are rounded back to uint8 after a transformation, as generated images are.
"""

import numpy as np
import scipy.ndimage

from stylegan_jax.metrics import coverage, frechet, kid, real_stats
from stylegan_jax.metrics.reals import Reals


def _uint8(x: np.ndarray) -> np.ndarray:
  return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def conditions(images: np.ndarray, labels: np.ndarray, num_classes: int, num: int, seed: int = 0):
  """[(condition, uint8 images)] from disjoint real images [M, H, W, C] with labels [M]."""
  base = images[:num].astype(np.float64)
  rng = np.random.RandomState(seed)
  noise = rng.normal(0, 10, base.shape)
  flip = rng.rand(num) < 0.5
  mirrored = images[:num, :, ::-1]
  return [
      ('real vs real', images[:num]),
      ('blur 0.5 px', _uint8(scipy.ndimage.gaussian_filter(base, sigma=(0, 0.5, 0.5, 0)))),
      ('blur 1 px', _uint8(scipy.ndimage.gaussian_filter(base, sigma=(0, 1.0, 1.0, 0)))),
      ('noise 10', _uint8(base + noise)),
      ('mirrored', mirrored),
      ('half mirrored', np.where(flip[:, None, None, None], mirrored, images[:num])),
      ('half the classes', images[labels < num_classes // 2][:num]),
      ('one class', images[labels == 0][:num]),
  ]


def calibrate(reals: Reals, net, num: int, *, resolution: int | None = None, cache_dir: str | None = None,
              seed: int = 0) -> list[dict]:
  """One row per condition: condition, n, fd_domain, kid_domain, coverage_classes, coverage_min_share."""
  resolution = resolution or reals.resolution
  reference = real_stats.real_stats(reals, resolution, num, net, cache_dir)
  num = len(reference.features)
  images, labels = reals.read(resolution, num, 20 * num, labels=True)  # enough for num of one class
  if len(images) < num:
    raise ValueError(f'{reals.name} has {num + len(images)} images: too few for two disjoint sets of {num}')
  rows = []
  for name, condition in conditions(images, labels, reals.num_classes, num, seed):
    features, probabilities = net.features_and_probabilities(condition)
    c = coverage.class_coverage(probabilities)
    rows.append(dict(condition=name, n=len(condition),
                     fd_domain=frechet.frechet_distance(*frechet.statistics(features), reference.mu,
                                                        reference.sigma),
                     kid_domain=kid.kernel_distance(features, reference.features, seed=seed),
                     coverage_classes=c['classes'], coverage_min_share=c['min_share']))
  return rows
