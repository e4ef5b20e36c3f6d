"""Architecture and properties of the networks: official counts and inventory at 1024², lod, truncation, stages."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import GOLDEN
from stylegan_jax import layers, networks, official
from stylegan_jax.network_config import NetworkConfig

FULL = NetworkConfig()  # the official FFHQ 1024² default
TINY = NetworkConfig(resolution=32, fmap_base=64, fmap_max=32, latent_size=16, dlatent_size=16, mapping_layers=2,
                     mapping_fmaps=16)


def _shapes(init, config):
  return jax.eval_shape(lambda key: init(config, key), jax.random.key(0))


def read_inventory():
  """{'G'|'D'|'Gs': {name: (shape, trainable)}} from ffhq1024_variables.txt."""
  inventory, section = {}, None
  for line in (GOLDEN / 'ffhq1024_variables.txt').read_text().splitlines():
    if m := re.match(r'\[(\w+)\]', line):
      section = inventory.setdefault(m.group(1), {})
    elif section is not None and (m := re.match(r'(\S+)\s+\[([\d, ]*)\]\s+float32\s+(\S+)', line)):
      shape = tuple(int(d) for d in m.group(2).split(',') if d.strip())
      section[m.group(1)] = (shape, m.group(3) == 'trainable')
  return inventory


def test_full_config_parameter_counts():
  g = _shapes(networks.init_generator, FULL)
  d = _shapes(networks.init_discriminator, FULL)
  assert networks.count_params(g['params']) == 26_219_627
  assert networks.count_params(g['params']['mapping']) == 2_101_248
  assert networks.count_params(d['params']) == 23_087_249
  assert networks.count_params(g['noise']) + networks.count_params(g['stats']) + 2 == 2_796_706


@pytest.mark.parametrize('net,kind', [('G', 'generator'), ('Gs', 'generator'), ('D', 'discriminator')])
def test_full_config_maps_one_to_one_onto_official_inventory(net, kind):
  inventory = read_inventory()[net]
  ours = official.official_shapes(FULL, kind)
  ignored = {'lod', 'synthesis/lod'}
  assert set(ours) == set(inventory) - ignored
  for name, shape in ours.items():
    assert shape == inventory[name][0], name
  trainable = sum(int(np.prod(s)) for s, t in inventory.values() if t)
  assert trainable == networks.count_params(_shapes(getattr(networks, f'init_{kind}'), FULL)['params'])


def test_fused_layers_only_from_128():
  assert [r for r in range(3, 11) if FULL.fused(r)] == [7, 8, 9, 10]
  assert not NetworkConfig(fused_scale=False).fused(10) and NetworkConfig(fused_scale=True).fused(3)


@pytest.fixture(scope='module')
def tiny_variables():
  return networks.init_generator(TINY, jax.random.key(1)), networks.init_discriminator(TINY, jax.random.key(2))


def test_initialisation_is_official(tiny_variables):
  g, d = tiny_variables
  p = g['params']['synthesis']
  np.testing.assert_array_equal(p['4x4']['Const']['const'], 1.0)
  np.testing.assert_array_equal(p['8x8']['Conv1']['Noise']['weight'], 0.0)
  np.testing.assert_array_equal(p['8x8']['Conv1']['StyleMod']['bias'], 0.0)
  np.testing.assert_array_equal(g['stats']['dlatent_avg'], 0.0)
  mapping_w = g['params']['mapping']['Dense0']['weight']
  assert 80 < np.std(mapping_w) < 120  # N(0, 1/lrmul) with lrmul 0.01
  assert 0.8 < np.std(d['params']['4x4']['Dense0']['weight']) < 1.2
  assert g['noise']['synthesis']['noise7'].shape == (1, 32, 32, 1)


def test_synthesis_lod_blending_is_continuous(tiny_variables):
  g, _ = tiny_variables
  gen = networks.Generator(TINY)
  dlatents = jax.random.normal(jax.random.key(3), (2, TINY.num_layers, TINY.dlatent_size))
  synth = jax.jit(lambda lod: gen.apply(g, dlatents, lod, noise_mode='const', method=networks.Generator.synthesize))
  lods = np.linspace(0.0, 3.0, 61)
  outs = np.stack([synth(lod) for lod in lods])
  steps = np.abs(np.diff(outs, axis=0)).max(axis=(1, 2, 3, 4))
  assert steps.max() < 10 * np.median(steps) + 1e-6  # no jump at integer lods
  # At integer lod k the output is the 2^-k resolution image, nearest-upsampled.
  lod2 = np.asarray(synth(2.0))
  np.testing.assert_allclose(lod2, np.asarray(layers.upscale2d(jnp.asarray(lod2[:, ::4, ::4]), 4)), atol=1e-6)


def test_discriminator_lod_blending_is_continuous(tiny_variables):
  _, d = tiny_variables
  images = jax.random.uniform(jax.random.key(4), (4, 32, 32, 3), minval=-1, maxval=1)
  disc = jax.jit(lambda lod: networks.Discriminator(TINY).apply(d, images, None, lod))
  outs = np.stack([disc(lod) for lod in np.linspace(0.0, 3.0, 61)])
  steps = np.abs(np.diff(outs, axis=0)).max(axis=(1, 2))
  assert steps.max() < 10 * np.median(steps) + 1e-6


@pytest.mark.parametrize('lod', [0.0, 0.3, 1.0, 1.7, 2.0, 2.5, 3.0])
def test_stage_resolution_matches_full_resolution(tiny_variables, lod):
  """Running at the stage's native resolution gives what the full network gives at that lod."""
  g, d = tiny_variables
  stage = 32 >> int(np.floor(lod)) if lod < 3 else 4
  factor = 32 // stage
  dlatents = jax.random.normal(jax.random.key(5), (4, TINY.num_layers, TINY.dlatent_size))
  gen = networks.Generator(TINY)
  full = gen.apply(g, dlatents, lod, noise_mode='const', method=networks.Generator.synthesize)
  native = gen.apply(g, dlatents, lod, noise_mode='const', resolution=stage, method=networks.Generator.synthesize)
  np.testing.assert_allclose(native, full[:, ::factor, ::factor], atol=1e-5)
  disc = networks.Discriminator(TINY)
  images = jax.random.uniform(jax.random.key(6), (4, stage, stage, 3), minval=-1, maxval=1)
  np.testing.assert_allclose(disc.apply(d, images, None, lod),
                             disc.apply(d, layers.upscale2d(images, factor), None, lod), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('lod', [0.0, 0.5, 1.0])
def test_fused_downscale_discriminator_is_the_same_function(tiny_variables, lod):
  """fused_downscale (every conv + box downsampling as one stride-2 4x4 conv): the official D's scores and input
  gradient up to float rounding, with the same parameters."""
  _, d = tiny_variables
  images = jax.random.uniform(jax.random.key(7), (4, 32, 32, 3), minval=-1, maxval=1)
  score = lambda disc: jax.jit(jax.value_and_grad(lambda x: jnp.sum(disc.apply(d, x, None, lod))))(images)
  official_score, official_grad = score(networks.Discriminator(TINY))
  fused_score, fused_grad = score(networks.Discriminator(TINY, fused_downscale=True))
  np.testing.assert_allclose(fused_score, official_score, rtol=1e-5)
  np.testing.assert_allclose(fused_grad, official_grad, rtol=1e-4, atol=1e-6 * np.abs(official_grad).max())
  assert not TINY.fused(5) and 'stride = [2, 2]' in jax.jit(
      lambda x: networks.Discriminator(TINY, fused_downscale=True).apply(d, x, None, lod)).lower(images).as_text()


def test_phase_grad_discriminator_has_the_official_r1_gradient(tiny_variables):
  """fused_downscale with phase_grad (the fused convs' input gradients as phase convs): R1's gradient by D's
  parameters (a second derivative) equals the official D's up to float rounding; None (the default) means on CPU,
  where the lowered R1 step has no lhs-dilated conv left."""
  _, d = tiny_variables
  images = jax.random.uniform(jax.random.key(9), (4, 32, 32, 3), minval=-1, maxval=1)

  def r1_grad(disc):
    penalty = lambda params, x: jnp.sum(jnp.square(jax.grad(
        lambda x: jnp.sum(disc.apply({'params': params}, x, None, 0.5)))(x)))
    return jax.jit(jax.grad(penalty)), (d['params'], images)

  official, args = r1_grad(networks.Discriminator(TINY))
  phase, _ = r1_grad(networks.Discriminator(TINY, fused_downscale=True, phase_grad=True))
  expected = official(*args)
  for got, want in zip(jax.tree_util.tree_leaves(phase(*args)), jax.tree_util.tree_leaves(expected)):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())
  default, _ = r1_grad(networks.Discriminator(TINY, fused_downscale=True))
  assert ('lhs_dilate = [2, 2]' in default.lower(*args).as_text()) == (jax.default_backend() != 'cpu')
  assert 'lhs_dilate = [2, 2]' in r1_grad(networks.Discriminator(TINY, fused_downscale=True, phase_grad=False))[
      0].lower(*args).as_text()


@pytest.mark.parametrize('lod', [0.0, 0.5])
def test_phase_upscale_generator_is_the_same_function(tiny_variables, lod):
  """phase_upscale (the unfused upsampling convs as 2x2 convs at the input's size): the official synthesis's images
  and dlatent gradient up to float rounding, with the same parameters; None (the default) means on CPU."""
  g, _ = tiny_variables
  dlatents = jax.random.normal(jax.random.key(8), (3, TINY.num_layers, TINY.dlatent_size))

  def images_and_grad(phase_upscale):
    gen = networks.Generator(TINY, phase_upscale=phase_upscale)
    synthesize = lambda w: gen.apply(g, w, lod, noise_mode='const', method=networks.Generator.synthesize)
    return jax.jit(lambda w: (synthesize(w), jax.grad(lambda w: jnp.sum(jnp.square(synthesize(w))))(w)))(dlatents)

  official_images, official_grad = images_and_grad(False)
  phase_images, phase_grad = images_and_grad(True)
  np.testing.assert_allclose(phase_images, official_images, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(phase_grad, official_grad, rtol=1e-4, atol=1e-5 * np.abs(official_grad).max())
  hlo = lambda phase_upscale: jax.jit(lambda w: networks.Generator(TINY, phase_upscale=phase_upscale).apply(
      g, w, lod, noise_mode='const', method=networks.Generator.synthesize)).lower(dlatents).as_text()
  two_by_two = re.compile(r'tensor<2x2x\d+x\d+xf32>')
  assert two_by_two.search(hlo(True)) and not two_by_two.search(hlo(False))
  assert bool(two_by_two.search(hlo(None))) == (jax.default_backend() == 'cpu')


def test_truncation_identities(tiny_variables):
  g, _ = tiny_variables
  g = jax.tree_util.tree_map(lambda x: x, g)
  g['stats']['dlatent_avg'] = jax.random.normal(jax.random.key(7), (TINY.dlatent_size,))
  gen = networks.Generator(TINY)
  z = jax.random.normal(jax.random.key(8), (3, TINY.latent_size))
  plain = gen.apply(g, z, method=networks.Generator.map)
  for psi, cutoff in [(1.0, None), (1.0, 8), (0.5, 0)]:
    np.testing.assert_array_equal(gen.apply(g, z, truncation_psi=psi, truncation_cutoff=cutoff,
                                            method=networks.Generator.map), plain)
  images = gen.apply(g, z, noise_mode='const', truncation_psi=0.3, truncation_cutoff=0)
  np.testing.assert_array_equal(images, gen.apply(g, z, noise_mode='const'))
  # psi = 0 on the first 4 layers gives dlatent_avg there and leaves the rest alone.
  out = gen.apply(g, z, truncation_psi=0.0, truncation_cutoff=4, method=networks.Generator.map)
  np.testing.assert_allclose(out[:, :4], np.broadcast_to(g['stats']['dlatent_avg'], out[:, :4].shape), atol=1e-6)
  np.testing.assert_array_equal(out[:, 4:], plain[:, 4:])


def test_noise_modes(tiny_variables):
  g, _ = tiny_variables
  g = jax.tree_util.tree_map(lambda x: x, g)
  g['params']['synthesis']['32x32']['Conv1']['Noise']['weight'] = jnp.ones(TINY.nf(4))
  gen = networks.Generator(TINY)
  z = jax.random.normal(jax.random.key(9), (2, TINY.latent_size))
  a = gen.apply(g, z, rngs={'noise': jax.random.key(0)})
  b = gen.apply(g, z, rngs={'noise': jax.random.key(1)})
  c = gen.apply(g, z, noise_mode='const')
  assert not np.allclose(a, b) and not np.allclose(a, c)
  np.testing.assert_array_equal(gen.apply(g, z, rngs={'noise': jax.random.key(0)}), a)
  with pytest.raises(ValueError, match='noise_mode'):
    gen.apply(g, z, noise_mode='stored')


def test_dlatent_avg_tracking_and_mixing(tiny_variables):
  g, _ = tiny_variables
  gen = networks.Generator(TINY)
  z = jax.random.normal(jax.random.key(10), (4, TINY.latent_size))
  _, updated = gen.apply(g, z, dlatent_avg_beta=0.995, mutable=['stats'], rngs={'noise': jax.random.key(0)})
  w = gen.apply(g, z, method=networks.Generator.map)[:, 0]
  np.testing.assert_allclose(updated['stats']['dlatent_avg'], 0.005 * np.mean(w, axis=0), rtol=1e-5, atol=1e-7)


def test_conditional_networks_need_labels():
  cfg = NetworkConfig(**{**TINY.to_dict(), 'label_size': 3})
  g = networks.init_generator(cfg, jax.random.key(0))
  d = networks.init_discriminator(cfg, jax.random.key(1))
  assert g['params']['mapping']['LabelConcat']['weight'].shape == (3, cfg.latent_size)
  assert g['params']['mapping']['Dense0']['weight'].shape == (2 * cfg.latent_size, cfg.mapping_fmaps)
  assert d['params']['4x4']['Dense1']['weight'].shape == (cfg.nf(0), 3)
  z = jnp.zeros((4, cfg.latent_size))
  with pytest.raises(ValueError, match='pass labels'):
    networks.Generator(cfg).apply(g, z, rngs={'noise': jax.random.key(0)})
  labels = jax.nn.one_hot(jnp.array([0, 1, 2, 0]), 3)
  scores = networks.Discriminator(cfg).apply(d, jnp.zeros((4, 32, 32, 3)), labels)
  assert scores.shape == (4, 1)


def test_bad_config_values_are_named():
  with pytest.raises(ValueError, match='resolution must be a power of two'):
    NetworkConfig(resolution=48)
  with pytest.raises(ValueError, match="Unknown network config keys: \\['fmap_bsae'\\]"):
    NetworkConfig.from_dict({'fmap_bsae': 1})
  with pytest.raises(ValueError, match='fused_scale'):
    NetworkConfig(fused_scale='yes')
