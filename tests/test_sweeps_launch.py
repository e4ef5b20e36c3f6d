"""The local sweep launcher with real (tiny) training subprocesses: failures are reported while the others finish,
a re-run runs only unfinished trials, and a sweep stopped by Ctrl-C resumes its interrupted trial exactly."""

import json
import pathlib
import re
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from states import assert_same_state

from stylegan_jax import checkpoint, errors
from stylegan_jax.configs import smoke
from stylegan_jax.data import prepare
from PIL import Image
from stylegan_jax.sweeps import launch, trials as trials_lib
from stylegan_jax.sweeps import main as sweep_main

REPO = pathlib.Path(__file__).resolve().parents[1]
TIME_KEYS = ('time', 'img_per_sec', 'sec_per_kimg', 'compile_sec')


@pytest.fixture(scope='module')
def data(tmp_path_factory):
  """The data overrides of a prepared folder of 32 random 32x32 gray images (an instant prepare)."""
  root = tmp_path_factory.mktemp('data')
  (root / 'images').mkdir()
  rs = np.random.RandomState(0)
  for i in range(32):
    Image.fromarray(rs.randint(0, 256, (32, 32), np.uint8)).save(root / 'images' / f'{i}.png')
  config = smoke.get_config()
  config.data.update(name='image_folder', source_dir=str(root / 'images'), data_dir=str(root / 'prepared'))
  prepare.prepare(config.data)
  return {f'data.{k}': config.data[k] for k in ('name', 'source_dir', 'data_dir')}


@pytest.fixture
def one_device(monkeypatch):
  """Trials on one CPU device (this process has 8): the smallest compile. Reads the same precision as tests."""
  monkeypatch.setenv('XLA_FLAGS', '--xla_force_host_platform_device_count=1')
  monkeypatch.setenv('JAX_PLATFORMS', 'cpu')
  monkeypatch.setenv('JAX_DEFAULT_MATMUL_PRECISION', str(jax.config.jax_default_matmul_precision))


def write_sweep(path, overrides, trials, flags=()):
  path.write_text(
      'from stylegan_jax import sweeps\n\n\ndef get_sweep():\n'
      f'  return sweeps.Sweep(config="smoke", overrides={overrides!r}, trials={trials!r}, flags={list(flags)!r})\n')
  return str(path)


def status(sweep_dir, name):
  return json.loads((sweep_dir / 'trials' / name / 'status.json').read_text())


def attempts(sweep_dir, name):
  log = sweep_dir / 'trials' / name / 'train.log'
  return log.read_text().count('\n=== ') + log.read_text().startswith('=== ') if log.exists() else 0


def test_failures_are_reported_and_the_rest_finish(data, one_device, tmp_path, capsys):
  """Three trials: one trains (2 steps), one fails validation (never launched), one has a missing dataset (its
  process fails). A re-run launches only the failed one again."""
  sweep_file = write_sweep(
      tmp_path / 'sweep.py', {'train.total_kimg': 0.016, 'schedule.tick_kimg_base': 0.008,
                              'data.name': 'image_folder', 'data.source_dir': data['data.source_dir']},
      [{'loss.r1_gamma': 1.0, 'data.data_dir': data['data.data_dir']},
       {'loss.r1_gamma': -1.0, 'data.data_dir': data['data.data_dir']},
       {'loss.r1_gamma': 2.0, 'data.data_dir': str(tmp_path / 'missing')}])
  sweep_dir = tmp_path / 'out'
  assert sweep_main.main(['run', sweep_file, '--dir', str(sweep_dir), '--parallel', '2']) == 1
  names = [t['name'] for t in json.loads((sweep_dir / 'sweep.json').read_text())['trials']]
  good, invalid, missing = names
  out = capsys.readouterr()
  assert f'trial {invalid} is invalid and will not run: invalid config value loss.r1_gamma=-1.0' in out.err
  assert re.search(rf'\[1/3\] {re.escape(good)}: done, kimg 0.016\n', out.out), out.out
  assert re.search(rf'\[3/3\] {re.escape(missing)}: failed \(error: dataset .* is not prepared', out.out)
  assert status(sweep_dir, good)['state'] == 'done' and checkpoint.load(str(sweep_dir / 'trials' / good)).step == 16
  assert 'must be a number >= 0' in status(sweep_dir, invalid)['error']
  assert status(sweep_dir, missing)['returncode'] != 0 and 'not prepared' in status(sweep_dir, missing)['error']
  assert (attempts(sweep_dir, good), attempts(sweep_dir, invalid), attempts(sweep_dir, missing)) == (1, 0, 1)
  summary = (sweep_dir / 'summary.md').read_text()
  assert f'| {good} | 1 | {data["data.data_dir"]} | done | 0.016 |' in summary

  assert sweep_main.main(['run', sweep_file, '--dir', str(sweep_dir), '--parallel', '2']) == 1
  assert (attempts(sweep_dir, good), attempts(sweep_dir, invalid), attempts(sweep_dir, missing)) == (1, 0, 2)
  assert re.search(rf'\[1/3\] {re.escape(good)}: done', capsys.readouterr().out)


def wait_for(path, pattern, process, timeout=600):
  deadline = time.time() + timeout
  while time.time() < deadline:
    if path.exists() and re.search(pattern, path.read_text()):
      return
    assert process.poll() is None, 'the launcher ended early'
    time.sleep(0.1)
  raise TimeoutError(f'no {pattern!r} in {path}')


def metrics(workdir):
  records = [json.loads(line) for line in (workdir / 'metrics.jsonl').read_text().splitlines()]
  return [{k: v for k, v in r.items() if k not in TIME_KEYS} for r in records]


@pytest.mark.slow
def test_ctrl_c_then_rerun_resumes_exactly(data, one_device, tmp_path):
  """Ctrl-C (SIGINT to the launcher) while the first of two trials trains: it saves a checkpoint and stops, the
  second never starts. The re-run resumes the first and runs the second; the first ends bitwise where the same
  trial run without interruption ends (8x8 and 16x16, 24 steps)."""
  overrides = {'train.total_kimg': 0.192, 'train.checkpoint_kimg': 0.032, **data}
  flags = [f'--compilation_cache_dir={tmp_path / "cache"}', '--verbosity=1']  # 1: the 'saving checkpoint' lines
  trials = [{'loss.r1_gamma': 1.0}, {'loss.r1_gamma': 2.0}]
  reference_dir = tmp_path / 'reference'
  assert sweep_main.main(['run', write_sweep(tmp_path / 'reference.py', overrides, trials[:1], flags),
                          '--dir', str(reference_dir)]) == 0

  sweep_file, sweep_dir = write_sweep(tmp_path / 'sweep.py', overrides, trials, flags), tmp_path / 'sweep'
  first, second = sweep_dir / 'trials' / 'r1_gamma=1', sweep_dir / 'trials' / 'r1_gamma=2'
  launcher = subprocess.Popen([sys.executable, '-m', 'stylegan_jax.sweeps.main', 'run', sweep_file, '--dir',
                               str(sweep_dir)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  wait_for(first / 'train.log', r'saving checkpoint \S*/000000064 ', launcher)
  launcher.send_signal(signal.SIGINT)
  output = launcher.communicate(timeout=300)[0]
  assert launcher.returncode == 1, output
  assert 'stopping 1 running trial(s)' in output and '[1/2] r1_gamma=1: stopped' in output, output
  stopped = checkpoint.load(str(first))
  assert stopped.meta['reason'] == 'signal' and 64 <= stopped.step < 192
  assert not second.joinpath('train.log').exists() and status(sweep_dir, 'r1_gamma=1')['state'] == 'stopped'

  assert sweep_main.main(['run', sweep_file, '--dir', str(sweep_dir)]) == 0
  assert f'resuming from {stopped.path} ' in (first / 'train.log').read_text()
  reference = reference_dir / 'trials' / 'r1_gamma=1'
  assert_same_state(jax.device_get(checkpoint.load(str(first)).state),
                    jax.device_get(checkpoint.load(str(reference)).state))
  assert metrics(first) == metrics(reference)
  assert checkpoint.load(str(second)).step == 192


def test_devices_are_split_between_concurrent_trials(tmp_path, monkeypatch):
  """How GPUs / TPU chips are found and limited per trial; then 4 stand-in trials (Python one-liners recording
  their CUDA_VISIBLE_DEVICES and run time), 2 at a time on 4 GPUs: each gets 2, never those of a trial running
  beside it."""
  assert launch.device_groups(['0', '1', '2', '3'], 2) == [['0', '1'], ['2', '3']]
  assert launch.device_groups(['0', '1', '2'], 2) == [['0'], ['1']]
  assert launch.device_groups([], 3) == [[], [], []]
  with pytest.raises(errors.UsageError, match='--parallel 3 needs at least as many devices'):
    launch.device_groups(['0', '1'], 3)
  monkeypatch.setenv('CUDA_VISIBLE_DEVICES', '1,3')
  assert launch.local_devices() == ('gpu', ['1', '3'])
  monkeypatch.delenv('CUDA_VISIBLE_DEVICES')
  monkeypatch.setenv('PATH', str(tmp_path))  # no nvidia-smi
  monkeypatch.setenv('TPU_VISIBLE_CHIPS', '0,1,2,3')
  assert launch.local_devices() == ('tpu', ['0', '1', '2', '3'])
  assert launch.device_env('gpu', ['2', '3'], 1) == {'CUDA_VISIBLE_DEVICES': '2,3'}
  assert launch.device_env('tpu', ['2', '3'], 1) == {
      'TPU_VISIBLE_CHIPS': '2,3', 'TPU_CHIPS_PER_PROCESS_BOUNDS': '1,2,1', 'TPU_PROCESS_BOUNDS': '1,1,1',
      'TPU_MESH_CONTROLLER_ADDRESS': 'localhost:8477', 'TPU_MESH_CONTROLLER_PORT': '8477'}
  assert launch.device_env('tpu', ['0'], 0)['TPU_CHIPS_PER_PROCESS_BOUNDS'] == '1,1,1'
  assert launch.device_env('cpu', [], 0) == {}
  with pytest.raises(errors.UsageError, match='would get 3 TPU chips'):
    launch.device_env('tpu', ['0', '1', '2'], 0)
  monkeypatch.undo()

  trials = [trials_lib.Trial(i, f't{i}', {}) for i in range(4)]
  record = ('import json, os, sys, time; start = time.time(); time.sleep(1.0); '
            'json.dump([os.environ["CUDA_VISIBLE_DEVICES"], start, time.time()], open("run.json", "w"))')
  commands = {}
  for trial in trials:
    directory = pathlib.Path(trials_lib.trial_dir(str(tmp_path), trial))
    directory.mkdir(parents=True)
    commands[trial.name] = [sys.executable, '-c', record.replace('run.json', str(directory / 'run.json'))]
  lines = []
  final = launch.run(trials, str(tmp_path), commands, parallel=2, device_kind='gpu', devices=['0', '1', '2', '3'],
                     print_fn=lines.append)
  assert final == {t.name: 'stopped' for t in trials}  # exit code 0 without a final checkpoint
  runs = [json.loads((tmp_path / 'trials' / t.name / 'run.json').read_text()) for t in trials]
  assert sorted(r[0] for r in runs) == ['0,1', '0,1', '2,3', '2,3']
  for a in runs:
    overlapping = [b for b in runs if b is not a and b[1] < a[2] and a[1] < b[2]]
    assert len(overlapping) <= 1 and all(b[0] != a[0] for b in overlapping)
  assert lines[:2] == ['[1/4] t0: running', '[2/4] t1: running'] and len(lines) == 8
