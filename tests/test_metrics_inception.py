"""The TF-FID Inception-v3: structure against pytorch-fid's, the TF1 resize against a direct formula, the loader's
checks, and (optional, with torch + pytorch-fid) features equal to pytorch-fid's InceptionV3 on the same weights.
"""

import hashlib
import math

import jax
import numpy as np
import pytest

import torch_files
from stylegan_jax import errors
from stylegan_jax.metrics import inception, torch_weights

# Every conv of pytorch-fid's FID Inception (pytorch-fid 0.3.0 with torchvision 0.29: fid_inception_v3() built
# without its download, `{k: v.shape for k, v in state_dict().items() if k.endswith('.conv.weight')}`):
# name -> (out, in, kh, kw). Each conv is followed by a BatchNorm of `out` channels.
REFERENCE_CONVS = {
    'Conv2d_1a_3x3': (32, 3, 3, 3),
    'Conv2d_2a_3x3': (32, 32, 3, 3),
    'Conv2d_2b_3x3': (64, 32, 3, 3),
    'Conv2d_3b_1x1': (80, 64, 1, 1),
    'Conv2d_4a_3x3': (192, 80, 3, 3),
    # Mixed_5b
    'Mixed_5b.branch1x1': (64, 192, 1, 1), 'Mixed_5b.branch5x5_1': (48, 192, 1, 1),
    'Mixed_5b.branch5x5_2': (64, 48, 5, 5), 'Mixed_5b.branch3x3dbl_1': (64, 192, 1, 1),
    'Mixed_5b.branch3x3dbl_2': (96, 64, 3, 3), 'Mixed_5b.branch3x3dbl_3': (96, 96, 3, 3),
    'Mixed_5b.branch_pool': (32, 192, 1, 1),
    # Mixed_5c
    'Mixed_5c.branch1x1': (64, 256, 1, 1), 'Mixed_5c.branch5x5_1': (48, 256, 1, 1),
    'Mixed_5c.branch5x5_2': (64, 48, 5, 5), 'Mixed_5c.branch3x3dbl_1': (64, 256, 1, 1),
    'Mixed_5c.branch3x3dbl_2': (96, 64, 3, 3), 'Mixed_5c.branch3x3dbl_3': (96, 96, 3, 3),
    'Mixed_5c.branch_pool': (64, 256, 1, 1),
    # Mixed_5d
    'Mixed_5d.branch1x1': (64, 288, 1, 1), 'Mixed_5d.branch5x5_1': (48, 288, 1, 1),
    'Mixed_5d.branch5x5_2': (64, 48, 5, 5), 'Mixed_5d.branch3x3dbl_1': (64, 288, 1, 1),
    'Mixed_5d.branch3x3dbl_2': (96, 64, 3, 3), 'Mixed_5d.branch3x3dbl_3': (96, 96, 3, 3),
    'Mixed_5d.branch_pool': (64, 288, 1, 1),
    # Mixed_6a
    'Mixed_6a.branch3x3': (384, 288, 3, 3), 'Mixed_6a.branch3x3dbl_1': (64, 288, 1, 1),
    'Mixed_6a.branch3x3dbl_2': (96, 64, 3, 3), 'Mixed_6a.branch3x3dbl_3': (96, 96, 3, 3),
    # Mixed_6b
    'Mixed_6b.branch1x1': (192, 768, 1, 1), 'Mixed_6b.branch7x7_1': (128, 768, 1, 1),
    'Mixed_6b.branch7x7_2': (128, 128, 1, 7), 'Mixed_6b.branch7x7_3': (192, 128, 7, 1),
    'Mixed_6b.branch7x7dbl_1': (128, 768, 1, 1), 'Mixed_6b.branch7x7dbl_2': (128, 128, 7, 1),
    'Mixed_6b.branch7x7dbl_3': (128, 128, 1, 7), 'Mixed_6b.branch7x7dbl_4': (128, 128, 7, 1),
    'Mixed_6b.branch7x7dbl_5': (192, 128, 1, 7), 'Mixed_6b.branch_pool': (192, 768, 1, 1),
    # Mixed_6c
    'Mixed_6c.branch1x1': (192, 768, 1, 1), 'Mixed_6c.branch7x7_1': (160, 768, 1, 1),
    'Mixed_6c.branch7x7_2': (160, 160, 1, 7), 'Mixed_6c.branch7x7_3': (192, 160, 7, 1),
    'Mixed_6c.branch7x7dbl_1': (160, 768, 1, 1), 'Mixed_6c.branch7x7dbl_2': (160, 160, 7, 1),
    'Mixed_6c.branch7x7dbl_3': (160, 160, 1, 7), 'Mixed_6c.branch7x7dbl_4': (160, 160, 7, 1),
    'Mixed_6c.branch7x7dbl_5': (192, 160, 1, 7), 'Mixed_6c.branch_pool': (192, 768, 1, 1),
    # Mixed_6d
    'Mixed_6d.branch1x1': (192, 768, 1, 1), 'Mixed_6d.branch7x7_1': (160, 768, 1, 1),
    'Mixed_6d.branch7x7_2': (160, 160, 1, 7), 'Mixed_6d.branch7x7_3': (192, 160, 7, 1),
    'Mixed_6d.branch7x7dbl_1': (160, 768, 1, 1), 'Mixed_6d.branch7x7dbl_2': (160, 160, 7, 1),
    'Mixed_6d.branch7x7dbl_3': (160, 160, 1, 7), 'Mixed_6d.branch7x7dbl_4': (160, 160, 7, 1),
    'Mixed_6d.branch7x7dbl_5': (192, 160, 1, 7), 'Mixed_6d.branch_pool': (192, 768, 1, 1),
    # Mixed_6e
    'Mixed_6e.branch1x1': (192, 768, 1, 1), 'Mixed_6e.branch7x7_1': (192, 768, 1, 1),
    'Mixed_6e.branch7x7_2': (192, 192, 1, 7), 'Mixed_6e.branch7x7_3': (192, 192, 7, 1),
    'Mixed_6e.branch7x7dbl_1': (192, 768, 1, 1), 'Mixed_6e.branch7x7dbl_2': (192, 192, 7, 1),
    'Mixed_6e.branch7x7dbl_3': (192, 192, 1, 7), 'Mixed_6e.branch7x7dbl_4': (192, 192, 7, 1),
    'Mixed_6e.branch7x7dbl_5': (192, 192, 1, 7), 'Mixed_6e.branch_pool': (192, 768, 1, 1),
    # Mixed_7a
    'Mixed_7a.branch3x3_1': (192, 768, 1, 1), 'Mixed_7a.branch3x3_2': (320, 192, 3, 3),
    'Mixed_7a.branch7x7x3_1': (192, 768, 1, 1), 'Mixed_7a.branch7x7x3_2': (192, 192, 1, 7),
    'Mixed_7a.branch7x7x3_3': (192, 192, 7, 1), 'Mixed_7a.branch7x7x3_4': (192, 192, 3, 3),
    # Mixed_7b
    'Mixed_7b.branch1x1': (320, 1280, 1, 1), 'Mixed_7b.branch3x3_1': (384, 1280, 1, 1),
    'Mixed_7b.branch3x3_2a': (384, 384, 1, 3), 'Mixed_7b.branch3x3_2b': (384, 384, 3, 1),
    'Mixed_7b.branch3x3dbl_1': (448, 1280, 1, 1), 'Mixed_7b.branch3x3dbl_2': (384, 448, 3, 3),
    'Mixed_7b.branch3x3dbl_3a': (384, 384, 1, 3), 'Mixed_7b.branch3x3dbl_3b': (384, 384, 3, 1),
    'Mixed_7b.branch_pool': (192, 1280, 1, 1),
    # Mixed_7c
    'Mixed_7c.branch1x1': (320, 2048, 1, 1), 'Mixed_7c.branch3x3_1': (384, 2048, 1, 1),
    'Mixed_7c.branch3x3_2a': (384, 384, 1, 3), 'Mixed_7c.branch3x3_2b': (384, 384, 3, 1),
    'Mixed_7c.branch3x3dbl_1': (448, 2048, 1, 1), 'Mixed_7c.branch3x3dbl_2': (384, 448, 3, 3),
    'Mixed_7c.branch3x3dbl_3a': (384, 384, 1, 3), 'Mixed_7c.branch3x3dbl_3b': (384, 384, 3, 1),
    'Mixed_7c.branch_pool': (192, 2048, 1, 1),
}
# sum(p.numel() for p in net.parameters()) of the same module (fc included) and its BatchNorm running stats.
REFERENCE_PARAMETERS = 23_850_960
REFERENCE_FC = 1008 * 2048 + 1008
REFERENCE_RUNNING_STATS = 34_432


def random_state(seed=0) -> dict[str, np.ndarray]:
  """Random weights in pytorch-fid's layout, scaled so activations stay O(1) through the 94 layers."""
  rng = np.random.default_rng(seed)
  state = {}
  for name, shape in inception.torch_shapes().items():
    if name.endswith('conv.weight'):
      value = rng.normal(size=shape) * math.sqrt(2.0 / np.prod(shape[1:]))
    elif name.endswith(('running_var', 'bn.weight')):
      value = rng.uniform(0.5, 1.5, shape)
    else:
      value = rng.normal(size=shape) * 0.1
    state[name] = value.astype(np.float32)
  return state


@pytest.fixture(scope='module')
def weights_file(tmp_path_factory):
  path = tmp_path_factory.mktemp('inception') / 'random_inception.pth'
  torch_files.write(path, random_state(), legacy=True)  # the format of pytorch-fid's file
  return path


@pytest.fixture(scope='module')
def net(weights_file):
  return inception.load(weights_file, sha256=None)


def test_structure_matches_pytorch_fid():
  shapes = inception.torch_shapes()
  expected = {'fc.weight': (1008, 2048), 'fc.bias': (1008,)}
  for conv, shape in REFERENCE_CONVS.items():
    expected[f'{conv}.conv.weight'] = shape
    for leaf in ('weight', 'bias', 'running_mean', 'running_var'):
      expected[f'{conv}.bn.{leaf}'] = (shape[0],)
  assert shapes == expected
  variables = inception.variable_shapes()
  params = sum(math.prod(s) for k, s in variables.items() if k.startswith('params/'))
  stats = sum(math.prod(s) for k, s in variables.items() if k.startswith('batch_stats/'))
  assert params == REFERENCE_PARAMETERS - REFERENCE_FC == 21_785_568
  assert stats == REFERENCE_RUNNING_STATS


def tf1_resize_direct(image: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
  """TF1's ResizeBilinear kernel (align_corners=False, half_pixel_centers=False), one pixel at a time."""
  in_h, in_w = image.shape[:2]
  sy, sx = np.float32(in_h) / np.float32(out_h), np.float32(in_w) / np.float32(out_w)
  out = np.zeros((out_h, out_w) + image.shape[2:], np.float32)
  for y in range(out_h):
    fy = np.float32(y) * sy
    top, bottom, ly = int(math.floor(fy)), min(int(math.ceil(fy)), in_h - 1), fy - math.floor(fy)
    for x in range(out_w):
      fx = np.float32(x) * sx
      left, right, lx = int(math.floor(fx)), min(int(math.ceil(fx)), in_w - 1), fx - math.floor(fx)
      t = image[top, left] + (image[top, right] - image[top, left]) * lx
      b = image[bottom, left] + (image[bottom, right] - image[bottom, left]) * lx
      out[y, x] = t + (b - t) * ly
  return out


def half_pixel_resize_direct(image: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
  """PyTorch's bilinear F.interpolate, align_corners=False: source max((i + 0.5) * in/out - 0.5, 0)."""
  def taps(n_in, n_out, i):
    s = max((i + 0.5) * n_in / n_out - 0.5, 0.0)
    lo = int(math.floor(s))
    return lo, min(lo + 1, n_in - 1), s - lo
  out = np.zeros((out_h, out_w) + image.shape[2:], np.float32)
  for y in range(out_h):
    y0, y1, ly = taps(image.shape[0], out_h, y)
    for x in range(out_w):
      x0, x1, lx = taps(image.shape[1], out_w, x)
      out[y, x] = ((1 - ly) * ((1 - lx) * image[y0, x0] + lx * image[y0, x1])
                   + ly * ((1 - lx) * image[y1, x0] + lx * image[y1, x1]))
  return out


@pytest.mark.parametrize('in_size,out_size', [(7, 19), (32, 299), (300, 299), (64, 23)])
def test_tf1_resize_matches_direct_formula(in_size, out_size):
  image = np.random.default_rng(in_size).integers(0, 256, (in_size, in_size, 3)).astype(np.float32)
  ours = np.asarray(inception.resize_bilinear(image[None], out_size, 'tf'))[0]
  np.testing.assert_allclose(ours, tf1_resize_direct(image, out_size, out_size), rtol=0, atol=2e-4)


def test_tf1_resize_has_no_half_pixel_centres():
  """TF1 legacy: [0, 1] -> 4 pixels samples 0, 0.5, 1, 1.5 (clamped), PyTorch samples 0, 0.25, 0.75, 1.25."""
  row = np.array([[0.0, 1.0]], np.float32)[None, :, :, None].repeat(2, axis=1)  # [1, 2, 2, 1]
  tf = np.asarray(inception.resize_bilinear(row, 4, 'tf'))[0, 0, :, 0]
  torch_like = np.asarray(inception.resize_bilinear(row, 4, 'pytorch_fid'))[0, 0, :, 0]
  np.testing.assert_allclose(tf, [0, 0.5, 1, 1])
  np.testing.assert_allclose(torch_like, [0, 0.25, 0.75, 1])


@pytest.mark.parametrize('in_size,out_size', [(7, 19), (64, 23)])
def test_half_pixel_resize_matches_direct_formula(in_size, out_size):
  image = np.random.default_rng(in_size).uniform(size=(in_size, in_size, 2)).astype(np.float32)
  ours = np.asarray(inception.resize_bilinear(image[None], out_size, 'pytorch_fid'))[0]
  # float32 source positions here, float64 in the direct formula
  np.testing.assert_allclose(ours, half_pixel_resize_direct(image, out_size, out_size), rtol=0, atol=1e-5)


def test_preprocess_scaling():
  gray = np.full((1, 299, 299, 1), 64, np.uint8)
  np.testing.assert_allclose(np.asarray(inception.preprocess(gray, 'tf')), (64 - 128) / 128)
  np.testing.assert_allclose(np.asarray(inception.preprocess(gray, 'pytorch_fid')), 2 * 64 / 255 - 1, rtol=1e-6)
  assert inception.preprocess(gray, 'tf').shape == (1, 299, 299, 3)


def test_loader_names_wrong_and_missing_variables():
  state = random_state()
  state['Mixed_6c.branch7x7_2.conv.weight'] = np.zeros((160, 160, 7, 1), np.float32)
  del state['Mixed_7c.branch_pool.bn.running_var']
  with pytest.raises(torch_weights.TorchWeightsError) as e:
    inception.variables_from_state_dict(state, 'w.pth')
  assert str(e.value).startswith('w.pth: ')
  assert set(str(e.value)[len('w.pth: '):].split('; ')) == {
      'variable Mixed_6c.branch7x7_2.conv.weight has shape [160, 160, 7, 1], expected [160, 160, 1, 7]',
      'missing variable Mixed_7c.branch_pool.bn.running_var [192]'}


def test_loader_checks_the_checksum(weights_file, net):
  digest = hashlib.sha256(weights_file.read_bytes()).hexdigest()
  assert net.checksum == digest and net.name == 'inception_v3_tf_fid'
  with pytest.raises(torch_weights.TorchWeightsError, match=f'sha256 {digest} is not {inception.FID_WEIGHTS_SHA256}'):
    inception.load(weights_file)
  with pytest.raises(errors.UsageError, match="input_mode 'bicubic'"):
    inception.load(weights_file, input_mode='bicubic', sha256=None)


GRAY = np.random.default_rng(1).integers(0, 256, (2, 32, 32, 1), dtype=np.uint8)


def test_features_of_gray_and_rgb(net):
  gray = GRAY
  features = np.asarray(net(gray))
  assert features.shape == (2, 2048) and features.dtype == np.float32 and np.all(np.isfinite(features))
  assert np.all(features >= 0)  # the mean of ReLU outputs
  np.testing.assert_array_equal(np.asarray(inception.preprocess(gray)),
                                np.asarray(inception.preprocess(np.repeat(gray, 3, axis=-1))))
  assert not np.allclose(features[0], features[1])
  with pytest.raises(errors.UsageError, match=r'expects uint8 NHWC images with 1 or 3 channels, got float32'):
    net(gray.astype(np.float32))


# ---- Against pytorch-fid (optional) -----------------------------------------------------------------------


def pytorch_fid_model(state):
  torch = pytest.importorskip('torch')
  pfi = pytest.importorskip('pytorch_fid.inception')
  net = pfi._inception_v3(num_classes=1008, aux_logits=False, weights=None)
  blocks = {'Mixed_5b': pfi.FIDInceptionA(192, 32), 'Mixed_5c': pfi.FIDInceptionA(256, 64),
            'Mixed_5d': pfi.FIDInceptionA(288, 64), 'Mixed_6b': pfi.FIDInceptionC(768, 128),
            'Mixed_6c': pfi.FIDInceptionC(768, 160), 'Mixed_6d': pfi.FIDInceptionC(768, 160),
            'Mixed_6e': pfi.FIDInceptionC(768, 192), 'Mixed_7b': pfi.FIDInceptionE_1(1280),
            'Mixed_7c': pfi.FIDInceptionE_2(2048)}
  for name, block in blocks.items():  # what fid_inception_v3() does, without its download
    setattr(net, name, block)
  net.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=False)
  original, pfi.fid_inception_v3 = pfi.fid_inception_v3, lambda: net
  try:
    return {flags: pfi.InceptionV3([3], resize_input=flags, normalize_input=flags).eval() for flags in (True, False)}
  finally:
    pfi.fid_inception_v3 = original


def test_features_equal_pytorch_fid(weights_file, net):
  torch = pytest.importorskip('torch')
  models = pytorch_fid_model(random_state())
  rng = np.random.default_rng(2)
  # pytorch-fid's own input handling: InceptionV3(resize_input=True, normalize_input=True) on x / 255.
  images = rng.integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
  ours = np.asarray(inception.load(weights_file, input_mode='pytorch_fid', sha256=None)(images))
  with torch.no_grad():
    ref = models[True](torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255)[0][:, :, 0, 0].numpy()
  np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
  # The TF graph's input handling: TF1 resize (the direct formula above), (x - 128) / 128, same trunk.
  resized = np.stack([tf1_resize_direct(np.repeat(g, 3, axis=-1).astype(np.float32), 299, 299) for g in GRAY])
  with torch.no_grad():
    ref = models[False](torch.from_numpy((resized - 128) / 128).permute(0, 3, 1, 2).float())[0][:, :, 0, 0].numpy()
  np.testing.assert_allclose(np.asarray(net(GRAY)), ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


@pytest.mark.slow  # about 28 s; the FID/KID/PR definitions are tested on their own above
def test_fid_kid_and_pr_through_the_registry(net, fashion_mnist_data_dir, tmp_path):
  """The inception metrics end to end: Gs fakes and the dataset's reals through the loaded Inception (random
  weights: the checksum check is the loader's, tested above), the reals' statistics cached and reused."""
  from stylegan_jax import networks  # noqa: PLC0415
  from stylegan_jax.configs import smoke  # noqa: PLC0415
  from stylegan_jax.metrics import registry  # noqa: PLC0415
  from stylegan_jax.network_config import NetworkConfig  # noqa: PLC0415
  config = smoke.get_config()
  config.data.data_dir = fashion_mnist_data_dir
  config.metrics.cache_dir = str(tmp_path)
  model = NetworkConfig.from_dict(config.model)
  gs = networks.Generator(model).init(jax.random.PRNGKey(0), np.zeros((1, model.latent_size), np.float32), None)
  evaluator = registry.Evaluator(config, feature_nets={'inception': net})
  results = evaluator.evaluate(gs, ['fid6', 'pr6'])
  assert set(results) == {'fid6', 'pr6_precision', 'pr6_recall'}
  assert np.isfinite(results['fid6']) and results['fid6'] > 0
  assert 0 <= results['pr6_precision'] <= 1 and 0 <= results['pr6_recall'] <= 1
  cached = evaluator.evaluate(gs, ['fid6'])  # the reals' statistics now come from the cache
  assert cached['fid6'] == pytest.approx(results['fid6'], rel=1e-5)
  assert len(list((tmp_path / 'real_stats').iterdir())) == 1
