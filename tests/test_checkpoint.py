"""Checkpoints: exact continuation (across stages, after SIGTERM, after SIGKILL at random moments), refused config
changes, corrupt checkpoints skipped, several processes, and export from a training workdir.

Runs are the smoke config cut to its 8x8 and 16x16 stages (192 images: 24 steps of 8, the 16x16 stage starting at
72) on 8 CPU devices, compared bitwise with one uninterrupted reference run. Subprocess runs use this process's XLA
flags and matmul precision and the module's persistent compilation cache, so they reuse the executables the
reference compiled; most start from a copy of the reference's first checkpoint to skip the network init.
"""

import copy
import hashlib
import json
import logging
import os
import pathlib
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from states import assert_same_state
from PIL import Image

from stylegan_jax.configs import smoke
from stylegan_jax import checkpoint, errors, export, input_pipeline, sample, sampling, steps, train
from stylegan_jax.network_config import NetworkConfig

REPO = pathlib.Path(__file__).resolve().parents[1]
TRAIN = dict(total_kimg=0.192, checkpoints_to_keep=100)  # every checkpoint kept
FLAGS = [f'--config.train.{k}={v}' for k, v in TRAIN.items()]
TOTAL_NIMG = 192
TIME_KEYS = ('time', 'img_per_sec', 'sec_per_kimg', 'compile_sec')


@pytest.fixture(scope='module')
def data_dir(fashion_mnist_data_dir):
  return fashion_mnist_data_dir


@pytest.fixture(scope='module')
def cache_dir(compilation_cache_dir):
  """The session's persistent compilation cache (conftest), also passed to the subprocess runs: every train()
  builds new jitted steps, compiled once."""
  return compilation_cache_dir


def smoke_config(data_dir, **train_overrides):
  config = smoke.get_config()
  config.data.data_dir = data_dir
  config.train.update(**{**TRAIN, **train_overrides})
  return config


class RecordingIterator:
  """Wraps an InputIterator, recording a digest of every batch it yields (the data order)."""

  def __init__(self, iterator, digests):
    self._iterator, self._digests = iterator, digests

  def __iter__(self):
    return self

  def __next__(self):
    batch = next(self._iterator)
    self._digests.append(hashlib.sha1(batch['image'].tobytes()).hexdigest())
    return batch

  def __getattr__(self, name):  # get_state, set_state, close
    return getattr(self._iterator, name)


def run_recorded(config, workdir, **kwargs):
  """train.train, returning (final state as numpy, digests of the batches it read)."""
  digests = []
  create = input_pipeline.create_input_iterator
  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(train.input_pipeline, 'create_input_iterator',
               lambda *a, **k: RecordingIterator(create(*a, **k), digests))
    state = train.train(config, str(workdir), **kwargs)
  return jax.device_get(state), digests


def metrics(workdir):
  """metrics.jsonl without the timing fields."""
  records = [json.loads(line) for line in (pathlib.Path(workdir) / 'metrics.jsonl').read_text().splitlines()]
  return [{k: v for k, v in r.items() if k not in TIME_KEYS} for r in records]


def final_state(workdir):
  return jax.device_get(checkpoint.load(str(workdir)).state)


@pytest.fixture(scope='module')
def reference(data_dir, cache_dir, tmp_path_factory):
  """The uninterrupted run: its workdir, final state and data order."""
  workdir = tmp_path_factory.mktemp('reference')
  state, digests = run_recorded(smoke_config(data_dir), workdir)
  assert int(state.nimg) == TOTAL_NIMG and len(digests) == TOTAL_NIMG // 8
  return workdir, state, digests


def main_command(workdir, data_dir, cache_dir, *flags):
  return [sys.executable, '-m', 'stylegan_jax.main', '--config', 'stylegan_jax/configs/smoke.py', f'--workdir={workdir}',
          f'--config.data.data_dir={data_dir}', f'--compilation_cache_dir={cache_dir}', '--verbosity=1', *FLAGS,
          *flags]  # --verbosity=1: the 'saving checkpoint' lines these tests wait for


def copy_checkpoints(source, workdir, steps_to_copy):
  for step in steps_to_copy:
    name = f'{step:0{checkpoint.STEP_DIGITS}d}'
    shutil.copytree(source / 'checkpoints' / name, workdir / 'checkpoints' / name)


def start(command, log_path, env=None):
  """A subprocess in the repo with this process's XLA flags and matmul precision; stderr to `log_path`."""
  env = {**os.environ, 'JAX_DEFAULT_MATMUL_PRECISION': str(jax.config.jax_default_matmul_precision),
         'JAX_PLATFORMS': 'cpu', **(env or {})}
  with open(log_path, 'w') as log:
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=log)


def wait_for(process, log_path, pattern, count=1, timeout=300):
  """Waits until `pattern` occurs `count` times in the log; False if the process ended first."""
  deadline = time.time() + timeout
  while time.time() < deadline:
    if len(re.findall(pattern, pathlib.Path(log_path).read_text())) >= count:
      return True
    if process.poll() is not None:
      return False
    time.sleep(0.02)
  raise TimeoutError(f'no {count} x {pattern!r} in {log_path} after {timeout} s')


def saved_steps(text):
  return [int(s) for s in re.findall(r'saving checkpoint \S*/(\d+) ', text)]


def committed_steps(workdir):
  return sorted(int(p.name) for p in (pathlib.Path(workdir) / 'checkpoints').iterdir() if p.name.isdigit())


# ---- Exact continuation ------------------------------------------------------------------------------------


def test_resume_continues_exactly_across_stages(reference, data_dir, tmp_path):
  """Stop at 40 images (mid-tick), resume to 192: the 8x8 -> 16x16 stage change and two Adam resets (72, 128)
  come after the resume. The same state, data order and logged metrics as the uninterrupted run."""
  ref_dir, ref_state, ref_digests = reference
  first, digests_a = run_recorded(smoke_config(data_dir, total_kimg=0.04), tmp_path)
  assert int(first.nimg) == 40
  with pytest.raises(checkpoint.ConfigChangeError, match=r'train.total_kimg \(0.04 -> 0.192\)'):
    train.train(smoke_config(data_dir), str(tmp_path))  # a longer run needs the flag
  state, digests_b = run_recorded(smoke_config(data_dir), tmp_path, allow_config_change=True)
  assert_same_state(state, ref_state)
  assert digests_a + digests_b == ref_digests
  assert metrics(tmp_path) == metrics(ref_dir)
  assert_same_state(final_state(tmp_path), ref_state)
  restored, ref_restored = checkpoint.load(str(tmp_path)), checkpoint.load(str(ref_dir))
  assert restored.loop == ref_restored.loop  # the iterator position, ticks, Adam reset bounds, ...
  assert restored.meta['reason'] == 'end' and restored.meta['config'] == ref_restored.meta['config']


def test_a_branch_continues_the_source_run_exactly(reference, data_dir, tmp_path):
  """--init_from another run's checkpoint at 96 images (inside the 8x8 -> 16x16 fade) with the same config ends
  where that run ended, reading the same batches; once the branch has checkpoints, --init_from is ignored."""
  ref_dir, ref_state, ref_digests = reference
  source = ref_dir / 'checkpoints' / '000000096'
  state, digests = run_recorded(smoke_config(data_dir), tmp_path, init_from=str(source))
  assert_same_state(state, ref_state)
  assert digests == ref_digests[96 // 8:]
  assert committed_steps(tmp_path)[0] > 96  # the source's checkpoints stay the source's
  assert int(train.train(smoke_config(data_dir), str(tmp_path), init_from='/no/such/run').nimg) == TOTAL_NIMG


def test_a_branch_may_change_training_but_not_the_networks(reference, data_dir, tmp_path, caplog):
  ref_dir, ref_state, ref_digests = reference
  changed = smoke_config(data_dir)
  changed.model.fmap_max = 32
  with pytest.raises(checkpoint.ConfigChangeError, match=r'keeps the networks.*model.fmap_max \(16 -> 32\)'):
    train.train(changed, str(tmp_path / 'wider'), init_from=str(ref_dir))
  assert not (tmp_path / 'wider' / 'checkpoints').exists() or not committed_steps(tmp_path / 'wider')
  with pytest.raises(errors.UsageError, match='neither a training workdir nor a checkpoint directory'):
    train.train(smoke_config(data_dir), str(tmp_path / 'lost'), init_from=str(tmp_path / 'nothing'))
  # Another seed is another stream of images and random numbers: the stage's iterator starts afresh, the state
  # gets another key, and the new learning rate acts.
  changed = smoke_config(data_dir)
  changed.seed, changed.schedule.G_lrate_base = 1, 0.01
  with caplog.at_level(logging.INFO, logger='stylegan_jax.train'):
    state, digests = run_recorded(changed, tmp_path / 'seed1', init_from=str(ref_dir / 'checkpoints' / '000000160'))
  assert re.search(r'branching from \S+/000000160 \(kimg 0.160\), changed: schedule.G_lrate_base, seed$',
                   caplog.text, re.M)
  assert int(state.nimg) == TOTAL_NIMG and len(digests) == (TOTAL_NIMG - 160) // 8
  assert digests != ref_digests[160 // 8:] and not np.array_equal(state.rng, ref_state.rng)
  assert not all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(state.G), jax.tree.leaves(ref_state.G)))
  assert checkpoint.load(str(tmp_path / 'seed1')).meta['config']['schedule']['G_lrate_base'] == 0.01


def test_the_reference_run_grows_logs_and_writes_grids(reference):
  """8x8 (lod 2) fades into 16x16 and ends there at lod 1, with finite losses, no skipped step, a full-resolution grid
  at the 8x8 stage's end and TensorBoard events (the slow test_train.py test goes on to 32x32)."""
  ref_dir, _, _ = reference
  records = metrics(ref_dir)
  assert [r['resolution'] for r in records] == sorted(r['resolution'] for r in records)
  assert {r['resolution'] for r in records} == {8, 16}
  lods = [r['lod'] for r in records]
  assert lods == sorted(lods, reverse=True) and lods[0] == 2.0 and lods[-1] == 1.0
  for r in records:
    assert np.isfinite([r['loss_D'], r['loss_G'], r['r1_penalty']]).all()
    assert r['skipped_D_total'] == r['skipped_G_total'] == 0
  grid = Image.open(ref_dir / 'samples' / 'stage0008-end.png')
  assert grid.mode == 'L' and grid.size[0] >= 4 * 32 and grid.size[1] >= 2 * 32  # 4x2 full-resolution cells
  assert list((ref_dir / 'tb').glob('events.out.tfevents.*'))


def test_checkpoint_steps_and_retention(reference, data_dir, tmp_path):
  """A checkpoint every 32 images, at the stage end (72) and at the end; then the newest 2 and the stage ends."""
  ref_dir, _, _ = reference
  assert committed_steps(ref_dir) == [32, 64, 72, 96, 128, 160, 192]  # all kept here (checkpoints_to_keep 100)
  assert checkpoint.load(str(ref_dir), 72).meta['reason'] == 'stage_end'
  copy_checkpoints(ref_dir, tmp_path, committed_steps(ref_dir))
  config = smoke_config(data_dir, checkpoints_to_keep=2)
  ckpts = checkpoint.RunCheckpoints(str(tmp_path), config)
  restored = ckpts.restore_latest(checkpoint.abstract_state(NetworkConfig.from_dict(config.model),
                                                            steps.replicated(steps.make_mesh())),
                                  allow_changes=True)
  assert restored.meta['kept_steps'] == [72]
  ckpts.save(restored.state, {**restored.loop, 'nimg': 200}, reason='interval')  # the clean-up follows a save
  ckpts.close()
  assert committed_steps(tmp_path) == [72, 192, 200]


# ---- Signals and kills -------------------------------------------------------------------------------------


@pytest.mark.parametrize('signum', [signal.SIGTERM, pytest.param(signal.SIGINT, marks=pytest.mark.slow)],
                         ids=['SIGTERM', 'SIGINT'])
def test_signal_saves_at_the_next_step_and_resumes(reference, data_dir, cache_dir, tmp_path, signum):
  """The signal saves a checkpoint at the next step and exits 0; a changed model is then refused; the resumed
  run ends where the uninterrupted one does."""
  ref_dir, ref_state, _ = reference
  copy_checkpoints(ref_dir, tmp_path, [32])
  log = tmp_path / 'run.log'
  process = start(main_command(tmp_path, data_dir, cache_dir), log)
  assert wait_for(process, log, r'saving checkpoint'), log.read_text()[-3000:]
  process.send_signal(signum)
  assert process.wait(timeout=120) == 0
  text = log.read_text()
  stopped = re.search(rf'stopped by {signum.name} at kimg ([\d.]+)', text)
  assert stopped, text[-3000:]
  step = round(float(stopped.group(1)) * 1000)
  assert 32 < step < TOTAL_NIMG and saved_steps(text)[-1] == step
  restored = checkpoint.load(str(tmp_path))
  assert restored.step == step and restored.meta['reason'] == 'signal'

  # A changed model is refused (exit code 1), naming the keys, even with the flag; nothing is written.
  refused = start(main_command(tmp_path, data_dir, cache_dir, '--config.model.fmap_max=32', '--config.seed=1',
                               '--allow_config_change'), tmp_path / 'refused.log')
  assert refused.wait(timeout=120) == 1
  message = (tmp_path / 'refused.log').read_text()
  assert 'model.fmap_max (16 -> 32), seed (0 -> 1)' in message, message[-3000:]
  assert committed_steps(tmp_path)[-1] == step

  state = jax.device_get(train.train(smoke_config(data_dir), str(tmp_path)))
  assert_same_state(state, ref_state)


def kill_and_resume(workdir, data_dir, cache_dir, kills, seed, flags=()):
  """Runs with a checkpoint at every step and SIGKILLs the run `kills` times at random moments, resuming each
  time: 0-0.6 s after the 1st-3rd save of the run started (saves overlap the steps), or 1-6 s after the start
  (restoring, loading the compiled steps). Checks that each resume starts from the newest complete checkpoint
  and that at most the save in flight is lost. Returns one report line per kill."""
  rng = random.Random(seed)
  command = main_command(workdir, data_dir, cache_dir, '--config.train.checkpoint_kimg=0.008', *flags)
  report = []
  for attempt in range(kills + 1):
    log = workdir / f'run{attempt}.log'
    process = start(command, log)
    if attempt < kills:
      saves_first = rng.choice([0, 1, 1, 2, 2, 3])
      if saves_first:
        assert wait_for(process, log, r'saving checkpoint', count=saves_first), log.read_text()[-3000:]
      time.sleep(rng.uniform(0.0, 0.6) if saves_first else rng.uniform(1.0, 6.0))
      process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=300) == (-signal.SIGKILL if attempt < kills else 0), log.read_text()[-3000:]
    text = log.read_text()
    resumed = re.search(r'resuming from \S*/(\d+) ', text)
    resumed_from = int(resumed.group(1)) if resumed else None
    if attempt:  # from the newest complete checkpoint that the killed run left
      assert resumed_from == report[-1]['committed'], text[-3000:]
    if attempt < kills:
      saves = saved_steps(text)
      committed = (committed_steps(workdir) or [None])[-1]
      # At most the save in flight is lost: the newest complete checkpoint is the last save or the one before.
      assert committed in ([resumed_from] + saves)[-2:], (resumed_from, saves, committed)
      unfinished = [p.name for p in (workdir / 'checkpoints').iterdir() if not p.name.isdigit()]
      report.append(dict(kill=attempt + 1, resumed_from=resumed_from, saves_started=saves, committed=committed,
                         unfinished=unfinished))
  return report


def test_sigkill_at_random_moments_loses_at_most_one_save(reference, data_dir, cache_dir, tmp_path):
  ref_dir, ref_state, _ = reference
  copy_checkpoints(ref_dir, tmp_path, [32])
  report = kill_and_resume(tmp_path, data_dir, cache_dir, kills=2, seed=0, flags=['--allow_config_change'])
  print('\n'.join(json.dumps(r) for r in report))
  assert_same_state(final_state(tmp_path), ref_state)
  assert metrics(tmp_path) == metrics(ref_dir)
  assert not (tmp_path / 'corrupt_checkpoints').exists()


@pytest.mark.slow
def test_sigkill_twelve_times_from_scratch(data_dir, cache_dir, tmp_path):
  """The whole smoke run (8x8 to 32x32, 40 steps) killed 12 times, against the same run uninterrupted."""
  flags = ['--config.train.total_kimg=0.32']
  uninterrupted = start(main_command(tmp_path / 'reference', data_dir, cache_dir, *flags,
                                     '--config.train.checkpoint_kimg=0.008'), tmp_path / 'reference.log')
  assert uninterrupted.wait(timeout=600) == 0
  workdir = tmp_path / 'killed'
  workdir.mkdir()
  report = kill_and_resume(workdir, data_dir, cache_dir, kills=12, seed=12, flags=flags)
  print('\n'.join(json.dumps(r) for r in report))
  assert len(report) == 12 and report[0]['resumed_from'] is None
  assert_same_state(final_state(workdir), final_state(tmp_path / 'reference'))
  assert metrics(workdir) == metrics(tmp_path / 'reference')


def free_port():
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def run_processes(workdir, data_dir, cache_dir, tag, sigterm=False):
  """The run as 2 processes x 4 CPU devices (jax.distributed on localhost); with `sigterm`, process 1 gets a
  SIGTERM once process 0 started its second save. Returns the exit codes and logs."""
  address = f'localhost:{free_port()}'
  workdir.mkdir(exist_ok=True)
  logs = [workdir / f'{tag}{i}.log' for i in range(2)]
  processes = [start(main_command(workdir, data_dir, cache_dir, f'--coordinator_address={address}',
                                  '--num_processes=2', f'--process_id={i}'), logs[i],
                     env={'XLA_FLAGS': '--xla_force_host_platform_device_count=4'}) for i in range(2)]
  if sigterm:
    assert wait_for(processes[0], logs[0], r'saving checkpoint', count=2), logs[0].read_text()[-3000:]
    processes[1].send_signal(signal.SIGTERM)
  return [p.wait(timeout=900) for p in processes], [log.read_text() for log in logs]


@pytest.mark.slow
def test_two_processes_stop_together_and_resume_exactly(data_dir, cache_dir, tmp_path):
  """A SIGTERM to one of two processes stops both at the same step with a checkpoint (JAX's preemption sync
  point) and exit code 0; the resumed run ends bitwise where an uninterrupted 2-process run ends."""
  codes, logs = run_processes(tmp_path / 'reference', data_dir, cache_dir, 'run')
  assert codes == [0, 0], logs[0][-3000:] + logs[1][-3000:]
  codes, logs = run_processes(tmp_path / 'work', data_dir, cache_dir, 'stopped', sigterm=True)
  assert codes == [0, 0], logs[0][-3000:] + logs[1][-3000:]
  stops = [re.search(r'stopped by SIGTERM at kimg ([\d.]+)', text) for text in logs]
  assert all(stops) and stops[0].group(1) == stops[1].group(1), logs[0][-3000:] + logs[1][-3000:]
  stopped = checkpoint.load(str(tmp_path / 'work'))
  assert stopped.meta['reason'] == 'signal' and stopped.meta['num_processes'] == 2
  assert stopped.step == round(float(stops[0].group(1)) * 1000) < TOTAL_NIMG
  codes, logs = run_processes(tmp_path / 'work', data_dir, cache_dir, 'resumed')
  assert codes == [0, 0], logs[0][-3000:] + logs[1][-3000:]
  assert all(f'resuming from {stopped.path} ' in text for text in logs)
  assert_same_state(final_state(tmp_path / 'work'), final_state(tmp_path / 'reference'))
  assert metrics(tmp_path / 'work') == metrics(tmp_path / 'reference')


# ---- Refusals and corruption -------------------------------------------------------------------------------


def test_changed_config_is_refused_with_the_keys(reference, data_dir, tmp_path):
  copy_checkpoints(reference[0], tmp_path, [192])
  config = smoke_config(data_dir, total_kimg=1.0)
  config.model.fmap_max = 32
  config.loss.r1_gamma = 5.0
  with pytest.raises(checkpoint.ConfigChangeError) as refused:
    train.train(config, str(tmp_path), allow_config_change=True)
  message = str(refused.value)
  assert 'loss.r1_gamma (10.0 -> 5.0), model.fmap_max (16 -> 32), train.total_kimg (0.192 -> 1.0)' in message
  assert 'never change on resume: loss.r1_gamma, model.fmap_max' in message
  with pytest.raises(checkpoint.ConfigChangeError, match='--allow_config_change') as refused:
    train.train(smoke_config(data_dir, total_kimg=1.0, checkpoint_kimg=0.064), str(tmp_path))
  assert 'train.checkpoint_kimg (0.032 -> 0.064), train.total_kimg (0.192 -> 1.0).' in str(refused.value)
  assert not (tmp_path / 'metrics.jsonl').exists() and committed_steps(tmp_path) == [192]


def restore(workdir, data_dir):
  config = smoke_config(data_dir)
  mesh = steps.make_mesh()
  ckpts = checkpoint.RunCheckpoints(str(workdir), config)
  try:
    return ckpts.restore_latest(checkpoint.abstract_state(NetworkConfig.from_dict(config.model),
                                                          steps.replicated(mesh))), mesh
  finally:
    ckpts.close()


def largest_file(directory):
  return max((p for p in directory.rglob('*') if p.is_file()), key=lambda p: p.stat().st_size)


@pytest.mark.parametrize('damage', ['truncate', 'delete', 'bad_json'])
def test_corrupt_checkpoint_is_reported_and_skipped(reference, data_dir, tmp_path, caplog, damage):
  copy_checkpoints(reference[0], tmp_path, [128, 160, 192])
  newest = tmp_path / 'checkpoints' / f'{192:0{checkpoint.STEP_DIGITS}d}'
  if damage == 'truncate':
    data = largest_file(newest / 'state')
    data.write_bytes(data.read_bytes()[:data.stat().st_size // 2])
  elif damage == 'delete':
    largest_file(newest / 'state').unlink()
  else:
    (newest / 'loop' / 'metadata').write_text('{"nimg": 192, "tick')
  with caplog.at_level('ERROR', logger='absl'):
    restored, mesh = restore(tmp_path, data_dir)
  assert restored.step == 160
  assert any(f'{newest} is unusable and skipped: ' in r.getMessage() for r in caplog.records), caplog.text
  assert committed_steps(tmp_path) == [128, 160]
  assert (tmp_path / 'corrupt_checkpoints' / newest.name).is_dir()  # moved aside, not deleted
  for leaf in jax.tree_util.tree_leaves(restored.state):  # replicated over the training mesh
    assert leaf.sharding.is_equivalent_to(steps.replicated(mesh), leaf.ndim)
  assert_same_state(jax.device_get(restored.state), jax.device_get(checkpoint.load(str(reference[0]), 160).state))


def test_no_usable_checkpoint_is_an_error(reference, data_dir, tmp_path):
  copy_checkpoints(reference[0], tmp_path, [192])
  (tmp_path / 'checkpoints' / f'{192:0{checkpoint.STEP_DIGITS}d}' / 'meta' / 'metadata').unlink()
  with pytest.raises(checkpoint.NoUsableCheckpointError, match='none of the checkpoints'):
    restore(tmp_path, data_dir)
  assert committed_steps(tmp_path) == [192]  # nothing moved


# ---- Export ------------------------------------------------------------------------------------------------


def test_export_from_workdir_samples_like_the_checkpoint(reference, tmp_path):
  ref_dir, ref_state, _ = reference
  out = tmp_path / 'artifact'
  assert sample.main(['export', '--workdir', str(ref_dir), '--out', str(out)]) == 0
  artifact = export.load_artifact(out)
  assert artifact.metadata['kimg'] == 0.192 and artifact.metadata['source'].endswith('checkpoints/000000192')
  for name in ('Gs', 'G', 'D'):
    assert_same_state(getattr(artifact, name), getattr(ref_state, name))
  generated = subprocess.run(
      [sys.executable, '-m', 'stylegan_jax.sample', 'generate', '--network', str(out), '--seeds', '0-9',
       '--outdir', str(tmp_path / 'images')], cwd=REPO, capture_output=True, text=True,
      env={**os.environ, 'JAX_DEFAULT_MATMUL_PRECISION': str(jax.config.jax_default_matmul_precision)})
  assert generated.returncode == 0, generated.stderr[-3000:]
  restored = checkpoint.load(str(ref_dir))
  model = NetworkConfig.from_dict(restored.meta['config']['model'])
  expected = sampling.Sampler(model, restored.state.Gs).generate(range(10))
  for seed in range(10):
    image = np.asarray(Image.open(tmp_path / 'images' / f'seed{seed:04d}.png'))
    np.testing.assert_array_equal(image, expected[seed][..., 0], err_msg=f'seed {seed}')
  assert sample.main(['export', '--workdir', str(ref_dir), '--checkpoint', '72', '--out', str(tmp_path / 'a')]) == 0
  assert export.load_artifact(tmp_path / 'a').metadata['kimg'] == 0.072
  assert export.load_artifact(tmp_path / 'a').metadata['lod'] == 1.875
  assert sample.main(['export', '--workdir', str(ref_dir), '--checkpoint', '73', '--out', str(tmp_path / 'b')]) == 1


def test_keys_added_since_a_run_was_saved_read_as_what_their_absence_meant():
  """A checkpoint's config from before a key existed resumes under the new config when the new value is the one
  the old code used; another value is a change like any other."""
  new = checkpoint.config_dict(smoke.get_config())
  saved = copy.deepcopy(new)
  del saved['train']['compute_dtype'], saved['train']['compile_ahead'], saved['loss']['penalty_interval']
  new['train']['compile_ahead'] = True
  new['loss']['penalty_interval'] = 1
  assert checkpoint.check_config(saved, new, allow_changes=False) == []
  new['loss']['penalty_interval'] = 16
  with pytest.raises(checkpoint.ConfigChangeError, match=r"loss.penalty_interval \('unset' -> 16\)"):
    checkpoint.check_config(saved, new, allow_changes=True)
