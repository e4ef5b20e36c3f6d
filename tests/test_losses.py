"""Losses against direct formulas, and the official progressive-growing R1 strength (spec §4)."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from stylegan_jax import layers, losses, networks
from stylegan_jax.network_config import NetworkConfig


def softplus(x):
  return np.log1p(np.exp(x))


def linear_d(w):
  """D(x) = sum(w * x) per sample: its input gradient is w for every sample."""
  return lambda x: jnp.sum(x * w, axis=(1, 2, 3))[:, None]


@pytest.fixture()
def data():
  rs = np.random.RandomState(0)
  return (rs.randn(4, 8, 8, 1).astype(np.float32), rs.randn(4, 8, 8, 1).astype(np.float32),
          rs.randn(8, 8, 1).astype(np.float32))


def test_generator_losses():
  scores = jnp.array([[-2.0], [0.0], [3.0]])
  np.testing.assert_allclose(losses.g_logistic_nonsaturating(scores), softplus(-np.array([-2.0, 0.0, 3.0])), rtol=1e-6)
  np.testing.assert_allclose(losses.g_wgan(scores), [2.0, 0.0, -3.0])


@pytest.mark.parametrize('lod,scale', [(0.0, 1.0), (1.5, 0.25), (2.0, 1 / 16)])
def test_logistic_r1(data, lod, scale):
  reals, fakes, w = data
  cfg = ml_collections.ConfigDict(dict(type='logistic_r1', r1_gamma=10.0, lod_scaled_penalty=True))
  loss, aux = losses.discriminator_loss(cfg, linear_d(w), reals, fakes, lod, None)
  real, fake = np.sum(reals * w, axis=(1, 2, 3)), np.sum(fakes * w, axis=(1, 2, 3))
  expected = softplus(fake) + softplus(-real) + 5.0 * scale * np.sum(w ** 2)
  np.testing.assert_allclose(loss, expected, rtol=1e-5)
  np.testing.assert_allclose(aux['r1_penalty'], scale * np.sum(w ** 2), rtol=1e-5)


def test_wgan_gp(data):
  reals, fakes, w = data
  cfg = ml_collections.ConfigDict(dict(type='wgan_gp', wgan_lambda=10.0, wgan_target=1.0, wgan_epsilon=0.001,
                                       lod_scaled_penalty=True))
  u = jnp.array([0.1, 0.5, 0.9, 0.3])
  loss, _ = losses.discriminator_loss(cfg, linear_d(w), reals, fakes, 1.0, u)
  real, fake = np.sum(reals * w, axis=(1, 2, 3)), np.sum(fakes * w, axis=(1, 2, 3))
  norm = np.sqrt(np.sum(w ** 2)) * 0.5  # lod 1: the gradient norm scaled by 2**-1
  np.testing.assert_allclose(loss, fake - real + 10.0 * (norm - 1.0) ** 2 + 0.001 * real ** 2, rtol=1e-5)


def test_unknown_loss_is_named(data):
  reals, fakes, w = data
  cfg = ml_collections.ConfigDict(dict(type='hinge', lod_scaled_penalty=True))
  with pytest.raises(ValueError, match="loss.type must be one of .* got 'hinge'"):
    losses.discriminator_loss(cfg, linear_d(w), reals, fakes, 0.0, None)


def test_native_r1_times_lod_factor_equals_official_full_resolution_r1():
  """The official R1 (on nearest-upscaled full-resolution reals) is 4**-floor(lod) x the native one."""
  cfg = NetworkConfig(resolution=32, num_channels=1, fmap_base=32, fmap_max=16, latent_size=8, dlatent_size=8,
                      mapping_layers=1, mapping_fmaps=8)
  d = networks.init_discriminator(cfg, jax.random.key(0))
  disc = networks.Discriminator(cfg)
  lod = 2.3  # stage 8x8, fading towards 4x4
  reals8 = jax.random.uniform(jax.random.key(1), (4, 8, 8, 1), minval=-1, maxval=1)

  def r1(images):
    scores, vjp = jax.vjp(lambda x: disc.apply(d, x, None, lod), images)
    return np.sum(np.square(vjp(jnp.ones_like(scores))[0]), axis=(1, 2, 3))

  official = r1(layers.upscale2d(reals8, 4))
  np.testing.assert_allclose(r1(reals8) * float(losses.penalty_scale(lod, True)), official, rtol=1e-4)
