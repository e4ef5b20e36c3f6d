"""Metrics of a run: a JSON-lines file (metrics.jsonl) and TensorBoard event files (tb/), written by process 0."""

import json
import os
import time

import jax
from tensorboardX import SummaryWriter


class RunLog:
  """Appends one record per tick; `enabled=False` (processes other than 0) makes every call a no-op."""

  def __init__(self, workdir: str, enabled: bool = True):
    self.enabled = enabled and jax.process_index() == 0
    if self.enabled:
      os.makedirs(workdir, exist_ok=True)
      self._jsonl = open(os.path.join(workdir, 'metrics.jsonl'), 'a', buffering=1)
      self._tb = SummaryWriter(os.path.join(workdir, 'tb'))

  def write(self, nimg: int, record: dict) -> None:
    """Logs scalars at `nimg` images shown (TensorBoard step = kimg, rounded)."""
    if not self.enabled:
      return
    record = {'time': time.time(), 'kimg': nimg / 1000.0,
              **{k: (float(v) if not isinstance(v, (int, str)) else v) for k, v in record.items()}}
    self._jsonl.write(json.dumps(record) + '\n')
    for key, value in record.items():
      if key not in ('time', 'kimg') and isinstance(value, (int, float)):
        self._tb.add_scalar(key, value, global_step=nimg // 1000)
    self._tb.flush()

  def close(self) -> None:
    if self.enabled:
      self._jsonl.close()
      self._tb.close()
