"""Checkpoints under bad conditions: a full disk, non-finite weights, and class names carried to the export."""

import errno
import functools
import shutil
import subprocess
import time

import jax
import numpy as np
import pytest

from stylegan_jax import checkpoint, errors, export, sample, steps, train_state
from stylegan_jax.configs import smoke
from stylegan_jax.network_config import NetworkConfig


@functools.lru_cache
def random_state(model: NetworkConfig) -> train_state.TrainState:
  """A TrainState of N(0, 1) floats (incompressible, like trained weights) and zero integers; from the abstract
  init, which is much faster than the real one."""
  rng = np.random.default_rng(0)
  shapes = jax.eval_shape(lambda: train_state.create_train_state(model, 0))
  return jax.tree.map(lambda s: rng.standard_normal(s.shape, np.float32) if s.dtype == np.float32 else
                      np.zeros(s.shape, s.dtype), shapes)


def save(ckpts, state, nimg):
  ckpts.save(steps.replicate(state.replace(nimg=np.int32(nimg)), steps.make_mesh()), {'nimg': nimg, 'lod': 0.0},
             reason='interval')


def save_states(workdir, config, nimgs, *, class_names=None, mutate=None):
  """A RunCheckpoints of `workdir` with a state saved at each of `nimgs` (the manager left open)."""
  state = random_state(NetworkConfig.from_dict(config.model))
  state = mutate(state) if mutate else state
  ckpts = checkpoint.RunCheckpoints(str(workdir), config, class_names=class_names)
  for nimg in nimgs:
    save(ckpts, state, nimg)
    ckpts.check()
  return ckpts


@pytest.fixture()
def tmpfs(tmp_path):
  """A 64 MiB tmpfs; skipped where mounting is not permitted."""
  mountpoint = tmp_path / 'tmpfs'
  mountpoint.mkdir()
  mounted = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=64m', 'tmpfs', str(mountpoint)], capture_output=True)
  if mounted.returncode:
    pytest.skip(f'cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN): {mounted.stderr.decode().strip()}')
  yield mountpoint
  subprocess.run(['umount', '-l', str(mountpoint)], check=True)


def test_disk_full_stops_at_once_with_one_message(tmpfs, caplog):
  """A real ENOSPC in Orbax's background save: one CheckpointSaveError at the next check, no Orbax traceback
  logged, and the earlier checkpoints restore. The tmpfs shrinks to what checkpoints 8 and 16 use plus half of
  one checkpoint, measured here (page sizes and Orbax's file layout differ between machines)."""
  state = random_state(NetworkConfig.from_dict(smoke.get_config().model))
  ckpts = save_states(tmpfs, smoke.get_config(), [8])
  ckpts._manager.wait_until_finished()
  one_checkpoint = shutil.disk_usage(tmpfs).used
  save(ckpts, state, 16)
  ckpts._manager.wait_until_finished()  # 16 is complete: the space check before 24 sees the real free space
  ckpts.check()
  size_kib = (shutil.disk_usage(tmpfs).used + one_checkpoint // 2) // 1024
  subprocess.run(['mount', '-o', f'remount,size={size_kib}k', str(tmpfs)], check=True)
  save(ckpts, state, 24)
  with pytest.raises(checkpoint.CheckpointSaveError) as failure:
    for _ in range(1000):  # the save fails in the background; a check after one of the next steps reports it
      ckpts.check()
      time.sleep(0.01)
  ckpts.close()  # the failure was reported: closing neither raises again nor hangs
  message = str(failure.value)
  assert isinstance(failure.value, errors.UserError) and '\n' not in message
  assert message.startswith(f'no space left on device for checkpoint {tmpfs}/checkpoints/000000024 (it needs '
                            'about ') and 'the earlier checkpoints (8, 16) are intact' in message
  assert not [r for r in caplog.records if 'No space left' in r.getMessage() or r.exc_info]
  assert any('the next save will probably fail' in r.getMessage() for r in caplog.records)  # warned first
  assert checkpoint.load(str(tmpfs), 16).step == 16
  assert checkpoint.load(str(tmpfs)).step == 16


def test_a_failed_background_save_is_reported_by_the_next_check(tmp_path, monkeypatch):
  """The same, simulated (no mount needed): Orbax raising ENOSPC from its finalize thread."""
  ckpts = save_states(tmp_path, smoke.get_config(), [8, 16])
  ckpts._saving = 16
  cause = OSError(errno.ENOSPC, 'No space left on device')

  def fail():
    raise RuntimeError('Save Finalize thread (save_finalize) failed.') from cause
  monkeypatch.setattr(ckpts._manager, 'is_saving_in_progress', lambda: False)
  monkeypatch.setattr(ckpts._manager, 'wait_until_finished', fail)
  with pytest.raises(checkpoint.CheckpointSaveError,
                     match=r'no space left on device for checkpoint \S+/000000016 \(it needs about \d+ bytes, \d+ '
                           r'are free\); the earlier checkpoints \(8\) are intact'):
    ckpts.check()
  ckpts.close()


def test_non_finite_checkpoint_is_named_at_export(tmp_path, capsys):
  def nan_weight(state):
    bad = jax.tree.map(np.copy, state.D['params'])
    bad['4x4']['Dense0']['weight'][0, 0] = np.inf
    return state.replace(D={'params': bad})
  save_states(tmp_path, smoke.get_config(), [8], mutate=nan_weight).close()
  assert sample.main(['export', '--workdir', str(tmp_path), '--out', str(tmp_path / 'art')]) == 1
  assert "non-finite values (NaN or Inf) in .D['params']['4x4']['Dense0']['weight']" in capsys.readouterr().err


def test_class_names_reach_the_exported_artifact(tmp_path, caplog):
  """... and the export says nothing about Orbax's read-only mode (it reads the checkpoint read-only on purpose)."""
  config = smoke.get_config()
  config.model.label_size = 3
  save_states(tmp_path, config, [8], class_names=['boot', 'shirt', 'bag']).close()
  assert checkpoint.load(str(tmp_path)).meta['class_names'] == ['boot', 'shirt', 'bag']
  caplog.clear()
  assert sample.main(['export', '--workdir', str(tmp_path), '--out', str(tmp_path / 'art')]) == 0
  assert export.load_artifact(tmp_path / 'art').class_names == ['boot', 'shirt', 'bag']
  assert not [r for r in caplog.records if 'read only' in r.getMessage()]
