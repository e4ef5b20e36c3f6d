"""Several processes (hosts) through JAX's own distributed runtime: start-up, agreement checks, a lost process.

Start-up (`start`): `--distributed=auto` lets `jax.distributed.initialize()` find the cluster (Cloud TPU VM pod
slices, SLURM, Open MPI; or name one of CLUSTERS); plain hosts pass `--coordinator_address`, `--num_processes`
and `--process_id`; a single process passes nothing. Every process then checks that all processes see the same
number of devices (and, when `--num_processes` is given, that the cluster has that many processes), and
`check_same_config` compares a hash of the resolved config across processes through the distributed key-value
store, refusing with the differing keys.

A lost process: JAX's coordination service declares a process dead when its heartbeats stop for
`heartbeat_timeout` seconds and then terminates every other process ("Terminating process because the JAX
distributed service detected fatal errors"). A collective that fails earlier (CPU collectives over TCP notice a
closed connection at once) ends training with `ProcessLostError`; `exit_after_error` then leaves without JAX's
shutdown barrier, which would wait for the dead process. Either way a survivor exits within about
`heartbeat_timeout` seconds of the loss; the same launch then resumes from the last complete checkpoint.
"""

import hashlib
import json
import logging
import os
import sys
import time
from typing import Optional, Sequence

import jax
from jax._src import clusters as jax_clusters  # the detection methods, to refuse one that finds nothing
from jax._src import distributed as jax_distributed  # its key-value store client, as Orbax uses it

from stylegan_jax import errors

logger = logging.getLogger(__name__)

# JAX's cluster detection methods (jax._src.clusters) a user can name; 'auto' tries them in JAX's order.
CLUSTERS = ('auto', 'slurm', 'ompi', 'gcetpu', 'gketpu', 'mpi4py')
HEARTBEAT_TIMEOUT_S = 100  # JAX's default (jax.distributed.initialize)
_KEY_TIMEOUT_MS = 300_000  # how long a process waits for the others' configs (JAX's initialization timeout)
_EXIT_LINGER_S = 1.0  # process 0's wait after the others' exit keys (exit_after_error)
_EXIT_GRACE_S = 5  # how long a failed process 0 waits for the others to fail too before it leaves


class ProcessLostError(errors.UserError):
  """A collective failed while several processes train: another process most likely died."""


def start(cluster: Optional[str], coordinator_address: Optional[str], num_processes: Optional[int],
          process_id: Optional[int], heartbeat_timeout: int = HEARTBEAT_TIMEOUT_S) -> None:
  """Initializes jax.distributed as the flags ask (nothing for a single process) and checks the topology.

  Call before anything touches a JAX device. Raises errors.UsageError for contradictory flags, an undetected
  cluster or a process count or device layout that does not match.
  """
  explicit = coordinator_address is not None
  if cluster and explicit:
    raise errors.UsageError(f'--distributed={cluster} finds the coordinator itself: leave out '
                            '--coordinator_address (--num_processes may stay, as the count to expect)')
  if not cluster and not explicit:
    if num_processes not in (None, 1) or process_id not in (None, 0):
      raise errors.UsageError('--num_processes/--process_id need --coordinator_address=HOST:PORT (plain hosts) '
                              'or --distributed=auto (SLURM, Open MPI, Cloud TPU VMs)')
    return
  if explicit and (num_processes is None or process_id is None):
    raise errors.UsageError('--coordinator_address needs --num_processes and --process_id')
  if cluster not in (None, 'auto') and not any(
      env.name == cluster and env.is_env_present() for env in jax_clusters.ClusterEnv._cluster_types):
    _no_cluster(cluster)  # (JAX would go on with the method's missing variables)
  kwargs = dict(heartbeat_timeout_seconds=heartbeat_timeout)
  try:
    if explicit:
      jax.distributed.initialize(coordinator_address, num_processes, process_id, **kwargs)
    else:
      jax.distributed.initialize(cluster_detection_method=None if cluster == 'auto' else cluster, **kwargs)
  except ValueError as e:  # JAX's wording for unset or inconsistent parameters
    if not explicit and 'coordinator_address' in str(e):
      _no_cluster(cluster)
    raise errors.UsageError(f'jax.distributed: {e}') from None
  state = jax_distributed.global_state
  logger.info('process %d of %d (coordinator %s, %s); a lost process is noticed within %d s', jax.process_index(),
              jax.process_count(), state.coordinator_address, 'flags' if explicit else f'detected: {cluster}',
              heartbeat_timeout)
  check_topology([d.process_index for d in jax.devices()], jax.process_count(),
                 None if explicit else num_processes)


def _no_cluster(cluster: str):
  found = 'cluster environment (SLURM, Open MPI, Cloud TPU VM)' if cluster == 'auto' else f'{cluster} environment'
  raise errors.UsageError(f'--distributed={cluster}: JAX found no {found} here; on plain hosts pass '
                          '--coordinator_address=HOST:PORT --num_processes=N --process_id=I') from None


def check_topology(device_processes: Sequence[int], process_count: int, expected_processes: Optional[int]) -> None:
  """Refuses a cluster with another process count than `expected_processes` (None: any) or processes that see
  different numbers of devices. `device_processes`: the process index of every global device."""
  if expected_processes is not None and process_count != expected_processes:
    raise errors.UsageError(f'--num_processes={expected_processes}, but the cluster has {process_count} '
                            'processes (check the job\'s task count)')
  counts = [sum(1 for p in device_processes if p == i) for i in range(process_count)]
  if len(set(counts)) > 1:
    listed = ', '.join(f'process {i}: {n}' for i, n in enumerate(counts))
    raise errors.UsageError(f'the processes see different numbers of devices ({listed}): start one process per '
                            'host or per device everywhere (SLURM: --gpus-per-task equal for every task)')


def _flatten(tree: dict, prefix: str = '') -> dict:
  """{'a': {'b': 1}, 't': {'8': 4}} -> {'a.b': 1, 't': {'8': 4}}: tables by resolution stay values."""
  flat = {}
  for key, value in tree.items():
    group = isinstance(value, dict) and not all(str(k).isdigit() for k in value)
    flat.update(_flatten(value, f'{prefix}{key}.') if group else {f'{prefix}{key}': value})
  return flat


def config_fingerprint(config) -> tuple[str, str]:
  """(sha1 hex, canonical JSON) of a resolved config: its flattened keys and values."""
  text = json.dumps(_flatten(config.to_dict()), sort_keys=True, default=repr)
  return hashlib.sha1(text.encode()).hexdigest(), text


def differing_keys(a: str, b: str) -> list[str]:
  """The keys whose values differ between two config_fingerprint JSONs (present in one only counts)."""
  x, y = json.loads(a), json.loads(b)
  return sorted(k for k in x.keys() | y.keys() if x.get(k, KeyError) != y.get(k, KeyError))


_checks = 0  # config checks so far in this process (each uses its own keys)


def check_same_config(config) -> None:
  """With several processes: every process publishes its config's fingerprint in the distributed key-value
  store and compares the others' with its own; different configs are refused on every process, naming the
  keys. No-op for a single process."""
  global _checks
  if jax.process_count() == 1:
    return
  client = jax_distributed.global_state.client
  _checks += 1
  prefix = f'stylegan_jax/config/{_checks}'
  digest, text = config_fingerprint(config)
  client.key_value_set(f'{prefix}/{jax.process_index()}', text)
  others = {i: client.blocking_key_value_get(f'{prefix}/{i}', _KEY_TIMEOUT_MS) for i in range(jax.process_count())}
  client.wait_at_barrier(f'{prefix}/read', _KEY_TIMEOUT_MS)  # nobody leaves (and may exit) before all have read
  differing = {i: differing_keys(others[0], other) for i, other in others.items() if other != others[0]}
  if differing:
    first = json.loads(others[0])
    lines = '; '.join(f'process {i}: ' + ', '.join(
        f'{k}={json.loads(others[i]).get(k, "unset")!r} (process 0: {first.get(k, "unset")!r})' for k in keys)
        for i, keys in differing.items())
    raise errors.UsageError(f'the processes have different configs: {lines}. Start every process with the same '
                            '--config and overrides')
  logger.info('config %s is the same on all %d processes', digest[:12], jax.process_count())


def failed_collective(error: BaseException) -> jax.errors.JaxRuntimeError | None:
  """The JAX runtime error in `error`'s chain (itself, or what it was raised from) that is not out-of-memory:
  with several processes, a collective that failed (a peer's connection closed) or the coordination service
  reporting a dead process."""
  while error is not None:
    if isinstance(error, jax.errors.JaxRuntimeError) and 'RESOURCE_EXHAUSTED' not in str(error):
      return error
    error = error.__cause__ or error.__context__
  return None


def lost_process(error: Exception, nimg: int) -> ProcessLostError:
  """The error to raise for a collective that failed at `nimg` images while several processes train."""
  return ProcessLostError(
      f'process {jax.process_index()}: a collective failed at kimg {nimg / 1000:.3f}, most likely because '
      f'another of the {jax.process_count()} processes died ({" ".join(str(error).split())[:300]}). Run the same '
      'launch again to resume from the last complete checkpoint')


def exit_after_error(code: int) -> None:
  """Ends a process of a distributed run that failed, now: without JAX's shutdown barrier, which waits for every
  process (a dead one never comes) until the heartbeat timeout aborts it. Process 0 hosts the coordination
  service, so it leaves last: after the others that fail with it (up to _EXIT_GRACE_S)."""
  if not code or not jax.distributed.is_initialized():
    return
  client = jax_distributed.global_state.client
  sys.stdout.flush()
  sys.stderr.flush()
  logging.shutdown()
  try:
    client.key_value_set(f'stylegan_jax/exit/{jax.process_index()}', str(code))
    if jax.process_index() == 0:
      deadline = time.time() + _EXIT_GRACE_S
      for i in range(1, jax.process_count()):
        client.blocking_key_value_get(f'stylegan_jax/exit/{i}', max(1, int((deadline - time.time()) * 1000)))
      # The others exit right after setting their key; once the service is gone, a process still alive is
      # aborted by JAX's error polling (SIGABRT instead of its exit code), so give them that moment.
      time.sleep(_EXIT_LINGER_S)
  except Exception:  # noqa: BLE001 (a process or the service is gone: nothing left to wait for)
    pass
  os._exit(code)
