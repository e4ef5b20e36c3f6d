"""TF's Adam (epsilon on sqrt(v) before bias correction) against its closed form, and the state it keeps."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stylegan_jax import errors, train_state
from stylegan_jax.network_config import NetworkConfig

B1, B2, EPS = 0.0, 0.99, 1e-8


def tf_adam_reference(grads, b1=B1, b2=B2, eps=EPS):
  """tf.train.AdamOptimizer's update per step (without lr), in float64: lr_t = sqrt(1-b2^t)/(1-b1^t)."""
  m = v = 0.0
  updates = []
  for t, g in enumerate(grads, start=1):
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    updates.append(np.sqrt(1 - b2 ** t) / (1 - b1 ** t) * m / (np.sqrt(v) + eps))
  return np.array(updates)


def run(transform, grads):
  state = transform.init(jnp.zeros(grads.shape[1:], jnp.float32))
  out = []
  for g in grads:
    update, state = transform.update(jnp.asarray(g, jnp.float32), state)
    out.append(np.asarray(update))
  return np.array(out), state


# Gradients from ordinary down to 1e-7 (where epsilon outweighs sqrt(v) at some steps) and a change of sign.
GRADS = np.array([[1e-1, 1e-7, -3e-7, 2e-6], [2e-1, 1e-7, 5e-7, 0.0], [-1e-1, 3e-7, -1e-7, 1e-8],
                  [5e-2, 1e-7, 1e-7, 4e-6], [1e-1, 2e-7, 2e-7, -2e-6], [3e-1, 1e-7, -4e-7, 1e-6]])


@pytest.mark.parametrize('b1', [0.0, 0.9])
def test_tf_adam_matches_the_closed_form(b1):
  got, state = run(train_state.scale_by_tf_adam(b1, B2, EPS), GRADS)
  np.testing.assert_allclose(got, tf_adam_reference(GRADS, b1=b1), rtol=2e-6, atol=0)
  assert int(state.count) == len(GRADS)


@pytest.mark.parametrize('epsilon_form', train_state.ADAM_EPSILON_FORMS)
def test_adam_takes_the_configured_betas(epsilon_form):
  """train.adam_betas reaches the update: (0.5, 0.999) against the closed form (ordinary gradients, where the two
  epsilon forms agree), and the official (0, 0.99) by default."""
  grads = GRADS[:, :1]
  got, _ = run(train_state.adam(epsilon_form, (0.5, 0.999)), grads)
  np.testing.assert_allclose(got, tf_adam_reference(grads, b1=0.5, b2=0.999), rtol=2e-5)
  official, _ = run(train_state.adam(epsilon_form), grads)
  np.testing.assert_allclose(official, tf_adam_reference(grads), rtol=2e-5)
  assert np.abs(got - official).max() > 0.1


def test_tf_and_optax_forms_differ_for_tiny_gradients():
  """At g = 1e-7 TF's first update is sqrt(1-b2)·g/(sqrt(1-b2)·|g| + eps) = 0.5, optax's g/(|g| + eps) ~ 0.91."""
  tf_form, _ = run(train_state.adam('tf'), GRADS)
  optax_form, _ = run(train_state.adam('optax'), GRADS)
  np.testing.assert_allclose(tf_form[:, 0], optax_form[:, 0], rtol=1e-5)  # ordinary gradients: the same
  assert np.abs(tf_form[0, 1] - optax_form[0, 1]) > 0.05
  np.testing.assert_allclose(tf_form[0, 1], 0.1 * 1e-7 / (0.1 * 1e-7 + EPS), rtol=1e-5)
  np.testing.assert_allclose(optax_form[0, 1], 1e-7 / (1e-7 + EPS), rtol=1e-5)


def test_state_layout_is_the_same_for_both_forms():
  """Checkpoints restore into the same abstract state (count, mu, nu), and a reset starts TF's Adam afresh."""
  params = {'w': jnp.ones((3, 2)), 'b': jnp.zeros((2,))}
  tf_state, optax_state = train_state.adam('tf').init(params), train_state.adam('optax').init(params)
  assert jax.tree.structure(tf_state) == jax.tree.structure(optax_state)
  assert jax.tree.map(lambda x: (x.shape, x.dtype), tf_state) == jax.tree.map(lambda x: (x.shape, x.dtype),
                                                                              optax_state)
  model = NetworkConfig(resolution=8, num_channels=1, fmap_base=32, fmap_max=8, latent_size=8, dlatent_size=8,
                        mapping_layers=1, mapping_fmaps=8)
  shapes = jax.eval_shape(lambda: train_state.create_train_state(model, 0))  # abstract init: fast
  state = jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), shapes)
  grads = jax.tree.map(jnp.ones_like, state.D['params'])
  _, stepped = train_state.adam('tf').update(grads, state.D_opt)
  state = train_state.reset_optimizers(state.replace(D_opt=stepped))
  assert int(state.D_opt.count) == 0
  assert all(not np.any(x) for x in jax.tree.leaves((state.D_opt.mu, state.D_opt.nu)))


def test_unknown_form_is_a_usage_error():
  with pytest.raises(errors.UsageError, match="train.adam_epsilon_form.*'tf' or 'optax'"):
    train_state.adam('torch')
