"""Linear separability (Karras et al. 2019, §4.2; the official `metrics/linear_separability.py`), with the 40
CelebA-HQ attribute classifiers replaced by the domain classifier's classes, one-vs-rest.

For each class c, every sample gets the binary attribute y = [p_c > 1/2] with the confidence max(p_c, 1 - p_c)
(the official attribute classifiers are 2-way softmaxes); the most confident half of the samples is kept (official:
100k of 200k). A linear SVM (sklearn LinearSVC, default settings) is fit on the latents z and, separately, on
w (the last layer's dlatents), and predicts the same samples. The conditional entropy H(Y|X) in bits of the
true attribute Y given the SVM's prediction X comes from their 2x2 joint distribution; when the SVM cannot be fit
(only one value among the kept samples), the prediction counts as perfect (entropy 0), as officially.
The score per space is 2^(sum over classes of H(Y|X)): 1 is perfectly linear, larger is more entangled.
"""

import warnings

import numpy as np
import sklearn.exceptions
import sklearn.svm


def conditional_entropy(x: np.ndarray, y: np.ndarray) -> float:
  """H(Y|X) in bits of two binary arrays [N]: H(X, Y) - H(X) from their joint distribution."""
  joint = np.array([[np.mean((x == i) & (y == j)) for j in (0, 1)] for i in (0, 1)], np.float64)

  def entropy(p):
    p = p[p > 0]
    return float(-np.sum(p * np.log2(p)))
  return entropy(joint.ravel()) - entropy(joint.sum(axis=1))


def _svm_predictions(inputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
  if len(np.unique(targets)) < 2:
    return targets
  with warnings.catch_warnings():
    warnings.simplefilter('ignore', sklearn.exceptions.ConvergenceWarning)
    return sklearn.svm.LinearSVC().fit(inputs, targets).predict(inputs)


def linear_separability(probabilities: np.ndarray, spaces: dict[str, np.ndarray]) -> dict[str, float]:
  """Class probabilities [N, K] of the samples and {space name: inputs [N, D]} -> {space name: score}."""
  probabilities = np.asarray(probabilities, np.float64)
  n, k = probabilities.shape
  keep = n // 2
  entropies = {name: 0.0 for name in spaces}
  for c in range(k):
    p = probabilities[:, c]
    kept = np.argsort(-np.maximum(p, 1 - p), kind='stable')[:keep]
    targets = (p[kept] > 0.5).astype(np.int64)
    for name, inputs in spaces.items():
      entropies[name] += conditional_entropy(_svm_predictions(np.asarray(inputs)[kept], targets), targets)
  return {name: float(2.0 ** h) for name, h in entropies.items()}
