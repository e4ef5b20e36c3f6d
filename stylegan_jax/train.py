"""The progressive-growing training loop (official training_loop.py, in JAX), resumable.

Per iteration: the schedule (a function of images shown) gives lod, stage resolution, minibatch and learning
rates; the stage's compiled step pair runs one D step (with R1/GP and the Gs update) and one G step. Adam states
reset when floor(lod) or ceil(lod) changes. A stage's steps are compiled ahead of time, all at once: the current
stage's when the run starts or resumes, each next stage's (train.compile_ahead, default on) in a background thread
while the stage before it trains, so that a switch after a stage longer than a compile does not wait. Every tick
(tick_kimg) metrics are logged; every `image_snapshot_ticks` ticks, and at each stage's end, a PNG grid of Gs
samples of fixed latents is written.

Metrics (stylegan_jax/metrics, config.metrics) are evaluated on Gs every `interval_kimg`, at each stage's end and
at the end, and logged like the losses.

Checkpoints (checkpoint.py: the TrainState and the LoopState) are saved every `checkpoint_kimg`, at each stage's
end, at the end, and at the step after a SIGTERM/SIGINT (preemption.py), which then ends the run. `train` on a
workdir with a checkpoint continues from it exactly: the same batches, random numbers, Adam states, ticks and
logged metrics as the run that never stopped (metrics.jsonl is rewound to the checkpoint).
"""

import dataclasses
import logging
import math
import os
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from stylegan_jax import (accumulation, checkpoint, config_validation, distributed, input_pipeline, networks,
                          preemption, progress, sampling, schedule, steps, train_state)
from stylegan_jax.metrics.training import TrainingMetrics
from stylegan_jax.network_config import NetworkConfig
from stylegan_jax.run_log import RunLog

logger = logging.getLogger(__name__)


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


@dataclasses.dataclass
class LoopState:
  """The loop's host-side state, saved as JSON with every checkpoint (its 'loop' item): with the TrainState,
  all that a resumed run needs to continue exactly where the checkpoint was taken."""
  nimg: int = 0                        # images shown (= TrainState.nimg = the checkpoint step)
  lod: float | None = None             # the schedule's lod at nimg (a function of nimg; recorded for readers)
  stage: int | None = None             # resolution of the current stage ...
  iterator: dict | None = None         # ... and its input iterator's state (InputIterator.get_state())
  lod_bounds: list[int] | None = None  # (floor, ceil) of lod at the last Adam reset
  d_steps: int = 0                     # D steps since that reset (lazy regularisation picks its steps by it)
  tick: int = 0                        # ticks completed
  tick_start_nimg: int = 0             # nimg when the open tick started
  tick_metrics: list[dict[str, float]] = dataclasses.field(default_factory=list)  # its steps' metrics so far


def _short(path: str) -> str:
  """`path` relative to the working directory when it is below it."""
  relative = os.path.relpath(path)
  return path if relative.startswith('..') else relative


def _crossed(nimg: int, step: int, interval: int) -> bool:
  """Whether the step from nimg - step to nimg crossed a multiple of `interval` (0: never)."""
  return interval > 0 and nimg // interval > (nimg - step) // interval


def train(config: ml_collections.ConfigDict, workdir: str, *, allow_config_change: bool = False,
          accumulation_steps: int | str = 1, device_memory_gb: float = 0.0,
          init_from: str = '') -> train_state.TrainState:
  """Trains until config.train.total_kimg, continuing from the newest checkpoint in `workdir` if there is one,
  else from the checkpoint `init_from` names (checkpoint.branch: another run's, this config's networks), else anew.

  A changed config is refused unless only checkpoint.SAFE_CHANGES keys changed and `allow_config_change`.
  SIGTERM/SIGINT save a checkpoint at the next step and return the state (see preemption.py).
  Each device's minibatch is trained as `accumulation_steps` micro-batches (accumulation.py), or with 'auto' as
  the fewest that fit `device_memory_gb` per device (0: the device's own memory, where it reports it).
  """
  mesh = steps.make_mesh()
  config = schedule.with_minibatch_floor(config, mesh.devices.size)  # train.min_minibatch_per_device (0: off)
  distributed.check_same_config(config)  # with several processes: the same config everywhere, or refused
  auto = accumulation_steps == 'auto'
  config_validation.validate(config, num_devices=mesh.devices.size,
                             accumulation_steps=1 if auto else accumulation_steps)
  memory_budget = accumulation.device_memory_bytes(mesh.devices.flat[0], device_memory_gb) if auto else None
  model = NetworkConfig.from_dict(config.model)
  dataset_info = input_pipeline.create_dataset_info(config.data)
  config_validation.check_dataset(model, dataset_info)
  evaluation = TrainingMetrics(config)  # checks the metrics (names, weights, classifier) before training starts
  is_main = jax.process_index() == 0
  total_nimg = int(config.train.total_kimg * 1000)
  checkpoint_nimg = round(config.train.checkpoint_kimg * 1000)
  checkpoints = checkpoint.RunCheckpoints(workdir, config, class_names=dataset_info.class_names)
  try:
    restored = checkpoints.restore_latest(checkpoint.abstract_state(model, steps.replicated(mesh)),
                                          allow_changes=allow_config_change)
    if restored:
      logger.info('resuming from %s (kimg %.3f)', restored.path, restored.step / 1000)
    elif init_from:
      restored, changes = checkpoint.branch(init_from, config, steps.replicated(mesh))
      logger.info('branching from %s (kimg %.3f)%s', _short(restored.path), restored.step / 1000,
                  f', changed: {", ".join(changes)}' if changes else '')
  except BaseException:
    checkpoints.close()
    raise
  if restored:
    state, loop = restored.state, LoopState(**restored.loop)
    if loop.nimg >= total_nimg:
      logger.info('the run is complete: kimg %.3f >= total_kimg %g', loop.nimg / 1000, config.train.total_kimg)
      checkpoints.close()
      return state
  else:
    state, loop = steps.replicate(train_state.create_train_state(model, config.seed), mesh), LoopState()

  os.makedirs(os.path.join(workdir, 'samples'), exist_ok=True)
  # The ticks logged after the open tick's start are logged again; the evaluations up to loop.nimg are kept.
  log = RunLog(workdir, start_nimg=loop.tick_start_nimg, checkpoint_nimg=loop.nimg)
  cache = steps.StepCache(model, config, mesh, 1 if auto else accumulation_steps, memory_budget)
  # Jitted with replicated outputs: the fresh Adam states keep the shardings the compiled steps expect.
  reset_optimizers = jax.jit(train_state.reset_optimizers, out_shardings=steps.replicated(mesh), donate_argnums=0)
  grid = SnapshotGrid(model, config, lambda n: np.eye(model.label_size, dtype=np.float32)[np.arange(n) % model.label_size])
  bar = progress.ProgressBar(config.schedule, model.resolution, total_nimg, loop.nimg, enabled=is_main)
  iterator, stage_steps = None, None
  tick_metrics = []  # device metrics of the tick's steps not yet in loop.tick_metrics
  timer = (time.time(), loop.nimg)  # img/s: (start time, images shown then), from the resume in its first tick
  compile_seconds = {}
  compile_ahead = config.train.get('compile_ahead', True)

  def snapshot(name: str, tag: str, sched: schedule.Schedule) -> str:
    """Writes samples/<name>.png and the TensorBoard image `tag` at step nimg; returns the PNG's path."""
    image = grid(state.Gs, sched.lod, sched.resolution)
    path = os.path.join(workdir, 'samples', name + '.png')
    if is_main:
      sampling.save_png(image, path)
      log.image(loop.nimg, tag, image)
    return path

  def open_stage(sched: schedule.Schedule) -> input_pipeline.InputIterator:
    """The stage's input iterator: where the checkpoint left it when resuming inside the stage, else new."""
    it = input_pipeline.create_input_iterator(
        config.data, resolution=sched.resolution, global_batch_size=sched.minibatch,
        seed=config.seed + sched.resolution, mirror_augment=config.train.mirror_augment)
    if sched.resolution == loop.stage:
      it.set_state(loop.iterator)
    else:
      loop.stage, loop.iterator = sched.resolution, None
      logger.info('stage %dx%d from kimg %.1f: minibatch %d', sched.resolution, sched.resolution, sched.kimg,
                  sched.minibatch)
    return it

  def compiled_steps(sched: schedule.Schedule) -> steps.StageSteps:
    """The stage's compiled steps (waiting for their compile ahead, whose exception is raised here), logged once;
    starts compiling the next stage's steps ahead. The time the loop spent on them is kept out of img/s."""
    nonlocal timer
    start, ahead = time.time(), (sched.resolution, sched.minibatch) in cache.ahead
    stage = cache(sched.resolution, sched.minibatch)
    waited = time.time() - start
    timer = (timer[0] + waited, timer[1])
    compile_seconds[sched.resolution] = bar.compile_sec[sched.resolution] = stage.compile_sec
    note = '' if not ahead else f', ahead (the loop waited {waited:.1f} s for them)' if waited >= 0.05 else ', ahead'
    logger.info('compiled the %dx%d steps in %.1f s%s', sched.resolution, sched.resolution, stage.compile_sec, note)
    following = schedule.next_stage(loop.nimg, config.schedule, model.resolution, total_nimg)
    if compile_ahead and following is not None:
      cache.prefetch(following.resolution, following.minibatch)
    return stage

  def host_tick_metrics() -> list[dict[str, float]]:
    """Moves the device metrics to loop.tick_metrics (floats) and returns those."""
    loop.tick_metrics += [{k: float(v) for k, v in m.items()} for m in jax.device_get(tick_metrics)]
    tick_metrics.clear()
    return loop.tick_metrics

  def log_tick(sched: schedule.Schedule, closes: bool):
    """Logs the tick's record. Only a tick that `closes` starts the next one: the record forced by the end of
    the run leaves the tick open, so that a longer run resumed from there ticks as if it had never stopped.
    A stage's last step closes its tick, so that a tick's img/s and metrics belong to one stage."""
    nonlocal timer
    values = host_tick_metrics()
    metrics = {k: float(np.mean(np.asarray([m[k] for m in values], np.float32))) for k in values[0]}
    elapsed, shown = time.time() - timer[0], loop.nimg - timer[1]
    skipped = _host(state.skipped)
    record = {'tick': loop.tick + 1, 'lod': sched.lod, 'resolution': sched.resolution,
              'minibatch': sched.minibatch, 'G_lrate': sched.G_lrate, 'D_lrate': sched.D_lrate, **metrics,
              'img_per_sec': shown / elapsed, 'sec_per_kimg': elapsed / (shown / 1000.0),
              'skipped_D_total': int(skipped[0]), 'skipped_G_total': int(skipped[1]),
              'compile_sec': compile_seconds.get(sched.resolution, 0.0)}
    log.write(loop.nimg, record)
    grid_path = None
    if closes and (loop.tick + 1) % config.train.image_snapshot_ticks == 0:
      grid_path = snapshot(f'fakes{loop.nimg // 1000:06d}', 'samples/ticks', sched)
    logger.info('tick %d  kimg %.1f  %dx%d lod %.2f  loss D %.3f G %.3f  %.1f img/s%s', loop.tick + 1,
                loop.nimg / 1000, sched.resolution, sched.resolution, sched.lod, metrics['loss_D'],
                metrics['loss_G'], record['img_per_sec'],
                f'  -> {_short(grid_path)}' if grid_path else '')
    bar.tick(sched.resolution, record['img_per_sec'],
             f"{sched.resolution}x{sched.resolution} lod {sched.lod:.2f} D {metrics['loss_D']:.3f} "
             f"G {metrics['loss_G']:.3f}")
    if closes:
      loop.tick, loop.tick_start_nimg, loop.tick_metrics = loop.tick + 1, loop.nimg, []
      timer = (time.time(), loop.nimg)

  try:
    with preemption.StopSignal() as stop:
      while loop.nimg < total_nimg:
        sched = schedule.schedule_from_config(loop.nimg, config.schedule, model.resolution, config.train.total_kimg)
        if iterator is None or sched.resolution != loop.stage:
          if iterator is not None:
            iterator.close()
          iterator = open_stage(sched)
          stage_steps = compiled_steps(sched)
        if list(sched.lod_bounds) != loop.lod_bounds:
          state = reset_optimizers(state)
          loop.lod_bounds, loop.d_steps = list(sched.lod_bounds), 0
        batch = next(iterator)
        images, labels = (steps.shard_batch(x.reshape((x.shape[0] * x.shape[1],) + x.shape[2:]), mesh)
                          for x in (batch['image'], batch['label']))
        lod = jnp.float32(sched.lod)
        state, d_metrics = stage_steps.d_step_for(loop.d_steps)(state, images, labels, lod,
                                                                jnp.float32(sched.D_lrate))
        state, g_metrics = stage_steps.g_step(state, labels, lod, jnp.float32(sched.G_lrate))
        checkpoints.check()  # a failed background save (disk full) stops the run here
        tick_metrics.append({**d_metrics, **g_metrics})
        loop.nimg += sched.minibatch
        loop.d_steps += 1
        bar.update(loop.nimg, sched.minibatch)

        following = schedule.schedule_from_config(loop.nimg, config.schedule, model.resolution)
        stage_end = following.resolution != loop.stage
        tick_done = loop.nimg >= loop.tick_start_nimg + sched.tick_kimg * 1000 or stage_end
        if tick_done or loop.nimg >= total_nimg:
          log_tick(sched, closes=tick_done)
        if stage_end or loop.nimg >= total_nimg:
          snapshot(f'stage{loop.stage:04d}-end', 'samples/stage_ends', sched)
        if record := evaluation(state.Gs, loop.nimg, sched.minibatch, lod=sched.lod, resolution=sched.resolution,
                                stage_end=stage_end, run_end=loop.nimg >= total_nimg):
          log.write(loop.nimg, record)
          timer = (timer[0] + record['metrics_sec'], timer[1])  # keep evaluation out of img/s
        reason = ('signal' if stop.requested() else 'end' if loop.nimg >= total_nimg else
                  'stage_end' if stage_end else
                  'interval' if _crossed(loop.nimg, sched.minibatch, checkpoint_nimg) else None)
        if reason:
          loop.lod, loop.iterator = following.lod, iterator.get_state()
          host_tick_metrics()
          checkpoints.save(state, dataclasses.asdict(loop), reason=reason, keep=stage_end)
        if reason == 'signal':
          logger.warning('stopped by %s at kimg %.3f; run the same command to continue', stop.signal,
                         loop.nimg / 1000)
          break
  except Exception as e:  # noqa: BLE001 (only a failed collective is rewritten; everything else goes on up)
    collective = distributed.failed_collective(e) if jax.process_count() > 1 else None
    if collective is None:
      raise
    error = distributed.lost_process(collective, loop.nimg)
    logger.error('%s', error)  # now: closing the checkpoints below may wait until JAX ends this process
    raise error from e
  finally:
    checkpoints.close()  # waits for a save in flight
    cache.close()  # waits for a compile ahead in flight (the next stage's, when the run stops before it)
    if iterator is not None:
      iterator.close()
    bar.close()
    log.close()
  return state
