"""The `stylegan-jax` command: help, one-line errors with their exit codes, the console script from any directory,
training on a prepared folder with no config file, and what a run shows (ticks per stage, TensorBoard)."""

import io
import json
import logging
import os
import pathlib
import struct
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from stylegan_jax import auto_config, cli, main as train_main, progress, run_log, schedule
from stylegan_jax.configs import default
from stylegan_jax.data import config as config_lib, prepare

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def restore_logging():
  """The commands set up logging for the process (console.configure_logging); other tests get theirs back."""
  loggers = [logging.getLogger(name) for name in ('', 'stylegan_jax', 'stylegan_jax.checkpoint', 'absl',
                                                  'jax._src.xla_bridge')]
  saved = [(lg, lg.level, list(lg.handlers)) for lg in loggers]
  yield
  for lg, level, handlers in saved:
    lg.setLevel(level)
    lg.handlers[:] = handlers


def make_folder(path: pathlib.Path, count: int, size: int, classes=('a',), mode='RGB') -> pathlib.Path:
  rs = np.random.RandomState(0)
  for i in range(count):
    folder = path / classes[i % len(classes)]
    folder.mkdir(parents=True, exist_ok=True)
    pixels = rs.randint(0, 256, (size, size, 3 if mode == 'RGB' else 1), dtype=np.uint8)
    Image.fromarray(pixels.squeeze(), mode).save(folder / f'{i}.png')
  return path


def prepared(tmp_path, name, **flags) -> str:
  """Prepares an image folder through `stylegan-jax prepare`; returns the dataset directory it printed."""
  argv = [f'--source_dir={tmp_path / name}', f'--data_dir={tmp_path / "data"}', '--num_workers=1',
          *(f'--{k}={v}' for k, v in flags.items())]
  assert prepare.main(argv) == 0
  config = prepare.data_config(prepare.parse_args(argv))
  from stylegan_jax.data import datasets
  return datasets.builder_for(config).data_dir


def one_error_line(capsys, code, result, *fragments):
  err = capsys.readouterr().err
  assert result == code, err
  lines = [line for line in err.splitlines() if line.startswith('error: ')]
  assert len(lines) == 1 and 'Traceback' not in err, err
  for fragment in fragments:
    assert fragment in lines[0], lines[0]
  return lines[0]


# ---- Help and usage errors ---------------------------------------------------------------------------------


def test_help_lists_commands_and_each_command_its_flags(capsys):
  assert cli.main(['--help']) == 0
  out = capsys.readouterr().out
  for name in ('prepare', 'train', 'sample', 'export'):
    assert f'\n  {name} ' in out
  cases = {('prepare',): ['--source_dir', '--resolution', "default: 32", '--labels', '--verbosity'],
           ('train',): ['--workdir', '--data', '--config', '--allow_config_change', '--verbosity', "default: '1'"],
           ('sample', 'generate'): ['--seeds', '--psi', 'default 1', '--noise-mode'],
           ('sample', 'interpolate'): ['--fps', 'default 30', 'interpolation.gif)'],
           ('export',): ['--network', '--workdir', '--checkpoint', '--overwrite']}
  for command, flags in cases.items():
    assert cli.main([*command, '--help']) == 0
    out = capsys.readouterr().out
    for flag in flags:
      assert flag in out, (command, flag)
    assert '--helpfull' not in out and '--flagfile' not in out and 'absl' not in out  # only this project's flags


@pytest.mark.parametrize('argv, fragment', [
    (['trian'], "did you mean 'train'"),
    (['prepare', '--resolutoin=64'], '--resolutoin'),
    (['train', '--config=smoke', '--workdir=w', '--bogus=1'], "'bogus'"),
    (['sample', 'generate', '--network=x', '--seeds=1', '--bogus'], '--bogus'),
    (['export', '--out=x', '--bogus'], '--bogus'),
    (['sample', 'generate', '--network=x', '--seeds=1', '--psi=abc'], "--psi: expected a finite number, got 'abc'"),
    (['sample', 'generate', '--network=x', '--seeds=1-x'], "ranges a-b, got '1-x'"),
    (['train', '--config=nonexistent', '--workdir=w'], 'neither a shipped config'),
    (['train', '--workdir=w'], 'pass --config'),
    (['train', '--config=smoke', '--workdir=w', '--config.train.no_such_key=1'],
     'unknown config key train.no_such_key'),
    (['train', '--config=smoke', '--workdir=w', '--config.trian.total_kimg=1'], 'did you mean train.total_kimg'),
    (['train', '--config=smoke', '--workdir=w', '--config.train.total_kimg=abc'], 'total_kimg=abc'),
    (['prepare', '--source_dir=x', '--resolution=63'], 'data.resolution must be a power of two'),
])
def test_usage_errors_are_one_line_with_exit_code_2(capsys, argv, fragment):
  one_error_line(capsys, 2, cli.main(argv), fragment)


def test_verbosity_shows_the_traceback(capsys):
  argv = ['train', '--config=smoke', '--workdir=w', '--config.train.no_such_key=1']
  assert cli.main(argv + ['--verbosity=1']) == 2
  err = capsys.readouterr().err
  assert 'Traceback' in err and 'error: unknown config key train.no_such_key' in err


def test_unexpected_error_names_itself_and_points_at_verbosity(capsys, monkeypatch):
  def broken(argv):
    raise KeyError('boom')
  monkeypatch.setitem(cli.COMMANDS, 'broken', ('test_cli:_broken', ''))
  monkeypatch.setattr(sys.modules[__name__], '_broken', broken, raising=False)
  one_error_line(capsys, 1, cli.main(['broken']), "stylegan-jax failed: KeyError: 'boom'", '--verbosity=1')


@pytest.mark.parametrize('argv', [['--help'], ['sample', '--help']])
def test_a_reader_that_stops_early_gets_no_error(argv):
  """`stylegan-jax --help | head -1`: when whoever reads stdout has gone, the command stops quietly, with no 'error:
  Broken pipe' and no 'Exception ignored' at exit: exit code 141 (128 + SIGPIPE, as Unix tools do), or 0 where
  argparse's help drops its failed write itself. The pipe's read end is closed before the command starts, so its
  first write fails every time."""
  read_end, write_end = os.pipe()
  os.close(read_end)
  try:
    result = subprocess.run([sys.executable, '-m', 'stylegan_jax.cli', *argv], stdout=write_end, stderr=subprocess.PIPE,
                            text=True, env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=120)
  finally:
    os.close(write_end)
  assert result.stderr == '' and result.returncode == (141 if argv == ['--help'] else 0)


# ---- Failed runs: one line, exit code 1 --------------------------------------------------------------------


def test_bad_input_errors_are_one_line_with_exit_code_1(tmp_path, capsys):
  one_error_line(capsys, 1, cli.main(['prepare', f'--source_dir={tmp_path / "nope"}', f'--data_dir={tmp_path}']),
                 'does not exist')
  (tmp_path / 'empty').mkdir()
  one_error_line(capsys, 1, cli.main(['prepare', f'--source_dir={tmp_path / "empty"}', f'--data_dir={tmp_path}']),
                 'no image files')
  one_error_line(capsys, 1, cli.main(['train', '--config=smoke', f'--workdir={tmp_path / "w"}',
                                      f'--config.data.data_dir={tmp_path / "d"}']),
                 'is not prepared', 'run `stylegan-jax prepare --name=fashion_mnist')
  one_error_line(capsys, 1, cli.main(['train', f'--data={tmp_path / "empty"}', f'--workdir={tmp_path / "w"}']),
                 'not a prepared dataset')
  one_error_line(capsys, 1, cli.main(['sample', 'generate', f'--network={tmp_path / "missing.pkl"}', '--seeds=0']),
                 'missing.pkl: No such file or directory')
  one_error_line(capsys, 1, cli.main(['sample', 'generate', f'--network={tmp_path / "missing"}', '--seeds=0']),
                 'is not an artifact directory')


@pytest.fixture
def read_only_dir(tmp_path):
  path = tmp_path / 'ro'
  path.mkdir()
  if os.geteuid() != 0:
    path.chmod(0o555)
    yield path
    path.chmod(0o755)
    return
  if subprocess.run(['mount', '-t', 'tmpfs', '-o', 'ro,size=1m', 'tmpfs', str(path)], capture_output=True).returncode:
    pytest.skip('as root, a read-only directory needs a read-only mount, which is not permitted here')
  yield path
  subprocess.run(['umount', str(path)], check=True)


def test_unwritable_workdir_is_one_line(tmp_path, read_only_dir, capsys):
  for workdir, reason in ((read_only_dir / 'run', 'Read-only file system' if os.geteuid() == 0 else 'Permission'),
                          (read_only_dir, ''), (tmp_path / 'file' / 'run', 'Not a directory')):
    (tmp_path / 'file').write_text('')
    one_error_line(capsys, 1, cli.main(['train', '--config=smoke', f'--workdir={workdir}']),
                   f'cannot write to workdir {workdir}', reason)


# ---- The console script, from another directory ------------------------------------------------------------


def _scripts():
  """(id, argv prefix): `python -m stylegan_jax.cli`, and the installed console script when it is this one."""
  yield 'python -m', [sys.executable, '-m', 'stylegan_jax.cli']
  script = pathlib.Path(sys.executable).parent / 'stylegan-jax'
  if script.exists() and 'from stylegan_jax.cli import main' in script.read_text():
    yield 'console script', [str(script)]
  else:
    yield 'console script', None


@pytest.mark.parametrize('prefix', [p for _, p in _scripts()], ids=[i for i, _ in _scripts()])
def test_console_script_runs_a_shipped_config_from_any_directory(tmp_path, prefix):
  if prefix is None:
    pytest.skip('the installed stylegan-jax script is not this checkout\'s (pip install -e . updates it)')
  env = dict(os.environ, PYTHONPATH=str(REPO))
  result = subprocess.run(prefix + ['train', '--config=smoke', '--workdir=w', '--config.data.data_dir=d'],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
  assert result.returncode == 1, result.stderr
  assert result.stderr.strip().splitlines()[-1].startswith(
      "error: dataset 'fashion_mnist' is not prepared in " + str(tmp_path / 'd')), result.stderr
  assert 'Traceback' not in result.stderr and ' I1' not in result.stderr  # no tracebacks, no absl INFO lines
  assert 'Load dataset info' not in result.stderr and 'Using custom data configuration' not in result.stderr
  verbose = subprocess.run(prefix + ['train', '--config=smoke', '--workdir=w', '--config.data.data_dir=d',
                                     '--verbosity=1'], cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=120)
  assert verbose.returncode == 1 and 'Traceback' in verbose.stderr and ' INFO ' in verbose.stderr, verbose.stderr


# ---- Your own folder: the config comes from the dataset ----------------------------------------------------


def stable_from_nimg(config) -> int:
  """The nimg at which the full resolution is trained without fade-in."""
  nimg = 0
  while schedule.schedule_from_config(nimg, config.schedule, config.model.resolution).lod > 0:
    nimg += 100
  return nimg


def test_auto_config_for_64px_rgb_on_cpu_and_gpu():
  data = config_lib.get_data_config()
  data.update(name='image_folder', folder_name='icons', resolution=64, num_channels=3)
  cpu = auto_config.config_for_dataset(data, label_size=0, device_kind='cpu', num_devices=1)
  assert (cpu.model.resolution, cpu.model.num_channels, cpu.model.label_size) == (64, 3, 0)
  assert (cpu.model.fmap_base, cpu.model.fmap_max) == (512, 128)  # the quickstart's widths
  # Full resolution is stable by kimg 50 (the quickstart default schedule reaches 64x64 only at kimg 75+).
  assert stable_from_nimg(cpu) <= 50_000 < stable_from_nimg(default_for(data))
  assert cpu.train.total_kimg == pytest.approx(2 * stable_from_nimg(cpu) / 1000, abs=0.2)
  assert f'64x64 fades in from kimg 40 and is stable from kimg {stable_from_nimg(cpu) // 1000}' in \
      auto_config.describe(cpu, 'cpu')
  assert cpu.data.folder_name == 'icons'
  gpu = auto_config.config_for_dataset(data, label_size=0, device_kind='gpu', num_devices=2)
  # No mirror augmentation without knowing the content is symmetric, and the printout says how to turn it on.
  assert not cpu.train.mirror_augment and not gpu.train.mirror_augment
  assert 'augment   none (--config.train.mirror_augment=True' in auto_config.describe(gpu, 'gpu')
  gpu.train.mirror_augment = True
  assert 'augment   mirrored left-right at random' in auto_config.describe(gpu, 'gpu')
  assert (gpu.model.fmap_base, gpu.model.fmap_max, gpu.model.latent_size) == (8192, 512, 512)
  assert gpu.schedule.lod_training_kimg == 600 and gpu.schedule.minibatch_dict['64'] == 32
  three = auto_config.config_for_dataset(data, label_size=0, device_kind='gpu', num_devices=3)
  assert all(v % 3 == 0 for v in three.schedule.minibatch_dict.values())
  schedule.check_minibatches(three.schedule, 64, 3)


def default_for(data):
  config = default.get_config()
  config.model.resolution = data.resolution
  return config


def test_train_with_data_and_no_config_builds_the_model_for_the_dataset(tmp_path, capsys):
  make_folder(tmp_path / 'pets', 6, 16, classes=('cat', 'dog', 'fox'))
  directory = prepared(tmp_path, 'pets', resolution=8, labels='subfolders')
  captured = capsys.readouterr()
  assert '3 classes: cat (2), dog (2), fox (2)' in captured.out and 'stylegan-jax train --data=' in captured.out
  assert 'Preparing pets-8px-3ch-center-subfolders in ' in captured.err
  assert 'Downloading and preparing' not in captured.out + captured.err  # TFDS's wording, for local files
  fv = train_main.parse_flags([f'--data={directory}', f'--workdir={tmp_path / "w"}',
                               '--config.train.total_kimg=7'])
  config = train_main.resolve_config(fv, 'cpu', 1)
  assert (config.model.resolution, config.model.num_channels, config.model.label_size) == (8, 3, 3)
  assert config.train.total_kimg == 7 and config.data.labels == 'subfolders'
  assert 'chosen for 8x8 on 1 cpu device(s)' in capsys.readouterr().err
  # With --config, the dataset still sets the networks' shape and the data; the rest is the config's.
  fv = train_main.parse_flags(['--config=smoke', f'--data={directory}', f'--workdir={tmp_path / "w"}'])
  config = train_main.resolve_config(fv, 'cpu', 1)
  assert (config.model.resolution, config.model.label_size, config.model.fmap_max) == (8, 3, 16)
  assert config.data.folder_name == 'pets' and config.schedule.minibatch_base == 8


# ---- The ETA --------------------------------------------------------------------------------------------------


def test_eta_weights_each_stage_by_its_cost():
  config = default.get_config()  # 8x8 to 10 kimg, 16x16 to 30, 32x32 to the end
  spans = progress.stage_spans(config.schedule, 32, 100_000)
  assert spans == {8: (0, 10_001), 16: (10_001, 30_001), 32: (30_001, 100_000)}
  assert progress.eta_seconds(0, spans, {}, {}) is None
  # Measured 8x8 only: 16x16 and 32x32 get the prior rate(r) = rate(8) * 8 / r, plus a compile each.
  expected = 10_001 / 200 + 20_000 / 100 + 69_999 / 50 + 2 * 12.0
  assert progress.eta_seconds(0, spans, {8: 200.0}, {8: 12.0}) == pytest.approx(expected)
  # Measured stages use their own rates; a stage half done counts its remaining images only.
  expected = 10_000 / 80 + 69_999 / 40
  assert progress.eta_seconds(20_001, spans, {8: 200.0, 16: 80.0, 32: 40.0}, {8: 12.0}) == pytest.approx(expected)
  assert progress.format_seconds(3725.2) == '1:02:06' and progress.format_seconds(59) == '00:59'


# ---- A run: ticks belong to one stage; TensorBoard steps are nimg and hold the sample grids ----------------


def read_events(directory: pathlib.Path):
  """Every Event in the TensorBoard files under `directory` (TFRecord framing, tensorboardX's protos)."""
  from tensorboardX.proto import event_pb2
  events = []
  for path in sorted(directory.glob('events.out.tfevents.*')):
    data = path.read_bytes()
    offset = 0
    while offset < len(data):
      (length,) = struct.unpack('<Q', data[offset:offset + 8])
      events.append(event_pb2.Event.FromString(data[offset + 12:offset + 12 + length]))
      offset += 12 + length + 4
  return events


def test_a_resume_relogs_the_open_tick_and_keeps_the_evaluations_up_to_its_checkpoint(tmp_path):
  """Resumed from a checkpoint at 112 images whose open tick started at 96: the tick records after 96 go (they are
  logged again), the evaluation at 112 stays (it is not run again; e.g. a finished run extended), in metrics.jsonl
  and in TensorBoard; the evaluation at 128, after the checkpoint, goes."""
  log = run_log.RunLog(str(tmp_path))
  for nimg, record in [(96, {'loss_D': 1.0}), (112, {'loss_D': 2.0}), (112, {'fd_domain': 50.0, 'metrics_sec': 1.0}),
                       (128, {'fd_domain': 40.0, 'metrics_sec': 1.0})]:
    log.write(nimg, record)
  log.close()
  time.sleep(1.01 - time.time() % 1)  # the resumed writer's event file in a later second: its own file, as in use
  log = run_log.RunLog(str(tmp_path), start_nimg=96, checkpoint_nimg=112)
  log.write(128, {'loss_D': 3.0})
  log.close()
  records = [json.loads(line) for line in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  assert [(r['kimg'], r.get('loss_D'), r.get('fd_domain')) for r in records] == [
      (0.096, 1.0, None), (0.112, None, 50.0), (0.128, 3.0, None)]
  events = read_events(tmp_path / 'tb')  # what the resumed writer logged after its purge of steps >= 97
  first, purge = [i for i, e in enumerate(events) if e.HasField('session_log')]  # the fresh writer's, the resumed's
  assert (events[first].step, events[purge].step) == (0, 97)
  relogged = sorted((e.step, v.tag, v.simple_value) for e in events[purge + 1:] for v in e.summary.value)
  assert relogged == [(112, 'fd_domain', 50.0), (112, 'metrics_sec', 1.0), (128, 'loss_D', 3.0)]


def test_a_resume_within_the_same_second_keeps_the_earlier_event_file(tmp_path):
  """tensorboardX names an event file by the second it was opened in and opens it for writing: a writer opened in
  the same second as the run before (a resume right after a crash) must not truncate that run's events."""
  time.sleep(1.01 - time.time() % 1)  # both writers well inside one second
  log = run_log.RunLog(str(tmp_path))
  log.write(16, {'loss_D': 1.0})
  log.close()
  log = run_log.RunLog(str(tmp_path), start_nimg=16, checkpoint_nimg=16)
  log.write(32, {'loss_D': 2.0})
  log.close()
  events = read_events(tmp_path / 'tb')
  assert sorted((e.step, v.simple_value) for e in events for v in e.summary.value) == [(16, 1.0), (32, 2.0)]
  assert [e.step for e in events if e.HasField('session_log')] == [0, 17]  # in the order TensorBoard reads them


def test_tensorboard_step_is_nimg_and_images_are_logged(tmp_path):
  log = run_log.RunLog(str(tmp_path))
  for nimg in (48, 96, 112):  # several records within one kimg: distinct steps
    log.write(nimg, {'loss_D': nimg / 100})
  log.image(96, 'samples/ticks', np.full((8, 12, 1), 200, np.uint8))
  log.image(112, 'samples/ticks', np.zeros((8, 12, 3), np.uint8))
  log.close()
  events = read_events(tmp_path / 'tb')
  scalars = {e.step: v.simple_value for e in events for v in e.summary.value if v.tag == 'loss_D'}
  assert scalars == pytest.approx({48: 0.48, 96: 0.96, 112: 1.12})
  images = {e.step: v.image for e in events for v in e.summary.value if v.HasField('image')}
  assert sorted(images) == [96, 112] and (images[96].width, images[96].height) == (12, 8)
  assert np.asarray(Image.open(io.BytesIO(images[96].encoded_image_string))).min() == 200


@pytest.mark.slow  # two stages compiled: 1-2.5 minutes on 2 shared cores
def test_ticks_close_at_stage_ends_and_tensorboard_steps_are_nimg(tmp_path, capsys):
  make_folder(tmp_path / 'gray', 8, 16, mode='L')
  directory = prepared(tmp_path, 'gray', resolution=16, num_channels=1)
  workdir = tmp_path / 'w'
  # Smoke networks; the last 8x8 step is the one from 64 to 72 images; ticks of 48 images, so the second would
  # span the switch to 16x16.
  assert cli.main(['train', '--config=smoke', f'--data={directory}', f'--workdir={workdir}',
                   '--config.train.total_kimg=0.128', '--config.schedule.tick_kimg_base=0.048',
                   '--config.train.checkpoint_kimg=1']) == 0
  records = [json.loads(line) for line in (workdir / 'metrics.jsonl').read_text().splitlines()]
  assert [(round(r['kimg'] * 1000), r['resolution']) for r in records] == [(48, 8), (72, 8), (120, 16), (128, 16)]
  err = capsys.readouterr().err
  assert 'tick 2  kimg 0.1  8x8 lod 1.00' in err and 'Traceback' not in err
  events = read_events(workdir / 'tb')
  scalar_steps = sorted({e.step for e in events for v in e.summary.value if v.tag == 'loss_D'})
  assert scalar_steps == [48, 72, 120, 128]
  images = {(v.tag, e.step): v.image for e in events for v in e.summary.value if v.HasField('image')}
  assert {('samples/ticks', 48), ('samples/ticks', 72), ('samples/stage_ends', 72), ('samples/ticks', 120),
          ('samples/stage_ends', 128)} <= set(images)
  grid = images['samples/stage_ends', 128]
  assert (grid.width, grid.height) == (4 * 16, 2 * 16)  # the smoke config's 4x2 grid of 16x16 images


def test_the_dispatcher_and_prepare_import_neither_jax_nor_tensorflow():
  code = ('import sys, stylegan_jax.cli; assert "jax" not in sys.modules, "cli"; '
          'import stylegan_jax.data.prepare; heavy = {"jax", "tensorflow"} & set(sys.modules); '
          'assert not heavy, heavy')
  subprocess.run([sys.executable, '-c', code], check=True, env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=60)


def test_prepare_summary_with_a_config_says_what_that_config_trains(tmp_path, capsys):
  """Labelled data prepared for an unconditional config (the quickstart's case) must not promise a conditional
  model; without --config the dataset's own classes decide."""
  make_folder(tmp_path / 'pets', 6, 16, classes=('cat', 'dog', 'fox'))
  prepared(tmp_path, 'pets', resolution=8, labels='subfolders')
  assert 'Training on it: a 8x8 RGB StyleGAN conditioned on the 3 classes.' in capsys.readouterr().out
  assert prepare.main([f'--source_dir={tmp_path / "pets"}', '--name=image_folder', '--resolution=8',
                       '--num_channels=3', '--labels=subfolders', f'--data_dir={tmp_path / "data"}',
                       '--config=smoke']) == 0
  out = capsys.readouterr().out
  assert 'Training with --config=smoke: a 8x8 RGB StyleGAN, unconditional' in out
  assert 'stylegan-jax train --config=smoke --workdir=' in out and 'conditioned' not in out
