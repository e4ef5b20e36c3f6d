"""Runs a sweep's trials on this machine, N at a time, each its own training process.

Finished trials are skipped; started ones resume from their checkpoints (the train command does that); a failed
trial's error (the last lines of its log) goes to its status.json and the others go on. Several local GPUs or TPU
chips are split between the concurrent trials (CUDA_VISIBLE_DEVICES; TPU_VISIBLE_CHIPS with the process bounds of
1, 2 or 4 chips and a mesh controller port per trial); on a CPU the trials are just processes.
SIGINT (Ctrl-C) or SIGTERM sends every running trial one SIGTERM, so that each saves a checkpoint and stops;
a second one kills them at once.
"""

import collections
import glob
import os
import re
import shutil
import signal
import subprocess
import time
from typing import Callable, Sequence

from stylegan_jax import errors
from stylegan_jax.sweeps import trials as trials_lib

ERROR_LINES = 20


def local_devices() -> tuple[str, list[str]]:
  """('gpu' or 'tpu', ids) of this machine's accelerators, found without starting JAX: CUDA_VISIBLE_DEVICES or what
  nvidia-smi lists, else TPU_VISIBLE_CHIPS or the /dev/accel* chips; ('cpu', []) when there are none."""
  visible = os.environ.get('CUDA_VISIBLE_DEVICES')
  if visible is not None:
    return 'gpu', [d.strip() for d in visible.split(',') if d.strip()]
  if shutil.which('nvidia-smi'):
    try:
      out = subprocess.run(['nvidia-smi', '--query-gpu=index', '--format=csv,noheader'], capture_output=True,
                           text=True, timeout=30, check=True).stdout
      return 'gpu', [line.strip() for line in out.splitlines() if line.strip()]
    except (subprocess.SubprocessError, OSError):
      pass
  visible = os.environ.get('TPU_VISIBLE_CHIPS')
  if visible is not None:
    chips = [c.strip() for c in visible.split(',') if c.strip()]
  else:
    chips = sorted((m.group(1) for p in glob.glob('/dev/accel*') if (m := re.fullmatch(r'/dev/accel(\d+)', p))),
                   key=int)
  return ('tpu', chips) if chips else ('cpu', [])


# Chips of one process on a TPU host -> TPU_CHIPS_PER_PROCESS_BOUNDS (x, y, z of the chip grid).
TPU_CHIP_BOUNDS = {1: '1,1,1', 2: '1,2,1', 4: '2,2,1'}
TPU_PORT = 8476


def device_env(kind: str, group: Sequence[str], slot: int) -> dict[str, str]:
  """The environment that limits a trial to the devices of `group` (the `slot`-th concurrent trial)."""
  if not group:
    return {}
  if kind == 'gpu':
    return {'CUDA_VISIBLE_DEVICES': ','.join(group)}
  if len(group) not in TPU_CHIP_BOUNDS:
    raise errors.UsageError(f'a trial would get {len(group)} TPU chips: choose --parallel so that each gets 1, 2 or 4')
  return {'TPU_VISIBLE_CHIPS': ','.join(group), 'TPU_CHIPS_PER_PROCESS_BOUNDS': TPU_CHIP_BOUNDS[len(group)],
          'TPU_PROCESS_BOUNDS': '1,1,1', 'TPU_MESH_CONTROLLER_ADDRESS': f'localhost:{TPU_PORT + slot}',
          'TPU_MESH_CONTROLLER_PORT': str(TPU_PORT + slot)}


def device_groups(devices: Sequence[str], parallel: int) -> list[list[str]]:
  """`parallel` equal groups of `devices` (leftovers unused); [[]] * parallel when there are none."""
  if not devices:
    return [[] for _ in range(parallel)]
  if len(devices) < parallel:
    raise errors.UsageError(f'--parallel {parallel} needs at least as many devices, this machine has '
                            f'{len(devices)} ({",".join(devices)})')
  size = len(devices) // parallel
  return [list(devices[i * size:(i + 1) * size]) for i in range(parallel)]


def _tail(path: str, lines: int = ERROR_LINES) -> str:
  try:
    with open(path, errors='replace') as f:
      return ''.join(collections.deque(f, maxlen=lines)).strip()
  except OSError:
    return ''


class _Stop:
  """SIGINT/SIGTERM handler: counts the requests."""

  def __init__(self):
    self.count = 0

  def __call__(self, signum, frame):
    self.count += 1


def run(trials: list[trials_lib.Trial], sweep_dir: str, commands: dict[str, list[str]], *,
        invalid: Sequence[str] = (), parallel: int = 1, device_kind: str = 'cpu',
        devices: Sequence[str] = (), metric: str = 'fd_domain', status_interval: float = 60.0,
        stop_timeout: float = 300.0, print_fn: Callable[[str], None] = print) -> dict[str, str]:
  """Runs every trial that is not done and not `invalid` (failed validation); returns {name: final status}."""
  groups = device_groups(devices, parallel)
  environments = [device_env(device_kind, group, slot) for slot, group in enumerate(groups)]
  total = len(trials)
  queue, final = [], {}
  for trial in trials:
    directory = trials_lib.trial_dir(sweep_dir, trial)
    state = 'failed' if trial.name in invalid else trials_lib.status(directory)
    if state == 'done' or trial.name in invalid:
      final[trial.name] = state
      print_fn(_line(trial, total, directory, state, metric))
    else:
      queue.append(trial)
  running = {}  # name -> (trial, process, group index, log file)
  free = list(range(len(groups)))
  stop = _Stop()
  previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
  last_report, reported = time.time(), {}
  try:
    while queue or running:
      while queue and free and not stop.count:
        trial = queue.pop(0)
        group = free.pop(0)
        directory = trials_lib.trial_dir(sweep_dir, trial)
        env = {**os.environ, **environments[group]}
        log = open(os.path.join(directory, 'train.log'), 'a')
        log.write(f'=== {time.strftime("%Y-%m-%d %H:%M:%S")} {" ".join(commands[trial.name])}\n')
        log.flush()
        # A session of its own: Ctrl-C in the terminal reaches the launcher only, which forwards one SIGTERM.
        process = subprocess.Popen(commands[trial.name], stdout=log, stderr=subprocess.STDOUT, env=env,
                                   start_new_session=True)
        trials_lib.write_status(directory, 'running', pid=process.pid, started=time.time())
        running[trial.name] = (trial, process, group, log)
        print_fn(_line(trial, total, directory, 'running', metric))
      if stop.count and running:
        _stop(running, stop, stop_timeout, print_fn)
      for name, (trial, process, group, log) in list(running.items()):
        if process.poll() is None:
          continue
        log.close()
        directory = trials_lib.trial_dir(sweep_dir, trial)
        if process.returncode == 0:
          state = 'done' if trials_lib.finished(directory) else 'stopped'
          trials_lib.write_status(directory, state, returncode=0)
        else:
          state = 'failed'
          trials_lib.write_status(directory, state, returncode=process.returncode,
                                  error=_tail(os.path.join(directory, 'train.log')))
        final[name] = state
        del running[name]
        free.append(group)
        print_fn(_line(trial, total, directory, state, metric))
      if stop.count:
        for trial in queue:
          final[trial.name] = trials_lib.status(trials_lib.trial_dir(sweep_dir, trial))
        queue = []
      if running and time.time() - last_report >= status_interval:
        last_report = time.time()
        for name, (trial, *_) in running.items():
          line = _line(trial, total, trials_lib.trial_dir(sweep_dir, trial), 'running', metric)
          if reported.get(name) != line:
            reported[name] = line
            print_fn(line)
      time.sleep(0.2)
  finally:
    if any(p.poll() is None for _, p, _, _ in running.values()):  # the launcher failed: no orphaned trials
      _stop(running, stop, stop_timeout, print_fn)
    for s, handler in previous.items():
      signal.signal(s, handler)
  return final


def _stop(running, stop: _Stop, timeout: float, print_fn) -> None:
  """One SIGTERM to every child (each saves a checkpoint and exits); a second stop request or the timeout kills."""
  print_fn(f'stopping {len(running)} running trial(s): each saves a checkpoint (Ctrl-C again kills them)')
  for _, process, _, _ in running.values():
    if process.poll() is None:
      process.send_signal(signal.SIGTERM)
  requests, deadline = stop.count, time.time() + timeout
  while any(p.poll() is None for _, p, _, _ in running.values()):
    if stop.count > requests or time.time() > deadline:
      for _, process, _, _ in running.values():
        if process.poll() is None:
          process.kill()
    time.sleep(0.2)


def _line(trial: trials_lib.Trial, total: int, directory: str, state: str, metric: str) -> str:
  """'[2/4] r1_gamma=1,G_smoothing_kimg=2.5: running, kimg 12.3, fd_domain 45.6' (+ the error of a failed one)."""
  records = trials_lib.read_metrics(directory)
  parts = [state]
  if records:
    parts.append(f'kimg {records[-1].get("kimg", 0):.3f}')
  values = [r[metric] for r in records if isinstance(r.get(metric), (int, float))]
  if values:
    parts.append(f'{metric} {values[-1]:.4g}')
  line = f'[{trial.index + 1}/{total}] {trial.name}: {", ".join(parts)}'
  if state == 'failed':
    error = (trials_lib.read_json(os.path.join(directory, 'status.json')) or {}).get('error', '')
    last = [ln for ln in error.splitlines() if ln.strip()][-1:] or ['']
    line += f' ({last[0].strip()[:300]}; see {os.path.join(directory, "status.json")})'
  return line
