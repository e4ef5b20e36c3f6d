"""Several processes through jax.distributed on localhost: 2 processes x 2 CPU devices train as 1 process x 4
devices; different configs, process counts and device layouts are refused at start-up with what differs.

The runs are the smoke networks on a folder of random 8x8 images (an instant prepare), starting at 4x4: 3 steps of
the global batch 8. Every run is a `stylegan_jax.main` subprocess with the XLA device count and matmul precision
it needs.
"""

import os
import pathlib
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest
from PIL import Image

from stylegan_jax import checkpoint, distributed, errors
from stylegan_jax.configs import smoke
from stylegan_jax.data import prepare

REPO = pathlib.Path(__file__).resolve().parents[1]
STEPS, BATCH = 3, 8


@pytest.fixture(scope='module')
def data(tmp_path_factory):
  """The config flags of a prepared folder of 32 random 8x8 gray images."""
  root = tmp_path_factory.mktemp('data')
  (root / 'images').mkdir()
  rs = np.random.RandomState(0)
  for i in range(32):
    Image.fromarray(rs.randint(0, 256, (8, 8), np.uint8)).save(root / 'images' / f'{i}.png')
  config = smoke.get_config()
  config.data.update(name='image_folder', source_dir=str(root / 'images'), data_dir=str(root / 'prepared'),
                     resolution=8)
  prepare.prepare(config.data)
  return [f'--config.data.{k}={config.data[k]}' for k in ('name', 'source_dir', 'data_dir', 'resolution')]


def free_port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def command(workdir, data, *flags):
  return [sys.executable, '-m', 'stylegan_jax.main', '--config=smoke', f'--workdir={workdir}', *data,
          '--config.model.resolution=8', '--config.schedule.lod_initial_resolution=4',
          f'--config.train.total_kimg={STEPS * BATCH / 1000}', '--compilation_cache_dir=', *flags]


def start(args, log_path, devices, env=None):
  """A subprocess in the repo on `devices` CPU devices, with this process's matmul precision; output to a log.
  `env` adds variables (None removes one)."""
  env = {**os.environ, 'JAX_PLATFORMS': 'cpu', 'XLA_FLAGS': f'--xla_force_host_platform_device_count={devices}',
         'JAX_DEFAULT_MATMUL_PRECISION': str(jax.config.jax_default_matmul_precision), **(env or {})}
  env = {k: v for k, v in env.items() if v is not None}
  with open(log_path, 'w') as log:
    return subprocess.Popen(args, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


def start_processes(workdir, data, tag, flags=((), ()), devices=2):
  """len(flags) processes of one run on localhost (jax.distributed); flags[i] go to process i only."""
  address = f'localhost:{free_port()}'
  logs = [workdir.parent / f'{tag}{i}.log' for i in range(len(flags))]
  return [start(command(workdir, data, f'--coordinator_address={address}', f'--num_processes={len(flags)}',
                        f'--process_id={i}', *extra), logs[i], devices)
          for i, extra in enumerate(flags)], logs


def finish(processes, logs, timeout=600):
  codes = [p.wait(timeout=timeout) for p in processes]
  return codes, [log.read_text() for log in logs]


# Leaves whose gradient is exactly zero in exact arithmetic at the official init (instance norm cancels the 4x4
# const's bias; tests/test_steps.py initial_state): rounding noise, different for every reduction order, sets the
# sign of Adam's first steps, so they differ by up to 2 lr between device layouts.
ZERO_GRADIENT = "['synthesis']['4x4']['Const']['bias']"


def assert_close_state(a, b, rtol=1e-3):
  """Leafwise |a - b| <= rtol * (|b| + max |b| of the leaf): float32 reduction-order differences, as Adam
  (which divides by the gradient's running RMS) amplifies them; ZERO_GRADIENT leaves skipped."""
  leaves_a, leaves_b = jax.tree_util.tree_leaves_with_path(a), jax.tree_util.tree_leaves_with_path(b)
  assert [p for p, _ in leaves_a] == [p for p, _ in leaves_b]
  compared = 0
  for (path, x), (_, y) in zip(leaves_a, leaves_b):
    name = jax.tree_util.keystr(path)
    x, y = np.asarray(x), np.asarray(y)
    if ZERO_GRADIENT in name or not y.size:
      continue
    if not np.issubdtype(y.dtype, np.floating):
      np.testing.assert_array_equal(x, y, err_msg=name)
      continue
    np.testing.assert_allclose(x, y, rtol=rtol, atol=rtol * float(np.max(np.abs(y))), err_msg=name)
    compared += 1
  assert compared > 100


def test_two_processes_train_as_one_process_with_four_devices(data, tmp_path):
  """3 steps on 2 processes x 2 devices (jax.distributed, collectives over TCP) end where 1 process x 4 devices
  ends: the same global batches on the same devices (process p's devices hold rows [pB/2, (p+1)B/2)), the same
  per-device minibatch-stddev groups and style-mixing draws; float32 tolerance for the reduction order."""
  one = start(command(tmp_path / 'one', data), tmp_path / 'one.log', devices=4)
  processes, logs = start_processes(tmp_path / 'two', data, 'two')
  codes, texts = finish([one] + processes, [tmp_path / 'one.log'] + logs)
  assert codes == [0, 0, 0], '\n'.join(t[-2000:] for t in texts)
  assert all('config ' in t and 'is the same on all 2 processes' in t for t in texts[1:]), texts[1][-2000:]
  single, double = (checkpoint.load(str(tmp_path / name)) for name in ('one', 'two'))
  assert single.step == double.step == STEPS * BATCH
  assert double.meta['num_processes'] == 2 and double.meta['num_devices'] == single.meta['num_devices'] == 4
  assert_close_state(jax.device_get(double.state), jax.device_get(single.state))
  assert double.loop['iterator'] == single.loop['iterator']


def test_different_configs_are_refused_naming_the_keys(data, tmp_path):
  processes, logs = start_processes(tmp_path / 'run', data, 'run',
                                    flags=((), ('--config.loss.r1_gamma=2.0', '--config.seed=3')))
  codes, texts = finish(processes, logs, timeout=120)
  expected = ('the processes have different configs: process 1: loss.r1_gamma=2.0 (process 0: 1.0), seed=3 '
              '(process 0: 0)')
  assert codes == [2, 2] and all(expected in t for t in texts), '\n'.join(t[-2000:] for t in texts)
  assert not (tmp_path / 'run' / 'checkpoints').exists()


def test_auto_outside_a_cluster_is_a_usage_error(data, tmp_path):
  process = start(command(tmp_path / 'run', data, '--distributed=auto'), tmp_path / 'run.log', 1,
                  env={'SLURM_JOB_ID': None, 'OMPI_MCA_orte_hnp_uri': None})  # in case CI runs under either
  assert process.wait(timeout=120) == 2
  assert 'error: --distributed=auto: JAX found no cluster environment' in (tmp_path / 'run.log').read_text()


@pytest.mark.parametrize('args,message', [
    ((None, None, 2, None), '--num_processes/--process_id need --coordinator_address'),
    (('auto', 'localhost:1234', None, None), '--distributed=auto finds the coordinator itself'),
    ((None, 'localhost:1234', 2, None), '--coordinator_address needs --num_processes and --process_id'),
])
def test_contradictory_flags_are_refused_before_starting(args, message):
  with pytest.raises(errors.UsageError, match=message):
    distributed.start(*args)


def test_topology_checks():
  distributed.check_topology([0, 0, 1, 1], 2, None)
  distributed.check_topology([0, 0, 1, 1], 2, 2)
  with pytest.raises(errors.UsageError, match=r'--num_processes=4, but the cluster has 2 processes'):
    distributed.check_topology([0, 0, 1, 1], 2, 4)
  with pytest.raises(errors.UsageError, match=r'different numbers of devices \(process 0: 2, process 1: 1\)'):
    distributed.check_topology([0, 0, 1], 2, None)


def test_config_fingerprint_and_differing_keys():
  a, b = smoke.get_config(), smoke.get_config()
  assert distributed.config_fingerprint(a) == distributed.config_fingerprint(b)
  b.train.total_kimg = 1.0
  b.schedule.minibatch_dict = {'8': 4}
  digest_a, text_a = distributed.config_fingerprint(a)
  digest_b, text_b = distributed.config_fingerprint(b)
  assert digest_a != digest_b
  assert distributed.differing_keys(text_a, text_b) == ['schedule.minibatch_dict', 'train.total_kimg']
