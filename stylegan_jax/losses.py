"""The official GAN losses (training/loss.py) as pure functions; each returns per-sample losses [N].

`d_fn(images) -> scores [N, 1]` is the discriminator with its params and labels bound.

Progressive growing and the gradient penalties: the official code feeds D nearest-upscaled full-resolution images,
so its input gradient is the native one spread over 4**k pixels and divided by 4**k (k = floor(lod)). Its R1
penalty is therefore 4**-k times the penalty at the stage's native resolution, and its WGAN-GP gradient norm
2**-k times the native norm. With `lod_scaled_penalty=True` (the default, matching the official behaviour) we
apply these factors to our native-resolution penalties; with False the penalties act at full native strength.
"""

from typing import Callable

import jax
import jax.numpy as jnp

LOSSES = ('logistic_r1', 'wgan_gp')


def penalty_scale(lod, lod_scaled_penalty: bool):
  """The official R1 factor 4**-floor(lod) (1 when not scaled); its square root scales gradient norms."""
  return 0.25 ** jnp.floor(lod) if lod_scaled_penalty else jnp.float32(1.0)


def g_logistic_nonsaturating(fake_scores):
  """softplus(-D(G(z)))."""
  return jax.nn.softplus(-fake_scores[:, 0])


def g_wgan(fake_scores):
  """-D(G(z))."""
  return -fake_scores[:, 0]


def d_logistic_r1(d_fn: Callable, reals, fakes, *, r1_gamma: float, scale):
  """softplus(D(fake)) + softplus(-D(real)) + gamma/2 * scale * ||grad_real sum(D(real))||².

  With r1_gamma == 0 (a Python number) no input gradient is computed and the penalty is 0.
  """
  if not r1_gamma:
    real_scores, fake_scores = d_fn(reals), d_fn(fakes)
    loss = jax.nn.softplus(fake_scores[:, 0]) + jax.nn.softplus(-real_scores[:, 0])
    return loss, {'real_scores': real_scores, 'fake_scores': fake_scores, 'r1_penalty': jnp.zeros_like(loss)}
  real_scores, vjp = jax.vjp(d_fn, reals)
  (real_grads,) = vjp(jnp.ones_like(real_scores))
  r1 = jnp.sum(jnp.square(real_grads), axis=(1, 2, 3)) * scale
  fake_scores = d_fn(fakes)
  loss = jax.nn.softplus(fake_scores[:, 0]) + jax.nn.softplus(-real_scores[:, 0]) + r1 * (r1_gamma * 0.5)
  return loss, {'real_scores': real_scores, 'fake_scores': fake_scores, 'r1_penalty': r1}


def d_wgan_gp(d_fn: Callable, reals, fakes, mix_factors, *, wgan_lambda: float, wgan_target: float,
              wgan_epsilon: float, scale):
  """D(fake) - D(real) + lambda/target² (||grad D(mix)|| - target)² + epsilon D(real)².

  mix = lerp(real, fake, u) with u [N] uniform per sample; the gradient norm is multiplied by sqrt(scale).
  """
  real_scores, fake_scores = d_fn(reals), d_fn(fakes)
  if not wgan_lambda:  # (a Python number) no penalty, no input gradient
    loss = fake_scores[:, 0] - real_scores[:, 0] + wgan_epsilon * jnp.square(real_scores[:, 0])
    return loss, {'real_scores': real_scores, 'fake_scores': fake_scores,
                  'gradient_penalty': jnp.zeros_like(loss)}
  u = mix_factors[:, None, None, None]
  mixed = reals + (fakes - reals) * u
  mixed_scores, vjp = jax.vjp(d_fn, mixed)
  (mixed_grads,) = vjp(jnp.ones_like(mixed_scores))
  norms = jnp.sqrt(jnp.sum(jnp.square(mixed_grads), axis=(1, 2, 3))) * jnp.sqrt(scale)
  gp = jnp.square(norms - wgan_target) * (wgan_lambda / wgan_target ** 2)
  loss = fake_scores[:, 0] - real_scores[:, 0] + gp + wgan_epsilon * jnp.square(real_scores[:, 0])
  return loss, {'real_scores': real_scores, 'fake_scores': fake_scores, 'gradient_penalty': gp}


def discriminator_loss(loss_config, d_fn, reals, fakes, lod, mix_factors, penalty_weight: float = 1.0):
  """The configured D loss (`loss_config.type` in LOSSES): (per-sample loss [N], aux arrays).

  `penalty_weight` (a Python number) multiplies R1's gamma or WGAN-GP's lambda: lazy regularisation
  (loss.penalty_interval = k) uses k on every k-th step and 0 (no penalty computed) on the others.
  """
  scale = penalty_scale(lod, loss_config.lod_scaled_penalty)
  if loss_config.type == 'logistic_r1':
    return d_logistic_r1(d_fn, reals, fakes, r1_gamma=loss_config.r1_gamma * penalty_weight, scale=scale)
  if loss_config.type == 'wgan_gp':
    return d_wgan_gp(d_fn, reals, fakes, mix_factors, wgan_lambda=loss_config.wgan_lambda * penalty_weight,
                     wgan_target=loss_config.wgan_target, wgan_epsilon=loss_config.wgan_epsilon, scale=scale)
  raise ValueError(f'loss.type must be one of {LOSSES}, got {loss_config.type!r}')


def generator_loss(loss_config, fake_scores):
  """The G loss paired with `loss_config.type`: non-saturating logistic, or WGAN's -D(G(z))."""
  if loss_config.type == 'logistic_r1':
    return g_logistic_nonsaturating(fake_scores)
  if loss_config.type == 'wgan_gp':
    return g_wgan(fake_scores)
  raise ValueError(f'loss.type must be one of {LOSSES}, got {loss_config.type!r}')
