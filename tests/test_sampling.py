"""The Sampler: official conventions, truncation, noise, labels, chunking, sources, PNGs and `generate`."""

import numpy as np
import pytest
from PIL import Image

from stylegan_jax import export, sample, sampling
from stylegan_jax.network_config import NetworkConfig
from test_export import TINY, random_variables


@pytest.fixture(scope='module')
def golden(golden_dir):
  return dict(np.load(golden_dir / 'golden.npz'))


@pytest.fixture(scope='module')
def official_sampler(golden_dir):
  return sampling.Sampler.from_path(golden_dir / 'network.pkl', batch_size=4)


@pytest.fixture(scope='module')
def tiny_sampler():
  return sampling.Sampler(TINY, random_variables(TINY, 0), batch_size=4)


def test_official_conventions(official_sampler, golden):
  """Seeds give RandomState latents; float images match the official ones; uint8 is convert_images_to_uint8."""
  np.testing.assert_array_equal(official_sampler.latents([3, 7])[1],
                                np.random.RandomState(7).randn(64).astype(np.float32))
  dlatents = official_sampler.map(golden['latents'], psi=0.7, cutoff=4)
  np.testing.assert_allclose(dlatents, golden['gs_dlatents_psi0p7_cutoff4'], rtol=1e-5, atol=1e-5)
  images = official_sampler.synthesize(dlatents, noise_mode='const', uint8=False)
  ref = np.transpose(golden['gs_images_psi0p7_cutoff4'], (0, 2, 3, 1))
  np.testing.assert_allclose(images, ref, atol=1e-4 * np.abs(ref).max())
  official_uint8 = np.clip(ref * 127.5 + 128.0, 0, 255).astype(np.uint8)  # tf.saturate_cast(x * 127.5 + 128)
  assert np.abs(official_sampler.synthesize(dlatents, noise_mode='const').astype(int) - official_uint8).max() <= 1
  edges = sampling.to_uint8(np.array([-2.0, -1.0, -1.0 + 0.5 / 127.5, 0.0, 1.0, 2.0], np.float32))
  assert edges.tolist() == [0, 0, 1, 128, 255, 255]


def test_truncation_psi_zero_gives_the_average(official_sampler):
  avg = official_sampler.dlatent_avg
  plain = official_sampler.map_seeds(range(5))
  full = official_sampler.map_seeds(range(5), psi=0.0)
  np.testing.assert_array_equal(full, np.broadcast_to(avg, full.shape))
  partial = official_sampler.map_seeds(range(5), psi=0.0, cutoff=3)
  np.testing.assert_array_equal(partial[:, :3], np.broadcast_to(avg, partial[:, :3].shape))
  np.testing.assert_array_equal(partial[:, 3:], plain[:, 3:])
  half = official_sampler.map_seeds(range(5), psi=0.5, cutoff=3)
  np.testing.assert_allclose(half[:, :3], avg + 0.5 * (plain[:, :3] - avg), rtol=1e-6, atol=1e-6)
  images = official_sampler.generate(range(5), psi=0.0, noise_mode='const')
  average = official_sampler.synthesize(np.broadcast_to(avg, (5, *avg.shape)), noise_mode='const')
  np.testing.assert_array_equal(images, average)
  assert (images == images[:1]).all()


def test_seed_images_are_deterministic_and_independent_of_their_batch(tiny_sampler):
  for mode in ('random', 'const'):
    images = tiny_sampler.generate(range(7), noise_mode=mode)
    np.testing.assert_array_equal(tiny_sampler.generate(range(7), noise_mode=mode), images)
    np.testing.assert_array_equal(tiny_sampler.generate([5, 6], noise_mode=mode), images[5:])  # other chunk slots
  random = tiny_sampler.generate(range(4), noise_mode='random')
  assert not np.array_equal(tiny_sampler.generate(range(4), noise_mode='random', noise_seed=1), random)
  assert not np.array_equal(tiny_sampler.generate(range(4), noise_mode='const'), random)
  assert not np.array_equal(tiny_sampler.generate(range(4), noise_mode='none'), random)


def test_chunking_matches_one_batch(official_sampler):
  """7 images in chunks of 3 = in one batch of 8, up to float rounding of the differently compiled batch."""
  one_batch = sampling.Sampler(official_sampler.config, official_sampler.variables, batch_size=8)
  chunked = sampling.Sampler(official_sampler.config, official_sampler.variables, batch_size=3)
  dlatents = one_batch.map_seeds(range(7), psi=0.7)
  np.testing.assert_allclose(chunked.map_seeds(range(7), psi=0.7), dlatents, rtol=1e-6, atol=1e-6)
  a = one_batch.synthesize(dlatents, noise_mode='const', uint8=False)
  b = chunked.synthesize(dlatents, noise_mode='const', uint8=False)
  assert a.shape == b.shape == (7, 32, 32, 3)
  np.testing.assert_allclose(b, a, atol=1e-5 * np.abs(a).max())
  assert np.abs(sampling.to_uint8(a).astype(int) - sampling.to_uint8(b)).max() <= 1


def test_pickle_and_artifact_give_identical_images(official_sampler, golden_dir, tmp_path):
  export.import_official(golden_dir / 'network.pkl', tmp_path / 'art', names=['Gs'])
  from_artifact = sampling.Sampler.from_path(tmp_path / 'art', batch_size=4)
  np.testing.assert_array_equal(from_artifact.generate(range(6), psi=0.7, cutoff=8, noise_mode='const'),
                                official_sampler.generate(range(6), psi=0.7, cutoff=8, noise_mode='const'))
  with pytest.raises(export.ArtifactError, match='has no G'):
    sampling.Sampler.from_path(tmp_path / 'art', 'G')
  with pytest.raises(ValueError, match="'Gs' or 'G'"):
    sampling.Sampler.from_path(tmp_path / 'art', 'D')


def test_labels():
  cfg = NetworkConfig(**{**TINY.to_dict(), 'label_size': 3})
  sampler = sampling.Sampler(cfg, random_variables(cfg, 1), batch_size=4)
  with pytest.raises(ValueError, match=r'conditional \(label_size=3\): pass labels'):
    sampler.generate([0, 1])
  by_id = sampler.generate([0, 1, 2], labels=[2, 0, 1], noise_mode='const')
  one_hot = np.eye(3, dtype=np.float32)[[2, 0, 1]]
  np.testing.assert_array_equal(sampler.generate([0, 1, 2], labels=one_hot, noise_mode='const'), by_id)
  np.testing.assert_array_equal(sampler.generate([0, 1], labels=1, noise_mode='const'),
                                sampler.generate([0, 1], labels=np.array([0.0, 1.0, 0.0]), noise_mode='const'))
  assert not np.array_equal(sampler.generate([0], labels=0, noise_mode='const'),
                            sampler.generate([0], labels=1, noise_mode='const'))
  with pytest.raises(ValueError, match=r'class ids must be in \[0, 3\)'):
    sampler.labels(3, 1)
  with pytest.raises(ValueError, match='one per image'):
    sampler.labels([0, 1], 3)
  with pytest.raises(ValueError, match=r'label vectors must be \[3\] or \[2, 3\]'):
    sampler.labels(np.zeros((2, 4), np.float32), 2)
  with pytest.raises(ValueError, match='unconditional'):
    sampling.Sampler(TINY, random_variables(TINY, 0)).labels(0, 1)


def test_bad_inputs_are_named(tiny_sampler):
  with pytest.raises(ValueError, match=r'latents must be \[N, 16\]'):
    tiny_sampler.map(np.zeros((2, 15)))
  with pytest.raises(ValueError, match=r'dlatents must be \[N, 8, 16\]'):
    tiny_sampler.synthesize(np.zeros((2, 7, 16)))
  with pytest.raises(ValueError, match='noise_mode'):
    tiny_sampler.synthesize(np.zeros((2, 16)), noise_mode='stored')
  with pytest.raises(ValueError, match='exactly one of seeds and latents'):
    tiny_sampler.generate()


def test_png_and_grid(tmp_path):
  rgb = np.random.RandomState(0).randint(0, 256, (5, 4, 6, 3)).astype(np.uint8)
  grid = sampling.image_grid(rgb, cols=2)
  assert grid.shape == (12, 12, 3)
  np.testing.assert_array_equal(grid[4:8, 6:12], rgb[3])
  assert (grid[8:, 6:] == 255).all()  # the empty cell
  sampling.save_png(grid, tmp_path / 'a' / 'grid.png')
  np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / 'a' / 'grid.png')), grid)
  gray = rgb[:1, :, :, :1]
  sampling.save_png(gray[0], tmp_path / 'gray.png')
  with Image.open(tmp_path / 'gray.png') as im:
    assert im.mode == 'L' and np.array_equal(np.asarray(im), gray[0, :, :, 0])


def test_parse_seeds_and_labels():
  assert sample.parse_seeds('0-3,42, 7') == [0, 1, 2, 3, 42, 7]
  for bad in ('a', '3-', '-1', '4294967296'):
    with pytest.raises(Exception, match='seeds'):
      sample.parse_seeds(bad)
  assert sample.parse_labels('3') == 3
  assert sample.parse_labels('0,2') == [0, 2]
  assert sample.parse_label_vector('0.5,0,0.5').tolist() == [0.5, 0, 0.5]


def test_cli_generate(official_sampler, golden_dir, tmp_path, capsys):
  pkl = str(golden_dir / 'network.pkl')
  args = ['generate', '--network', pkl, '--batch-size', '4', '--psi', '0.7', '--cutoff', '8', '--noise-mode', 'const']
  assert sample.main(args + ['--seeds', '0-2,9', '--outdir', str(tmp_path), '--grid', '--grid-cols', '2']) == 0
  expected = official_sampler.generate([0, 1, 2, 9], psi=0.7, cutoff=8, noise_mode='const')
  for seed, image in zip([0, 1, 2, 9], expected):
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / f'seed{seed:04d}.png')), image)
  np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / 'grid.png')), sampling.image_grid(expected, 2))
  np.save(tmp_path / 'z.npy', official_sampler.latents([0, 1, 2, 9]))
  assert sample.main(args + ['--latents', str(tmp_path / 'z.npy'), '--outdir', str(tmp_path / 'z')]) == 0
  np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / 'z' / 'latent0003.png')),
                                official_sampler.generate([9], psi=0.7, cutoff=8, noise_mode='const')[0])
  assert sample.main(['generate', '--network', str(tmp_path / 'missing'), '--seeds', '0']) == 1
  assert 'not an artifact directory' in capsys.readouterr().err
