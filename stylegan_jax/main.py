"""Training entry point: `python -m stylegan_jax.main --config stylegan_jax/configs/default.py --workdir workdir/quickstart`.

`--dry_run` validates the config, prints it with the timetable of every stage (timetable.py) and exits without
touching the workdir; `--dry_run_timing` adds wall-time estimates from timing each stage's step pair here.

The same command on a workdir with a checkpoint resumes the run (checkpoint.py); a changed config is refused
unless only checkpoint.SAFE_CHANGES keys changed and --allow_config_change is given (exit code 1). SIGTERM or
SIGINT saves a checkpoint at the next step and exits with code 0.

Multi-host: start one process per host with the same flags plus --coordinator_address, --num_processes and
--process_id (jax.distributed); each process reads its own part of every minibatch.
"""

import os
import sys

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from stylegan_jax import checkpoint, config_validation, errors, timetable, train

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', None, 'Directory for metrics, sample grids and checkpoints.')
flags.DEFINE_bool('allow_config_change', False, 'Resume although the config changed, when only these keys '
                  f'changed: {", ".join(checkpoint.SAFE_CHANGES)}. Other changes are always refused.')
flags.DEFINE_string('compilation_cache_dir', None, "JAX's persistent compilation cache, so that a resumed run "
                    "reuses the compiled steps (default <workdir>/compile_cache; '' turns it off).")
flags.DEFINE_string('coordinator_address', None, 'host:port of process 0, to train on several hosts.')
flags.DEFINE_integer('num_processes', 1, 'Number of processes (hosts) with --coordinator_address.')
flags.DEFINE_integer('process_id', 0, 'This process with --coordinator_address.')
flags.DEFINE_bool('dry_run', False, 'Validate the config, print it and the timetable of every stage, and exit '
                  'without touching the workdir.')
flags.DEFINE_bool('dry_run_timing', False, 'With --dry_run: also compile and time each stage\'s step pair here '
                  'and estimate the wall time.')
config_flags.DEFINE_config_file('config', None, 'Training config file (stylegan_jax/configs/*.py).', lock_config=True)
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if FLAGS.dry_run or FLAGS.dry_run_timing:
    return dry_run(FLAGS.config, timing=FLAGS.dry_run_timing)
  if FLAGS.coordinator_address:
    jax.distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
  cache_dir = os.path.join(FLAGS.workdir, 'compile_cache') if FLAGS.compilation_cache_dir is None \
      else FLAGS.compilation_cache_dir
  if cache_dir:
    jax.config.update('jax_compilation_cache_dir', os.path.abspath(cache_dir))
  logging.info('devices: %s', jax.devices())
  try:
    train.train(FLAGS.config, FLAGS.workdir, allow_config_change=FLAGS.allow_config_change)
  except (checkpoint.ConfigChangeError, checkpoint.NoUsableCheckpointError) as e:
    logging.error('not resuming %s: %s', FLAGS.workdir, e)
    return 1
  return 0


def dry_run(config, timing: bool = False) -> int:
  """Validates `config` and prints it and its timetable (timed with `timing`). Writes nothing."""
  config_validation.validate(config, num_devices=jax.device_count())
  stages = timetable.timetable(config)
  print(config, flush=True)
  print(f'timetable ({jax.device_count()} {jax.devices()[0].platform} devices):')
  print(timetable.format_timetable(stages, timetable.time_stages(config, stages) if timing else None), flush=True)
  return 0


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with unknown --config.* keys refused first as one errors.UsageError."""
  config_validation.check_override_keys(argv)
  return FLAGS(argv)


def run():
  try:
    app.run(main, flags_parser=parse_flags)
  except errors.UserError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(e.exit_code)


if __name__ == '__main__':
  run()
