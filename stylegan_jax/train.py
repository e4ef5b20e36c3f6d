"""The progressive-growing training loop (official training_loop.py, in JAX).

Per iteration: the schedule (a function of images shown) gives lod, stage resolution, minibatch and learning
rates; the stage's compiled step pair runs one D step (with R1/GP and the Gs update) and one G step. Adam states
reset when floor(lod) or ceil(lod) changes. Every tick (tick_kimg) metrics are logged; every
`image_snapshot_ticks` ticks, and at each stage's end, a PNG grid of Gs samples of fixed latents is written.
"""

import math
import os
import sys
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import tqdm
from absl import logging

from stylegan_jax import input_pipeline, networks, sampling, schedule, steps, train_state
from stylegan_jax.network_config import NetworkConfig
from stylegan_jax.run_log import RunLog


def check_dataset(model: NetworkConfig, info) -> None:
  """The dataset must have the shape the networks are built for."""
  problems = [f'{name}: model {getattr(model, name)} vs dataset {getattr(info, name)}'
              for name in ('resolution', 'num_channels', 'label_size') if getattr(model, name) != getattr(info, name)]
  if problems:
    raise ValueError('config.model does not match the dataset: ' + '; '.join(problems))


class SnapshotGrid:
  """Gs samples of fixed latents (and labels) at the current lod, upscaled to full resolution, as a PNG grid.

  Generated in chunks of `chunk` images with one compiled function per stage resolution.
  """

  def __init__(self, model: NetworkConfig, config, label_sampler, chunk: int = 16):
    cols, rows = config.train.grid_size
    rs = np.random.RandomState(config.train.grid_seed)
    self.model, self.cols, self.chunk = model, cols, chunk
    self.latents = rs.randn(rows * cols, model.latent_size).astype(np.float32)
    self.labels = label_sampler(rows * cols) if model.label_size else None
    generator = networks.Generator(model)
    self._fn = jax.jit(lambda gs, z, labels, lod, resolution: generator.apply(
        gs, z, labels, lod, noise_mode='const', resolution=resolution), static_argnums=4)

  def __call__(self, gs_vars, lod: float, resolution: int) -> np.ndarray:
    n = len(self.latents)
    padded = math.ceil(n / self.chunk) * self.chunk
    latents = np.resize(self.latents, (padded, self.model.latent_size))
    labels = np.resize(self.labels, (padded, self.model.label_size)) if self.labels is not None else None
    images = [sampling.to_uint8(self._fn(gs_vars, latents[i:i + self.chunk],
                                         None if labels is None else labels[i:i + self.chunk], jnp.float32(lod),
                                         resolution))
              for i in range(0, padded, self.chunk)]
    images = np.concatenate(images)[:n]
    factor = self.model.resolution // resolution
    images = images.repeat(factor, axis=1).repeat(factor, axis=2)
    return sampling.image_grid(images, cols=self.cols)


def _host(tree):
  """A replicated global pytree -> numpy, from this process's first device."""
  return jax.tree_util.tree_map(lambda x: np.asarray(x.addressable_data(0)), tree)


def train(config: ml_collections.ConfigDict, workdir: str) -> train_state.TrainState:
  """Runs (or continues nothing: a fresh run) progressive training until config.train.total_kimg."""
  model = NetworkConfig.from_dict(config.model)
  mesh = steps.make_mesh()
  schedule.check_minibatches(config.schedule, model.resolution, mesh.devices.size)
  info = input_pipeline.create_dataset_info(config.data)
  check_dataset(model, info)
  is_main = jax.process_index() == 0
  os.makedirs(os.path.join(workdir, 'samples'), exist_ok=True)
  log = RunLog(workdir)
  state = steps.replicate(train_state.create_train_state(model, config.seed), mesh)
  cache = steps.StepCache(model, config, mesh)
  # Jitted with replicated outputs: the fresh Adam states keep the shardings the compiled steps expect.
  reset_optimizers = jax.jit(train_state.reset_optimizers, out_shardings=steps.replicated(mesh), donate_argnums=0)
  grid = SnapshotGrid(model, config, lambda n: np.eye(model.label_size, dtype=np.float32)[np.arange(n) % model.label_size])
  total_nimg = int(config.train.total_kimg * 1000)
  progress = tqdm.tqdm(total=config.train.total_kimg, unit='kimg', disable=not (is_main and sys.stdout.isatty()),
                       bar_format='{l_bar}{bar}| {n:.1f}/{total:.0f} kimg [{elapsed}<{remaining}] {postfix}')

  nimg, stage, lod_bounds, iterator = 0, None, None, None
  tick, tick_start_nimg, tick_start_time, tick_metrics = 0, 0, time.time(), []
  compile_seconds = {}

  def snapshot(name: str, sched: schedule.Schedule):
    image = grid(state.Gs, sched.lod, sched.resolution)
    if is_main:
      sampling.save_png(image, os.path.join(workdir, 'samples', name))

  while nimg < total_nimg:
    sched = schedule.schedule_from_config(nimg, config.schedule, model.resolution)
    if sched.resolution != stage:
      if stage is not None:
        snapshot(f'stage{stage:04d}-end.png', prev_sched)
      stage = sched.resolution
      stage_steps = cache(stage, sched.minibatch)
      iterator = input_pipeline.create_input_iterator(
          config.data, resolution=stage, global_batch_size=sched.minibatch, seed=config.seed + stage,
          mirror_augment=config.train.mirror_augment)
      logging.info('stage %dx%d from kimg %.1f: minibatch %d', stage, stage, sched.kimg, sched.minibatch)
    if sched.lod_bounds != lod_bounds:
      state = reset_optimizers(state)
      lod_bounds = sched.lod_bounds
    batch = next(iterator)
    images, labels = (steps.shard_batch(x.reshape((x.shape[0] * x.shape[1],) + x.shape[2:]), mesh)
                      for x in (batch['image'], batch['label']))
    lod = jnp.float32(sched.lod)
    first = stage not in compile_seconds
    start = time.time()
    state, d_metrics = stage_steps.d_step(state, images, labels, lod, jnp.float32(sched.D_lrate))
    state, g_metrics = stage_steps.g_step(state, labels, lod, jnp.float32(sched.G_lrate))
    if first:
      jax.block_until_ready(state)
      compile_seconds[stage] = time.time() - start
      tick_start_time += compile_seconds[stage]  # keep compilation out of img/s
      logging.info('compiled the %dx%d steps in %.1f s', stage, stage, compile_seconds[stage])
    tick_metrics.append({**d_metrics, **g_metrics})
    nimg += sched.minibatch
    prev_sched = sched
    progress.update(sched.minibatch / 1000.0)

    if nimg >= tick_start_nimg + sched.tick_kimg * 1000 or nimg >= total_nimg:
      tick += 1
      metrics = {k: float(np.mean([m[k] for m in jax.device_get(tick_metrics)])) for k in tick_metrics[0]}
      elapsed = time.time() - tick_start_time
      skipped = _host(state.skipped)
      record = {'tick': tick, 'lod': sched.lod, 'resolution': sched.resolution, 'minibatch': sched.minibatch,
                'G_lrate': sched.G_lrate, 'D_lrate': sched.D_lrate, **metrics,
                'img_per_sec': (nimg - tick_start_nimg) / elapsed,
                'sec_per_kimg': elapsed / ((nimg - tick_start_nimg) / 1000.0),
                'skipped_D_total': int(skipped[0]), 'skipped_G_total': int(skipped[1]),
                'compile_sec': compile_seconds.get(stage, 0.0)}
      log.write(nimg, record)
      logging.info('tick %d kimg %.1f lod %.2f res %d loss_D %.3f loss_G %.3f %.1f img/s', tick, nimg / 1000,
                   sched.lod, sched.resolution, metrics['loss_D'], metrics['loss_G'], record['img_per_sec'])
      progress.set_postfix_str(f"lod {sched.lod:.2f} D {metrics['loss_D']:.3f} G {metrics['loss_G']:.3f}")
      if tick % config.train.image_snapshot_ticks == 0:
        snapshot(f'fakes{nimg // 1000:06d}.png', sched)
      tick_start_nimg, tick_start_time, tick_metrics = nimg, time.time(), []

  snapshot(f'stage{stage:04d}-end.png', prev_sched)
  progress.close()
  log.close()
  return state
