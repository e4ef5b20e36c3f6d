"""`stylegan-jax train` (also `python -m stylegan_jax.main`): train a progressive StyleGAN in a workdir.

  stylegan-jax train --config=default --workdir=workdir/quickstart
  stylegan-jax train --data=data/stylegan_image_folder/icons-64px-3ch-center-nolabels/1.0.0 --workdir=workdir/icons

--config is a shipped config name (`default`, `smoke`, `ffhq1024:4`, ...) or a config file. --data is a prepared
dataset (the directory `stylegan-jax prepare` prints): the networks are built for its resolution, channels and
classes, and without --config the rest is chosen for it and this machine (auto_config.py) and printed. Any config
value can be overridden with --config.KEY=VALUE, e.g. --config.train.total_kimg=300.

`--dry_run` validates the config, prints it with the timetable of every stage (timetable.py) and exits without
touching the workdir; `--dry_run_timing` adds wall-time estimates from timing each stage's step pair here.

The same command on a workdir with a checkpoint resumes the run (checkpoint.py); a changed config is refused
unless only checkpoint.SAFE_CHANGES keys changed and --allow_config_change is given (exit code 1). SIGTERM or
SIGINT saves a checkpoint at the next step and exits with code 0. `--init_from=OTHER_WORKDIR[/checkpoints/STEP]`
starts a new workdir from another run's checkpoint (same networks, any other config change; checkpoint.branch).

Several processes (hosts or devices; distributed.py): under SLURM, Open MPI or on a Cloud TPU VM pod slice add
--distributed=auto to every process (JAX finds the coordinator and the ranks); on plain hosts add
--coordinator_address, --num_processes and --process_id. Each process reads its own part of every minibatch; the
processes must have the same config (checked at start-up). Recipes: experiments/launch/.
"""

import logging
import os
import sys
import tempfile
from typing import Optional, Sequence

import ml_collections
from absl import flags
from ml_collections import config_flags

from stylegan_jax import config_validation, configs, console, errors

PROG = 'stylegan-jax train'
logger = logging.getLogger('stylegan_jax.main')  # not __name__: `python -m` runs this module as __main__


def _define_flags(argv: list[str]) -> flags.FlagValues:
  """This command's flags, in their own FlagValues (so `--help` lists only them and each call parses afresh)."""
  from stylegan_jax import checkpoint, distributed  # noqa: PLC0415 (import JAX: after console.run set up logging)
  fv = flags.FlagValues()
  flags.DEFINE_string('workdir', None, 'Directory for metrics, sample grids, TensorBoard events and checkpoints '
                      '(required; created if missing).', flag_values=fv)
  flags.DEFINE_string('data', None, 'A prepared dataset: the directory `stylegan-jax prepare` printed. The '
                      'networks get its resolution, channels and classes; without --config, widths and schedule '
                      'are chosen for it and this machine and printed.', flag_values=fv)
  config_flags.DEFINE_config_file(
      'config', configs.config_path('default'),
      f'A shipped config ({", ".join(configs.names())}; e.g. ffhq1024:4 for its 4-GPU setup) or a config file '
      '(get_config()). Required unless --data is given. Override any value with --config.KEY=VALUE, e.g. '
      '--config.train.total_kimg=300 (the keys: stylegan_jax/configs/default.py).',
      flag_values=fv, lock_config=True, sys_argv=argv)
  flags.DEFINE_bool('allow_config_change', False, 'Resume although the config changed, when only these keys '
                    f'changed: {", ".join(checkpoint.SAFE_CHANGES)}. Other changes are always refused.',
                    flag_values=fv)
  flags.DEFINE_string('init_from', None, "Start a new run from another run's checkpoint: its workdir (the newest) or "
                      '<workdir>/checkpoints/<step>. The networks must be the same; any other key may change, e.g. '
                      "to try learning rates from a stage's start. Ignored once --workdir has checkpoints.",
                      flag_values=fv)
  flags.DEFINE_string('compilation_cache_dir', None, "JAX's persistent compilation cache, so that a resumed run "
                      "reuses the compiled steps (default <workdir>/compile_cache; '' turns it off).",
                      flag_values=fv)
  flags.DEFINE_enum('distributed', None, distributed.CLUSTERS, "Train on several processes, found by JAX's cluster "
                    "detection: 'auto' (SLURM, Open MPI, Cloud TPU VM pod slices) or that method only.",
                    flag_values=fv)
  flags.DEFINE_string('coordinator_address', None, 'host:port of process 0, to train on several plain hosts '
                      '(with --num_processes and --process_id).', flag_values=fv)
  flags.DEFINE_integer('num_processes', None, 'Number of processes with --coordinator_address; with --distributed, '
                       'the count the cluster must have.', lower_bound=1, flag_values=fv)
  flags.DEFINE_integer('process_id', None, 'This process with --coordinator_address (0 .. num_processes-1).',
                       lower_bound=0, flag_values=fv)
  flags.DEFINE_integer('heartbeat_timeout', distributed.HEARTBEAT_TIMEOUT_S, 'Seconds without heartbeats after '
                       'which a process counts as dead and the others stop (jax.distributed).', lower_bound=1,
                       flag_values=fv)
  flags.DEFINE_string('accumulation_steps', '1', "Micro-batches per device and step (gradient accumulation, to "
                      "fit a stage's minibatch on fewer or smaller devices), or 'auto': per stage the fewest whose "
                      'compiled step fits --device_memory_gb.', flag_values=fv)
  flags.DEFINE_integer('cpu_devices', 0, 'Split each step data-parallel over this many CPU devices of this '
                       "process (jax_num_cpu_devices; 0: JAX's default, one unless XLA_FLAGS sets a count). On 2 "
                       'CPU cores one device, whose convolutions use both, trains the quickstart as fast as 2 '
                       '(README "Scaling out"). No effect on GPUs and TPUs.', lower_bound=0, flag_values=fv)
  flags.DEFINE_float('device_memory_gb', 0.0, "Memory budget per device for --accumulation_steps=auto (0: what "
                     'the device reports; CPUs report nothing).', lower_bound=0.0, flag_values=fv)
  flags.DEFINE_bool('dry_run', False, 'Validate the config, print it and the timetable of every stage, and exit '
                    'without touching the workdir.', flag_values=fv)
  flags.DEFINE_bool('dry_run_timing', False, "With --dry_run: also compile and time each stage's step pair here "
                    'and estimate the wall time.', flag_values=fv)
  flags.DEFINE_integer('verbosity', 0, '0: quiet; 1: library logs and the traceback of an error; 2: debug logs.',
                       short_name='v', flag_values=fv)
  return fv


def usage() -> str:
  fv = _define_flags([''])
  fv['config'].default_as_str = None  # its default only parses overrides when --data comes without --config
  flag_help = [line for line in fv.get_help(include_special_flags=False).splitlines()
               if line.startswith(' ')]  # without the defining module's name
  return '\n'.join([f'usage: {PROG} (--config=NAME|FILE | --data=DIR) --workdir=DIR [--config.KEY=VALUE ...] '
                    '[flags]', '', __doc__.split('\n\n', 1)[1].strip(), '', 'flags:', *flag_help])


def _config_spec(argv: list[str]) -> tuple[Optional[int], Optional[str]]:
  """(index in argv, value) of --config (None, None when absent)."""
  for i, arg in enumerate(argv):
    if arg.startswith('--config='):
      return i, arg.split('=', 1)[1]
    if arg == '--config':
      if i + 1 == len(argv):
        raise errors.UsageError(f'{PROG}: --config needs a value')
      return i, argv[i + 1]
  return None, None


def parse_flags(argv: Sequence[str]) -> Optional[flags.FlagValues]:
  """The parsed flags of `argv` (without the program name); None after printing --help."""
  argv = list(argv)
  if {'-h', '--help', '--helpshort', '--helpfull'} & set(argv):
    print(usage())
    return None
  index, spec = _config_spec(argv)
  if spec is not None:
    path = configs.config_path(spec)
    if not os.path.isfile(path.partition(':')[0]):
      raise errors.UsageError(f'--config {spec}: neither a shipped config ({", ".join(configs.names())}) nor a '
                              'config file')
    argv[index:index + 2 if argv[index] == '--config' else index + 1] = [f'--config={path}']
  config_validation.check_override_keys(argv)
  fv = _define_flags([PROG] + argv)
  try:
    rest = fv([PROG] + argv)
  except flags.Error as e:
    raise errors.UsageError(f'{PROG}: {" ".join(str(e).split())} (see {PROG} --help)') from None
  if rest[1:]:
    raise errors.UsageError(f'{PROG}: unexpected arguments {rest[1:]} (flags are --name=value; see {PROG} --help)')
  if not fv.workdir and not (fv.dry_run or fv.dry_run_timing):
    raise errors.UsageError(f'{PROG}: --workdir is required (see {PROG} --help)')
  if spec is None and not fv.data:
    raise errors.UsageError(f'{PROG}: pass --config (a shipped name: {", ".join(configs.names())}; or a file) or '
                            '--data (a prepared dataset)')
  return fv


def _check_workdir(workdir: str) -> None:
  try:
    os.makedirs(workdir, exist_ok=True)
    with tempfile.TemporaryFile(dir=workdir):
      pass
  except OSError as e:
    raise errors.UserError(f'cannot write to workdir {workdir}: {e.strerror or e}') from None


def resolve_config(fv: flags.FlagValues, device_kind: str, num_devices: int) -> ml_collections.ConfigDict:
  """--config with its overrides; with --data, the networks and data of that dataset (and without --config, the
  config auto_config chooses for it, then the overrides)."""
  config = fv.config
  if not fv.data:
    return config
  from stylegan_jax import auto_config, input_pipeline  # noqa: PLC0415 (imports JAX and grain)
  from stylegan_jax.data import datasets  # noqa: PLC0415
  data = datasets.data_config_from_directory(fv.data)
  info = input_pipeline.create_dataset_info(data)
  kind = 'RGB' if info.num_channels == 3 else 'gray'
  classes = f'{info.label_size} classes (conditional)' if info.label_size else 'unconditional'
  logger.info('dataset %s: %d images, %dx%d %s, %s', fv.data, info.num_examples, info.resolution, info.resolution,
              kind, classes)
  overrides = fv['config'].override_values
  if fv['config'].present:
    data.update(num_threads=config.data.num_threads, prefetch_batches=config.data.prefetch_batches)
    config.data = data
  else:
    config = auto_config.config_for_dataset(data, label_size=info.label_size, device_kind=device_kind,
                                            num_devices=num_devices)
    config.update_from_flattened_dict(overrides)
    logger.info('no --config: chosen for %dx%d on %d %s device(s) (stylegan_jax/auto_config.py; override with '
                '--config.KEY=VALUE):\n%s', info.resolution, info.resolution, num_devices, device_kind,
                auto_config.describe(config, device_kind))
  for key in ('resolution', 'num_channels', 'label_size'):
    if f'model.{key}' not in overrides:
      config.model[key] = getattr(info, key)
  return config


def _main(argv: list[str]) -> None:
  fv = parse_flags(argv)
  if fv is None:
    return
  import jax  # noqa: PLC0415 (after the logging set-up: JAX reads TF_CPP_MIN_LOG_LEVEL at import)
  if fv.cpu_devices:
    jax.config.update('jax_num_cpu_devices', fv.cpu_devices)  # before anything starts JAX's backends
  if fv.dry_run or fv.dry_run_timing:
    dry_run(resolve_config(fv, jax.default_backend(), jax.device_count()), timing=fv.dry_run_timing)
    return
  _check_workdir(fv.workdir)
  from stylegan_jax import accumulation, distributed, train  # noqa: PLC0415
  accumulation_steps = accumulation.parse(fv.accumulation_steps)
  distributed.start(fv.distributed, fv.coordinator_address, fv.num_processes, fv.process_id, fv.heartbeat_timeout)
  cache_dir = os.path.join(fv.workdir, 'compile_cache') if fv.compilation_cache_dir is None \
      else fv.compilation_cache_dir
  if cache_dir:
    jax.config.update('jax_compilation_cache_dir', os.path.abspath(cache_dir))
  config = resolve_config(fv, jax.default_backend(), jax.device_count())
  logger.info('training on %d %s device(s) in %s', jax.device_count(), jax.default_backend(), fv.workdir)
  train.train(config, fv.workdir, allow_config_change=fv.allow_config_change, accumulation_steps=accumulation_steps,
              device_memory_gb=fv.device_memory_gb, init_from=fv.init_from or '')


def dry_run(config: ml_collections.ConfigDict, timing: bool = False) -> None:
  """Validates `config` and prints it and its timetable (timed with `timing`). Writes nothing."""
  import jax  # noqa: PLC0415
  from stylegan_jax import schedule, timetable  # noqa: PLC0415 (imports JAX)
  config = schedule.with_minibatch_floor(config, jax.device_count())  # as train() applies it
  config_validation.validate(config, num_devices=jax.device_count())
  stages = timetable.timetable(config)
  print(config, flush=True)
  print(f'timetable ({jax.device_count()} {jax.devices()[0].platform} devices):')
  print(timetable.format_timetable(stages, timetable.time_stages(config, stages) if timing else None), flush=True)


def main(argv: Optional[Sequence[str]] = None) -> int:
  """`stylegan-jax train ...` (argv without the program name); returns the exit code."""
  code = console.run(PROG, _main, sys.argv[1:] if argv is None else argv)
  if code and 'jax' in sys.modules:  # a run that failed: with several processes, leave at once
    from stylegan_jax import distributed  # noqa: PLC0415
    distributed.exit_after_error(code)
  return code


if __name__ == '__main__':
  sys.exit(main())
