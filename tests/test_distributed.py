"""Several processes through jax.distributed on localhost: 2 processes x 2 CPU devices, started by the SLURM
recipe's per-task line under the variables SLURM sets, train as 1 process x 4 devices; different configs, process
counts and device layouts are refused at start-up with what differs; a lost process stops the other (slow).

The runs are the smoke networks on a folder of random 8x8 images (an instant prepare), starting at 4x4: 3 steps of
the global batch 8. Every run is a `stylegan_jax.main` subprocess with the XLA device count and matmul precision
it needs.
"""

import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from PIL import Image
from states import assert_same_state

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


TRAIN = [sys.executable, '-m', 'stylegan_jax.main']


def flags(workdir, data):
  """The train flags of these runs."""
  return ['--config=smoke', f'--workdir={workdir}', *data, '--config.model.resolution=8',
          '--config.schedule.lod_initial_resolution=4', f'--config.train.total_kimg={STEPS * BATCH / 1000}',
          '--compilation_cache_dir=']


def command(workdir, data, *extra):
  return TRAIN + flags(workdir, data) + list(extra)


def start(args, log_path, devices, env=None):
  """A subprocess in the repo on `devices` CPU devices, with this process's matmul precision; output to a log.
  `env` adds variables (None removes one)."""
  env = {**os.environ, 'JAX_PLATFORMS': 'cpu', 'XLA_FLAGS': f'--xla_force_host_platform_device_count={devices}',
         'JAX_DEFAULT_MATMUL_PRECISION': str(jax.config.jax_default_matmul_precision), **(env or {})}
  env = {k: v for k, v in env.items() if v is not None}
  with open(log_path, 'w') as log:
    return subprocess.Popen(args, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


def start_processes(workdir, data, tag, extra=((), ()), devices=2):
  """len(extra) processes of one run on localhost (jax.distributed); extra[i] are flags for process i only."""
  address = f'localhost:{free_port()}'
  logs = [workdir.parent / f'{tag}{i}.log' for i in range(len(extra))]
  return [start(command(workdir, data, f'--coordinator_address={address}', f'--num_processes={len(extra)}',
                        f'--process_id={i}', *more), logs[i], devices)
          for i, more in enumerate(extra)], logs


def start_slurm_tasks(workdir, data, port):
  """experiments/launch/slurm_task.sh (srun's per-task line) as the 2 tasks of a SLURM job step on localhost: the
  variables SLURM sets and JAX's SlurmCluster reads (JAX_COORDINATOR_PORT instead of the port it derives from
  the job id)."""
  script = REPO / 'experiments' / 'launch' / 'slurm_task.sh'
  logs = [workdir.parent / f'task{i}.log' for i in range(2)]
  return [start(['bash', str(script), *flags(workdir, data)], logs[i], 2, env={
      'SLURM_JOB_ID': '4242', 'SLURM_STEP_NODELIST': 'localhost', 'SLURM_NTASKS': '2', 'SLURM_PROCID': str(i),
      'SLURM_LOCALID': str(i), 'JAX_COORDINATOR_PORT': str(port), 'TRAIN': ' '.join(TRAIN)})
          for i in range(2)], logs


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


@pytest.fixture(scope='module')
def runs(data, tmp_path_factory):
  """The run on 1 process x 4 devices and on 2 SLURM tasks x 2 devices, side by side: their workdirs, the
  coordinator port and the tasks' logs."""
  root = tmp_path_factory.mktemp('runs')
  one = start(command(root / 'one', data), root / 'one.log', devices=4)
  port = free_port()
  tasks, logs = start_slurm_tasks(root / 'two', data, port)
  codes, texts = finish([one] + tasks, [root / 'one.log'] + logs)
  assert codes == [0, 0, 0], '\n'.join(t[-2000:] for t in texts)
  return root / 'one', root / 'two', port, texts[1:]


def test_two_processes_train_as_one_process_with_four_devices(runs):
  """3 steps on 2 processes x 2 devices (jax.distributed, collectives over TCP) end where 1 process x 4 devices
  ends: the same global batches on the same devices (process p's devices hold rows [pB/2, (p+1)B/2)), the same
  per-device minibatch-stddev groups and style-mixing draws; float32 tolerance for the reduction order."""
  one, two, _, texts = runs
  assert all('config ' in t and 'is the same on all 2 processes' in t for t in texts), texts[0][-2000:]
  single, double = (checkpoint.load(str(workdir)) for workdir in (one, two))
  assert single.step == double.step == STEPS * BATCH
  assert double.meta['num_processes'] == 2 and double.meta['num_devices'] == single.meta['num_devices'] == 4
  assert_close_state(jax.device_get(double.state), jax.device_get(single.state))
  assert double.loop['iterator'] == single.loop['iterator']


def test_slurm_task_line_starts_one_process_per_task(runs):
  """The tasks found each other through JAX's SLURM detection: rank SLURM_PROCID of SLURM_NTASKS, the coordinator
  on the step's first node."""
  port, texts = runs[2], runs[3]
  assert all(f'process {i} of 2 (coordinator localhost:{port}, detected: slurm)' in texts[i] for i in range(2))


def test_launch_scripts_parse():
  for script in sorted((REPO / 'experiments' / 'launch').iterdir()):
    assert subprocess.run(['bash', '-n', str(script)], capture_output=True).returncode == 0, script


def test_different_configs_are_refused_naming_the_keys(data, tmp_path):
  processes, logs = start_processes(tmp_path / 'run', data, 'run',
                                    extra=((), ('--config.loss.r1_gamma=2.0', '--config.seed=3')))
  codes, texts = finish(processes, logs, timeout=120)
  expected = ('the processes have different configs: process 1: loss.r1_gamma=2.0 (process 0: 10.0), seed=3 '
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


def test_a_named_cluster_that_is_not_there_is_refused(monkeypatch):
  monkeypatch.delenv('SLURM_JOB_ID', raising=False)
  with pytest.raises(errors.UsageError, match='--distributed=slurm: JAX found no slurm environment here'):
    distributed.start('slurm', None, None, None)


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


def wait_for(process, log_path, pattern, count, timeout=300):
  """Waits until `pattern` occurs `count` times in the log; False if the process ended first."""
  deadline = time.time() + timeout
  while time.time() < deadline:
    if len(re.findall(pattern, log_path.read_text())) >= count:
      return True
    if process.poll() is not None:
      return False
    time.sleep(0.02)
  raise TimeoutError(f'no {count} x {pattern!r} in {log_path} after {timeout} s')


HEARTBEAT_S = 10
LOST = (r'a collective failed at kimg [\d.]+, most likely because another of the 2 processes died|'
        r'Terminating process because the JAX distributed service detected fatal errors')


@pytest.mark.slow
def test_lost_process_stops_the_other_in_bounded_time_and_the_run_resumes(data, tmp_path):
  """SIGKILL process 1 of 2 after process 0's second checkpoint: process 0 exits non-zero within the heartbeat
  timeout (plus start-up slack) saying why, instead of hanging in a collective; the same launch then resumes
  from the newest complete checkpoint and ends bitwise where an uninterrupted 2-process run ends."""
  long_run = ['--config.train.total_kimg=0.064', '--config.train.checkpoint_kimg=0.008', '--allow_config_change',
              f'--heartbeat_timeout={HEARTBEAT_S}', f'--compilation_cache_dir={tmp_path / "cache"}',
              '--verbosity=1']  # verbosity 1: the 'saving checkpoint' lines
  processes, logs = start_processes(tmp_path / 'reference', data, 'reference', ((*long_run,),) * 2)
  assert finish(processes, logs)[0] == [0, 0]

  workdir = tmp_path / 'killed'
  processes, logs = start_processes(workdir, data, 'killed', ((*long_run,),) * 2)
  assert wait_for(processes[0], logs[0], r'saving checkpoint \S*/\d+ ', count=2), logs[0].read_text()[-3000:]
  processes[1].send_signal(signal.SIGKILL)
  killed = time.time()
  code = processes[0].wait(timeout=HEARTBEAT_S + 60)
  elapsed = time.time() - killed
  text = logs[0].read_text()
  print(f'process 0 exited with {code} {elapsed:.1f} s after process 1 was killed')
  assert code != 0 and elapsed < HEARTBEAT_S + 30, (code, elapsed, text[-3000:])
  assert re.search(LOST, text), text[-3000:]
  assert processes[1].wait() == -signal.SIGKILL

  committed = max(int(p.name) for p in (workdir / 'checkpoints').iterdir() if p.name.isdigit())
  processes, logs = start_processes(workdir, data, 'resumed', ((*long_run,),) * 2)
  codes, texts = finish(processes, logs)
  assert codes == [0, 0], texts[0][-3000:]
  assert all(re.search(rf'resuming from \S*/0*{committed} ', t) for t in texts), texts[0][-3000:]
  assert_same_state(jax.device_get(checkpoint.load(str(workdir)).state),
                    jax.device_get(checkpoint.load(str(tmp_path / 'reference')).state))


def test_a_failed_collective_is_found_in_the_error_chain():
  """A dead peer surfaces as a JAX runtime error, possibly wrapped (a checkpoint save that failed on it)."""
  collective = jax.errors.JaxRuntimeError('UNKNOWN: Gloo AllGather failed: Connection reset by peer')
  try:
    try:
      raise collective
    except jax.errors.JaxRuntimeError as e:
      raise checkpoint.CheckpointSaveError('saving checkpoint 16 failed') from e
  except checkpoint.CheckpointSaveError as wrapped:
    assert distributed.failed_collective(wrapped) is collective
  assert distributed.failed_collective(ValueError('no')) is None
  assert distributed.failed_collective(jax.errors.JaxRuntimeError('RESOURCE_EXHAUSTED: out of memory')) is None
  message = str(distributed.lost_process(collective, 24))
  assert 'a collective failed at kimg 0.024, most likely because another of the' in message
  assert 'Run the same launch again to resume from the last complete checkpoint' in message
