"""LPIPS-VGG16 v0.1: structure against torchvision's vgg16 and the lpips heads, the distance against a direct numpy
computation from the backbone's taps, identities, the loaders' checks, and (optional, with torch + lpips) equality
with the `lpips` package on the same weights.
"""

import math

import jax
import numpy as np
import pytest

import torch_files
from test_torch_weights import lpips_heads_file
from stylegan_jax import errors
from stylegan_jax.metrics import lpips, torch_weights

# torchvision 0.29 `vgg16(weights=None).state_dict()` shapes of `features` (convs at these indices), and
# sum(p.numel()) of the whole model and of `features`; the lpips 0.1.4 heads file's shapes (weights/v0.1/vgg.pth).
REFERENCE_VGG16_FEATURES = {
    0: (64, 3, 3, 3), 2: (64, 64, 3, 3), 5: (128, 64, 3, 3), 7: (128, 128, 3, 3), 10: (256, 128, 3, 3),
    12: (256, 256, 3, 3), 14: (256, 256, 3, 3), 17: (512, 256, 3, 3), 19: (512, 512, 3, 3), 21: (512, 512, 3, 3),
    24: (512, 512, 3, 3), 26: (512, 512, 3, 3), 28: (512, 512, 3, 3)}
REFERENCE_VGG16_PARAMETERS = 138_357_544
REFERENCE_VGG16_FEATURE_PARAMETERS = 14_714_688
REFERENCE_HEADS = {f'lin{k}.model.1.weight': (1, c, 1, 1) for k, c in enumerate((64, 128, 256, 512, 512))}
# lpips.pretrained_networks.ScalingLayer
REFERENCE_SHIFT, REFERENCE_SCALE = (-.030, -.088, -.188), (.458, .448, .450)


def random_states(seed=0):
  rng = np.random.default_rng(seed)
  vgg_shapes, head_shapes = lpips.torch_shapes()
  # The unused classifier (102M values) is left out, which the loader allows.
  vgg = {name: (rng.normal(size=shape) * (math.sqrt(2.0 / np.prod(shape[1:])) if len(shape) == 4 else 0.05)
                ).astype(np.float32) for name, shape in vgg_shapes.items() if not name.startswith('classifier')}
  heads = {name: rng.uniform(0, 1, shape).astype(np.float32) for name, shape in head_shapes.items()}
  return vgg, heads


@pytest.fixture(scope='module')
def files(tmp_path_factory):
  folder = tmp_path_factory.mktemp('lpips')
  vgg, heads = random_states()
  torch_files.write(folder / 'vgg16.pth', vgg, legacy=False)  # torchvision's file is zip-format today
  torch_files.write(folder / 'vgg.pth', heads, legacy=True)  # as the lpips package ships it
  return folder / 'vgg16.pth', folder / 'vgg.pth'


@pytest.fixture(scope='module')
def perceptual(files):
  return lpips.load(*files)


def test_structure_matches_torchvision_and_lpips():
  vgg_shapes, head_shapes = lpips.torch_shapes()
  expected = {}
  for index, shape in REFERENCE_VGG16_FEATURES.items():
    expected[f'features.{index}.weight'], expected[f'features.{index}.bias'] = shape, shape[:1]
  assert {k: v for k, v in vgg_shapes.items() if k.startswith('features')} == expected
  assert sum(math.prod(s) for s in vgg_shapes.values()) == REFERENCE_VGG16_PARAMETERS
  assert sum(math.prod(s) for s in expected.values()) == REFERENCE_VGG16_FEATURE_PARAMETERS
  assert head_shapes == REFERENCE_HEADS
  assert (lpips.SHIFT, lpips.SCALE) == (REFERENCE_SHIFT, REFERENCE_SCALE)


def test_distance_equals_direct_computation(perceptual):
  """Steps 3-5 of the docstring in numpy from the backbone taps, and the variable count of the whole network."""
  rng = np.random.default_rng(0)
  a, b = rng.uniform(-1, 1, (2, 2, 32, 32, 3)).astype(np.float32)
  taps = lpips.VGG16Features().apply({'params': perceptual.variables['params']['vgg16']}, np.concatenate([a, b]))
  _, heads = random_states()
  expected = np.zeros(2)
  for k, tap in enumerate(taps):
    tap = np.asarray(tap, np.float64)
    np.testing.assert_allclose(np.linalg.norm(tap, axis=-1), 1.0, rtol=1e-5)  # unit-normalised
    d = (tap[:2] - tap[2:]) ** 2 @ heads[f'lin{k}.model.1.weight'].reshape(-1)
    expected += d.mean(axis=(1, 2))
  assert [t.shape[1] for t in taps] == [32, 16, 8, 4, 2]
  np.testing.assert_allclose(np.asarray(perceptual.distance(a, b)), expected, rtol=1e-5)
  params = sum(v.size for v in jax.tree_util.tree_leaves(perceptual.variables))
  assert params == REFERENCE_VGG16_FEATURE_PARAMETERS + sum(math.prod(s) for s in REFERENCE_HEADS.values())


def test_identity_symmetry_and_gray(perceptual):
  rng = np.random.default_rng(1)
  a, b = rng.uniform(-1, 1, (2, 3, 16, 24, 1)).astype(np.float32)
  d_ab, d_ba, d_aa = (np.asarray(perceptual.distance(x, y)) for x, y in ((a, b), (b, a), (a, a)))
  assert d_ab.shape == (3,) and np.all(d_ab > 0)
  np.testing.assert_allclose(d_aa, 0, atol=1e-12)
  np.testing.assert_allclose(d_ab, d_ba, rtol=1e-6)
  np.testing.assert_allclose(d_ab, np.asarray(perceptual.distance(np.repeat(a, 3, -1), np.repeat(b, 3, -1))),
                             rtol=1e-6)
  with pytest.raises(errors.UsageError, match=r'H, W >= 16, got \[3, 8, 8, 1\]'):
    perceptual.distance(a[:, :8, :8], b[:, :8, :8])


def test_loader_names_wrong_and_missing_variables(tmp_path, files):
  vgg, heads = random_states()
  heads['lin2.model.1.weight'] = np.zeros((1, 255, 1, 1), np.float32)
  torch_files.write(tmp_path / 'heads.pth', heads)
  with pytest.raises(torch_weights.TorchWeightsError,
                     match=r'heads.pth: variable lin2.model.1.weight has shape \[1, 255, 1, 1\], '
                           r'expected \[1, 256, 1, 1\]'):
    lpips.load(files[0], tmp_path / 'heads.pth')
  del vgg['features.26.bias']
  vgg['classifier.6.bias'] = np.zeros(10, np.float32)
  torch_files.write(tmp_path / 'vgg16.pth', vgg)
  with pytest.raises(torch_weights.TorchWeightsError, match=r'vgg16.pth: missing variable features.26.bias \[512\]; '
                     r'variable classifier.6.bias has shape \[10\], expected \[1000\]'):
    lpips.load(tmp_path / 'vgg16.pth', files[1])


def test_real_heads_file_loads(files):
  path = lpips_heads_file()
  loaded = lpips.load(files[0], path)
  assert loaded.checksum.endswith('+' + lpips.LPIPS_HEADS_SHA256)


def test_equals_lpips_package(files):
  torch = pytest.importorskip('torch')
  package = pytest.importorskip('lpips')
  reference = package.LPIPS(net='vgg', pnet_rand=True, pretrained=False, verbose=False).eval()
  vgg, heads = random_states()
  state = {k: torch.from_numpy(v) for k, v in heads.items()}
  slices = [(1, range(0, 4)), (2, range(4, 9)), (3, range(9, 16)), (4, range(16, 23)), (5, range(23, 30))]
  for s, indices in slices:
    for i in indices:
      if i in REFERENCE_VGG16_FEATURES:
        for leaf in ('weight', 'bias'):
          state[f'net.slice{s}.{i}.{leaf}'] = torch.from_numpy(vgg[f'features.{i}.{leaf}'])
  result = reference.load_state_dict(state, strict=False)
  # lin{k} and lins.{k} are one module under two names; the scaling layer's constants are buffers.
  assert not result.unexpected_keys
  assert {k for k in result.missing_keys if not k.startswith('lins.')} == {'scaling_layer.shift', 'scaling_layer.scale'}
  rng = np.random.default_rng(2)
  a = rng.uniform(-1, 1, (3, 40, 48, 3)).astype(np.float32)
  b = np.clip(a + rng.normal(0, 0.3, a.shape), -1, 1).astype(np.float32)
  with torch.no_grad():
    ref = reference(*(torch.from_numpy(x).permute(0, 3, 1, 2) for x in (a, b))).numpy().reshape(-1)
  np.testing.assert_allclose(np.asarray(lpips.load(*files).distance(a, b)), ref, rtol=1e-5)
