"""Training entry point: `python -m stylegan_jax.main --config configs/default.py --workdir workdir/quickstart`.

Multi-host: start one process per host with the same flags plus --coordinator_address, --num_processes and
--process_id (jax.distributed); each process reads its own part of every minibatch.
"""

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from stylegan_jax import train

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', None, 'Directory for metrics, sample grids and checkpoints.')
flags.DEFINE_string('coordinator_address', None, 'host:port of process 0, to train on several hosts.')
flags.DEFINE_integer('num_processes', 1, 'Number of processes (hosts) with --coordinator_address.')
flags.DEFINE_integer('process_id', 0, 'This process with --coordinator_address.')
config_flags.DEFINE_config_file('config', None, 'Training config file (configs/*.py).', lock_config=True)
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if FLAGS.coordinator_address:
    jax.distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
  logging.info('devices: %s', jax.devices())
  train.train(FLAGS.config, FLAGS.workdir)


def run():
  app.run(main)


if __name__ == '__main__':
  run()
