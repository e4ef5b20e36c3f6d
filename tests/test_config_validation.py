"""Config validation (each error names its key, in one line), unknown override keys, the timetable against the
training loop's own stepping, and `--dry_run` (prints every stage, writes nothing)."""

import collections
import math
import os
import pathlib
import subprocess
import sys

import ml_collections
import pytest

from stylegan_jax import config_validation, errors, schedule, timetable
from stylegan_jax.configs import default, ffhq1024, lsun_cars512, smoke
from stylegan_jax.input_pipeline import DatasetInfo
from stylegan_jax.network_config import NetworkConfig

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_shipped_configs_are_valid():
  for config in (default.get_config(), smoke.get_config(), ffhq1024.get_config('8'), lsun_cars512.get_config()):
    config_validation.validate(config, num_devices=8)
  config_validation.validate(ffhq1024.get_config('1'), num_devices=1)


# (key, value, what the message must say): every error names the key and its value.
BAD_VALUES = [
    ('train.total_kimg', 0.0, 'train.total_kimg=0.0: must be a number > 0'),
    ('train.total_kimg', -1.0, 'train.total_kimg=-1.0: must be a number > 0'),
    ('train.total_kimg', float('nan'), 'train.total_kimg=nan: must be finite'),
    ('loss.r1_gamma', float('inf'), 'loss.r1_gamma=inf: must be finite'),
    ('schedule.minibatch_base', 0, 'schedule.minibatch_base=0: must be a number > 0'),
    ('model.resolution', 48, 'model.resolution=48: must be a power of two in [8, 1024]'),
    ('model.resolution', 2048, 'model.resolution=2048: must be a power of two in [8, 1024]'),
    ('model.resolution', 4, 'model.resolution=4: must be a power of two in [8, 1024]'),
    ('train.style_mixing_prob', 1.5, 'train.style_mixing_prob=1.5: must be a number in [0, 1]'),
    ('train.dlatent_avg_beta', -0.1, 'train.dlatent_avg_beta=-0.1: must be a number in [0, 1]'),
    ('schedule.G_lrate_base', 0.0, 'schedule.G_lrate_base=0.0: must be a number > 0'),
    ('train.G_smoothing_kimg', 0.0, 'train.G_smoothing_kimg=0.0: must be a number > 0'),
    ('loss.penalty_interval', 0, 'loss.penalty_interval=0: must be a number > 0'),
    ('train.G_smoothing_rampup', -0.05, 'train.G_smoothing_rampup=-0.05: must be a number >= 0'),
    ('train.min_minibatch_per_device', -1, 'train.min_minibatch_per_device=-1: must be a number >= 0'),
    ('train.total_kimg', '10', "train.total_kimg='10': must be a number"),
    ('train.mirror_augment', 1, 'train.mirror_augment=1: must be True or False'),
    ('model.mapping_layers', 2.5, 'model.mapping_layers=2.5: must be an integer'),
    ('train.grid_size', (8,), 'train.grid_size=(8,): must be (columns, rows), two integers > 0'),
    ('train.adam_betas', (0.0, 1.0), 'train.adam_betas=(0.0, 1.0): must be (beta1, beta2), two numbers in [0, 1)'),
    ('loss.type', 'hinge', "loss.type='hinge': must be 'logistic_r1' or 'wgan_gp'"),
    ('model.fused_scale', 'yes', "model.fused_scale='yes': must be True, False or 'auto'"),
    ('schedule.minibatch_dict', {'16': 0}, "schedule.minibatch_dict={'16': 0}: must map stage resolutions"),
    ('schedule.G_lrate_dict', {'16': float('nan')}, 'schedule.G_lrate_dict='),
]


def _with(key, value):
  """The smoke config with `key` set to `value` (built anew: a config file may hold any type)."""
  values = smoke.get_config().to_dict()
  section, name = key.split('.')
  values[section][name] = value
  return ml_collections.ConfigDict(values)


@pytest.mark.parametrize('key,value,message', BAD_VALUES, ids=[f'{k}={v!r}' for k, v, _ in BAD_VALUES])
def test_each_error_names_its_key(key, value, message):
  with pytest.raises(errors.UsageError) as raised:
    config_validation.validate(_with(key, value))
  assert message in str(raised.value) and '\n' not in str(raised.value)
  assert raised.value.exit_code == 2


def test_relations_between_keys():
  config = smoke.get_config()
  config.model.resolution = 64
  with pytest.raises(errors.UsageError, match=r'model.resolution=64 vs data.resolution=32'):
    config_validation.validate(config)
  config = smoke.get_config()
  config.model.label_size = 10
  with pytest.raises(errors.UsageError, match=r"model.label_size=10 vs data.labels='none'"):
    config_validation.validate(config)
  config = smoke.get_config()
  config.schedule.minibatch_dict = {'16': 12}
  config_validation.validate(config, num_devices=4)
  with pytest.raises(errors.UsageError, match='minibatch at 16x16 is 12, which does not divide across 8 devices'):
    config_validation.validate(config, num_devices=8)
  config = smoke.get_config()
  config.schedule.lod_initial_resolution = 64
  with pytest.raises(errors.UsageError, match='schedule.lod_initial_resolution=64: must be at most model.resolution'):
    config_validation.validate(config)
  config = smoke.get_config()
  config.data.num_channels = 2
  with pytest.raises(errors.UsageError, match='data.num_channels must be 1 or 3'):
    config_validation.validate(config)
  model = NetworkConfig.from_dict(smoke.get_config().model)
  with pytest.raises(errors.UsageError, match="model.label_size=0 vs the dataset's 10"):
    config_validation.check_dataset(model, DatasetInfo(32, 1, 10, 100))


def test_unknown_keys_are_named():
  config = smoke.get_config()
  with config.unlocked():
    config.train.r1_gama = 5.0
  with pytest.raises(errors.UsageError, match=r'unknown config key train.r1_gama: did you mean loss.r1_gamma\?'):
    config_validation.validate(config)
  with config.unlocked():
    del config.train['r1_gama']
    config.extra = ml_collections.ConfigDict({'x': 1})
  with pytest.raises(errors.UsageError, match='unknown config key extra: the config has data, loss, metrics, model'):
    config_validation.validate(config)
  config_validation.check_override_keys(['--config.schedule.minibatch_dict.64=16', '--config.seed=3', '--workdir=x'])
  with pytest.raises(errors.UsageError) as raised:
    config_validation.check_override_keys(['--config.train.total_kimg=1', '--config.train.no_such_key=1'])
  assert str(raised.value).startswith('unknown config key train.no_such_key: train has D_fused_downscale, ')


# ---- Timetable -----------------------------------------------------------------------------------------------


def loop_reference(config):
  """The training loop's stepping and tick rule (train.py), step by step: per stage resolution, steps, ticks,
  first and last nimg."""
  total, nimg, tick_start = int(config.train.total_kimg * 1000), 0, 0
  stages = collections.OrderedDict()
  while nimg < total:
    s = schedule.schedule_from_config(nimg, config.schedule, config.model.resolution)
    entry = stages.setdefault(s.resolution, dict(start=nimg, steps=0, ticks=0, lods=[]))
    entry['lods'].append(s.lod)
    nimg += s.minibatch
    entry['steps'] += 1
    entry['end'] = nimg
    if nimg >= tick_start + s.tick_kimg * 1000:
      entry['ticks'] += 1
      tick_start = nimg
  return stages


@pytest.mark.parametrize('name', ['smoke', 'default', 'ffhq1024:1 at 2000 kimg'])
def test_timetable_matches_the_loop(name):
  config = {'smoke': smoke.get_config, 'default': default.get_config}.get(name, lambda: ffhq1024.get_config('1'))()
  if name.startswith('ffhq'):
    config.train.total_kimg = 2000.0  # 8x8 stable, 16x16 and 32x32 (fade and stable), into 64x64
  reference = loop_reference(config)
  stages = timetable.timetable(config)
  assert [s.resolution for s in stages] == list(reference)
  for stage, ref in zip(stages, reference.values()):
    assert (stage.start_nimg, stage.end_nimg, stage.steps, stage.ticks) == (ref['start'], ref['end'], ref['steps'],
                                                                             ref['ticks'])
    assert math.isclose(stage.lod_start, ref['lods'][0]) and math.isclose(stage.lod_end, ref['lods'][-1])


def test_timetable_of_the_quickstart():
  stages = timetable.timetable(default.get_config())
  assert [(s.resolution, s.start_nimg, s.end_nimg, s.minibatch) for s in stages] == [
      (8, 0, 10016, 16), (16, 10016, 30016, 16), (32, 30016, 100000, 16)]


def python(*args, cwd=REPO):
  env = {**os.environ, 'JAX_PLATFORMS': 'cpu'}
  return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_dry_run_prints_every_stage_and_writes_nothing(tmp_path):
  workdir = tmp_path / 'run'
  done = python('-m', 'stylegan_jax.main', '--config', str(REPO / 'stylegan_jax/configs/smoke.py'),
                f'--workdir={workdir}', '--dry_run', '--config.train.total_kimg=0.3', cwd=tmp_path)
  assert done.returncode == 0, done.stderr[-3000:]
  assert 'total_kimg: 0.3' in done.stdout
  rows = [line for line in done.stdout.splitlines() if line.startswith('| ') and 'x' in line.split('|')[1]]
  assert [r.split('|')[1].strip() for r in rows] == ['8x8', '16x16', '32x32'], done.stdout
  assert '| 32x32 | 0.2 - 0.304 | 0.875 - 0 | 8 | 0.003 | 0.003 | 13 |' in done.stdout
  assert list(tmp_path.iterdir()) == []  # no workdir, no compile cache, nothing


def test_cpu_devices_sets_the_device_count(tmp_path):
  """--cpu_devices overrides the 8 forced host devices the suite's XLA_FLAGS ask for; a count that does not split
  the minibatch is one line naming it."""
  args = ['-m', 'stylegan_jax.main', '--config=default', f'--workdir={tmp_path / "run"}', '--dry_run']
  done = python(*args, '--cpu_devices=2', cwd=tmp_path)
  assert done.returncode == 0, done.stderr[-3000:]
  assert 'timetable (2 cpu devices):' in done.stdout
  done = python(*args, '--cpu_devices=3', cwd=tmp_path)
  assert done.returncode == 2, done.stderr[-3000:]
  assert done.stderr.strip().splitlines() == [
      'error: the minibatch at 8x8 is 16, which does not divide across 3 devices: choose a multiple of 3 in '
      'schedule.minibatch_dict/minibatch_base']
  assert list(tmp_path.iterdir()) == []

def test_unknown_override_is_one_line(tmp_path):
  done = python('-m', 'stylegan_jax.main', '--config', str(REPO / 'stylegan_jax/configs/smoke.py'),
                f'--workdir={tmp_path / "run"}', '--config.train.r1_gama=5', cwd=tmp_path)
  assert done.returncode == 2
  assert done.stderr.strip().splitlines() == [
      'error: unknown config key train.r1_gama: did you mean loss.r1_gamma? train has D_fused_downscale, '
      'G_smoothing_kimg, G_smoothing_rampup, adam_betas, adam_epsilon_form, checkpoint_kimg, checkpoints_to_keep, '
      'compile_ahead, compute_dtype, dlatent_avg_beta, grid_seed, grid_size, image_snapshot_ticks, '
      'matmul_precision, min_minibatch_per_device, mirror_augment, style_mixing_prob, total_kimg']
  assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_dry_run_timing_estimates_each_stage(tmp_path):
  done = python('-m', 'stylegan_jax.main', '--config', str(REPO / 'stylegan_jax/configs/smoke.py'),
                f'--workdir={tmp_path / "run"}', '--dry_run_timing', '--config.train.total_kimg=0.1', cwd=tmp_path)
  assert done.returncode == 0, done.stderr[-3000:]
  rows = [line.split('|') for line in done.stdout.splitlines() if line.startswith('| 8x8') or line.startswith('| 16x')]
  assert len(rows) == 2 and all(float(r[9]) > 0 and float(r[10]) > 0 for r in rows), done.stdout
  assert 'estimated wall time' in done.stdout and list(tmp_path.iterdir()) == []
