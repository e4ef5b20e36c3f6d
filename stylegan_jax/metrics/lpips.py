"""LPIPS with the VGG16 backbone (Zhang et al. 2018, "v0.1" linear heads) in Flax, NHWC.

distance(a, b) for images in [-1, 1], exactly as the `lpips` package's LPIPS(net='vgg', version='0.1'):
  1. scaling layer: x' = (x - shift) / scale, shift [-0.030, -0.088, -0.188], scale [0.458, 0.448, 0.450];
  2. torchvision's VGG16 `features` (3x3 convs + ReLU, 2x2 max pools), tapped at relu1_2, relu2_2, relu3_3,
     relu4_3 and relu5_3 (64, 128, 256, 512, 512 channels);
  3. each tap unit-normalised over channels: f / (sqrt(sum f²) + 1e-10);
  4. d_l = (f0 - f1)², weighted by the layer's linear head (a bias-free 1x1 conv to one channel; its dropout
     is inactive at evaluation) and averaged over H and W;
  5. the sum over the five layers -> [N].

Weights, both user-supplied files (read without PyTorch, checked by name and shape; their sha256 is recorded):
  vgg16   torchvision's ImageNet VGG16 state dict `vgg16-397923af.pth` (what
          `torchvision.models.vgg16(weights='IMAGENET1K_V1')` downloads into ~/.cache/torch/hub/checkpoints/):
          features.{0,2,...,28}; the unused classifier.* may be absent and are checked by shape when present;
  heads   `lpips/weights/v0.1/vgg.pth` inside the `lpips` package's PyPI wheel (`pip download lpips`; 7,289 bytes,
          sha256 `LPIPS_HEADS_SHA256` in lpips 0.1.4): lin{0..4}.model.1.weight [1, C, 1, 1].
"""

import dataclasses
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

LPIPS_HEADS_SHA256 = 'a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868'
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
EPSILON = 1e-10
# VGG16 `features`: (torchvision index, our name, output channels); a 2x2 max pool precedes each block's first.
VGG16_CONVS = ((0, 'conv1_1', 64), (2, 'conv1_2', 64), (5, 'conv2_1', 128), (7, 'conv2_2', 128),
               (10, 'conv3_1', 256), (12, 'conv3_2', 256), (14, 'conv3_3', 256), (17, 'conv4_1', 512),
               (19, 'conv4_2', 512), (21, 'conv4_3', 512), (24, 'conv5_1', 512), (26, 'conv5_2', 512),
               (28, 'conv5_3', 512))
TAPS = ('conv1_2', 'conv2_2', 'conv3_3', 'conv4_3', 'conv5_3')  # their ReLU outputs feed the heads
# torchvision's classifier, in its vgg16 file but not used here: name -> shape.
VGG16_CLASSIFIER = {'classifier.0.weight': (4096, 25088), 'classifier.0.bias': (4096,),
                    'classifier.3.weight': (4096, 4096), 'classifier.3.bias': (4096,),
                    'classifier.6.weight': (1000, 4096), 'classifier.6.bias': (1000,)}
_PRECISION = jax.lax.Precision.HIGHEST


class Conv3x3(nn.Module):
  """3x3 conv, stride 1, zero padding 1, with bias, NHWC (params `kernel` [3, 3, in, out], `bias` [out]).

  Below 3x3 spatial size it is computed as nine shifted matmuls: the same sum, but XLA's CPU convolution takes
  ~100x longer at 2x2 (VGG16's last blocks on the 16x16 and 32x32 PPL crops of small images).
  """
  features: int

  @nn.compact
  def __call__(self, x):
    kernel = self.param('kernel', nn.initializers.lecun_normal(), (3, 3, x.shape[-1], self.features))
    bias = self.param('bias', nn.initializers.zeros, (self.features,))
    h, w = x.shape[1:3]
    if min(h, w) >= 3:
      y = jax.lax.conv_general_dilated(x, kernel, (1, 1), ((1, 1), (1, 1)), precision=_PRECISION,
                                       dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    else:
      padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
      y = sum(jnp.einsum('nhwc,cd->nhwd', padded[:, i:i + h, j:j + w], kernel[i, j], precision=_PRECISION)
              for i in range(3) for j in range(3))
    return y + bias


class VGG16Features(nn.Module):
  """torchvision's VGG16 `features` after the LPIPS scaling layer: [N, H, W, 3] in [-1, 1] -> the five
  unit-normalised taps [N, H / 2^k, W / 2^k, C_k], k = 0..4."""

  @nn.compact
  def __call__(self, x):
    x = (x - jnp.asarray(SHIFT)) / jnp.asarray(SCALE)
    taps = []
    for _, name, channels in VGG16_CONVS:
      if name.endswith('_1') and name != 'conv1_1':
        x = nn.max_pool(x, (2, 2), (2, 2))
      x = nn.relu(Conv3x3(channels, name=name)(x))
      if name in TAPS:
        taps.append(x / (jnp.sqrt(jnp.sum(x * x, axis=-1, keepdims=True)) + EPSILON))
    return taps


class LPIPS(nn.Module):
  """(a, b) [N, H, W, 3] in [-1, 1] -> LPIPS distance [N]."""

  @nn.compact
  def __call__(self, a, b):
    taps = VGG16Features(name='vgg16')(jnp.concatenate([a, b]))
    total = 0.0
    for k, f in enumerate(taps):
      f0, f1 = jnp.split(f, 2)
      head = nn.Dense(1, use_bias=False, precision=_PRECISION, name=f'lin{k}')
      total = total + jnp.mean(head((f0 - f1) ** 2)[..., 0], axis=(1, 2))
    return total


@jax.jit
def _distance(variables, a, b):
  return LPIPS().apply(variables, a, b)


def torch_shapes() -> tuple[dict[str, tuple[int, ...]], dict[str, tuple[int, ...]]]:
  """The names and shapes the two files must hold: (torchvision vgg16, lpips v0.1 heads)."""
  vgg, cin = {}, 3
  for index, _, channels in VGG16_CONVS:
    vgg[f'features.{index}.weight'], vgg[f'features.{index}.bias'] = (channels, cin, 3, 3), (channels,)
    cin = channels
  heads = {f'lin{k}.model.1.weight': (1, c, 1, 1) for k, c in enumerate((64, 128, 256, 512, 512))}
  return {**vgg, **VGG16_CLASSIFIER}, heads


def variables_from_state_dicts(vgg16: dict, heads: dict, sources=('vgg16', 'heads')) -> dict:
  """torchvision vgg16 + lpips heads state dicts -> LPIPS variables, checked by name and shape."""
  vgg_shapes, head_shapes = torch_shapes()
  torch_weights.check_shapes(vgg16, vgg_shapes, sources[0], unused=tuple(VGG16_CLASSIFIER))
  torch_weights.check_shapes(heads, head_shapes, sources[1])
  params = {}
  for index, name, _ in VGG16_CONVS:
    params[f'vgg16/{name}/kernel'] = np.asarray(vgg16[f'features.{index}.weight'], np.float32).transpose(2, 3, 1, 0)
    params[f'vgg16/{name}/bias'] = np.asarray(vgg16[f'features.{index}.bias'], np.float32)
  for k in range(len(TAPS)):
    params[f'lin{k}/kernel'] = np.asarray(heads[f'lin{k}.model.1.weight'], np.float32).reshape(1, -1).T
  return {'params': traverse_util.unflatten_dict(params, sep='/')}


@dataclasses.dataclass(frozen=True)
class PerceptualDistance:
  """A loaded LPIPS-VGG16: `distance(a, b)` for float images [N, H, W, 1 or 3] in [-1, 1] -> [N] float32.

  Grayscale images are replicated to RGB. H and W must be at least 16 (four 2x2 pools).
  """
  name: str
  checksum: str  # sha256 of the vgg16 file, '+', sha256 of the heads file
  variables: dict

  def distance(self, a, b) -> jax.Array:
    a, b = jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)
    if a.shape != b.shape or a.ndim != 4 or a.shape[-1] not in (1, 3) or min(a.shape[1:3]) < 16:
      raise errors.UsageError(f'LPIPS compares two NHWC batches of one shape with 1 or 3 channels and H, W >= 16, '
                              f'got {list(a.shape)} and {list(b.shape)}')
    if a.shape[-1] == 1:
      a, b = jnp.repeat(a, 3, axis=-1), jnp.repeat(b, 3, axis=-1)
    return _distance(self.variables, a, b)

  __call__ = distance


def _sha256(path: str) -> str:
  with open(path, 'rb') as f:
    return hashlib.file_digest(f, 'sha256').hexdigest()


def load(vgg16_path: Union[str, os.PathLike], heads_path: Union[str, os.PathLike]) -> PerceptualDistance:
  """Loads LPIPS-VGG16 v0.1 from torchvision's vgg16 file and the lpips package's v0.1 vgg.pth."""
  sources = os.fspath(vgg16_path), os.fspath(heads_path)
  variables = variables_from_state_dicts(*(torch_weights.read_state_dict(s) for s in sources), sources=sources)
  return PerceptualDistance(name='lpips_vgg16_v0.1', checksum='+'.join(_sha256(s) for s in sources),
                            variables=jax.device_put(variables))
