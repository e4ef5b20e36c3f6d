"""The StyleGAN v1 layer operations, as pure functions on NHWC tensors.

Weights keep the official TF layouts: conv `[kh, kw, in, out]` (= HWIO) and dense `[in, out]`, stored raw; the
equalized-learning-rate multiplier is applied at run time (`weight_param`). Every op here reproduces the
official one numerically (spec §2-3 and §10).

Mixed precision: the convolutions and `dense` take a compute `dtype` (default float32); their inputs and the
runtime-scaled weights are cast to it and they accumulate and return float32, and in bfloat16 their gradients are
computed in it too (`_in_dtype`). Every other op computes in float32.
"""

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import DTypeLike

_NHWC = ('NHWC', 'HWIO', 'NHWC')
LRELU_GAIN = math.sqrt(2.0)


# ---- Equalized learning rate -------------------------------------------------------------------------------


def he_std(shape, gain: float) -> float:
  """He init std for a weight of TF layout `shape` (fan_in = prod(shape[:-1]))."""
  return gain / math.sqrt(float(np.prod(shape[:-1])))


def weight_param(module: nn.Module, shape, *, gain: float, use_wscale: bool = True, lrmul: float = 1.0,
                 name: str = 'weight') -> jax.Array:
  """Creates a raw weight on `module` and returns it times its runtime multiplier.

  With `use_wscale` the stored weight is N(0, 1/lrmul) and is scaled by he_std*lrmul at run time; without it it
  is N(0, he_std/lrmul) and scaled by lrmul (official `get_weight`).
  """
  std = he_std(shape, gain)
  init_std, runtime_coef = (1.0 / lrmul, std * lrmul) if use_wscale else (std / lrmul, lrmul)
  w = module.param(name, nn.initializers.normal(init_std), tuple(shape), jnp.float32)
  return w * runtime_coef


def bias_param(module: nn.Module, features: int, *, lrmul: float = 1.0, name: str = 'bias') -> jax.Array:
  """A zero-initialised bias of shape [features], times `lrmul` at run time."""
  return module.param(name, nn.initializers.zeros, (features,), jnp.float32) * lrmul


def leaky_relu(x: jax.Array) -> jax.Array:
  return jnp.where(x >= 0, x, x * 0.2)


# ---- Compute dtype -----------------------------------------------------------------------------------------


def _in_dtype(op, x: jax.Array, w: jax.Array, dtype: DTypeLike) -> jax.Array:
  """`op(x, w, out_dtype)` (a conv or matmul) with x and w cast to `dtype`, accumulated and returned in float32.

  Below float32, the gradients are computed in `dtype` too (float32 accumulation and outputs, rounded to `dtype`):
  JAX would run the transposed ops in float32, as their cotangent is float32. float32: `op` as it is.
  """
  x, w = x.astype(dtype), w.astype(dtype)
  if jnp.dtype(dtype) == jnp.float32:
    return op(x, w, jnp.float32)
  return _low_precision_grads(op, x, w)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _low_precision_grads(op, x, w):
  return op(x, w, jnp.float32)


def _low_precision_grads_fwd(op, x, w):
  return _low_precision_grads(op, x, w), (x, w)  # itself, so that a second derivative (R1) uses this rule too


def _low_precision_grads_bwd(op, residuals, g):
  """The transposes of `op` in the inputs' dtype (differentiable again, for the R1 penalty's double backprop)."""
  x, w = residuals
  _, vjp = jax.vjp(lambda x, w: op(x, w, x.dtype), x, w)
  return vjp(g.astype(x.dtype))


_low_precision_grads.defvjp(_low_precision_grads_fwd, _low_precision_grads_bwd)


def dense(x: jax.Array, w: jax.Array, dtype: DTypeLike = jnp.float32) -> jax.Array:
  """[N, in] @ [in, out] with inputs in `dtype`, accumulated and returned in float32."""
  return _in_dtype(_matmul, x, w, dtype)


def _matmul(x, w, out_dtype):
  return jnp.matmul(x, w, preferred_element_type=out_dtype)


# ---- Convolutions and resampling ---------------------------------------------------------------------------


def conv2d(x: jax.Array, w: jax.Array, stride: int = 1, dtype: DTypeLike = jnp.float32) -> jax.Array:
  """SAME cross-correlation of NHWC `x` with HWIO `w` (TF's `conv2d`), inputs in `dtype`, float32 out."""
  return _in_dtype(functools.partial(_conv, stride=stride), x, w, dtype)


def _conv(x, w, out_dtype, stride):
  return lax.conv_general_dilated(x, w, (stride, stride), 'SAME', dimension_numbers=_NHWC,
                                  preferred_element_type=out_dtype)


def _conv_transpose(x, w, out_dtype):
  """TF's conv2d_transpose: the input-gradient of a stride-2 SAME conv (out -> in channels) with `w`."""
  return lax.conv_transpose(x, w, (2, 2), 'SAME', dimension_numbers=_NHWC, transpose_kernel=True,
                            preferred_element_type=out_dtype)


def blur(x: jax.Array) -> jax.Array:
  """Depthwise 3x3 low-pass filter outer([1,2,1],[1,2,1])/16, zero-padded SAME, computed in float32.

  Applied as its two separable [1,2,1]/4 passes of shifted adds: the same filter, and far faster than a
  grouped convolution on CPU.
  """
  dtype = x.dtype
  x = jnp.pad(x.astype(jnp.float32), ((0, 0), (1, 1), (1, 1), (0, 0)))
  x = x[:, :-2] + 2.0 * x[:, 1:-1] + x[:, 2:]
  x = (x[:, :, :-2] + 2.0 * x[:, :, 1:-1] + x[:, :, 2:]) * (1.0 / 16.0)
  return x.astype(dtype)


def upscale2d(x: jax.Array, factor: int = 2) -> jax.Array:
  """Nearest-neighbour upsampling of NHWC `x` by an integer factor."""
  if factor == 1:
    return x
  n, h, w, c = x.shape
  x = jnp.broadcast_to(x[:, :, None, :, None, :], (n, h, factor, w, factor, c))
  return x.reshape(n, h * factor, w * factor, c)


def downscale2d(x: jax.Array, factor: int = 2) -> jax.Array:
  """Box-filter downsampling (mean of factor x factor blocks) of NHWC `x`."""
  if factor == 1:
    return x
  n, h, w, c = x.shape
  y = x.astype(jnp.float32).reshape(n, h // factor, factor, w // factor, factor, c).mean(axis=(2, 4))
  return y.astype(x.dtype)


def upscale2d_conv2d(x: jax.Array, w: jax.Array, fused: bool, dtype: DTypeLike = jnp.float32,
                     phases: bool = False) -> jax.Array:
  """2x upsampling then 3x3 conv with HWIO `w`, inputs in `dtype`, float32 out.

  Unfused: nearest upsampling then SAME conv; with `phases` the same function as one 2x2 conv on the input
  (`_upscale2d_conv2d_phases`: 2.25x fewer FLOPs). Fused (official, >= 128²): a stride-2 transposed conv with the
  4x4 kernel made of the four shifted copies of `w`; it equals nearest upsampling then conv with `w` rotated 180°.
  """
  if not fused:
    if phases:
      return _upscale2d_conv2d_phases(x, w, dtype)
    return conv2d(upscale2d(x.astype(dtype)), w, dtype=dtype)
  w = jnp.pad(jnp.transpose(w, (0, 1, 3, 2)), ((1, 1), (1, 1), (0, 0), (0, 0)))  # [4, 4, out, in] after the sum
  w = w[1:, 1:] + w[:-1, 1:] + w[1:, :-1] + w[:-1, :-1]
  return _in_dtype(_conv_transpose, x, w, dtype)


def _upscale2d_conv2d_phases(x: jax.Array, w: jax.Array, dtype: DTypeLike) -> jax.Array:
  """conv2d(upscale2d(x), w) for NHWC `x` [N, H, W, C] and HWIO `w` [3, 3, C, O], computed at the input's size:
  one VALID 2x2 conv of x padded by 1 with `phase_kernel(w)`, then `interleave_phases`. The same function up to
  float rounding."""
  z = _in_dtype(_conv_valid, jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))), phase_kernel(w), dtype)
  return interleave_phases(z)


def phase_kernel(w: jax.Array) -> jax.Array:
  """HWIO `w` [3, 3, C, O] -> [2, 2, C, 4*O]: the 2x2 kernels of the four output phases of nearest upsampling then
  conv with `w`, as output channels (row phase, column phase, O; phase 1 first).

  Along each axis, output 2k (phase 0) reads inputs k-1, k with taps (w0, w1 + w2) and output 2k+1 (phase 1) reads
  k, k+1 with (w0 + w1, w2).
  """
  c, o = w.shape[2], w.shape[3]

  def phase_taps(v, axis):  # [.., 3, ..] -> [.., 2 (tap), .., 2 (phase 1, phase 0)]
    v0, v1, v2 = (v.take(i, axis) for i in range(3))
    return jnp.stack([jnp.stack([v0 + v1, v2], axis), jnp.stack([v0, v1 + v2], axis)], -1)

  kernel = phase_taps(phase_taps(w, 0), 1)  # [2, 2, C, O, 2 (row phase), 2 (column phase)]
  return jnp.transpose(kernel, (0, 1, 2, 4, 5, 3)).reshape(2, 2, c, 4 * o)


def interleave_phases(z: jax.Array) -> jax.Array:
  """The 2x2 phase conv's output z [N, H+1, W+1, 4*O] (x padded by 1) -> y [N, 2H, 2W, O]: the phases interleaved
  (depth-to-space), the first and last row and column dropped."""
  n, h1, w1, c4 = z.shape
  o = c4 // 4
  z = z.reshape(n, h1, w1, 2, 2, o).transpose(0, 1, 3, 2, 4, 5).reshape(n, 2 * h1, 2 * w1, o)
  return z[:, 1:-1, 1:-1]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv_valid(x, w, out_dtype):
  """VALID cross-correlation of NHWC `x` with HWIO `w`, whose weight gradient is one matmul (`_conv_valid_dw`)."""
  return _lax_conv_valid(x, w, out_dtype)


def _lax_conv_valid(x, w, out_dtype):
  return lax.conv_general_dilated(x, w, (1, 1), 'VALID', dimension_numbers=_NHWC, preferred_element_type=out_dtype)


def _conv_valid_fwd(x, w, out_dtype):
  return _conv_valid(x, w, out_dtype), (x, w)


def _conv_valid_bwd(out_dtype, residuals, g):
  x, w = residuals
  _, vjp_x = jax.vjp(lambda x: _lax_conv_valid(x, w, out_dtype), x)
  return vjp_x(g)[0], _conv_valid_dw(x, g, w.shape[:2]).astype(w.dtype)


def _conv_valid_dw(x: jax.Array, g: jax.Array, kernel_size) -> jax.Array:
  """The weight gradient [kh, kw, C, O] of the VALID conv of x [N, H, W, C] with output cotangent g [N, Ho, Wo, O]:
  the kh*kw shifted [Ho, Wo] windows of x side by side (im2col) times g, as one matmul over N*Ho*Wo.

  XLA's CPU rule runs it as a conv with an image-sized window: 25 GFLOP/s for the phase conv's 2x2 kernel at
  512 -> 2048 channels on 16², the matmul 180."""
  (kh, kw), (n, ho, wo, o), c = kernel_size, g.shape, x.shape[-1]
  cols = jnp.concatenate([x[:, i:i + ho, j:j + wo] for i in range(kh) for j in range(kw)], -1)
  dw = jnp.matmul(cols.reshape(n * ho * wo, kh * kw * c).T, g.astype(x.dtype).reshape(n * ho * wo, o),
                  preferred_element_type=jnp.float32)
  return dw.reshape(kh, kw, c, o)


_conv_valid.defvjp(_conv_valid_fwd, _conv_valid_bwd)


def conv2d_downscale2d(x: jax.Array, w: jax.Array, fused: bool, dtype: DTypeLike = jnp.float32,
                       phase_grad: bool = False) -> jax.Array:
  """3x3 conv with HWIO `w` then 2x2 box downsampling (in float32); fused (>= 128²) as one stride-2 4x4 conv (no
  flip). Conv inputs in `dtype`, float32 out.

  With `phase_grad` the fused form's input gradient is computed as the phase conv of G's upsampling
  (`_fused_downscale_phase_grad`): the same derivatives, and a second derivative (R1) that XLA's CPU backend runs
  several times faster than its own rule's (whose weight gradient of the transposed conv misses its fast kernels).
  """
  if not fused:
    return downscale2d(conv2d(x, w, dtype=dtype))
  if phase_grad:
    return _fused_downscale_phase_grad(x, w, dtype)
  return _conv2d_downscale2d_fused(x, w, dtype)


def downscale_kernel(w: jax.Array) -> jax.Array:
  """HWIO `w` [3, 3, C, O] -> [4, 4, C, O]: the stride-2 kernel of the 3x3 conv then 2x2 box downsampling."""
  w = jnp.pad(w, ((1, 1), (1, 1), (0, 0), (0, 0)))
  return (w[1:, 1:] + w[:-1, 1:] + w[1:, :-1] + w[:-1, :-1]) * 0.25


def _conv2d_downscale2d_fused(x, w, dtype):
  return conv2d(x, downscale_kernel(w), stride=2, dtype=dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _fused_downscale_phase_grad(x, w, dtype):
  return _conv2d_downscale2d_fused(x, w, dtype)


def _fused_downscale_phase_grad_fwd(x, w, dtype):
  return _fused_downscale_phase_grad(x, w, dtype), (x, w)  # itself: the outer derivative of R1 uses this rule too


def _fused_downscale_phase_grad_bwd(dtype, residuals, g):
  """The input gradient is the adjoint of conv-then-box-downsampling: nearest upsampling of g / 4, then the 3x3
  conv with `w` rotated 180° and its in/out channels swapped, as one phase conv (`_upscale2d_conv2d_phases`).
  The weight gradient is the strided conv's own."""
  x, w = residuals
  dx = _upscale2d_conv2d_phases(g * 0.25, jnp.flip(w, (0, 1)).transpose(0, 1, 3, 2), dtype)
  _, vjp_w = jax.vjp(lambda w: _conv2d_downscale2d_fused(x, w, dtype), w)
  return dx.astype(x.dtype), vjp_w(g)[0]


_fused_downscale_phase_grad.defvjp(_fused_downscale_phase_grad_fwd, _fused_downscale_phase_grad_bwd)


# ---- Normalisation, noise, styles --------------------------------------------------------------------------


def pixel_norm(x: jax.Array, axis: int = -1, epsilon: float = 1e-8) -> jax.Array:
  """x / sqrt(mean(x², axis) + eps), over the feature axis."""
  return x * lax.rsqrt(jnp.mean(jnp.square(x), axis=axis, keepdims=True) + epsilon)


def instance_norm(x: jax.Array, epsilon: float = 1e-8) -> jax.Array:
  """Per-sample, per-channel normalisation over H, W of NHWC `x` (biased variance, no affine), in float32."""
  dtype = x.dtype
  x = x.astype(jnp.float32)
  x = x - jnp.mean(x, axis=(1, 2), keepdims=True)
  x = x * lax.rsqrt(jnp.mean(jnp.square(x), axis=(1, 2), keepdims=True) + epsilon)
  return x.astype(dtype)


def style_mod(x: jax.Array, style: jax.Array) -> jax.Array:
  """Adaptive instance norm's affine part: `x * (style_scale + 1) + style_bias`.

  x: [N, H, W, C]; style: [N, 2C], the scale half first.
  """
  c = x.shape[-1]
  scale, bias = style[:, None, None, :c], style[:, None, None, c:]
  return x * (scale + 1.0) + bias


def minibatch_stddev(x: jax.Array, group_size: int = 4, num_features: int = 1) -> jax.Array:
  """Appends the minibatch standard deviation as `num_features` extra channels of NHWC `x`.

  Groups are strided as in the official code: with G = min(group_size, N) and M = N // G, sample i belongs to
  group i % M. Per group: biased variance over the G members, sqrt(var + 1e-8), mean over H, W and the channels of
  each feature group. Returns [N, H, W, C + num_features].
  """
  n, h, w, c = x.shape
  g = min(group_size, n)
  if n % g:
    raise ValueError(f'minibatch stddev: batch size {n} is not divisible by the group size {g}')
  y = x.astype(jnp.float32).reshape(g, n // g, h, w, num_features, c // num_features)
  y = y - jnp.mean(y, axis=0, keepdims=True)
  y = jnp.sqrt(jnp.mean(jnp.square(y), axis=0) + 1e-8)  # [M, H, W, F, C/F]
  y = jnp.mean(y, axis=(1, 2, 4))  # [M, F]
  y = jnp.tile(y, (g, 1))  # [N, F]: sample i gets its group's (i % M) statistics
  y = jnp.broadcast_to(y[:, None, None, :], (n, h, w, num_features)).astype(x.dtype)
  return jnp.concatenate([x, y], axis=-1)


def lerp(a, b, t):
  return a + (b - a) * t


def lerp_clip(a, b, t):
  return a + (b - a) * jnp.clip(t, 0.0, 1.0)
