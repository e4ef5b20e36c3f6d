"""Training progress in the terminal: a tqdm bar in kimg with an ETA that accounts for the slower later stages.

The ETA weights the images left in each stage by that stage's cost per image: its measured img/s once a tick of
it has been logged, else a prior from the latest measured stage, `img/s(r) = img/s(r0) * r0 / r` (cost per image
linear in the resolution: between the fixed overhead that dominates small stages and the pixel count that
dominates large ones), plus, for each stage still to compile, the latest measured compile time.
"""

import math
import sys
from typing import Mapping, Optional

import tqdm

from stylegan_jax import schedule


def stage_spans(sched_config, resolution: int, total_nimg: int) -> dict[int, tuple[int, int]]:
  """{stage resolution: (first nimg, end nimg)} of the stages a run to `total_nimg` visits, found by bisection on
  `schedule.schedule_from_config` (the stage resolution never decreases with nimg)."""

  def stage_at(nimg: int) -> int:
    return schedule.schedule_from_config(nimg, sched_config, resolution).resolution

  spans, start = {}, 0
  while start < total_nimg:
    r = stage_at(start)
    lo, hi = start, total_nimg - 1
    if stage_at(hi) == r:
      spans[r] = (start, total_nimg)
      break
    while hi - lo > 1:  # stage_at(lo) == r != stage_at(hi)
      mid = (lo + hi) // 2
      lo, hi = (mid, hi) if stage_at(mid) == r else (lo, mid)
    spans[r], start = (start, hi), hi
  return spans


def eta_seconds(nimg: int, spans: Mapping[int, tuple[int, int]], img_per_sec: Mapping[int, float],
                compile_sec: Mapping[int, float]) -> Optional[float]:
  """Seconds left from `nimg`: the images left in each stage of `spans` over its measured `img_per_sec`, or the
  prior of the module doc; None before any stage is measured."""
  if not img_per_sec:
    return None
  seconds = 0.0
  for r, (start, end) in sorted(spans.items()):
    left = end - max(start, nimg)
    if left <= 0:
      continue
    if r in img_per_sec:
      rate = img_per_sec[r]
    else:
      known = max((k for k in img_per_sec if k < r), default=min(img_per_sec))
      rate = img_per_sec[known] * known / r
      if r not in compile_sec and compile_sec:
        seconds += compile_sec[max(compile_sec)]
    seconds += left / rate
  return seconds


def format_seconds(seconds: Optional[float]) -> str:
  if seconds is None:
    return '?'
  seconds = int(math.ceil(seconds))
  hours, rest = divmod(seconds, 3600)
  return f'{hours}:{rest // 60:02d}:{rest % 60:02d}' if hours else f'{rest // 60:02d}:{rest % 60:02d}'


class ProgressBar:
  """The kimg bar of a run (shown on a terminal only), with the stage-weighted ETA and the latest losses."""

  def __init__(self, sched_config, resolution: int, total_nimg: int, nimg: int, enabled: bool = True):
    self.spans = stage_spans(sched_config, resolution, total_nimg)
    self.img_per_sec: dict[int, float] = {}
    self.compile_sec: dict[int, float] = {}
    self._status = ''
    # Counts images; unit_scale shows them in kimg. tqdm writes the postfix after ', '.
    self._bar = tqdm.tqdm(total=total_nimg, initial=nimg, unit_scale=1e-3, file=sys.stderr,
                          disable=not (enabled and sys.stderr.isatty()), dynamic_ncols=True,
                          bar_format='{l_bar}{bar}| {n:.1f}/{total:g} kimg [{elapsed}{postfix}]', postfix='ETA ?')

  def update(self, nimg: int, step_images: int) -> None:
    self._bar.update(step_images)
    eta = format_seconds(eta_seconds(nimg, self.spans, self.img_per_sec, self.compile_sec))
    self._bar.set_postfix_str(f'ETA {eta}{self._status}', refresh=False)

  def tick(self, resolution: int, img_per_sec: float, status: str) -> None:
    """A logged tick of the stage at `resolution` (one that did not span a stage switch)."""
    self.img_per_sec[resolution] = img_per_sec
    self._status = f' | {status}'

  def close(self) -> None:
    self._bar.close()
