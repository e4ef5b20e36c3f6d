"""The training state pytree: G, D, Gs variables, both Adam states, RNG and counters."""

import functools

import flax
import jax
import jax.numpy as jnp
import optax

from stylegan_jax import errors, networks
from stylegan_jax.network_config import NetworkConfig


ADAM_EPSILON_FORMS = ('tf', 'optax')
OFFICIAL_ADAM_BETAS = (0.0, 0.99)  # train.py's G_opt/D_opt: beta1=0.0, beta2=0.99, epsilon=1e-8


def scale_by_tf_adam(b1: float, b2: float, eps: float) -> optax.GradientTransformation:
  """tf.train.AdamOptimizer's update without the learning rate: sqrt(1-b2^t)/(1-b1^t) · m / (sqrt(v) + eps).

  TF adds eps to sqrt(v) before the bias correction; optax.scale_by_adam adds it after, so for gradients
  below ~1e-6 TF's first steps after each Adam reset are up to half a learning rate smaller. The state is
  optax's ScaleByAdamState (count, mu, nu), so checkpoints of either form restore into the same target.
  """
  init = optax.scale_by_adam(b1=b1, b2=b2, eps=eps).init

  def update(updates, state, params=None):
    del params
    mu = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, state.mu, updates)
    nu = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * jnp.square(g), state.nu, updates)
    count = optax.safe_increment(state.count)
    t = count.astype(jnp.float32)
    scale = jnp.sqrt(1 - b2 ** t) / (1 - b1 ** t)
    updates = jax.tree.map(lambda m, v: scale * m / (jnp.sqrt(v) + eps), mu, nu)
    return updates, optax.ScaleByAdamState(count=count, mu=mu, nu=nu)

  return optax.GradientTransformation(init, update)


def adam(epsilon_form: str = 'tf', betas: tuple[float, float] = OFFICIAL_ADAM_BETAS) -> optax.GradientTransformation:
  """Adam without the learning rate (a traced step argument); by default the official one (betas 0, 0.99, eps 1e-8).

  `epsilon_form` (config train.adam_epsilon_form): 'tf' is TensorFlow's formula, as the official code trains;
  'optax' is optax.scale_by_adam (eps after bias correction). Both keep the same state, whatever the `betas`
  (config train.adam_betas: (beta1, beta2)).
  """
  b1, b2 = (float(b) for b in betas)
  if epsilon_form == 'tf':
    return scale_by_tf_adam(b1=b1, b2=b2, eps=1e-8)
  if epsilon_form == 'optax':
    return optax.scale_by_adam(b1=b1, b2=b2, eps=1e-8)
  raise errors.UsageError(f'train.adam_epsilon_form must be \'tf\' or \'optax\', got {epsilon_form!r}')


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


@functools.partial(jax.jit, static_argnums=(0, 1))
def create_train_state(config: NetworkConfig, seed: int) -> TrainState:
  """A fresh state with the official initialisation; Gs starts as a copy of G.

  Compiled: one program instead of thousands of small dispatches (about twice as fast for the 1024² networks on
  CPU; values equal to the op-by-op ones up to the last bit of the scaled initialisers)."""
  k_g, k_d, k_run = jax.random.split(jax.random.PRNGKey(seed), 3)
  g = networks.init_generator(config, k_g)
  d = networks.init_discriminator(config, k_d)
  return TrainState(G=g, D=d, Gs=jax.tree_util.tree_map(jnp.copy, g), G_opt=adam().init(g['params']),
                    D_opt=adam().init(d['params']), rng=k_run, nimg=jnp.zeros((), jnp.int32),
                    skipped=jnp.zeros((2,), jnp.int32))


def reset_optimizers(state: TrainState) -> TrainState:
  """Fresh Adam moments and step counts, as the official loop does whenever floor(lod) or ceil(lod) changes."""
  return state.replace(G_opt=adam().init(state.G['params']), D_opt=adam().init(state.D['params']))
