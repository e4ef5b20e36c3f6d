"""XLA compiler options for the training steps per platform, kept to those this jaxlib accepts.

On a CPU (the project's 2-core machine; docs/performance.md has the measurements):
- LLVM's optimisation level 1 instead of XLA's default 2: a quickstart stage compiles in 26 s instead of 33 at
  32² at the same step speed (the heavy ops run in library kernels, not in LLVM-generated code).
- Where one CPU device has the cores to itself: convolutions in XLA's own (Eigen) kernels instead of YNNPACK
  fusions, XLA's default. YNNPACK splits a convolution over threads by output channels, so a layer of 32 runs on
  one thread (a 3x3 conv at 32² x 32 channels, batch 16: 3.1 ms on one core and on two; Eigen's 1.6 ms on two):
  the quickstart's steps are 1.13-1.17x faster on one device with Eigen's, the official widths' (mostly the
  Winograd forms' matmuls) as fast. With several CPU devices sharing the cores (`train --cpu_devices`), each
  device's single-threaded convolutions keep the cores busy and Eigen's threads only contend: YNNPACK's stay.
  Dots and reductions stay YNNPACK fusions either way.
Accelerators use XLA's defaults.
"""

import functools
import logging

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, SingleDeviceSharding

logger = logging.getLogger(__name__)

STEP_OPTIONS = {'cpu': {'xla_backend_optimization_level': 1}}
SOLE_CPU_DEVICE_OPTIONS = {  # YNNPACK's default fusion types but LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION
    'xla_cpu_experimental_ynn_fusion_type':
        'LIBRARY_FUSION_TYPE_DOT,LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE'}


def step_options(mesh: Mesh) -> dict:
  """The compiler options of training steps over `mesh`: its platform's STEP_OPTIONS, with SOLE_CPU_DEVICE_OPTIONS
  where it has one CPU device in this process, less those this jaxlib's XLA rejects (names and values of XLA's
  options change between versions; each is tried once per process)."""
  platform = mesh.devices.flat[0].platform
  options = dict(STEP_OPTIONS.get(platform, {}))
  if platform == 'cpu' and sum(d.process_index == jax.process_index() for d in mesh.devices.flat) == 1:
    options.update(SOLE_CPU_DEVICE_OPTIONS)
  return {name: value for name, value in options.items() if _accepted(platform, name, value)}


@functools.cache
def _accepted(platform: str, name: str, value) -> bool:
  """Whether XLA compiles a one-op program for `platform` with option `name`=`value`."""
  x = jax.ShapeDtypeStruct((1,), jnp.float32, sharding=SingleDeviceSharding(jax.local_devices(backend=platform)[0]))
  try:
    jax.jit(lambda x: x + 1).lower(x).compile(compiler_options={name: value})
  except jax.errors.JaxRuntimeError as e:
    logger.info('XLA option %s=%r not used: this jaxlib rejects it (%s)', name, value, str(e).splitlines()[0])
    return False
  return True
