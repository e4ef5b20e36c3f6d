"""The Winograd forms of the 3x3 convs (winograd.py) against the layers' definitions: values, first derivatives and
R1-style second derivatives; where the networks use them; the networks with and without them."""

import dataclasses
import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stylegan_jax import layers, networks, winograd
from stylegan_jax.network_config import NetworkConfig

# The forms and what each computes, from the layers (the unfused definitions; the fused ones are tested equal to
# them in test_layers.py).
FORMS = {
    'conv': (winograd.conv2d, lambda x, w: layers.conv2d(x, w)),
    'up': (winograd.upscale2d_conv2d, lambda x, w: layers.conv2d(layers.upscale2d(x), w)),
    'down': (winograd.conv2d_downscale2d, lambda x, w: layers.downscale2d(layers.conv2d(x, w))),
}


def rand(key, shape):
  return jax.random.normal(jax.random.key(key), shape)


def derivatives(f, x, w, cotangent):
  """f(x, w), its input and weight gradients for `cotangent`, and the gradients of the R1-style penalty
  |d sum(tanh(f)) / dx|² by x and w (second derivatives through a nonlinearity, as D's R1)."""
  input_grad = lambda x, w: jax.grad(lambda x: jnp.sum(jnp.tanh(f(x, w)) * cotangent))(x)
  penalty = lambda x, w: jnp.sum(jnp.square(input_grad(x, w)))
  return (f(x, w), *jax.vjp(f, x, w)[1](cotangent), *jax.grad(penalty, argnums=(0, 1))(x, w))


@pytest.mark.parametrize('kind,shape', [('conv', (2, 4, 6, 3)), ('up', (2, 3, 5, 3)), ('up', (1, 1, 1, 2)),
                                        ('down', (2, 4, 6, 3))])
def test_forms_have_the_definitions_values_and_derivatives(kind, shape):
  with jax.default_matmul_precision('float32'):
    form, definition = FORMS[kind]
    x, w = rand(0, shape), rand(1, (3, 3, shape[-1], 4)) / np.sqrt(9 * shape[-1])  # values of order 1 for tanh
    cotangent = rand(2, jax.eval_shape(definition, x, w).shape)
    got, expected = (jax.jit(functools.partial(derivatives, f))(x, w, cotangent) for f in (form, definition))
    assert got[0].shape == expected[0].shape
    for name, g, e in zip(['value', 'dx', 'dw', 'penalty dx', 'penalty dw'], got, expected):
      scale = float(jnp.abs(e).max())
      np.testing.assert_allclose(g / scale, e / scale, atol=2e-6, err_msg=name)


def test_forms_are_matmuls_and_need_a_3x3_kernel_and_even_sides():
  x, w = rand(3, (1, 4, 4, 2)), rand(4, (3, 3, 2, 3))
  for kind, (form, _) in FORMS.items():
    hlo = jax.jit(jax.grad(lambda x, w: jnp.sum(form(x, w)), (0, 1))).lower(x, w).as_text()
    assert 'stablehlo.convolution' not in hlo and 'stablehlo.dot_general' in hlo, kind
    with pytest.raises(ValueError, match=r'needs a \[3, 3, 2, O\] kernel'):
      form(x, rand(5, (1, 1, 2, 3)))
  for form in (winograd.conv2d, winograd.conv2d_downscale2d):
    with pytest.raises(ValueError, match='needs an even height and width, got 5x4'):
      form(rand(6, (1, 5, 4, 2)), w)


@pytest.mark.parametrize('x_shape,w_shape,dtype,expected', [
    ((4, 8, 8, 256), (3, 3, 256, 256), jnp.float32, True),
    ((32, 32, 32, 512), (3, 3, 512, 512), jnp.float32, True),
    ((4, 8, 8, 128), (3, 3, 128, 256), jnp.float32, False),   # narrower: XLA's conv
    ((4, 4, 4, 512), (3, 3, 512, 512), jnp.float32, False),   # 4x4: XLA's conv
    ((4, 8, 8, 512), (3, 3, 512, 512), jnp.bfloat16, False),  # float32 only
    ((4, 8, 8, 512), (1, 1, 512, 3), jnp.float32, False),     # ToRGB / FromRGB
    ((4, 9, 8, 512), (3, 3, 512, 512), jnp.float32, False),   # odd side
])
def test_pays(x_shape, w_shape, dtype, expected):
  assert winograd.pays(x_shape, w_shape, dtype) is expected


# Wide enough for the Winograd forms at 8² and 16² (256 channels): G's 16² up-conv and both 3x3 convs from 8², D's
# 3x3 and downsampling convs at 16² and 8²; the 4x4 layers keep XLA's.
WIDE = NetworkConfig(resolution=16, fmap_base=2048, fmap_max=256, latent_size=16, dlatent_size=16, mapping_layers=2,
                     mapping_fmaps=16)


@pytest.fixture(scope='module')
def wide_variables():
  init = lambda f, seed: jax.jit(functools.partial(f, WIDE))(jax.random.key(seed))
  return init(networks.init_generator, 1), init(networks.init_discriminator, 2)


def _conv_count(hlo):
  return len(re.findall(r'stablehlo.convolution', hlo))


@pytest.mark.parametrize('fused_scale', [False, True])
def test_generator_with_winograd_is_the_same_function(wide_variables, fused_scale):
  """Images and their dlatent gradient as with XLA's convs, with the fused up-conv (>= 128² officially) too."""
  config = dataclasses.replace(WIDE, fused_scale=fused_scale)
  g, _ = wide_variables
  dlatents = rand(3, (2, config.num_layers, config.dlatent_size))

  def images_and_grad(use_winograd):
    gen = networks.Generator(config, winograd=use_winograd)
    synthesize = lambda w: gen.apply(g, w, 0.5, noise_mode='const', method=networks.Generator.synthesize)
    step = jax.jit(lambda w: (synthesize(w), jax.grad(lambda w: jnp.sum(jnp.square(synthesize(w))))(w)))
    return step(dlatents), _conv_count(step.lower(dlatents).as_text())

  with jax.default_matmul_precision('float32'):
    (images, grad), convs = images_and_grad(True)
    (expected_images, expected_grad), xla_convs = images_and_grad(False)
  np.testing.assert_allclose(images, expected_images, rtol=1e-5, atol=1e-5 * np.abs(expected_images).max())
  np.testing.assert_allclose(grad, expected_grad, rtol=1e-4, atol=1e-5 * np.abs(expected_grad).max())
  assert convs < xla_convs


def test_discriminator_with_winograd_has_the_same_r1_gradient(wide_variables):
  """Scores and R1's gradient by D's parameters (a second derivative) as with XLA's convs, for D's separate and
  fused downsampling alike; None (the default) means on CPU."""
  _, d = wide_variables
  images = jax.random.uniform(jax.random.key(4), (4, 16, 16, 3), minval=-1, maxval=1)

  def scores_and_r1_grad(disc):
    scores = lambda params, x: disc.apply({'params': params}, x, None, 0.5)
    penalty = lambda params: jnp.sum(jnp.square(jax.grad(lambda x: jnp.sum(scores(params, x)))(images)))
    step = jax.jit(lambda params: (scores(params, images), jax.grad(penalty)(params)))
    return step(d['params']), _conv_count(step.lower(d['params']).as_text())

  with jax.default_matmul_precision('float32'):
    (expected_scores, expected), xla_convs = scores_and_r1_grad(networks.Discriminator(WIDE, winograd=False))
    for disc in (networks.Discriminator(WIDE, winograd=True),
                 networks.Discriminator(WIDE, fused_downscale=True, winograd=True)):
      (scores, got), convs = scores_and_r1_grad(disc)
      np.testing.assert_allclose(scores, expected_scores, rtol=1e-5, atol=1e-5)
      for g, e in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(expected)):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-4 * np.abs(e).max())
      assert convs < xla_convs
    _, default_convs = scores_and_r1_grad(networks.Discriminator(WIDE))
  assert (default_convs < xla_convs) == (jax.default_backend() == 'cpu')
