"""The layer ops against direct formulas: resampling, fused convs (the 180° flip), mbstd grouping, norms."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from stylegan_jax import layers


def rand(key, shape):
  return jax.random.normal(jax.random.key(key), shape)


def test_fused_upconv_is_tf_conv2d_transpose_and_a_flipped_conv():
  x, w = rand(0, (2, 5, 5, 3)), rand(1, (3, 3, 3, 4))
  fused = layers.upscale2d_conv2d(x, w, fused=True)
  # Definition of TF's conv2d_transpose: the input-gradient of the forward stride-2 SAME conv with the 4x4 kernel.
  w4 = jnp.pad(jnp.transpose(w, (0, 1, 3, 2)), ((1, 1), (1, 1), (0, 0), (0, 0)))
  w4 = w4[1:, 1:] + w4[:-1, 1:] + w4[1:, :-1] + w4[:-1, :-1]
  forward = lambda y: lax.conv_general_dilated(y, w4, (2, 2), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  _, vjp = jax.vjp(forward, jnp.zeros((2, 10, 10, 4)))
  np.testing.assert_allclose(fused, vjp(x)[0], rtol=1e-5, atol=1e-5)
  # ... which equals nearest upsampling then conv with the kernel rotated 180°, not with the kernel itself.
  flipped = layers.upscale2d_conv2d(x, w[::-1, ::-1], fused=False)
  np.testing.assert_allclose(fused, flipped, rtol=1e-5, atol=1e-5)
  assert not np.allclose(fused, layers.upscale2d_conv2d(x, w, fused=False), atol=1e-3)


@pytest.mark.parametrize('shape', [(2, 4, 4, 3), (3, 5, 7, 2), (1, 1, 1, 4)])
def test_phase_upconv_is_nearest_upsampling_then_conv(shape):
  """The phase form (one 2x2 conv at the input's size) against the definition, values and both gradients; its
  weight gradient is a matmul."""
  x, w = rand(5, shape), rand(6, (3, 3, shape[-1], 5))
  separate = lambda x, w: layers.conv2d(layers.upscale2d(x), w)
  phases = lambda x, w: layers.upscale2d_conv2d(x, w, fused=False, phases=True)
  np.testing.assert_allclose(phases(x, w), separate(x, w), rtol=1e-5, atol=1e-5)
  cotangent = rand(7, (shape[0], 2 * shape[1], 2 * shape[2], 5))
  grads = lambda f: jax.vjp(f, x, w)[1](cotangent)
  for got, expected in zip(grads(phases), grads(separate)):
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
  # bfloat16 compute: the same function at bfloat16's precision; the fused form ignores `phases`.
  np.testing.assert_allclose(layers.upscale2d_conv2d(x, w, False, jnp.bfloat16, phases=True), separate(x, w),
                             rtol=0.05, atol=0.05 * float(jnp.abs(separate(x, w)).max()))
  np.testing.assert_array_equal(layers.upscale2d_conv2d(x, w, True, phases=True), layers.upscale2d_conv2d(x, w, True))
  # The weight gradient is one matmul (im2col), not XLA's conv with an image-sized window; bfloat16 too.
  for dtype in (jnp.float32, jnp.bfloat16):
    weight_grad_hlo = jax.jit(jax.grad(lambda w: jnp.sum(layers.upscale2d_conv2d(x, w, False, dtype, phases=True)))
                              ).lower(w).as_text()
    assert 'stablehlo.convolution' not in weight_grad_hlo and weight_grad_hlo.count('stablehlo.dot_general') == 1


def test_fused_downconv_is_conv_then_box_filter_without_flip():
  x, w = rand(2, (2, 8, 8, 3)), rand(3, (3, 3, 3, 4))
  np.testing.assert_allclose(layers.conv2d_downscale2d(x, w, fused=True),
                             layers.conv2d_downscale2d(x, w, fused=False), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('dtype', [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize('shape', [(2, 8, 8, 3), (3, 4, 6, 2)])
def test_fused_downconv_phase_grad_has_the_same_derivatives(shape, dtype):
  """phase_grad (the fused conv's input gradient as G's phase upsampling conv): the same values, first derivatives
  and R1-style second derivatives (the gradient of |dx|² by w and x) as JAX's own rule, which XLA computes with
  an lhs-dilated conv (the transposed conv) that the phase form avoids."""
  x, w = rand(8, shape), rand(9, (3, 3, shape[-1], 4))
  cotangent = rand(10, (shape[0], shape[1] // 2, shape[2] // 2, 4))
  forms = {phase_grad: functools.partial(layers.conv2d_downscale2d, fused=True, dtype=dtype, phase_grad=phase_grad)
           for phase_grad in (False, True)}
  tolerance = dict(rtol=1e-4, atol=1e-4) if dtype == jnp.float32 else dict(rtol=0.05, atol=0.05)

  def derivatives(f):
    input_grad = lambda x, w: jax.vjp(f, x, w)[1](cotangent)[0]
    penalty = lambda x, w: jnp.sum(jnp.square(input_grad(x, w)))
    return (f(x, w), *jax.vjp(f, x, w)[1](cotangent), *jax.grad(penalty, argnums=(0, 1))(x, w))

  for got, expected in zip(derivatives(forms[True]), derivatives(forms[False])):
    scale = float(jnp.abs(expected).max())
    np.testing.assert_allclose(got / scale, expected / scale, **tolerance)
  r1_hlo = lambda f: jax.jit(jax.grad(lambda w: jnp.sum(jnp.square(jax.grad(lambda x: jnp.sum(f(x, w)))(x))))).lower(
      w).as_text()
  assert 'lhs_dilate = [2, 2]' in r1_hlo(forms[False]) and 'lhs_dilate = [2, 2]' not in r1_hlo(forms[True])
  np.testing.assert_array_equal(layers.conv2d_downscale2d(x, w, False, phase_grad=True),
                                layers.conv2d_downscale2d(x, w, False))  # the separate form ignores it


def test_resampling():
  x = rand(4, (1, 4, 4, 2))
  up = np.asarray(layers.upscale2d(x, 4))
  np.testing.assert_array_equal(up, np.repeat(np.repeat(np.asarray(x), 4, 1), 4, 2))
  np.testing.assert_allclose(layers.downscale2d(up, 4), x, rtol=1e-6)
  np.testing.assert_allclose(layers.downscale2d(x)[0, 0, 0], np.asarray(x)[0, :2, :2].mean(axis=(0, 1)), rtol=1e-6)


def test_blur_kernel_and_zero_padding():
  x = jnp.zeros((1, 5, 5, 1)).at[0, 0, 2, 0].set(16.0)
  out = np.asarray(layers.blur(x))[0, :, :, 0]
  np.testing.assert_allclose(out[:2, 1:4], [[2, 4, 2], [1, 2, 1]])
  assert out.sum() == pytest.approx(12.0)  # the row above the image is lost to zero padding


def _mbstd_reference(x, group_size):
  """Direct loop: sample i is in group i % (N / G); one scalar per group appended as a channel."""
  x = np.asarray(x, np.float64)
  n = x.shape[0]
  g = min(group_size, n)
  m = n // g
  out = np.empty(n)
  for group in range(m):
    members = x[group::m]
    std = np.sqrt(members.var(axis=0) + 1e-8)
    out[group::m] = std.mean()
  return np.concatenate([x, np.broadcast_to(out[:, None, None, None], x.shape[:3] + (1,))], axis=-1)


@pytest.mark.parametrize('n', [2, 4, 8, 12])
def test_minibatch_stddev_strided_groups(n):
  x = rand(5, (n, 4, 4, 6)) * jnp.arange(1, n + 1)[:, None, None, None]
  np.testing.assert_allclose(layers.minibatch_stddev(x, 4), _mbstd_reference(x, 4), rtol=1e-5)
  if n == 8:  # contiguous groups would give a different answer
    contiguous = np.concatenate([_mbstd_reference(x[:4], 4), _mbstd_reference(x[4:], 4)])
    assert not np.allclose(layers.minibatch_stddev(x, 4), contiguous, rtol=1e-3)


def test_minibatch_stddev_indivisible_batch():
  with pytest.raises(ValueError, match='not divisible'):
    layers.minibatch_stddev(jnp.zeros((6, 4, 4, 2)), 4)


def test_instance_norm_and_pixel_norm():
  x = rand(6, (2, 4, 4, 3)) * 5 + 2
  y = np.asarray(layers.instance_norm(x))
  np.testing.assert_allclose(y.mean(axis=(1, 2)), 0, atol=1e-5)
  np.testing.assert_allclose(y.var(axis=(1, 2)), 1, rtol=1e-4)
  z = np.asarray(layers.pixel_norm(rand(7, (3, 8))))
  np.testing.assert_allclose(np.mean(z ** 2, axis=1), 1, rtol=1e-5)


def test_equalized_lr_runtime_multipliers():
  # spec §2: mapping dense 0.000625 at 512 wide, 4x4 conv 1/48, ToRGB at 1024² (16 channels) 0.25.
  assert layers.he_std((512, 512), np.sqrt(2)) * 0.01 == pytest.approx(0.000625)
  assert layers.he_std((3, 3, 512, 512), np.sqrt(2)) == pytest.approx(1 / 48)
  assert layers.he_std((1, 1, 16, 3), 1.0) == pytest.approx(0.25)
