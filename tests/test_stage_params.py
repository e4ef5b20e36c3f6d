"""stage_params: which parameters a stage reads, and steps that update only those without changing a number."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stylegan_jax import networks, stage_params, steps
from stylegan_jax.network_config import NetworkConfig
from test_steps import initial_state, run_config

MODEL = NetworkConfig(resolution=32, num_channels=1, fmap_base=64, fmap_max=32, latent_size=16, dlatent_size=16,
                      mapping_layers=2, mapping_fmaps=16)


def test_used_leaves_follows_the_outputs_not_the_arguments():
  tree = {'a': jnp.ones(3), 'b': jnp.ones(2), 'c': jnp.ones(())}

  def fn(tree, x):
    dead = tree['b'] * 2.0  # computed, but reaches no output
    del dead
    return jnp.sum(tree['a'] * x) + tree['c']

  assert stage_params.used_leaves(fn, tree, jnp.ones(3)) == [True, False, True]
  abstract = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), tree)
  assert stage_params.used_leaves(lambda t: t['b'].sum(), abstract) == [False, True, False]


def test_take_and_put_round_trip():
  tree = {'a': 1, 'b': {'c': 2, 'd': 3}}
  mask = [True, False, True]
  assert stage_params.take(tree, mask) == [1, 3]
  assert stage_params.put(tree, mask, [10, 30]) == {'a': 10, 'b': {'c': 2, 'd': 30}}


@pytest.mark.parametrize('resolution', [8, 32])
def test_masked_out_parameters_have_zero_gradients(resolution):
  """At a fade-in lod, every leaf outside the mask has an exactly zero gradient, for G (through D) and D: the
  blocks above the stage are outside. Inside, only the ToRGB/FromRGB layers of levels the lod clips away (lod
  index above the fade's two) may have a zero gradient: the networks compute them, as the official ones do."""
  state = initial_state(MODEL, steps.make_mesh(jax.devices()[:1]))
  G, D = networks.Generator(MODEL), networks.Discriminator(MODEL)
  k = int(np.log2(32 // resolution))
  lod = jnp.float32(k + 0.5)
  z = jax.random.normal(jax.random.key(1), (4, MODEL.latent_size))
  noise = [jax.random.normal(jax.random.key(i), (4,) + (2 ** (i // 2 + 2),) * 2 + (1,))
           for i in range(2 * int(np.log2(resolution)) - 2)]

  def g_loss(params):
    fakes = G.apply({**state.G, 'params': params}, z, None, lod, resolution=resolution, noise=noise)
    return jnp.sum(D.apply(state.D, fakes, None, lod))

  def d_loss(params):
    images = jax.random.normal(jax.random.key(2), (4, resolution, resolution, 1))
    return jnp.sum(D.apply({'params': params}, images, None, lod) ** 2)

  clipped = {f'RGB_lod{j}' for j in range(k + 2, 4)}
  for params, loss in ((state.G['params'], g_loss), (state.D['params'], d_loss)):
    mask = stage_params.used_leaves(loss, params)
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
    grads = jax.tree_util.tree_leaves(jax.jit(jax.grad(loss))(params))
    assert all(not np.any(g) for g, m in zip(grads, mask) if not m)
    zero_inside = {p for p, g, m in zip(paths, grads, mask) if m and not np.any(g)}
    assert all(any(c in p for c in clipped) for p in zero_inside), zero_inside
    unused = {p for p, m in zip(paths, mask) if not m}
    assert any('32x32' in p for p in unused) == (resolution < 32)


def test_stage_steps_equal_steps_that_update_every_parameter(monkeypatch):
  """The D and G steps with the stage's mask give bit-identical states to steps that pass every parameter through
  the all-reduce and Adam (the official way)."""
  mesh = steps.make_mesh(jax.devices()[:1])
  config = run_config()
  images = steps.shard_batch(np.random.RandomState(0).randint(0, 256, (8, 8, 8, 1)).astype(np.uint8), mesh)
  labels = steps.shard_batch(np.zeros((8, 0), np.float32), mesh)

  def run():
    pair = steps.build_stage_steps(MODEL, config, 8, 8, mesh)
    state = initial_state(MODEL, mesh)
    for _ in range(2):
      state, _ = pair.d_step(state, images, labels, jnp.float32(2.5), jnp.float32(0.002))
      state, _ = pair.g_step(state, labels, jnp.float32(2.5), jnp.float32(0.002))
    return jax.device_get(state)

  staged = run()
  monkeypatch.setattr(stage_params, 'used_leaves', lambda fn, tree, *args: [True] * len(jax.tree.leaves(tree)))
  full = run()
  for a, b in zip(jax.tree_util.tree_leaves(staged), jax.tree_util.tree_leaves(full)):
    np.testing.assert_array_equal(a, b)
