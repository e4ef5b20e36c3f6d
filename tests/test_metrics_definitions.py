"""Metric definitions against direct computations and point clouds with known answers."""

import itertools

import numpy as np
import pytest
import scipy.linalg

from stylegan_jax.metrics import coverage, frechet, kid, precision_recall, separability


def _direct_frechet(x, y):
  """FD through the symmetric form Tr(sqrt(S1 S2)) = Tr(sqrt(A S2 A)), A = S1^(1/2) (eigendecompositions)."""
  mu1, mu2 = x.mean(0), y.mean(0)
  s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
  w, v = np.linalg.eigh(s1)
  a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
  trace_sqrt = np.sum(np.sqrt(np.clip(np.linalg.eigvalsh(a @ s2 @ a), 0, None)))
  return np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * trace_sqrt


@pytest.mark.parametrize('n,d,rank', [(2000, 16, 16), (500, 64, 64), (40, 64, 40), (300, 32, 8)],
                         ids=['well-posed', 'wide', 'fewer-samples-than-dims', 'low-rank'])
def test_frechet_distance_matches_direct_computation(n, d, rank):
  rng = np.random.RandomState(n + d)
  mix = rng.randn(rank, d)
  x = rng.randn(n, rank) @ mix
  y = (rng.randn(n, rank) * 1.5 + 0.3) @ mix
  expected = _direct_frechet(x, y)
  assert frechet.frechet_distance_of(x, y) == pytest.approx(expected, rel=1e-5, abs=1e-6 * np.trace(mix.T @ mix))


def test_frechet_statistics_are_the_official_ones():
  x = np.random.RandomState(0).rand(50, 6).astype(np.float32)
  mu, sigma = frechet.statistics(x)
  np.testing.assert_array_equal(mu, np.mean(x, axis=0))
  np.testing.assert_allclose(sigma, (x - x.mean(0)).T.astype(np.float64) @ (x - x.mean(0)) / 49, rtol=1e-5)
  assert frechet.frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0, abs=1e-6)


def test_frechet_falls_back_to_an_eps_offset_when_sqrtm_fails(monkeypatch):
  rng = np.random.RandomState(1)
  x, y = rng.randn(200, 5), rng.randn(200, 5) + 1
  (mu1, s1), (mu2, s2) = frechet.statistics(x), frechet.statistics(y)
  calls, real_sqrtm = [], scipy.linalg.sqrtm

  def failing_once(a):
    calls.append(a)
    return np.full_like(a, np.nan) if len(calls) == 1 else real_sqrtm(a)
  monkeypatch.setattr(scipy.linalg, 'sqrtm', failing_once)
  value = frechet.frechet_distance(mu1, s1, mu2, s2, eps=1e-3)
  offset = np.eye(5) * 1e-3
  np.testing.assert_allclose(calls[1], (s1 + offset) @ (s2 + offset))
  expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * np.real(real_sqrtm((s1 + offset) @ (s2 + offset))))
  assert len(calls) == 2 and value == pytest.approx(expected)


def test_kid_is_the_unbiased_mmd_with_the_cubic_kernel():
  rng = np.random.RandomState(2)
  x, y = rng.randn(30, 4), rng.randn(40, 4) + 0.5
  k = lambda a, b: (a @ b / 4 + 1) ** 3
  m = 30  # one subset of all 30 fakes and 30 of the reals: as many as the code draws
  idx = np.random.RandomState(7)
  fx, ry = x[idx.choice(30, m, replace=False)], y[idx.choice(40, m, replace=False)]
  xx = sum(k(fx[i], fx[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
  yy = sum(k(ry[i], ry[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
  xy = sum(k(a, b) for a in fx for b in ry) / m**2
  assert kid.kernel_distance(x, y, num_subsets=1, seed=7) == pytest.approx(xx + yy - 2 * xy, rel=1e-10)


def test_kid_is_unbiased_on_identical_distributions_and_positive_when_shifted():
  rng = np.random.RandomState(3)
  same = [kid.kernel_distance(rng.randn(200, 8), rng.randn(200, 8), num_subsets=10, seed=s) for s in range(20)]
  shifted = kid.kernel_distance(rng.randn(200, 8), rng.randn(200, 8) + 0.5, num_subsets=10)
  assert abs(np.mean(same)) < 3 * np.std(same) / np.sqrt(len(same))
  assert min(same) < 0 < max(same)  # unbiased: not a clipped or squared quantity
  assert shifted > 10 * np.std(same)


def test_precision_recall_on_point_clouds_with_known_answers():
  rng = np.random.RandomState(4)
  real = rng.randn(600, 3).astype(np.float32)
  assert precision_recall.precision_recall(real, real) == (1.0, 1.0)
  p, r = precision_recall.precision_recall(real, rng.randn(600, 3))
  assert p > 0.8 and r > 0.8
  assert precision_recall.precision_recall(real, rng.randn(600, 3) + 20) == (0.0, 0.0)
  subset = real[np.linalg.norm(real, axis=1) < 0.8]  # the core of the real cloud
  p, r = precision_recall.precision_recall(real, subset)
  assert p == 1.0 and r < 0.3


def test_precision_recall_blocks_match_brute_force():
  rng = np.random.RandomState(5)
  real, fake = rng.randn(70, 4).astype(np.float32), rng.randn(50, 4).astype(np.float32) + 0.3
  d = lambda a, b: np.sum((a[:, None] - b[None]) ** 2, -1)
  radii_real = np.sort(d(real, real), axis=1)[:, 3]
  radii_fake = np.sort(d(fake, fake), axis=1)[:, 3]
  precision = np.mean(np.any(d(fake, real) <= radii_real[None], axis=1))
  recall = np.mean(np.any(d(real, fake) <= radii_fake[None], axis=1))
  np.testing.assert_allclose(precision_recall.manifold_radii(real, batch_size=16), radii_real, rtol=1e-4, atol=1e-5)
  for batch_size in (7, 64):
    assert precision_recall.precision_recall(real, fake, batch_size=batch_size) == pytest.approx(
        (precision, recall), abs=1.5 / 50)


def test_class_coverage():
  probabilities = np.eye(4)[[0, 0, 0, 1, 1, 2, 0, 1]] * 0.7 + 0.075
  c = coverage.class_coverage(probabilities)
  assert c['histogram'] == [0.5, 0.375, 0.125, 0.0]
  assert c['min_share'] == 0.0 and c['classes'] == 3 and c['mean_confidence'] == pytest.approx(0.775)
  assert coverage.class_coverage(probabilities, threshold=0.6)['classes'] == 2  # 0.125 < 0.6 / 4


def test_conditional_entropy_in_bits():
  rng = np.random.RandomState(6)
  y = rng.randint(0, 2, 100000)
  assert separability.conditional_entropy(y, y) == 0.0
  assert separability.conditional_entropy(rng.randint(0, 2, 100000), y) == pytest.approx(1.0, abs=1e-3)
  assert separability.conditional_entropy(1 - y, y) == 0.0


def test_linear_separability_is_1_for_linear_classes_and_larger_for_entangled_ones():
  rng = np.random.RandomState(7)
  z = rng.randn(4000, 6)
  logits = np.stack([z[:, 0] * 5, -z[:, 0] * 5], axis=1)  # class 0 iff z0 > 0
  linear = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
  radial = np.abs(z[:, 1]) > 0.67  # class 1 on both tails of z1: not linear
  p1 = np.where(radial, 0.6, 0.4) + np.where(radial, 0.4, -0.4) * rng.rand(len(z))  # random confidences
  entangled = np.stack([1 - p1, p1], axis=1)
  scores = separability.linear_separability(linear, {'z': z})
  assert scores['z'] == pytest.approx(1.0, abs=0.02)
  assert separability.linear_separability(entangled, {'z': z})['z'] > 1.5
