"""The progressive-growing schedule: a pure function of the number of images shown (official training_schedule).

Phases alternate `lod_training_kimg` of stable training with `lod_transition_kimg` of fade-in, starting at
`lod_initial_resolution`. The stage resolution (and with it minibatch, learning rates and the dataset level)
switches to the new resolution when its fade-in starts (spec §5).
"""

import dataclasses
import math
from typing import Mapping


@dataclasses.dataclass(frozen=True)
class Schedule:
  kimg: float
  lod: float            # level of detail: 0 = full resolution; fractional while a level fades in
  resolution: int       # stage resolution = 2 ** (log2(full) - floor(lod))
  minibatch: int        # global minibatch at this stage
  G_lrate: float
  D_lrate: float
  tick_kimg: float

  @property
  def alpha(self) -> float:
    """Fade-in progress of the stage's resolution: 0 as it starts fading in, 1 once stable."""
    return 1.0 - (self.lod - math.floor(self.lod))

  @property
  def lod_bounds(self) -> tuple[int, int]:
    """(floor(lod), ceil(lod)): Adam state is reset whenever these change (start of a fade or stable phase)."""
    return math.floor(self.lod), math.ceil(self.lod)


def _lookup(table: Mapping, resolution: int, default):
  """`table[resolution]`, accepting int or str keys (ml_collections configs may hold either)."""
  return table.get(resolution, table.get(str(resolution), default))


def training_schedule(nimg: int, *, resolution: int, lod_initial_resolution: int = 4,
                      lod_training_kimg: float = 600, lod_transition_kimg: float = 600,
                      minibatch_base: int = 16, minibatch_dict: Mapping = (), G_lrate_base: float = 0.001,
                      G_lrate_dict: Mapping = (), D_lrate_base: float = 0.001, D_lrate_dict: Mapping = (),
                      lrate_rampup_kimg: float = 0, lrate_rampdown_kimg: float = 0, tick_kimg_base: float = 160,
                      tick_kimg_dict: Mapping = (), total_kimg: float | None = None) -> Schedule:
  """The schedule after `nimg` images for a dataset of `resolution`; arguments as in the official loop.

  `lrate_rampdown_kimg` > 0 (a deviation; the official loop has none) ramps the learning rates linearly to 0 over
  the last `lrate_rampdown_kimg` of a run of `total_kimg` (a run resumed with a larger total_kimg ramps down later);
  it applies only where `total_kimg` is given (the training loop), since the stages and minibatches do not depend
  on it.
  """
  minibatch_dict, tick_kimg_dict = dict(minibatch_dict), dict(tick_kimg_dict)
  G_lrate_dict, D_lrate_dict = dict(G_lrate_dict), dict(D_lrate_dict)
  kimg = nimg / 1000.0
  resolution_log2 = int(math.log2(resolution))
  phase_dur = lod_training_kimg + lod_transition_kimg
  phase_idx = int(math.floor(kimg / phase_dur)) if phase_dur > 0 else 0
  phase_kimg = kimg - phase_idx * phase_dur
  lod = resolution_log2 - math.floor(math.log2(lod_initial_resolution)) - phase_idx
  if lod_transition_kimg > 0:
    lod -= max(phase_kimg - lod_training_kimg, 0.0) / lod_transition_kimg
  lod = max(float(lod), 0.0)
  stage = 2 ** (resolution_log2 - int(math.floor(lod)))
  G_lrate = _lookup(G_lrate_dict, stage, G_lrate_base)
  D_lrate = _lookup(D_lrate_dict, stage, D_lrate_base)
  if lrate_rampup_kimg > 0:
    rampup = min(kimg / lrate_rampup_kimg, 1.0)
    G_lrate, D_lrate = G_lrate * rampup, D_lrate * rampup
  if lrate_rampdown_kimg > 0 and total_kimg is not None:
    rampdown = min(max((total_kimg - kimg) / lrate_rampdown_kimg, 0.0), 1.0)
    G_lrate, D_lrate = G_lrate * rampdown, D_lrate * rampdown
  return Schedule(kimg=kimg, lod=lod, resolution=stage, minibatch=int(_lookup(minibatch_dict, stage, minibatch_base)),
                  G_lrate=float(G_lrate), D_lrate=float(D_lrate),
                  tick_kimg=float(_lookup(tick_kimg_dict, stage, tick_kimg_base)))


def schedule_from_config(nimg: int, sched_config, resolution: int, total_kimg: float | None = None) -> Schedule:
  """`training_schedule` with the keyword arguments of `config.schedule`; with `total_kimg` (the run's
  train.total_kimg) the learning rates include the ramp-down of `schedule.lrate_rampdown_kimg`."""
  return training_schedule(nimg, resolution=resolution, total_kimg=total_kimg, **dict(sched_config))


def next_stage(nimg: int, sched_config, resolution: int, total_nimg: int) -> Schedule | None:
  """The schedule at the first step of the stage after the one at `nimg`, for a loop that adds the stage's
  minibatch to nimg per step; None when the run reaches `total_nimg` first. Found by bisection over the steps (the
  stage resolution never decreases with nimg)."""
  current = schedule_from_config(nimg, sched_config, resolution)
  at_step = lambda k: schedule_from_config(nimg + k * current.minibatch, sched_config, resolution)
  lo, hi = 0, -(-(total_nimg - nimg) // current.minibatch) - 1  # the run's last step starts at nimg + hi * minibatch
  if hi <= 0 or at_step(hi).resolution == current.resolution:
    return None
  while hi - lo > 1:  # at_step(lo) is in the current stage, at_step(hi) is not
    mid = (lo + hi) // 2
    lo, hi = (mid, hi) if at_step(mid).resolution == current.resolution else (lo, mid)
  return at_step(hi)


def stage_resolutions(sched_config, resolution: int) -> list[int]:
  """Every stage resolution the schedule visits, from the initial one up to `resolution`."""
  start = max(int(math.log2(sched_config.get('lod_initial_resolution', 4))), 2)
  return [2 ** r for r in range(start, int(math.log2(resolution)) + 1)]


def with_minibatch_floor(config, num_devices: int):
  """`config` with every stage's global minibatch raised to at least `train.min_minibatch_per_device` x
  `num_devices` (0: off, the official behaviour), and that stage's G and D learning rates multiplied by
  sqrt(new / old minibatch) (the square-root rule for Adam). A deviation for many devices, where the official
  minibatch leaves each device a few images and per-device throughput falls with them. The raised stages are
  written into schedule.minibatch_dict / G_lrate_dict / D_lrate_dict, so applying it again changes nothing (a
  resumed run compares equal). Returns `config` itself when nothing changes, else a changed copy."""
  floor = int(config.train.get('min_minibatch_per_device', 0)) * num_devices
  sched = config.schedule
  minibatches, g_rates, d_rates = dict(sched.minibatch_dict), dict(sched.G_lrate_dict), dict(sched.D_lrate_dict)
  raised = {}
  for stage in stage_resolutions(sched, config.model.resolution):
    minibatch = int(_lookup(minibatches, stage, sched.minibatch_base))
    if minibatch < floor:
      factor = math.sqrt(floor / minibatch)
      raised[str(stage)] = (float(_lookup(g_rates, stage, sched.G_lrate_base)) * factor,
                            float(_lookup(d_rates, stage, sched.D_lrate_base)) * factor)
  if not raised:
    return config
  config = config.copy_and_resolve_references()
  for name, values in (('minibatch_dict', {k: floor for k in raised}),
                       ('G_lrate_dict', {k: g for k, (g, _) in raised.items()}),
                       ('D_lrate_dict', {k: d for k, (_, d) in raised.items()})):
    table = {str(k): v for k, v in dict(config.schedule[name]).items()}
    config.schedule[name] = {**table, **values}
  return config


def check_minibatches(sched_config, resolution: int, num_devices: int, accumulation_steps: int = 1) -> None:
  """Every stage's global minibatch must split evenly across the devices (and each device's part into
  `accumulation_steps` micro-batches); raises ValueError otherwise."""
  parts = num_devices * accumulation_steps
  across = f'{num_devices} devices' + (f' x {accumulation_steps} micro-batches' if accumulation_steps > 1 else '')
  for stage in stage_resolutions(sched_config, resolution):
    mb = int(_lookup(dict(sched_config.get('minibatch_dict', {})), stage, sched_config.get('minibatch_base', 16)))
    if mb % parts:
      raise ValueError(f'the minibatch at {stage}x{stage} is {mb}, which does not divide across {across}: choose '
                       f'a multiple of {parts} in schedule.minibatch_dict/minibatch_base')
