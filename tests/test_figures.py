"""The paper's figures: layer ranges, layouts and pixel sizes, the noise std image, interpolations and the CLI."""

import jax
import numpy as np
import pytest
from PIL import Image

from stylegan_jax import export, figures, sample, sampling
from stylegan_jax.network_config import NetworkConfig
from test_export import TINY, random_variables

R = TINY.resolution


@pytest.fixture(scope='module')
def sampler():
  return sampling.Sampler(TINY, random_variables(TINY, 0), batch_size=4)


@pytest.fixture(scope='module')
def artifact_path(sampler, tmp_path_factory):
  return export.save_artifact(tmp_path_factory.mktemp('fig') / 'tiny', TINY, random_variables(TINY, 0))


def test_style_ranges():
  assert figures.style_range('coarse', 18) == range(0, 4)
  assert figures.style_range('middle', 18) == range(4, 8)
  assert figures.style_range('fine', 18) == range(8, 18)
  assert figures.style_range('middle', 8) == range(4, 8)
  assert figures.style_range('2-5', 8) == range(2, 6) and figures.style_range('7', 8) == range(7, 8)
  with pytest.raises(ValueError, match='selects no layer of this 8-layer generator'):
    figures.style_range('fine', 8)
  with pytest.raises(ValueError, match='past the last layer'):
    figures.style_range('6-8', 8)
  with pytest.raises(ValueError, match='coarse'):
    figures.style_range('top', 8)


def test_mix_styles_takes_the_range_from_the_column_source():
  rng = np.random.RandomState(0)
  rows, cols = rng.randn(3, 8, 5), rng.randn(4, 8, 5)
  ranges = [range(0, 4), range(4, 8), range(2, 3)]
  mixed = figures.mix_styles(rows, cols, ranges)
  assert mixed.shape == (3, 4, 8, 5)
  for r, layers in enumerate(ranges):
    for c in range(4):
      for layer in range(8):
        np.testing.assert_array_equal(mixed[r, c, layer], (cols[c] if layer in layers else rows[r])[layer])


def test_style_mixing_figure(sampler):
  row_seeds, col_seeds = [1, 2], [3, 4, 5]
  canvas = figures.style_mixing_figure(sampler, row_seeds, col_seeds, ['coarse', '5-7'])
  assert canvas.shape == (3 * R, 4 * R, 3)
  assert (canvas[:R, :R] == 255).all()
  sources = sampler.generate(row_seeds + col_seeds, noise_mode='const')
  for j in range(3):
    np.testing.assert_array_equal(canvas[:R, (j + 1) * R:(j + 2) * R], sources[2 + j])
  for i in range(2):
    np.testing.assert_array_equal(canvas[(i + 1) * R:(i + 2) * R, :R], sources[i])
  w = sampler.map_seeds(row_seeds + col_seeds)
  mixed = w[1].copy()
  mixed[5:8] = w[2 + 2][5:8]  # row 2 (styles 5-7) x column 3
  np.testing.assert_array_equal(canvas[2 * R:, 3 * R:], sampler.synthesize(mixed[None], noise_mode='const')[0])


def test_truncation_figure(sampler):
  psis = [1.0, 0.5, 0.0]
  canvas = figures.truncation_figure(sampler, [1, 2], psis)
  assert canvas.shape == (2 * R, 3 * R, 3)
  plain = sampler.generate([1, 2], noise_mode='const')
  np.testing.assert_array_equal(canvas[:, :R], np.concatenate(plain))
  np.testing.assert_array_equal(canvas[:R, 2 * R:], canvas[R:, 2 * R:])  # psi 0: the average image in each row
  assert not np.array_equal(canvas[:R, R:2 * R], canvas[R:, R:2 * R])
  cut = figures.truncation_figure(sampler, [1, 2], psis, cutoff=4)
  assert not np.array_equal(cut[:R, 2 * R:], cut[R:, 2 * R:])  # layers 4+ keep each seed's own styles


def test_noise_figure_and_std(sampler):
  canvas = figures.noise_figure(sampler, [1, 2], num_samples=12, num_show=3)
  assert canvas.shape == (2 * R, 4 * R, 3)
  std = canvas[:, 3 * R:]
  assert std.max() == 255 and (std[..., 0] == std[..., 1]).all()
  assert not np.array_equal(canvas[:R, :R], canvas[:R, R:2 * R])  # different noise draws
  # Without noise strength the draws are identical and the std image is zero everywhere.
  silent = jax.tree_util.tree_map_with_path(
      lambda path, x: np.zeros_like(x) if 'Noise' in jax.tree_util.keystr(path) else x, sampler.variables)
  quiet = figures.noise_figure(sampling.Sampler(TINY, silent, batch_size=4), [1], num_samples=12, num_show=2)
  assert (quiet[:, 2 * R:] == 0).all()
  np.testing.assert_array_equal(quiet[:, :R], quiet[:, R:2 * R])
  assert (figures.noise_std(np.ones((5, 4, 4, 3))) == 0).all()


def test_slerp():
  rng = np.random.RandomState(0)
  a, b = rng.randn(1, 16), rng.randn(1, 16)
  b *= np.linalg.norm(a) / np.linalg.norm(b)
  path = figures.slerp(np.repeat(a, 5, 0), np.repeat(b, 5, 0), np.linspace(0, 1, 5))
  np.testing.assert_allclose(path[0], a[0], rtol=1e-5)
  np.testing.assert_allclose(path[-1], b[0], rtol=1e-5)
  np.testing.assert_allclose(np.linalg.norm(path, axis=1), np.linalg.norm(a), rtol=1e-5)
  np.testing.assert_allclose(figures.slerp(a, a, np.array([0.3])), a, rtol=1e-6)


def test_interpolation_frames(sampler, tmp_path):
  keys = sampler.generate([1, 2, 3], noise_mode='const')
  frames = figures.interpolation_frames(sampler, [1, 2, 3], 9, space='w')
  assert frames.shape == (9, R, R, 3)
  np.testing.assert_array_equal(frames[0], keys[0])
  np.testing.assert_array_equal(frames[4], keys[1])
  np.testing.assert_array_equal(frames[-1], keys[2])
  z_frames = figures.interpolation_frames(sampler, [1, 2, 3], 6, space='z', loop=True)
  assert z_frames.shape == (6, R, R, 3)
  assert np.abs(z_frames[0].astype(int) - keys[0]).max() <= 1  # slerp at t=0, up to float rounding
  path = figures.save_animation(frames, tmp_path / 'walk.gif', fps=10)
  with Image.open(path) as gif:
    assert gif.n_frames == 9 and gif.size == (R, R) and gif.info['duration'] == 100


def test_mp4_needs_ffmpeg(monkeypatch, tmp_path):
  frames = np.zeros((2, 8, 8, 3), np.uint8)
  with pytest.raises(ValueError, match=r'\.gif or \.mp4'):
    figures.save_animation(frames, tmp_path / 'walk.avi')
  monkeypatch.setattr(figures.shutil, 'which', lambda name: None)
  with pytest.raises(RuntimeError, match=r'needs an ffmpeg binary on PATH.*\.gif'):
    figures.save_animation(frames, tmp_path / 'walk.mp4')


def test_mp4_with_ffmpeg(tmp_path):
  if figures.shutil.which('ffmpeg') is None:
    pytest.skip('no ffmpeg on PATH')
  frames = np.random.RandomState(0).randint(0, 256, (5, 32, 32, 3)).astype(np.uint8)
  assert figures.save_animation(frames, tmp_path / 'walk.mp4').stat().st_size > 0


def test_figure_commands(artifact_path, tmp_path):
  common = ['--network', str(artifact_path), '--batch-size', '4']
  expected = {
      'mix.png': (['style-mixing', '--row-seeds', '1-3', '--col-seeds', '4,5', '--styles', 'coarse,middle,0-1'],
                  (3 * R, 4 * R)),
      'trunc.png': (['truncation', '--seeds', '1,2', '--psis', '1,0.7,0,-0.7'], (4 * R, 2 * R)),
      'noise.png': (['noise', '--seeds', '1', '--samples', '8', '--show', '2'], (3 * R, R)),
  }
  for name, (args, size) in expected.items():
    assert sample.main(args + common + ['--out', str(tmp_path / name)]) == 0
    with Image.open(tmp_path / name) as im:
      assert im.size == size and im.mode == 'RGB', name
  assert sample.main(['interpolate', '--seeds', '1-3', '--frames', '7', '--loop', '--space', 'z',
                      '--out', str(tmp_path / 'walk.gif')] + common) == 0
  with Image.open(tmp_path / 'walk.gif') as gif:
    assert gif.n_frames == 7 and gif.size == (R, R)


def test_grayscale_model(tmp_path):
  cfg = NetworkConfig(**{**TINY.to_dict(), 'num_channels': 1})
  gray = sampling.Sampler(cfg, random_variables(cfg, 2), batch_size=4)
  canvas = figures.truncation_figure(gray, [1], [1.0, 0.0])
  assert canvas.shape == (R, 2 * R, 1)
  with Image.open(sampling.save_png(canvas, tmp_path / 'gray.png')) as im:
    assert im.mode == 'L' and im.size == (2 * R, R)
  with Image.open(figures.save_animation(figures.interpolation_frames(gray, [1, 2], 3), tmp_path / 'g.gif')) as gif:
    assert gif.n_frames == 3
