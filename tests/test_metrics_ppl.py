"""Perceptual path length: the sampling math against direct numpy formulas, the crop and downsampling, the
percentile filter, and the whole metric on the golden generator with a simple distance and with LPIPS.
"""

import jax
import numpy as np
import pytest

import test_metrics_lpips
import torch_files
from stylegan_jax import errors, official
from stylegan_jax.metrics import lpips, ppl


def normalize64(v):
  return v / np.sqrt(np.sum(v * v, axis=-1, keepdims=True))


def slerp64(a, b, t):
  """The official code's slerp (metrics/perceptual_path_length.py), in float64 numpy."""
  a, b = normalize64(a), normalize64(b)
  d = np.sum(a * b, axis=-1, keepdims=True)
  p = t * np.arccos(d)
  c = normalize64(b - d * a)
  return normalize64(a * np.cos(p) + c * np.sin(p))


def test_slerp_and_lerp_match_direct_formulas():
  rng = np.random.default_rng(0)
  a, b = rng.normal(size=(2, 64, 16))
  t = rng.uniform(size=(64, 1))
  np.testing.assert_allclose(np.asarray(ppl.slerp(a.astype(np.float32), b.astype(np.float32), t.astype(np.float32))),
                             slerp64(a, b, t), atol=2e-6)
  np.testing.assert_allclose(np.asarray(ppl.slerp(a, b, np.zeros_like(t))), normalize64(a), atol=1e-6)
  np.testing.assert_allclose(np.asarray(ppl.slerp(a, b, np.ones_like(t))), normalize64(b), atol=1e-5)
  # A step of epsilon in t moves along the great circle by epsilon * angle(a, b).
  step = np.asarray(ppl.slerp(a, b, t + ppl.EPSILON)) - np.asarray(ppl.slerp(a, b, t))
  angle = np.arccos(np.sum(normalize64(a) * normalize64(b), axis=-1))
  np.testing.assert_allclose(np.linalg.norm(step, axis=-1), ppl.EPSILON * angle, rtol=2e-2)
  w0, w1 = rng.normal(size=(2, 4, 3, 5))
  np.testing.assert_allclose(np.asarray(ppl.lerp(w0, w1, t[:4, :, None])), w0 + (w1 - w0) * t[:4, :, None],
                             rtol=1e-6)


def test_crop_is_the_official_face_region():
  for size, rows, cols in ((32, (12, 28), (8, 24)), (64, (24, 56), (16, 48)), (1024, (384, 896), (256, 768))):
    r, c = np.meshgrid(np.arange(size), np.arange(size), indexing='ij')
    images = np.stack([r, c], axis=-1)[None].astype(np.float32)  # [1, H, W, 2]: (row, col) of each pixel
    cropped = np.asarray(ppl.crop(images))
    assert cropped.shape == (1, rows[1] - rows[0], cols[1] - cols[0], 2)
    assert (cropped[0, 0, 0, 0], cropped[0, -1, 0, 0]) == (rows[0], rows[1] - 1)
    assert (cropped[0, 0, 0, 1], cropped[0, 0, -1, 1]) == (cols[0], cols[1] - 1)


def test_downsample_only_above_256():
  rng = np.random.default_rng(1)
  small = rng.normal(size=(2, 256, 256, 3)).astype(np.float32)
  np.testing.assert_array_equal(np.asarray(ppl.downsample(small)), small)
  large = rng.normal(size=(1, 512, 512, 3)).astype(np.float32)  # the 1024² crop: factor 2
  expected = large.reshape(1, 256, 2, 256, 2, 3).mean(axis=(2, 4))
  np.testing.assert_allclose(np.asarray(ppl.downsample(large)), expected, rtol=1e-6, atol=1e-6)


def test_filtered_mean_keeps_the_1st_to_99th_percentile():
  np.testing.assert_allclose(ppl.filtered_mean(np.arange(200.0)), np.mean(np.arange(1, 199)))
  values = np.random.default_rng(2).lognormal(size=1001)
  ordered = np.sort(values)
  lo, hi = ordered[int(np.floor(0.01 * 1000))], ordered[int(np.ceil(0.99 * 1000))]  # 'lower', 'higher'
  np.testing.assert_allclose(ppl.filtered_mean(values), values[(values >= lo) & (values <= hi)].mean())


@pytest.fixture(scope='module')
def golden(golden_dir):
  return official.load_official(golden_dir / 'network.pkl')


def mse(a, b):
  return ((a - b) ** 2).mean(axis=(1, 2, 3))


@pytest.mark.parametrize('space,sampling', [('z', 'full'), ('w', 'end')])
def test_golden_generator_path_lengths(golden, space, sampling):
  kwargs = dict(space=space, sampling=sampling, num_samples=12, batch_size=8)
  values = ppl.path_lengths(golden.Gs, golden.config, mse, seed=3, **kwargs)
  assert values.shape == (12,) and values.dtype == np.float64
  assert np.all(np.isfinite(values)) and np.all(values > 0)
  np.testing.assert_array_equal(values, ppl.path_lengths(golden.Gs, golden.config, mse, seed=3, **kwargs))
  assert not np.allclose(values, ppl.path_lengths(golden.Gs, golden.config, mse, seed=4, **kwargs))
  # Batch 0 is image_pairs(fold_in(key(seed), 0)): [0, 255] crops whose distance / eps² is the value.
  a, b = ppl.image_pairs(golden.Gs, jax.random.fold_in(jax.random.key(3), 0), golden.config, space, sampling, 8)
  a, b = np.asarray(a), np.asarray(b)
  assert a.shape == (8, 16, 16, 3) and 0 <= np.median(a) <= 255
  np.testing.assert_allclose(values[:8], mse(a, b) / ppl.EPSILON ** 2, rtol=1e-6)
  # Both ends of a pair share latents and noise, so they differ by far less than two pairs do.
  assert np.abs(a - b).max() < 0.05 * np.abs(a[0] - a[1]).max()


def test_lpips_distance_and_argument_checks(golden, tmp_path):
  vgg, heads = test_metrics_lpips.random_states()
  torch_files.write(tmp_path / 'vgg16.pth', vgg, legacy=False)
  torch_files.write(tmp_path / 'vgg.pth', heads)
  perceptual = lpips.load(tmp_path / 'vgg16.pth', tmp_path / 'vgg.pth')
  x = np.random.default_rng(4).uniform(0, 255, (2, 2, 16, 16, 3)).astype(np.float32)
  np.testing.assert_allclose(np.asarray(ppl.lpips_on_255(perceptual)(x[0], x[1])),
                             np.asarray(perceptual.distance(x[0] / 127.5 - 1, x[1] / 127.5 - 1)), rtol=1e-6)
  # w/end with 8 pairs a batch, as test_golden_generator_path_lengths: the generator is compiled once.
  value = ppl.ppl(golden.Gs, golden.config, 'w', 'end', num_samples=8, distance=perceptual, batch_size=8)
  assert np.isfinite(value) and value > 0
  with pytest.raises(errors.UsageError, match="PPL space 'x' is not one of"):
    ppl.ppl(golden.Gs, golden.config, 'x', distance=mse)
  with pytest.raises(errors.UsageError, match='PPL needs a distance'):
    ppl.ppl(golden.Gs, golden.config)
