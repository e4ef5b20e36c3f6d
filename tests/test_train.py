"""End to end: the smoke config grows 8x8 -> 16x16 -> 32x32 on Fashion-MNIST, logging and writing grids; the next
stage compiles ahead, in the background."""

import json
import threading
import time

import jax
import numpy as np
import pytest
from PIL import Image

from stylegan_jax.configs import smoke
from stylegan_jax import steps, train


@pytest.fixture(scope='module')
def config(fashion_mnist_data_dir):
  config = smoke.get_config()
  config.data.data_dir = fashion_mnist_data_dir
  return config


@pytest.mark.slow  # 50-80 s; tests/test_checkpoint.py's reference run checks the same for 8x8 -> 16x16
def test_smoke_run_grows_through_every_stage(config, tmp_path):
  state = train.train(config, str(tmp_path))
  records = [json.loads(line) for line in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  resolutions = [r['resolution'] for r in records]
  assert sorted(set(resolutions)) == [8, 16, 32] and resolutions == sorted(resolutions)
  lods = [r['lod'] for r in records]
  assert lods == sorted(lods, reverse=True) and lods[-1] == 0.0 and lods[0] == 2.0
  assert records[-1]['kimg'] == pytest.approx(config.train.total_kimg)
  assert int(jax.device_get(state.nimg)) == config.train.total_kimg * 1000
  for r in records:
    assert np.isfinite([r['loss_D'], r['loss_G'], r['r1_penalty'], r['img_per_sec']]).all()
    assert r['skipped_D_total'] == r['skipped_G_total'] == 0
  for stage in (8, 16, 32):
    grid = Image.open(tmp_path / 'samples' / f'stage{stage:04d}-end.png')
    assert grid.mode == 'L'
    assert grid.size[0] >= 4 * 32 and grid.size[1] >= 2 * 32  # 4x2 full-resolution cells
  assert list((tmp_path / 'tb').glob('events.out.tfevents.*'))


def records_without_times(workdir):
  records = [json.loads(line) for line in (workdir / 'metrics.jsonl').read_text().splitlines()]
  return [{k: v for k, v in r.items() if k not in ('time', 'img_per_sec', 'sec_per_kimg', 'compile_sec')}
          for r in records]


def lazy_run(config, workdir, compile_ahead: bool, monkeypatch, caplog):
  """8x8, then one 16x16 step, with lazy R1: (final state, records, the 'compiled' log lines, [(resolution,
  building thread, time built, StageSteps)] of the stages built, time the 16x16 stage started)."""
  config = config.copy_and_resolve_references()
  config.train.update(total_kimg=0.08, compile_ahead=compile_ahead)  # 16x16 starts at kimg 0.072
  config.loss.penalty_interval = 2
  build, built = steps.build_stage_steps, []

  def recording(model, run_config, resolution, *args):
    built.append((resolution, threading.current_thread(), time.time(), build(model, run_config, resolution, *args)))
    return built[-1][3]

  monkeypatch.setattr(steps, 'build_stage_steps', recording)
  caplog.clear()
  with caplog.at_level('INFO', logger='stylegan_jax.train'):
    state = train.train(config, str(workdir))
  compiled = [r.getMessage() for r in caplog.records if r.getMessage().startswith('compiled the')]
  switch = next(r.created for r in caplog.records if r.getMessage().startswith('stage 16x16'))
  return jax.device_get(state), records_without_times(workdir), compiled, built, switch


@pytest.mark.parametrize('compile_ahead', [True, pytest.param(False, marks=pytest.mark.slow)])
def test_a_stage_compiles_once_and_the_next_one_ahead(config, tmp_path, monkeypatch, caplog, compile_ahead):
  """With compile-ahead the 16x16 steps are built in a background thread while 8x8 trains (without it when
  16x16 starts); either way each stage traces each of its three steps once and logs one 'compiled' line."""
  _, records, compiled, built, switch = lazy_run(config, tmp_path, compile_ahead, monkeypatch, caplog)
  assert [m.split(' steps')[0] for m in compiled] == ['compiled the 8x8', 'compiled the 16x16'], compiled
  assert [r for r, *_ in built] == [8, 16] and [r['resolution'] for r in records] == [8, 8, 16]
  for *_, stage in built:
    assert stage.traces == {'d_step': 1, 'd_step_plain': 1, 'g_step': 1}
  thread, started = built[1][1], built[1][2]
  if compile_ahead:
    assert thread is not threading.main_thread() and started < switch and ', ahead' in compiled[1]
  else:
    assert thread is threading.main_thread() and started > switch and 'ahead' not in compiled[1]


@pytest.mark.slow
def test_compile_ahead_trains_bit_identically(config, tmp_path, monkeypatch, caplog):
  """The same run with and without train.compile_ahead (the same programs): the same state and records, bit for
  bit."""
  state_a, records_a, *_ = lazy_run(config, tmp_path / 'ahead', True, monkeypatch, caplog)
  state_b, records_b, *_ = lazy_run(config, tmp_path / 'plain', False, monkeypatch, caplog)
  jax.tree_util.tree_map(np.testing.assert_array_equal, state_a, state_b)
  assert records_a == records_b


def test_a_failed_compile_ahead_is_raised_at_the_stage_switch(config, tmp_path, monkeypatch):
  """The 16x16 compile fails in the background at once; 8x8 trains to its end, then the run raises that error."""
  error = MemoryError('the 16x16 steps do not fit')
  compile_stage = steps.compile_stage_steps

  def failing(stage, *args):
    if stage.resolution == 16:
      raise error
    return compile_stage(stage, *args)

  monkeypatch.setattr(steps, 'compile_stage_steps', failing)
  config = config.copy_and_resolve_references()
  config.train.update(total_kimg=0.08, compile_ahead=True)
  with pytest.raises(MemoryError) as raised:
    train.train(config, str(tmp_path))
  assert raised.value is error
  records = records_without_times(tmp_path)
  assert [r['resolution'] for r in records] == [8, 8] and records[-1]['kimg'] == pytest.approx(0.072)


def test_the_loop_trains_with_the_ramped_down_learning_rates(config, tmp_path):
  config = config.copy_and_resolve_references()
  config.train.total_kimg = 0.064  # 8 steps of 8 images at 8x8 (learning rates 0.002), a record every 2
  config.schedule.update(tick_kimg_base=0.016, lrate_rampdown_kimg=0.032)
  train.train(config, str(tmp_path))
  records = [r for r in records_without_times(tmp_path) if 'G_lrate' in r]
  # each record holds the rates of its tick's last step, which starts 8 images before the record's kimg
  expected = [0.002 * min((0.064 - (r['kimg'] - 0.008)) / 0.032, 1.0) for r in records]
  assert [r['kimg'] for r in records] == pytest.approx([0.016, 0.032, 0.048, 0.064])
  assert [r['G_lrate'] for r in records] == pytest.approx(expected)
  assert [r['D_lrate'] for r in records] == pytest.approx([0.002, 0.002, 0.0015, 0.0005])
