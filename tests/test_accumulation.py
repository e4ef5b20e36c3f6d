"""Gradient accumulation: k micro-batches per device train as the plain step on k times the devices (minibatch
stddev groups and style mixing per micro-batch), and as the plain step on the same devices when both are off; one
compile per stage; the automatic choice from a memory budget."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_steps import initial_state, run_config

from stylegan_jax import accumulation, errors, steps
from stylegan_jax.network_config import NetworkConfig

# An 8x8 model (the smallest compile) with minibatch stddev (groups of up to 4) and style mixing 0.9.
MODEL = NetworkConfig(resolution=8, num_channels=1, fmap_base=64, fmap_max=16, latent_size=16, dlatent_size=16,
                      mapping_layers=2, mapping_fmaps=16)
BATCH, LODS = 16, (0.7, 0.2)


@functools.cache
def host_state(model):
  """test_steps.initial_state on the host, made once per model (the network init is slow)."""
  return jax.device_get(initial_state(model, steps.make_mesh(jax.devices()[:1])))


def train(model, config, num_devices, k):
  """Two D+G step pairs on the global batch BATCH over `num_devices` devices with k micro-batches each:
  (final state, metrics of the last pair, the step pair)."""
  mesh = steps.make_mesh(jax.devices()[:num_devices])
  pair = steps.build_stage_steps(model, config, 8, BATCH, mesh, accumulation_steps=k)
  state = steps.replicate(host_state(model), mesh)
  rs = np.random.RandomState(0)
  labels = steps.shard_batch(np.zeros((BATCH, 0), np.float32), mesh)
  for lod in LODS:
    images = steps.shard_batch(rs.randint(0, 256, (BATCH, 8, 8, 1)).astype(np.uint8), mesh)
    state, d_metrics = pair.d_step(state, images, labels, jnp.float32(lod), jnp.float32(0.002))
    state, g_metrics = pair.g_step(state, labels, jnp.float32(lod), jnp.float32(0.002))
  return jax.device_get(state), jax.device_get({**d_metrics, **g_metrics}), pair


def assert_close(a, b):
  for (path, x), (_, y) in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree_util.tree_leaves_with_path(b)):
    np.testing.assert_allclose(x, y, rtol=1e-4, atol=2e-5, err_msg=jax.tree_util.keystr(path))


def test_micro_batches_train_as_the_plain_step_on_k_times_the_devices():
  """2 devices x 4 micro-batches of 2 == 8 devices x 2 images: the same minibatch-stddev groups (pairs) and
  style-mixing draws (micro-batch i of device d draws as device 4d + i), Adam and Gs updates; float32 summation
  order apart. Minibatch stddev and mixing are on."""
  config = run_config(style_mixing_prob=0.9)
  accumulated, metrics_a, pair = train(MODEL, config, 2, 4)
  plain, metrics_p, _ = train(MODEL, config, 8, 1)
  assert_close(accumulated, plain)
  assert_close(metrics_a, metrics_p)
  assert int(accumulated.nimg) == 2 * BATCH and pair.accumulation_steps == 4
  assert pair.traces == {'d_step': 1, 'g_step': 1}  # compiled once while lod moved
  assert pair.d_step._cache_size() == 1 and pair.g_step._cache_size() == 1


@pytest.mark.slow
def test_without_mbstd_and_mixing_micro_batches_equal_the_plain_step():
  model = NetworkConfig(**{**MODEL.to_dict(), 'mbstd_group_size': 0})
  config = run_config(style_mixing_prob=0.0)
  accumulated, metrics_a, _ = train(model, config, 2, 4)
  plain, metrics_p, _ = train(model, config, 2, 1)
  assert_close(accumulated, plain)
  assert_close(metrics_a, metrics_p)


def test_micro_batches_must_divide_the_device_minibatch():
  with pytest.raises(ValueError, match='minibatch 16 at 8x8 does not divide across 4 devices x 3 micro-batches'):
    steps.build_stage_steps(MODEL, run_config(), 8, BATCH, steps.make_mesh(jax.devices()[:4]), 3)


def test_choose_steps_takes_the_fewest_that_fit(caplog):
  sizes = {1: 9 * 2 ** 30, 2: 5 * 2 ** 30, 4: 3 * 2 ** 30, 8: 2 * 2 ** 30}
  measured = []

  def measure(k):
    measured.append(k)
    return sizes[k]

  with caplog.at_level('INFO', logger='stylegan_jax.accumulation'):
    assert accumulation.choose_steps(8, measure, 4 * 2 ** 30, '64x64') == 4
  assert measured == [1, 2, 4]
  assert ('accumulation at 64x64: 4 micro-batch(es) of 2 image(s) per device, 3.00 GiB per device (budget 4.00 '
          'GiB; 1 micro-batch(es): 9.00 GiB; 2 micro-batch(es): 5.00 GiB)') in caplog.text
  with pytest.raises(errors.UserError, match=r'needs 2.00 GiB per device even with micro-batches of 1 image'):
    accumulation.choose_steps(8, measure, 2 ** 30, '64x64')


@pytest.mark.slow  # about 24 s of compiles; choose_steps' choice is tested with a measure above
def test_compiled_step_memory_falls_with_micro_batches():
  """The budget's measure: the compiled steps' bytes per device, smaller with 4 micro-batches than with 1 (the
  activations of one micro-batch live at a time), and StepCache picks by it."""
  mesh = steps.make_mesh(jax.devices()[:1])
  cache = steps.StepCache(MODEL, run_config(), mesh)
  one, four = cache.step_bytes(8, 64, 1), cache.step_bytes(8, 64, 4)
  assert four < 0.6 * one
  auto = steps.StepCache(MODEL, run_config(), mesh, memory_budget=(one + four) // 2)
  auto.step_bytes = lambda resolution, batch, k: {1: one, 2: one, 4: four}[k] if (resolution, batch) == (8, 64) \
      else None
  assert auto(8, 64).accumulation_steps == 4


def test_auto_needs_a_budget_where_devices_report_no_memory():
  with pytest.raises(errors.UsageError, match='cpu devices do not report their memory'):
    accumulation.device_memory_bytes(jax.devices()[0], 0.0)
  assert accumulation.device_memory_bytes(jax.devices()[0], 1.5) == int(1.5 * 2 ** 30)
  assert accumulation.parse('auto') == 'auto' and accumulation.parse('4') == 4
  with pytest.raises(errors.UsageError, match="--accumulation_steps=0: must be a positive integer or 'auto'"):
    accumulation.parse('0')
