"""StyleGAN's three 3x3 convolutions as Winograd F(2x2, 3x3) transforms around batched matmuls, for CPUs.

The same functions as `layers.conv2d` (SAME, stride 1), `layers.upscale2d_conv2d` (nearest 2x upsampling, then
the conv) and `layers.conv2d_downscale2d` (the conv, then 2x2 box downsampling), up to float rounding, on NHWC
`x` [N, H, W, C] and HWIO `w` [3, 3, C, O], in float32. Per 2x2 output tile the direct conv multiplies 36 times
per channel pair; here the input's overlapping 4x4 tiles (stride 2) and the kernel are transformed (B^T d B,
G g G^T) and multiplied elementwise, 16 products, as 16 matmuls [T, C] @ [C, O] over the T tiles, then
transformed back (A^T m A). Nearest upsampling repeats each input row, which zeroes one of the four transformed
rows, so the upsampling conv needs 9 products per input pixel (its phase form: 16); box downsampling averages each
tile's 2x2 outputs, which zeroes one of the four transformed rows of the output transform, so the downsampling
conv needs 9 per output pixel (its fused stride-2 4x4 form: 16), summed in one matmul [T, 9C] @ [9C, O].
Every step is linear, so JAX's derivatives of these (R1's second one too) are again transforms and matmuls.
On XLA's CPU backend they are faster than its convolutions where the matmuls are large: `pays` says where.
"""

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

# G: the kernel transform [4, 3] (Lavin & Gray 2016, F(2x2, 3x3)); B^T and A^T are written out in the tile
# and output transforms below.
_KERNEL_TRANSFORM = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]], np.float32)


def kernel_transform(w: jax.Array) -> jax.Array:
  """HWIO `w` [3, 3, C, O] -> U = G w G^T [4, 4, C, O]."""
  return jnp.einsum('ai,ijco,bj->abco', _KERNEL_TRANSFORM, w, _KERNEL_TRANSFORM)


def _reduced_kernel_transform(w: jax.Array, weights) -> jax.Array:
  """The kernel transform's rows and columns 0, 1, 3 [3, 3, C, O] (the forms whose transformed row 2 vanishes),
  times weights[a] * weights[b]."""
  taps = [0, 1, 3]
  weights = jnp.asarray(weights, jnp.float32)
  return kernel_transform(w)[np.ix_(taps, taps)] * (weights[:, None, None, None] * weights[None, :, None, None])


def _tile_transform(x: jax.Array, axis: int) -> list[jax.Array]:
  """B^T along `axis` of x padded to 2T + 2: the 4-long tiles at stride 2 (rows d0..d3 = 2t..2t+3) -> the four
  transformed rows [d0 - d2, d1 + d2, d2 - d1, d1 - d3], each T long."""
  t = (x.shape[axis] - 2) // 2
  d0, d1, d2, d3 = (lax.slice_in_dim(x, k, k + 2 * t - 1, 2, axis) for k in range(4))
  return [d0 - d2, d1 + d2, d2 - d1, d1 - d3]


def _pad1(x: jax.Array) -> jax.Array:
  return jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))


def _products(v: jax.Array, u: jax.Array) -> jax.Array:
  """The elementwise products of the transforms: v [K, N, H', W', C] and u [K, C, O] -> [K, N, H', W', O], as K
  matmuls over the N*H'*W' tiles."""
  k, n, h, w, c = v.shape
  m = jnp.einsum('ktc,kco->kto', v.reshape(k, n * h * w, c), u, preferred_element_type=jnp.float32)
  return m.reshape(k, n, h, w, u.shape[-1])


def _check(x: jax.Array, w: jax.Array, even: bool) -> None:
  if w.shape[:2] != (3, 3) or x.shape[-1] != w.shape[2]:
    raise ValueError(f'winograd: needs a [3, 3, {x.shape[-1]}, O] kernel, got {w.shape}')
  if even and (x.shape[1] % 2 or x.shape[2] % 2):
    raise ValueError(f'winograd: needs an even height and width, got {x.shape[1]}x{x.shape[2]}')


def conv2d(x: jax.Array, w: jax.Array) -> jax.Array:
  """SAME 3x3 cross-correlation (`layers.conv2d`) of x [N, H, W, C] (H, W even) -> [N, H, W, O]: 16 matmuls."""
  _check(x, w, even=True)
  n, h, wd, _ = x.shape
  o = w.shape[-1]
  v = jnp.stack([jnp.stack(_tile_transform(rows, 2)) for rows in _tile_transform(_pad1(x.astype(jnp.float32)), 1)])
  m = _products(v.reshape((16,) + v.shape[2:]), kernel_transform(w).reshape(16, w.shape[2], o))
  m = m.reshape((4, 4) + m.shape[1:])  # [4 (row), 4 (column), N, H/2, W/2, O]

  def outputs(m, axis):  # A^T along the leading axis: the tile's two outputs, on a new `axis`
    return jnp.stack([m[0] + m[1] + m[2], m[1] - m[2] - m[3]], axis)

  y = outputs(outputs(m, 3), -2)  # [N, H/2, 2, W/2, 2, O]
  return y.reshape(n, h, wd, o)


def upscale2d_conv2d(x: jax.Array, w: jax.Array) -> jax.Array:
  """Nearest 2x upsampling then SAME 3x3 conv (`layers.upscale2d_conv2d` unfused) of x [N, H, W, C] ->
  [N, 2H, 2W, O]: 9 matmuls at the input's size.

  Along each axis the tile of outputs 2t, 2t+1 reads the upsampled rows x[t-1], x[t], x[t], x[t+1], so its
  transformed rows are [x[t-1] - x[t], 2 x[t], 0, x[t] - x[t+1]] and the outputs m0 + m1 and m1 - m3.
  """
  _check(x, w, even=False)
  n, h, wd, _ = x.shape
  o = w.shape[-1]
  u = _reduced_kernel_transform(w, [1.0, 2.0, 1.0])  # the 2 of the middle row, applied to the kernel

  def rows(x, axis):  # x padded by 1 -> [x[t-1] - x[t], x[t], x[t] - x[t+1]] for t < H
    size = x.shape[axis] - 2
    before, centre, after = (lax.slice_in_dim(x, k, k + size, 1, axis) for k in range(3))
    return [before - centre, centre, centre - after]

  v = jnp.stack([jnp.stack(rows(r, 2)) for r in rows(_pad1(x.astype(jnp.float32)), 1)])  # [3, 3, N, H, W, C]
  m = _products(v.reshape((9,) + v.shape[2:]), u.reshape(9, w.shape[2], o)).reshape((3, 3, n, h, wd, o))

  def outputs(m, axis):
    return jnp.stack([m[0] + m[1], m[1] - m[2]], axis)

  y = outputs(outputs(m, 3), -2)  # [N, H, 2, W, 2, O]
  return y.reshape(n, 2 * h, 2 * wd, o)


def conv2d_downscale2d(x: jax.Array, w: jax.Array) -> jax.Array:
  """SAME 3x3 conv then 2x2 box downsampling (`layers.conv2d_downscale2d`, fused or not) of x [N, H, W, C] (H, W
  even) -> [N, H/2, W/2, O]: one matmul [N*H/2*W/2, 9C] @ [9C, O].

  The mean of a tile's two outputs along an axis is (m0 + 2 m1 - m3) / 2 (m2 drops out), so the output is the sum
  of the 9 products of the transformed rows 0, 1, 3 with the kernel's, weighted (1/2, 1, -1/2) per axis.
  """
  _check(x, w, even=True)
  n, h, wd, c = x.shape
  o = w.shape[-1]
  u = _reduced_kernel_transform(w, [0.5, 1.0, -0.5])
  transformed = [_tile_transform(rows, 2) for rows in _tile_transform(_pad1(x.astype(jnp.float32)), 1)]
  v = jnp.concatenate([transformed[a][b] for a in (0, 1, 3) for b in (0, 1, 3)], -1)  # [N, H/2, W/2, 9C]
  y = jnp.matmul(v.reshape(-1, 9 * c), u.reshape(9 * c, o), preferred_element_type=jnp.float32)
  return y.reshape(n, h // 2, wd // 2, o)


def pays(x_shape, w_shape, dtype) -> bool:
  """Whether a network uses the Winograd form of its 3x3 conv of input `x_shape` [N, H, W, C] with `w_shape`: in
  float32, for >= 256 input channels on even inputs of >= 8x8, where it was measured faster on XLA's CPU backend
  (docs/performance.md: 1.55x the official-width training steps at 16² and 32²). Narrower convs keep XLA's own
  (at the quickstart's widths the Winograd forms were slower, or faster by less than they cost to compile).
  """
  _, h, w, c = x_shape
  even = not (h % 2 or w % 2)
  return jnp.dtype(dtype) == jnp.float32 and tuple(w_shape[:2]) == (3, 3) and even and min(h, w) >= 8 and c >= 256
