"""The TF-FID Inception-v3 (pool3 features, 2048-d) in Flax, with weights from pytorch-fid's weights file.

This is the network of the reference TF FID code and of NVIDIA's `inception_v3_features.pkl`: the graph
`inception-2015-12-05` (classify_image_graph_def.pb). It differs from torchvision's Inception-v3 in its weights
and in its pooling, which pytorch-fid reimplements as FIDInceptionA/C/E_1/E_2:
  - the 3x3 average pools inside Mixed_5b-5d, 6b-6e and 7b exclude the zero padding from the mean;
  - Mixed_7c's pool branch is a 3x3 *max* pool (stride 1, padding 1).
Every BatchNorm has epsilon 1e-3, convolutions have no bias. Module names are pytorch-fid's
(`Mixed_6b/branch7x7_2/conv`), so a weights-file name maps to a variable path name for name.

Weights: pytorch-fid's `pt_inception-2015-12-05-6726825d.pth` (95,628,359 bytes, sha256 `FID_WEIGHTS_SHA256`,
the release asset `fid_weights` of github.com/mseitzer/pytorch-fid; `pip install pytorch-fid` and one run of it
leaves the same file in ~/.cache/torch/hub/checkpoints/). It is a legacy-format (torch < 1.6) state dict; its
`fc.*` (the 1008-way logits) are not used: checked by shape when present.

Input handling, `input_mode`:
  'tf'           (default) as the TF graph, which NVIDIA's FID uses: uint8 -> float32, the graph's own
                 ResizeBilinear to 299x299 (TF1 legacy: align_corners=False *without* half-pixel centres,
                 source = dst * in/out, no antialiasing), then (x - 128) / 128.
  'pytorch_fid'  as pytorch-fid's InceptionV3(resize_input=True, normalize_input=True) on x/255:
                 F.interpolate(bilinear, align_corners=False: half-pixel centres), then 2x - 1.
Grayscale images are replicated to RGB first.
"""

import dataclasses
import functools
import hashlib
import os
from typing import Union

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from stylegan_jax import errors
from stylegan_jax.metrics import torch_weights

FID_WEIGHTS_FILE = 'pt_inception-2015-12-05-6726825d.pth'
FID_WEIGHTS_SHA256 = '6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2'
INPUT_SIZE = 299
FEATURES = 2048
NUM_LOGITS = 1008  # fc.* in the weights file: not used
INPUT_MODES = ('tf', 'pytorch_fid')
_PRECISION = jax.lax.Precision.HIGHEST  # float32 convolutions on every backend


class BasicConv2d(nn.Module):
  """Conv (no bias) -> BatchNorm (eps 1e-3, running statistics) -> ReLU, NHWC."""
  features: int
  kernel: tuple[int, int]
  strides: int = 1
  padding: tuple[int, int] = (0, 0)

  @nn.compact
  def __call__(self, x):
    x = nn.Conv(self.features, self.kernel, self.strides, padding=[(p, p) for p in self.padding],
                use_bias=False, precision=_PRECISION, name='conv')(x)
    x = nn.BatchNorm(use_running_average=True, epsilon=1e-3, name='bn')(x)
    return nn.relu(x)


def _avg_pool_3x3(x):
  """TF's SAME 3x3/1 average pool: the padding is not counted (count_include_pad=False)."""
  return nn.avg_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1)), count_include_pad=False)


def _max_pool_3x3_stride2(x):
  return nn.max_pool(x, (3, 3), (2, 2))


class InceptionA(nn.Module):
  """Mixed_5b-5d: 35x35, output 224 + pool_features channels."""
  pool_features: int

  @nn.compact
  def __call__(self, x):
    b1 = BasicConv2d(64, (1, 1), name='branch1x1')(x)
    b5 = BasicConv2d(48, (1, 1), name='branch5x5_1')(x)
    b5 = BasicConv2d(64, (5, 5), padding=(2, 2), name='branch5x5_2')(b5)
    b3 = BasicConv2d(64, (1, 1), name='branch3x3dbl_1')(x)
    b3 = BasicConv2d(96, (3, 3), padding=(1, 1), name='branch3x3dbl_2')(b3)
    b3 = BasicConv2d(96, (3, 3), padding=(1, 1), name='branch3x3dbl_3')(b3)
    bp = BasicConv2d(self.pool_features, (1, 1), name='branch_pool')(_avg_pool_3x3(x))
    return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
  """Mixed_6a: 35x35x288 -> 17x17x768."""

  @nn.compact
  def __call__(self, x):
    b3 = BasicConv2d(384, (3, 3), strides=2, name='branch3x3')(x)
    bd = BasicConv2d(64, (1, 1), name='branch3x3dbl_1')(x)
    bd = BasicConv2d(96, (3, 3), padding=(1, 1), name='branch3x3dbl_2')(bd)
    bd = BasicConv2d(96, (3, 3), strides=2, name='branch3x3dbl_3')(bd)
    return jnp.concatenate([b3, bd, _max_pool_3x3_stride2(x)], axis=-1)


class InceptionC(nn.Module):
  """Mixed_6b-6e: 17x17x768 -> 17x17x768 with factorised 7x7 convolutions of `channels_7x7`."""
  channels_7x7: int

  @nn.compact
  def __call__(self, x):
    c = self.channels_7x7
    b1 = BasicConv2d(192, (1, 1), name='branch1x1')(x)
    b7 = BasicConv2d(c, (1, 1), name='branch7x7_1')(x)
    b7 = BasicConv2d(c, (1, 7), padding=(0, 3), name='branch7x7_2')(b7)
    b7 = BasicConv2d(192, (7, 1), padding=(3, 0), name='branch7x7_3')(b7)
    bd = BasicConv2d(c, (1, 1), name='branch7x7dbl_1')(x)
    bd = BasicConv2d(c, (7, 1), padding=(3, 0), name='branch7x7dbl_2')(bd)
    bd = BasicConv2d(c, (1, 7), padding=(0, 3), name='branch7x7dbl_3')(bd)
    bd = BasicConv2d(c, (7, 1), padding=(3, 0), name='branch7x7dbl_4')(bd)
    bd = BasicConv2d(192, (1, 7), padding=(0, 3), name='branch7x7dbl_5')(bd)
    bp = BasicConv2d(192, (1, 1), name='branch_pool')(_avg_pool_3x3(x))
    return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):
  """Mixed_7a: 17x17x768 -> 8x8x1280."""

  @nn.compact
  def __call__(self, x):
    b3 = BasicConv2d(192, (1, 1), name='branch3x3_1')(x)
    b3 = BasicConv2d(320, (3, 3), strides=2, name='branch3x3_2')(b3)
    b7 = BasicConv2d(192, (1, 1), name='branch7x7x3_1')(x)
    b7 = BasicConv2d(192, (1, 7), padding=(0, 3), name='branch7x7x3_2')(b7)
    b7 = BasicConv2d(192, (7, 1), padding=(3, 0), name='branch7x7x3_3')(b7)
    b7 = BasicConv2d(192, (3, 3), strides=2, name='branch7x7x3_4')(b7)
    return jnp.concatenate([b3, b7, _max_pool_3x3_stride2(x)], axis=-1)


class InceptionE(nn.Module):
  """Mixed_7b (average pool branch) and Mixed_7c (max pool branch, as the TF-FID graph): 8x8 -> 8x8x2048."""
  max_pool: bool = False

  @nn.compact
  def __call__(self, x):
    b1 = BasicConv2d(320, (1, 1), name='branch1x1')(x)
    b3 = BasicConv2d(384, (1, 1), name='branch3x3_1')(x)
    b3 = jnp.concatenate([BasicConv2d(384, (1, 3), padding=(0, 1), name='branch3x3_2a')(b3),
                          BasicConv2d(384, (3, 1), padding=(1, 0), name='branch3x3_2b')(b3)], axis=-1)
    bd = BasicConv2d(448, (1, 1), name='branch3x3dbl_1')(x)
    bd = BasicConv2d(384, (3, 3), padding=(1, 1), name='branch3x3dbl_2')(bd)
    bd = jnp.concatenate([BasicConv2d(384, (1, 3), padding=(0, 1), name='branch3x3dbl_3a')(bd),
                          BasicConv2d(384, (3, 1), padding=(1, 0), name='branch3x3dbl_3b')(bd)], axis=-1)
    pooled = nn.max_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1))) if self.max_pool else _avg_pool_3x3(x)
    bp = BasicConv2d(192, (1, 1), name='branch_pool')(pooled)
    return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class InceptionV3(nn.Module):
  """The FID Inception-v3 trunk: [N, 299, 299, 3] float32 in [-1, 1] -> pool3 features [N, 2048]."""

  @nn.compact
  def __call__(self, x):
    x = BasicConv2d(32, (3, 3), strides=2, name='Conv2d_1a_3x3')(x)
    x = BasicConv2d(32, (3, 3), name='Conv2d_2a_3x3')(x)
    x = BasicConv2d(64, (3, 3), padding=(1, 1), name='Conv2d_2b_3x3')(x)
    x = _max_pool_3x3_stride2(x)
    x = BasicConv2d(80, (1, 1), name='Conv2d_3b_1x1')(x)
    x = BasicConv2d(192, (3, 3), name='Conv2d_4a_3x3')(x)
    x = _max_pool_3x3_stride2(x)
    x = InceptionA(32, name='Mixed_5b')(x)
    x = InceptionA(64, name='Mixed_5c')(x)
    x = InceptionA(64, name='Mixed_5d')(x)
    x = InceptionB(name='Mixed_6a')(x)
    for name, channels in (('Mixed_6b', 128), ('Mixed_6c', 160), ('Mixed_6d', 160), ('Mixed_6e', 192)):
      x = InceptionC(channels, name=name)(x)
    x = InceptionD(name='Mixed_7a')(x)
    x = InceptionE(name='Mixed_7b')(x)
    x = InceptionE(max_pool=True, name='Mixed_7c')(x)
    return jnp.mean(x, axis=(1, 2))


# ---- Input handling ----------------------------------------------------------------------------------------


def tf1_bilinear_taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """TF1 legacy ResizeBilinear (align_corners=False, half_pixel_centers=False) along one axis.

  Output pixel i samples source position s = i * (in/out) (float32, as TF): it blends rows floor(s) and
  min(ceil(s), in - 1) with weight s - floor(s) on the second. Returns (lower, upper, weight).
  """
  scale = np.float32(in_size) / np.float32(out_size)
  source = np.arange(out_size, dtype=np.float32) * scale
  lower = np.floor(source)
  upper = np.minimum(np.ceil(source), in_size - 1)
  return lower.astype(np.int32), upper.astype(np.int32), (source - lower).astype(np.float32)


def half_pixel_bilinear_taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """PyTorch's F.interpolate(mode='bilinear', align_corners=False) along one axis (no antialiasing).

  Output pixel i samples s = max((i + 0.5) * in/out - 0.5, 0). Returns (lower, upper, weight of upper).
  """
  scale = np.float32(in_size) / np.float32(out_size)
  source = np.maximum((np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5), 0)
  lower = np.floor(source).astype(np.int32)
  upper = np.minimum(lower + 1, in_size - 1)
  return lower, upper, (source - lower).astype(np.float32)


def resize_bilinear(images: jax.Array, size: int, mode: str = 'tf') -> jax.Array:
  """Bilinear resize of float [N, H, W, C] to [N, size, size, C]; `mode` 'tf' (TF1 legacy) or 'pytorch_fid'."""
  taps = tf1_bilinear_taps if mode == 'tf' else half_pixel_bilinear_taps
  (y0, y1, fy), (x0, x1, fx) = taps(images.shape[1], size), taps(images.shape[2], size)
  fx, fy = fx[:, None], fy[:, None, None]
  if mode == 'tf':  # TF's order: top/bottom rows lerped along x, then top + (bottom - top) * y_lerp
    rows = images[:, :, x0] + (images[:, :, x1] - images[:, :, x0]) * fx
    return rows[:, y0] + (rows[:, y1] - rows[:, y0]) * fy
  rows = images[:, :, x0] * (1 - fx) + images[:, :, x1] * fx
  return rows[:, y0] * (1 - fy) + rows[:, y1] * fy


def preprocess(images: jax.Array, input_mode: str = 'tf') -> jax.Array:
  """uint8 [N, H, W, 1 or 3] -> the network's input [N, 299, 299, 3] float32, as `input_mode` says."""
  x = images.astype(jnp.float32)
  if x.shape[-1] == 1:
    x = jnp.repeat(x, 3, axis=-1)
  if input_mode == 'tf':
    if x.shape[1:3] != (INPUT_SIZE, INPUT_SIZE):
      x = resize_bilinear(x, INPUT_SIZE, 'tf')
    return (x - 128.0) / 128.0
  x = resize_bilinear(x / 255.0, INPUT_SIZE, 'pytorch_fid')
  return 2.0 * x - 1.0


@functools.partial(jax.jit, static_argnames=('input_mode',))
def _features(variables, images, input_mode):
  return InceptionV3().apply(variables, preprocess(images, input_mode))


# ---- Weights -----------------------------------------------------------------------------------------------

_BN_NAMES = {'weight': ('params', 'scale'), 'bias': ('params', 'bias'), 'running_mean': ('batch_stats', 'mean'),
             'running_var': ('batch_stats', 'var')}


def variable_shapes() -> dict[str, tuple[int, ...]]:
  """{flattened Flax path 'params/Mixed_5b/branch1x1/conv/kernel': shape} of InceptionV3's variables."""
  tree = jax.eval_shape(InceptionV3().init, jax.random.key(0), jnp.zeros((1, INPUT_SIZE, INPUT_SIZE, 3)))
  return {k: v.shape for k, v in traverse_util.flatten_dict(tree, sep='/').items()}


def _torch_name(path: str) -> tuple[str, bool]:
  """Flax path -> (pytorch-fid state-dict name, whether the value is a conv kernel to transpose)."""
  collection, *module, leaf = path.split('/')
  if leaf == 'kernel':
    return '.'.join(module) + '.weight', True
  torch_leaf = {v: k for k, v in _BN_NAMES.items()}[(collection, leaf)]
  return '.'.join(module) + '.' + torch_leaf, False


def torch_shapes() -> dict[str, tuple[int, ...]]:
  """{pytorch-fid state-dict name: shape} that a weights file must hold (fc.* included)."""
  shapes = {}
  for path, shape in variable_shapes().items():
    name, is_kernel = _torch_name(path)
    shapes[name] = (shape[3], shape[2], shape[0], shape[1]) if is_kernel else shape
  return {**shapes, 'fc.weight': (NUM_LOGITS, FEATURES), 'fc.bias': (NUM_LOGITS,)}


def variables_from_state_dict(state: dict[str, np.ndarray], source: str = 'state dict') -> dict:
  """pytorch-fid state dict -> InceptionV3 variables ({'params', 'batch_stats'}), checked by name and shape."""
  torch_weights.check_shapes(state, torch_shapes(), source, unused=('fc.weight', 'fc.bias'),
                             ignored_suffixes=('num_batches_tracked',))
  flat = {}
  for path in variable_shapes():
    name, is_kernel = _torch_name(path)
    value = np.asarray(state[name], np.float32)
    flat[path] = value.transpose(2, 3, 1, 0) if is_kernel else value  # OIHW -> HWIO
  return traverse_util.unflatten_dict(flat, sep='/')


@dataclasses.dataclass(frozen=True)
class FeatureNetwork:
  """A loaded feature network: `net(images)` maps uint8 [N, H, W, 1 or 3] to float32 features [N, 2048]."""
  name: str
  checksum: str  # sha256 of the weights file
  variables: dict
  input_mode: str = 'tf'

  def __call__(self, images) -> jax.Array:
    images = jnp.asarray(images)
    if images.dtype != jnp.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
      raise errors.UsageError(f'{self.name} expects uint8 NHWC images with 1 or 3 channels, '
                              f'got {images.dtype} {list(images.shape)}')
    return _features(self.variables, images, self.input_mode)


def load(path: Union[str, os.PathLike], input_mode: str = 'tf',
         sha256: Union[str, None] = FID_WEIGHTS_SHA256) -> FeatureNetwork:
  """Loads the FID Inception from pytorch-fid's weights file (see the module docstring for where to get it).

  Every name and shape is checked, then the file's sha256 against `sha256` (None skips that check, e.g.
  for test weights). `input_mode` 'tf' (the reference TF-FID input handling) or 'pytorch_fid'.
  """
  if input_mode not in INPUT_MODES:
    raise errors.UsageError(f'input_mode {input_mode!r} is not one of {INPUT_MODES}')
  source = os.fspath(path)
  state = torch_weights.read_state_dict(source)
  variables = variables_from_state_dict(state, source)
  with open(source, 'rb') as f:
    digest = hashlib.file_digest(f, 'sha256').hexdigest()
  if sha256 is not None and digest != sha256:
    raise torch_weights.TorchWeightsError(
        f'{source}: sha256 {digest} is not {sha256}, that of pytorch-fid\'s {FID_WEIGHTS_FILE}: the file is '
        'damaged or other weights (FID values would not be comparable)')
  name = 'inception_v3_tf_fid' + ('' if input_mode == 'tf' else '_pytorch_fid_input')
  return FeatureNetwork(name=name, checksum=digest, variables=jax.device_put(variables), input_mode=input_mode)
