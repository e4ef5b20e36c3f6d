"""Metrics of a run: a JSON-lines file (metrics.jsonl) and TensorBoard event files (tb/: scalars and sample
grids, step = images shown), written by process 0.

A run resumed from a checkpoint first drops the records logged after the start of its open tick (`start_nimg`) by
the run that stopped, so that the log reads as one uninterrupted run: metrics.jsonl is rewritten without them, and
TensorBoard is told to purge the events from step start_nimg + 1 on (0 for a fresh run). Evaluation records
(with `metrics_sec`) up to the checkpoint (`checkpoint_nimg`) stay: the resumed run does not evaluate them again
(e.g. the end-of-run evaluation of a run extended with a larger total_kimg).
"""

import json
import os
import time

import jax
import numpy as np
from tensorboardX import SummaryWriter


def _rewind_jsonl(path: str, start_nimg: int, checkpoint_nimg: int) -> list[dict]:
  """Drops the records of metrics.jsonl after `start_nimg` images, except evaluations up to `checkpoint_nimg`
  (atomically: temp file + rename). Returns the evaluations kept after `start_nimg`."""
  if not os.path.exists(path):
    return []
  with open(path) as f:
    lines = [line for line in f if line.strip()]
  # A record cut short by a kill has no JSON end: dropped too.
  keep, evaluations = [], []
  for line in lines:
    try:
      record = json.loads(line)
      nimg = round(record['kimg'] * 1000)
      if nimg <= start_nimg or ('metrics_sec' in record and nimg <= checkpoint_nimg):
        keep.append(line if line.endswith('\n') else line + '\n')
        evaluations += [record] if nimg > start_nimg else []
    except (json.JSONDecodeError, KeyError, TypeError):
      pass
  if keep != lines:
    with open(path + '.tmp', 'w') as f:
      f.writelines(keep)
    os.replace(path + '.tmp', path)
  return evaluations


class RunLog:
  """Appends one record per tick; `enabled=False` (processes other than 0) makes every call a no-op."""

  def __init__(self, workdir: str, enabled: bool = True, start_nimg: int = 0, checkpoint_nimg: int = 0):
    self.enabled = enabled and jax.process_index() == 0
    if self.enabled:
      os.makedirs(workdir, exist_ok=True)
      path = os.path.join(workdir, 'metrics.jsonl')
      kept = _rewind_jsonl(path, start_nimg, max(checkpoint_nimg, start_nimg))
      self._jsonl = open(path, 'a', buffering=1)
      # tensorboardX names a file by the second it opens it and truncates it: the nanoseconds keep a resume in the
      # same second from overwriting the run before, and the names in the order TensorBoard reads (and purges).
      self._tb = SummaryWriter(os.path.join(workdir, 'tb'), purge_step=start_nimg + 1 if start_nimg else 0,
                               filename_suffix=f'.{time.time_ns()}')
      for record in kept:  # purged from TensorBoard with the rest: written again
        self._scalars(round(record['kimg'] * 1000), record)

  def write(self, nimg: int, record: dict) -> None:
    """Logs the scalars of `record` at `nimg` images shown (the TensorBoard step)."""
    if not self.enabled:
      return
    record = {'time': time.time(), 'kimg': nimg / 1000.0,
              **{k: (float(v) if not isinstance(v, (int, str)) else v) for k, v in record.items()}}
    self._jsonl.write(json.dumps(record) + '\n')
    self._scalars(nimg, record)

  def _scalars(self, nimg: int, record: dict) -> None:
    for key, value in record.items():
      if key not in ('time', 'kimg') and isinstance(value, (int, float)):
        self._tb.add_scalar(key, value, global_step=nimg)
    self._tb.flush()

  def image(self, nimg: int, tag: str, image: np.ndarray) -> None:
    """Logs a uint8 [H, W, C] image (C 1 or 3) to TensorBoard at step `nimg`."""
    if not self.enabled:
      return
    if image.shape[-1] == 1:
      self._tb.add_image(tag, image[..., 0], global_step=nimg, dataformats='HW')
    else:
      self._tb.add_image(tag, image, global_step=nimg, dataformats='HWC')
    self._tb.flush()

  def close(self) -> None:
    if self.enabled:
      self._jsonl.close()
      self._tb.close()
