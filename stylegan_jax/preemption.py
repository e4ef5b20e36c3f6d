"""Stop requests: SIGTERM (preemption) or SIGINT (Ctrl-C) ends training at the next step, with a checkpoint.

One process: Python handlers note the signal; a second one acts as it would have without them (SIGTERM kills,
SIGINT raises KeyboardInterrupt). Several processes (jax.distributed): JAX's preemption service catches SIGTERM
on any process and agrees on the next step that every process reaches
(`multihost_utils.reached_preemption_sync_point`); SIGINT is turned into a SIGTERM of the same process.
"""

import logging
import os
import signal
import threading

import jax
from jax.experimental import multihost_utils

logger = logging.getLogger(__name__)


class StopSignal:
  """Context manager installing the handlers; ask `requested()` once per training step, on every process."""

  def __init__(self):
    self.signal: str | None = None  # the signal that asked to stop
    self._previous = {}
    self._calls = 0
    self._distributed = jax.process_count() > 1

  def __enter__(self) -> 'StopSignal':
    if threading.current_thread() is threading.main_thread():
      signals = (signal.SIGINT,) if self._distributed else (signal.SIGTERM, signal.SIGINT)
      handler = self._forward if self._distributed else self._note
      self._previous = {s: signal.signal(s, handler) for s in signals}
    else:
      logger.warning('not in the main thread: SIGTERM/SIGINT will not save a checkpoint')
    return self

  def __exit__(self, *exc_info) -> None:
    for s, previous in self._previous.items():
      signal.signal(s, signal.SIG_DFL if previous is None else previous)
    self._previous = {}

  def _note(self, signum, frame) -> None:
    if self.signal is not None:  # the second time: stop at once
      previous = self._previous.get(signum)
      signal.signal(signum, signal.SIG_DFL if previous is None else previous)
      signal.raise_signal(signum)
      return
    self.signal = signal.Signals(signum).name
    logger.warning('%s: saving a checkpoint at the next step and stopping (send it again to stop at once)',
                   self.signal)

  def _forward(self, signum, frame) -> None:
    os.kill(os.getpid(), signal.SIGTERM)

  def requested(self) -> bool:
    """True at the step where training should save and stop (the same step on every process)."""
    self._calls += 1
    if self._distributed and self.signal is None and multihost_utils.reached_preemption_sync_point(self._calls):
      self.signal = 'SIGTERM'
    return self.signal is not None
