"""The training state pytree: G, D, Gs variables, both Adam states, RNG and counters."""

import flax
import jax
import jax.numpy as jnp
import optax

from stylegan_jax import networks
from stylegan_jax.network_config import NetworkConfig


def adam() -> optax.GradientTransformation:
  """The official Adam (beta1 0, beta2 0.99, eps 1e-8), without the learning rate (a traced step argument).

  TF puts eps on sqrt(v) before bias correction; optax after. The difference is eps-sized and ignored here.
  """
  return optax.scale_by_adam(b1=0.0, b2=0.99, eps=1e-8)


@flax.struct.dataclass
class TrainState:
  G: dict           # generator variables {'params', 'noise', 'stats': {'dlatent_avg'}}
  D: dict           # discriminator variables {'params'}
  Gs: dict          # moving average of G (half-life G_smoothing_kimg); noise and stats copied from G
  G_opt: optax.OptState
  D_opt: optax.OptState
  rng: jax.Array    # uint32 [2] raw key; split once per step
  nimg: jax.Array   # int32: images shown to D
  skipped: jax.Array  # int32 [2]: D and G steps skipped for non-finite gradients


def create_train_state(config: NetworkConfig, seed: int) -> TrainState:
  """A fresh state with the official initialisation; Gs starts as a copy of G."""
  k_g, k_d, k_run = jax.random.split(jax.random.PRNGKey(seed), 3)
  g = networks.init_generator(config, k_g)
  d = networks.init_discriminator(config, k_d)
  return TrainState(G=g, D=d, Gs=jax.tree_util.tree_map(jnp.copy, g), G_opt=adam().init(g['params']),
                    D_opt=adam().init(d['params']), rng=k_run, nimg=jnp.zeros((), jnp.int32),
                    skipped=jnp.zeros((2,), jnp.int32))


def reset_optimizers(state: TrainState) -> TrainState:
  """Fresh Adam moments and step counts, as the official loop does whenever floor(lod) or ceil(lod) changes."""
  return state.replace(G_opt=adam().init(state.G['params']), D_opt=adam().init(state.D['params']))
