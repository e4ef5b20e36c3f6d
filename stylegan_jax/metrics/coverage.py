"""Predicted-class coverage: how the domain classifier spreads generated images over the dataset's classes.

Mode collapse shows as classes that (almost) never appear. From class probabilities [N, K] of the samples:
  histogram       the share of samples whose most probable class is k, [K]
  min_share       the smallest share (0 when a class is missing; 1/K when uniform)
  classes         the number of classes with a share of at least `threshold` / K (default a quarter of the
                  uniform share)
  mean_confidence the mean probability of the predicted class
"""

import numpy as np

THRESHOLD = 0.25


def class_coverage(probabilities: np.ndarray, *, threshold: float = THRESHOLD) -> dict:
  """{'histogram': [K] shares, 'min_share', 'classes', 'mean_confidence'} of probabilities [N, K]."""
  probabilities = np.asarray(probabilities)
  if probabilities.ndim != 2 or not len(probabilities):
    raise ValueError(f'need class probabilities [N > 0, K], got shape {probabilities.shape}')
  k = probabilities.shape[1]
  histogram = np.bincount(np.argmax(probabilities, axis=1), minlength=k) / len(probabilities)
  return dict(histogram=histogram.tolist(), min_share=float(histogram.min()),
              classes=int(np.sum(histogram >= threshold / k)),
              mean_confidence=float(np.mean(np.max(probabilities, axis=1))))
