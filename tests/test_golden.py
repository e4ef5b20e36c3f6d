"""Parity with NVIDIA's official TF StyleGAN outputs (../shared/golden/sg1_small32, every case of its README)."""

import numpy as np
import pytest

from stylegan_jax import networks, official, winograd


@pytest.fixture(scope='module')
def golden(golden_dir):
  return dict(np.load(golden_dir / 'golden.npz'))


@pytest.fixture(scope='module')
def imported(golden_dir):
  return official.load_official(golden_dir / 'network.pkl')


def nchw(x):
  return np.transpose(np.asarray(x), (0, 3, 1, 2))


def nhwc(x):
  return np.transpose(x, (0, 2, 3, 1))


def assert_parity(out, ref):
  """‖Δ‖/‖ref‖ <= 1e-5 and max|Δ| <= 1e-4 * max(1, max|ref|), in float32."""
  out = np.asarray(out)
  assert out.shape == ref.shape and out.dtype == np.float32
  rel = np.linalg.norm(out - ref) / np.linalg.norm(ref)
  max_abs = np.abs(out - ref).max()
  assert rel <= 1e-5, f'relative error {rel:.3g}'
  assert max_abs <= 1e-4 * max(1.0, np.abs(ref).max()), f'max abs error {max_abs:.3g}'


LODS = [(0.0, '0'), (0.5, '0p5'), (1.0, '1'), (1.25, '1p25')]


def test_config_from_static_kwargs(imported):
  cfg = imported.config
  assert (cfg.resolution, cfg.fmap_base, cfg.fmap_max, cfg.latent_size, cfg.mapping_fmaps) == (32, 128, 64, 64, 80)
  assert networks.count_params(imported.Gs['params']) == 155_492
  assert networks.count_params(imported.D['params']) == 140_105


@pytest.mark.parametrize('net', ['Gs', 'G'])
def test_mapping(imported, golden, net):
  gen = networks.Generator(imported.config)
  ref = golden['mapping_dlatents' if net == 'Gs' else 'g_mapping_dlatents']
  assert_parity(gen.apply(getattr(imported, net), golden['latents'], method=networks.Generator.map), ref)


@pytest.mark.parametrize('lod,suffix', LODS)
def test_synthesis(imported, golden, lod, suffix):
  gen = networks.Generator(imported.config)
  out = gen.apply(imported.Gs, golden['synthesis_dlatents'], lod, noise_mode='const',
                  method=networks.Generator.synthesize)
  assert_parity(nchw(out), golden[f'synthesis_images_lod{suffix}'])


def test_g_synthesis(imported, golden):
  gen = networks.Generator(imported.config)
  out = gen.apply(imported.G, golden['synthesis_dlatents'], noise_mode='const', method=networks.Generator.synthesize)
  assert_parity(nchw(out), golden['g_synthesis_images_lod0'])


def test_truncation(imported, golden):
  gen = networks.Generator(imported.config)
  kwargs = dict(truncation_psi=0.7, truncation_cutoff=4)
  assert_parity(gen.apply(imported.Gs, golden['latents'], method=networks.Generator.map, **kwargs),
                golden['gs_dlatents_psi0p7_cutoff4'])
  assert_parity(nchw(gen.apply(imported.Gs, golden['latents'], noise_mode='const', **kwargs)),
                golden['gs_images_psi0p7_cutoff4'])


@pytest.mark.parametrize('net,ref', [('Gs', 'gs_images_psi1'), ('G', 'g_images_psi1')])
def test_full_generator(imported, golden, net, ref):
  gen = networks.Generator(imported.config)
  assert_parity(nchw(gen.apply(getattr(imported, net), golden['latents'], noise_mode='const')), golden[ref])


def test_style_mixing(imported, golden):
  gen = networks.Generator(imported.config)
  dlatents2 = gen.apply(imported.Gs, golden['mix_latents2'], method=networks.Generator.map)
  assert_parity(dlatents2, golden['mix_dlatents2'])
  mixed = networks.style_mix(golden['mapping_dlatents'], dlatents2, golden['mix_crossover'])
  assert_parity(mixed, golden['mix_dlatents'])
  out = gen.apply(imported.Gs, mixed, noise_mode='const', method=networks.Generator.synthesize)
  assert_parity(nchw(out), golden['mix_images'])


@pytest.mark.parametrize('lod,suffix', LODS)
def test_discriminator(imported, golden, lod, suffix):
  out = networks.Discriminator(imported.config).apply(imported.D, nhwc(golden['d_images']), None, lod)
  assert_parity(out, golden[f'd_scores_lod{suffix}'])


@pytest.mark.parametrize('lod,suffix', LODS[:2])
def test_winograd_forms_at_every_conv(imported, golden, monkeypatch, lod, suffix):
  """The Winograd forms (winograd.py; the networks use them for >= 256 channels on CPU) at every 3x3 conv of G's
  synthesis and of D, the upsampling and downsampling ones included: the official outputs, as XLA's convs give."""
  monkeypatch.setattr(winograd, 'pays', lambda x_shape, w_shape, dtype: tuple(w_shape[:2]) == (3, 3)
                      and x_shape[1] % 2 == 0 and x_shape[2] % 2 == 0)
  out = networks.Generator(imported.config, winograd=True).apply(
      imported.Gs, golden['synthesis_dlatents'], lod, noise_mode='const', method=networks.Generator.synthesize)
  assert_parity(nchw(out), golden[f'synthesis_images_lod{suffix}'])
  for fused_downscale in (False, True):
    out = networks.Discriminator(imported.config, fused_downscale=fused_downscale, winograd=True).apply(
        imported.D, nhwc(golden['d_images']), None, lod)
    assert_parity(out, golden[f'd_scores_lod{suffix}'])


def test_discriminator_two_mbstd_groups(imported, golden):
  out = networks.Discriminator(imported.config).apply(imported.D, nhwc(golden['d_images8']))
  assert_parity(out, golden['d_scores8_lod0'])


def test_stored_buffers_imported_in_nhwc(imported, golden):
  for i in range(8):
    np.testing.assert_array_equal(imported.Gs['noise']['synthesis'][f'noise{i}'], nhwc(golden[f'gs_noise{i}']))
    np.testing.assert_array_equal(imported.G['noise']['synthesis'][f'noise{i}'], nhwc(golden[f'g_noise{i}']))
  np.testing.assert_array_equal(imported.Gs['stats']['dlatent_avg'], golden['gs_dlatent_avg'])
  np.testing.assert_array_equal(imported.G['stats']['dlatent_avg'], golden['g_dlatent_avg'])
