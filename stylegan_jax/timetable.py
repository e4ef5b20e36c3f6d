"""A run's timetable: per stage, the images, lod, minibatch, learning rates, steps and ticks the loop will go
through, from schedule.py (the loop's stepping and tick rule applied to it), and optionally wall-time estimates
from timing each stage's compiled step pair on this machine. `main.py --dry_run` prints it.
"""

import dataclasses
import math
import time

from stylegan_jax import schedule


@dataclasses.dataclass(frozen=True)
class Stage:
  resolution: int
  start_nimg: int     # images shown at the stage's first step
  end_nimg: int       # images shown after its last step
  lod_start: float    # lod at the first step
  lod_end: float      # lod at the last step
  minibatch: int
  G_lrate: float      # at the first step (lrate_rampup_kimg ramps it up from 0)
  D_lrate: float
  tick_kimg: float
  steps: int          # D+G step pairs
  ticks: int          # ticks that close within the stage


def timetable(config) -> list[Stage]:
  """The stages of a run of `config` up to train.total_kimg, stepping as the training loop does (nimg grows by
  the minibatch; a stage lasts while the schedule's resolution stays the same; a tick closes at the first step
  that reaches tick_kimg since the last one)."""
  resolution = config.model.resolution
  total = int(config.train.total_kimg * 1000)

  def at(nimg: int) -> schedule.Schedule:
    return schedule.schedule_from_config(nimg, config.schedule, resolution)

  stages, nimg, tick_start = [], 0, 0
  while nimg < total:
    first = at(nimg)
    lo, hi = nimg, total  # the first image count outside the stage, by bisection (resolution only grows)
    while lo < hi:
      mid = (lo + hi) // 2
      if at(mid).resolution != first.resolution:
        hi = mid
      else:
        lo = mid + 1
    num_steps = math.ceil((lo - nimg) / first.minibatch)
    end = nimg + num_steps * first.minibatch
    tick_nimg, ticks = round(first.tick_kimg * 1000), 0
    while (k := max(math.ceil((tick_start + tick_nimg - nimg) / first.minibatch), 1)) <= num_steps:
      tick_start, ticks = nimg + k * first.minibatch, ticks + 1
    stages.append(Stage(first.resolution, nimg, end, first.lod, at(end - first.minibatch).lod, first.minibatch,
                        first.G_lrate, first.D_lrate, first.tick_kimg, num_steps, ticks))
    nimg = end
  return stages


def time_stages(config, stages: list[Stage], num_steps: int = 3) -> list[tuple[float, float]]:
  """(compile seconds, seconds per D+G step pair) of each stage, on this machine's devices with synthetic reals
  and a freshly initialised state (the averaged step time after one warm-up pair)."""
  import jax
  import jax.numpy as jnp
  import numpy as np

  from stylegan_jax import steps, train_state
  from stylegan_jax.network_config import NetworkConfig

  model = NetworkConfig.from_dict(config.model)
  mesh = steps.make_mesh()
  state = steps.replicate(train_state.create_train_state(model, config.seed), mesh)
  rs = np.random.RandomState(0)
  timings = []
  for stage in stages:
    pair = steps.build_stage_steps(model, config, stage.resolution, stage.minibatch, mesh)
    shape = (stage.minibatch, stage.resolution, stage.resolution, model.num_channels)
    images = steps.shard_batch(rs.randint(0, 256, shape, np.uint8), mesh)
    labels = steps.shard_batch(np.eye(max(model.label_size, 1), dtype=np.float32)[
        np.arange(stage.minibatch) % max(model.label_size, 1)][:, :model.label_size], mesh)
    lod = jnp.float32(stage.lod_start)

    def run(state):
      state, _ = pair.d_step(state, images, labels, lod, jnp.float32(stage.D_lrate))
      state, _ = pair.g_step(state, labels, lod, jnp.float32(stage.G_lrate))
      return state

    start = time.perf_counter()
    state = jax.block_until_ready(run(state))
    compile_seconds = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(num_steps):
      state = run(state)
    jax.block_until_ready(state)
    timings.append((compile_seconds, (time.perf_counter() - start) / num_steps))
  return timings


def _duration(seconds: float) -> str:
  return f'{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m{int(seconds % 60):02d}s'


def format_timetable(stages: list[Stage], timings: list[tuple[float, float]] | None = None) -> str:
  """A Markdown table, one row per stage (with compile s, s/step and estimated wall time when timed)."""
  header = ['stage', 'kimg', 'lod', 'minibatch', 'G lrate', 'D lrate', 'steps', 'ticks']
  if timings:
    header += ['compile s', 's / step', 'est. wall']
  rows = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  for i, s in enumerate(stages):
    row = [f'{s.resolution}x{s.resolution}', f'{s.start_nimg / 1000:g} - {s.end_nimg / 1000:g}',
           f'{s.lod_start:.3g} - {s.lod_end:.3g}', str(s.minibatch), f'{s.G_lrate:g}', f'{s.D_lrate:g}',
           str(s.steps), str(s.ticks)]
    if timings:
      compile_seconds, step_seconds = timings[i]
      row += [f'{compile_seconds:.1f}', f'{step_seconds:.3g}', _duration(compile_seconds + s.steps * step_seconds)]
    rows.append('| ' + ' | '.join(row) + ' |')
  total = f'total: {stages[-1].end_nimg / 1000:g} kimg, {sum(s.steps for s in stages)} steps, ' \
          f'{sum(s.ticks for s in stages)} ticks' if stages else 'total: nothing to train'
  if timings:
    total += (f', estimated wall time {_duration(sum(c + s.steps * t for s, (c, t) in zip(stages, timings)))} '
              '(compilation and steps; sample grids, checkpoints and data loading not included)')
  return '\n'.join(rows + ['', total])
