"""The projector (projector.py): StyleGAN2's schedule, the noise regulariser, and recovery of known dlatents of
the golden official model (tiny, random weights)."""

import numpy as np
import pytest

from conftest import GOLDEN as GOLDEN_DIR
from stylegan_jax import official, projector, sampling
from stylegan_jax.data import images as images_lib

GOLDEN = str(GOLDEN_DIR / 'sg1_small32' / 'network.pkl')


@pytest.fixture(scope='module')
def sampler():
  nets = official.load_official(GOLDEN)
  return sampling.Sampler(nets.config, nets.Gs, batch_size=2)


@pytest.fixture(scope='module')
def targets(sampler):
  """Two images from known dlatents: seeds 1, 2 mapped, rendered with the stored (const) noise."""
  dlatents = sampler.map_seeds([1, 2])
  return dlatents, sampler.synthesize(dlatents, noise_mode='const')


# (fraction of num_steps, learning rate, noise strength / w_std): StyleGAN2 projector.py's formulas at its defaults.
SCHEDULE_TABLE = [(0.0, 0.0, 0.05), (0.025, 0.05, 0.05 * (1 - 0.025 / 0.75) ** 2), (0.375, 0.1, 0.0125),
                  (0.5, 0.1, 0.05 * (1 / 3) ** 2), (0.75, 0.1, 0.0), (0.875, 0.05, 0.0), (1.0, 0.0, 0.0)]


@pytest.mark.parametrize('fraction,lr,noise', SCHEDULE_TABLE)
def test_schedule_matches_stylegan2(fraction, lr, noise):
  schedule = projector.Schedule()
  step = fraction * schedule.num_steps
  np.testing.assert_allclose(float(schedule.learning_rate(step)), lr, atol=1e-7)
  np.testing.assert_allclose(float(schedule.noise_strength(step, 2.0)), 2.0 * noise, atol=1e-7)


def test_noise_regularization_and_normalization():
  rng = np.random.RandomState(0)
  maps = [rng.randn(2, 16, 16, 1).astype(np.float32), rng.randn(2, 4, 4, 1).astype(np.float32)]

  def reference(n):  # per image: autocorrelation along x and y, at 16² and 8² (stop at <= 8), then the 4² map
    total = 0.0
    while True:
      total += np.mean(n * np.roll(n, 1, axis=1)) ** 2 + np.mean(n * np.roll(n, 1, axis=0)) ** 2
      if n.shape[0] <= 8:
        return total
      n = n.reshape(n.shape[0] // 2, 2, n.shape[1] // 2, 2).mean(axis=(1, 3))

  expected = [reference(maps[0][i, ..., 0]) + reference(maps[1][i, ..., 0]) for i in range(2)]
  np.testing.assert_allclose(projector.noise_regularization(maps), expected, rtol=1e-5)
  np.testing.assert_allclose(projector.noise_regularization([np.ones((1, 16, 16, 1), np.float32)]), [4.0])
  for n in projector.normalize_noise([m * 3 + 1 for m in maps]):
    np.testing.assert_allclose(np.mean(n, axis=(1, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(np.mean(np.square(n), axis=(1, 2, 3)), 1, rtol=1e-5)


def test_projection_recovers_known_dlatents(sampler, targets):
  dlatents, images = targets
  schedule = projector.Schedule(num_steps=120)
  start_psnr = projector.psnr(sampler.synthesize(np.repeat(sampler.dlatent_avg[None], 2, 0), noise_mode='const'),
                              images)
  before = projector._run_steps._cache_size()
  wplus = projector.project(sampler, images, space='w+', noise='const', schedule=schedule, steps_per_call=20)
  assert projector._run_steps._cache_size() == before + 1
  w = projector.project(sampler, images, space='w', noise='const', schedule=schedule, steps_per_call=20)
  # The same batch shape again (other targets) compiles nothing new.
  projector.project(sampler, images[::-1], space='w+', noise='const', schedule=schedule, steps_per_call=20)
  assert projector._run_steps._cache_size() == before + 2  # w+ and w

  assert wplus.dlatents.shape == dlatents.shape and w.dlatents.shape == dlatents.shape
  np.testing.assert_array_equal(w.dlatents, np.repeat(w.dlatents[:, :1], dlatents.shape[1], axis=1))
  np.testing.assert_array_equal(sampler.synthesize(wplus.dlatents, noise_mode='const'), wplus.images)
  wplus_psnr, w_psnr = projector.psnr(wplus.images, images), projector.psnr(w.images, images)
  print(f'PSNR from w_avg {start_psnr}, projected W {w_psnr}, W+ {wplus_psnr} dB')
  # This random-weight generator is chaotic in w (5% of the way from w_avg to a target's w already costs
  # ~6 dB), so 120 steps land in a nearby basin: measured 18.5 and 19.5 dB in W+, 16.1 and 17.9 in W (30 dB needs
  # a trained, smooth model; README: Projection and synthetic datasets).
  assert np.all(wplus_psnr > start_psnr + 8) and np.all(wplus_psnr > 16)
  assert np.mean(wplus_psnr) > np.mean(w_psnr)
  # The distance falls over the iterations: mean over images, call after call.
  history = wplus.history.mean(axis=1)
  assert np.all(np.diff(history) < 0), history
  np.testing.assert_allclose(wplus.distance, wplus.history[-1], rtol=0.01)  # no exploration noise left


def test_noise_optimisation_and_frames(sampler, targets):
  _, images = targets
  result = projector.project(sampler, images, space='w+', schedule=projector.Schedule(num_steps=20),
                             steps_per_call=10, keep_frames=True)  # the loop test_project_cli compiles too
  assert [n.shape for n in result.noise] == [(2, s, s, 1) for s in projector.noise_sides(sampler.config)]
  for n in result.noise:  # renormalised after every step
    np.testing.assert_allclose(np.mean(np.square(n), axis=(1, 2, 3)), 1, rtol=1e-4)
  assert result.frames.shape == (3, *images.shape) and result.frames.dtype == np.uint8
  np.testing.assert_array_equal(result.frames[-1], result.images)
  assert result.history.shape == (2, 2) and result.labels is None


def test_load_images_resizes_and_crops_as_prepare(sampler, tmp_path):
  big = np.random.RandomState(0).randint(0, 256, (48, 64, 3), np.uint8)
  path = tmp_path / 'big.png'
  sampling.save_png(big, path)
  loaded = projector.load_images([path], sampler.config)
  expected = images_lib.load_image(str(path), resolution=32, num_channels=3, crop='center')
  np.testing.assert_array_equal(loaded, expected[None])


def test_bad_arguments(sampler, targets):
  _, images = targets
  with pytest.raises(ValueError, match='targets must be uint8'):
    projector.project(sampler, images[:, :16, :16])
  with pytest.raises(ValueError, match='space must be'):
    projector.project(sampler, images, space='z')
  with pytest.raises(ValueError, match='multiple of steps_per_call'):
    projector.project(sampler, images, schedule=projector.Schedule(num_steps=30), steps_per_call=20)
  with pytest.raises(ValueError, match='unconditional'):
    projector.project(sampler, images, labels=1)


def test_domain_distance_is_the_classifiers_feature_distance(sampler, targets, tmp_path):
  import jax  # noqa: PLC0415
  from stylegan_jax.metrics import classifier  # noqa: PLC0415
  params = classifier.DomainCNN(3).init(jax.random.key(0), np.zeros((1, 32, 32, 1), np.float32))['params']
  record = dict(format=classifier.FORMAT, format_version=classifier.FORMAT_VERSION, size=32, num_channels=1,
                num_classes=3, checksum=classifier.checksum(jax.device_get(params)))
  classifier.save(classifier.DomainClassifier(params, record), tmp_path / 'cls')
  distance = projector.domain_distance(tmp_path / 'cls')
  _, images = targets
  other = images[::-1]
  features = classifier.load(tmp_path / 'cls')(np.concatenate([images, other]))
  expected = np.mean((features[:2] - features[2:]) ** 2, axis=-1)
  as_float = lambda x: np.asarray(x, np.float32) / 127.5 - 1  # noqa: E731
  np.testing.assert_allclose(distance(as_float(images), as_float(other)), expected, rtol=1e-4, atol=1e-7)
  np.testing.assert_array_equal(distance(as_float(images), as_float(images)), [0, 0])
  result = projector.project(sampler, images, distance=distance, schedule=projector.Schedule(num_steps=20),
                             steps_per_call=10)
  assert result.history[-1].mean() < result.history[0].mean()


def test_conditional_label_given_or_searched():
  import jax  # noqa: PLC0415
  from stylegan_jax import networks  # noqa: PLC0415
  from stylegan_jax.network_config import NetworkConfig  # noqa: PLC0415
  cfg = NetworkConfig(resolution=4, label_size=3, fmap_base=32, fmap_max=16, latent_size=16, dlatent_size=16,
                      mapping_layers=2, mapping_fmaps=16)
  cond = sampling.Sampler(cfg, networks.init_generator(cfg, jax.random.key(0)), batch_size=3)
  images = cond.generate([1, 2, 3], labels=np.array([2, 0, 1]))
  schedule = projector.Schedule(num_steps=20, dlatent_avg_samples=500)
  per_class = [projector.project(cond, images, labels=c, schedule=schedule, steps_per_call=10) for c in range(3)]
  searched = projector.project(cond, images, schedule=schedule, steps_per_call=10)
  distances = np.stack([r.distance for r in per_class])  # [class, image]
  np.testing.assert_array_equal(searched.labels, np.argmin(distances, axis=0))
  np.testing.assert_array_equal(searched.distance, distances.min(axis=0))
  best = per_class[int(searched.labels[0])]
  np.testing.assert_array_equal(searched.dlatents[0], best.dlatents[0])
  np.testing.assert_array_equal(per_class[1].labels, [1, 1, 1])
  given = projector.project(cond, images, labels=[2, 0, 1], schedule=schedule, steps_per_call=10)
  np.testing.assert_array_equal(given.labels, [2, 0, 1])


@pytest.mark.slow  # VGG16 at random weights: ~13 s
def test_lpips_distance_is_the_metric():
  import jax  # noqa: PLC0415
  from stylegan_jax.metrics import lpips  # noqa: PLC0415
  rng = np.random.RandomState(0)
  a, b = (rng.uniform(-1, 1, (2, 16, 16, 1)).astype(np.float32) for _ in range(2))
  variables = lpips.LPIPS().init(jax.random.key(0), np.zeros((1, 16, 16, 3), np.float32),
                                 np.zeros((1, 16, 16, 3), np.float32))
  metric = lpips.PerceptualDistance('lpips', 'random', variables)
  distance = projector.Distance('lpips', projector._lpips, variables)
  np.testing.assert_allclose(distance(a, b), metric.distance(a, b), rtol=1e-5)
