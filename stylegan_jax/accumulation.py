"""Gradient accumulation: each device's minibatch as k micro-batches inside the compiled step.

With D devices and k micro-batches the per-device minibatch n = B/D is split into k contiguous micro-batches of
m = n/k rows; `accumulate` runs the loss and gradient of each in a `lax.scan` (one micro-batch's activations live
at a time), averages gradients, losses and G's stats over them, and the step then does its one `pmean` across
devices and one Adam update. So the official global minibatch fits on fewer or smaller devices.

Semantics: micro-batch i of device d is computed exactly as device d*k + i of a plain step on D*k devices would
compute it: its rows of the global batch, its minibatch-stddev groups (formed within the micro-batch) and its
style-mixing draw (one per micro-batch, from that virtual device's key). An accumulated step on D devices thus
equals the plain step on D*k devices with the same global batch, up to float summation order; with minibatch
stddev and style mixing off it also equals the plain step on D devices. k = 1 is the plain step itself.

`choose_steps` picks k per stage from a per-device memory budget: the smallest k whose compiled step fits.
"""

import logging
from typing import Callable

import jax
import jax.numpy as jnp
from jax import lax

from stylegan_jax import errors

logger = logging.getLogger(__name__)
GIB = 2 ** 30


def accumulate(fn: Callable, steps: int, batch, mixing_keys):
  """Means over `steps` micro-batches of fn(micro_batch, mixing_key) -> (outputs, grads).

  batch: a pytree of per-device arrays [n, ...] (n divisible by steps), split into contiguous [n/steps, ...]
  micro-batches; mixing_keys: [steps] keys, one per micro-batch. Outputs (losses, per-sample values, stats) and
  gradients are averaged over the micro-batches (a per-sample output [m] becomes the mean per position, whose
  mean is the mean over all n samples).
  """
  if steps == 1:
    return fn(batch, mixing_keys[0])
  micro = jax.tree_util.tree_map(lambda x: x.reshape((steps, x.shape[0] // steps) + x.shape[1:]), batch)
  first = jax.tree_util.tree_map(lambda x: x[0], micro)
  _, grad_shapes = jax.eval_shape(fn, first, mixing_keys[0])

  def body(grad_sum, inputs):
    outputs, grads = fn(*inputs)
    return jax.tree_util.tree_map(jnp.add, grad_sum, grads), outputs

  zeros = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), grad_shapes)
  grad_sum, outputs = lax.scan(body, zeros, (micro, mixing_keys))
  return (jax.tree_util.tree_map(lambda x: jnp.mean(x, axis=0), outputs),
          jax.tree_util.tree_map(lambda g: g / steps, grad_sum))


def parse(value: str) -> int | str:
  """--accumulation_steps: a positive integer or 'auto'."""
  if value == 'auto':
    return value
  if not value.isdigit() or int(value) < 1:
    raise errors.UsageError(f"--accumulation_steps={value}: must be a positive integer or 'auto'")
  return int(value)


def device_memory_bytes(device, budget_gb: float) -> int:
  """The per-device budget: `budget_gb` if > 0, else what the device's allocator may use (GPU, TPU)."""
  if budget_gb > 0:
    return int(budget_gb * GIB)
  limit = (device.memory_stats() or {}).get('bytes_limit')
  if not limit:
    raise errors.UsageError(f'--accumulation_steps=auto: {device.platform} devices do not report their memory; '
                            'give the budget per device with --device_memory_gb')
  return int(limit)


def step_bytes(compiled) -> int:
  """Peak device memory of a compiled step: arguments + outputs (less the donated ones) + temporaries."""
  m = compiled.memory_analysis()
  return m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes + m.temp_size_in_bytes


def choose_steps(per_device_batch: int, measure: Callable[[int], int], budget: int, stage: str) -> int:
  """The smallest k dividing `per_device_batch` with measure(k) <= budget (measure: k -> bytes per device of the
  step with k micro-batches); logs the choice. Raises UserError when even micro-batches of 1 do not fit."""
  tried = []
  for k in (k for k in range(1, per_device_batch + 1) if per_device_batch % k == 0):
    tried.append((k, measure(k)))
    if tried[-1][1] <= budget:
      break
  else:
    raise errors.UserError(f'the {stage} step needs {tried[-1][1] / GIB:.2f} GiB per device even with micro-batches '
                           f'of 1 image, over the budget of {budget / GIB:.2f} GiB (--device_memory_gb): use more '
                           'devices or a smaller minibatch at this stage')
  k = tried[-1][0]
  logger.info('accumulation at %s: %d micro-batch(es) of %d image(s) per device, %.2f GiB per device (budget '
              '%.2f GiB%s)', stage, k, per_device_batch // k, tried[-1][1] / GIB, budget / GIB,
              ''.join(f'; {j} micro-batch(es): {b / GIB:.2f} GiB' for j, b in tried[:-1]))
  return k
