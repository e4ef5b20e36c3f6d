"""Training checkpoints: the whole run, saved asynchronously with Orbax, resumed exactly or not at all.

Layout: one directory per checkpoint, named by the images shown (the step is nimg, 9 digits):

  <workdir>/checkpoints/000012000/
    state/            TrainState (Orbax PyTree, OCDBT): G and Gs ({'params', 'noise', 'stats': {'dlatent_avg'}}),
                      D ({'params'}), G_opt and D_opt (Adam: count, mu, nu), rng (uint32 [2]), nimg (int32),
                      skipped (int32 [2]: D and G steps skipped for non-finite gradients)
    loop/metadata     JSON: the loop's host state (train.LoopState): nimg, lod, stage, iterator (the stage's
                      InputIterator.get_state()), lod_bounds (of the last Adam reset), tick, tick_start_nimg,
                      tick_metrics (per step, of the unfinished tick)
    meta/metadata     JSON: config (the resolved run config), reason ('interval', 'stage_end', 'end', 'signal'),
                      kept_steps (the stage-end checkpoints so far), num_devices, num_processes, saved_at
    _CHECKPOINT_METADATA, commit_success.txt   (Orbax's)
  <workdir>/corrupt_checkpoints/000013000/     an unusable checkpoint, moved aside at resume (never deleted)

The loop saves every `train.checkpoint_kimg`, at each stage's end, at the end of the run and on SIGTERM/SIGINT.
Kept: the newest `train.checkpoints_to_keep` and every stage-end checkpoint. A save copies the state to host
memory (numpy), then writes it in the background into `<step>.orbax-checkpoint-tmp-*`, renamed into place once
complete: a process killed at any moment leaves every earlier checkpoint intact (leftover temporary directories
are removed at the next start).

Resuming (`RunCheckpoints.restore_latest`) takes the newest checkpoint that restores completely, with the
expected shapes and finite values; an unusable one is logged with the reason and skipped, and is moved aside
once an older one restored. Its config must equal the new one except for SAFE_CHANGES, which are accepted only
with `allow_changes` (main.py --allow_config_change); anything else is refused, naming the keys.
"""

import dataclasses
import datetime
import json
import logging
import os
import time
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

from stylegan_jax import errors, train_state
from stylegan_jax.network_config import NetworkConfig

logger = logging.getLogger(__name__)

STEP_DIGITS = 9
# Config keys (with everything under them) that may change on resume with allow_changes: the run's length, how
# often it logs (ticks), draws grids and saves, the grid, where and how fast the same data is read, and what it
# evaluates (metrics). Anything
# else (model, schedule, loss, seed, data identity, training hyperparameters) would change the run: refused.
SAFE_CHANGES = ('train.total_kimg', 'train.checkpoint_kimg', 'train.checkpoints_to_keep',
                'train.image_snapshot_ticks', 'train.grid_size', 'train.grid_seed', 'schedule.tick_kimg_base',
                'schedule.tick_kimg_dict', 'data.data_dir', 'data.source_dir', 'data.num_threads',
                'data.prefetch_batches', 'metrics')


class ConfigChangeError(errors.UserError, ValueError):
  """The config differs from the checkpoint's in keys that may not change (or without allow_changes)."""


class NoUsableCheckpointError(errors.UserError, RuntimeError):
  """Checkpoints exist but none of them restores."""


@dataclasses.dataclass
class Restored:
  """A restored checkpoint: its step (nimg) and directory, the TrainState and the two JSON items."""
  step: int
  path: str
  state: train_state.TrainState
  loop: dict    # the 'loop' item, as saved
  meta: dict    # the 'meta' item: config, reason, kept_steps, ...


def config_dict(config) -> dict:
  """A ConfigDict as plain JSON (tuples become lists, keys strings)."""
  return json.loads(config.to_json())


def _flatten(tree: dict, prefix: str = '') -> dict[str, Any]:
  """{'a': {'b': 1, 'c': {}}} -> {'a.b': 1} (an empty dict has no keys)."""
  flat = {}
  for key, value in tree.items():
    flat.update(_flatten(value, f'{prefix}{key}.') if isinstance(value, dict) else {f'{prefix}{key}': value})
  return flat


def config_changes(saved: dict, config: dict) -> list[str]:
  """Dotted keys whose values differ between two config_dict()s (present in only one counts)."""
  a, b = _flatten(saved), _flatten(config)
  return sorted(k for k in a.keys() | b.keys() if a.get(k, KeyError) != b.get(k, KeyError))


def _is_safe(key: str) -> bool:
  return any(key == s or key.startswith(s + '.') for s in SAFE_CHANGES)


def check_config(saved: dict, config: dict, allow_changes: bool) -> list[str]:
  """The changed keys, if the resume may go on; raises ConfigChangeError (listing them) if not."""
  changes = config_changes(saved, config)
  unsafe = [k for k in changes if not _is_safe(k)]
  if unsafe or (changes and not allow_changes):
    old, new = _flatten(saved), _flatten(config)
    described = ', '.join(f'{k} ({old.get(k, "unset")!r} -> {new.get(k, "unset")!r})' for k in changes)
    message = f'the config differs from the checkpoint\'s: {described}.'
    if unsafe:
      message += (f' These change the run and can never change on resume: {", ".join(unsafe)} (start a new '
                  'workdir instead).')
    if not unsafe or len(unsafe) < len(changes):
      message += f' Safe to change with --allow_config_change: {", ".join(SAFE_CHANGES)}.'
    raise ConfigChangeError(message)
  return changes


def abstract_state(model: NetworkConfig, sharding: jax.sharding.Sharding) -> train_state.TrainState:
  """The TrainState's shapes and dtypes with `sharding` on every leaf: the restore target."""
  shapes = jax.eval_shape(lambda: train_state.create_train_state(model, 0))
  return jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), shapes)


@jax.jit
def _all_finite(tree) -> jax.Array:
  leaves = [x for x in jax.tree_util.tree_leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)]
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def _check_restored(step: int, target, state: train_state.TrainState, loop: dict) -> None:
  """Raises ValueError unless `state` has the target's structure, shapes and dtypes, finite values and step."""
  expected = jax.tree_util.tree_leaves_with_path(target)
  got = jax.tree_util.tree_leaves_with_path(state)
  if [p for p, _ in expected] != [p for p, _ in got]:
    raise ValueError('the state has a different structure than expected')
  for (path, want), (_, have) in zip(expected, got):
    if (have.shape, have.dtype) != (want.shape, want.dtype):
      raise ValueError(f'{jax.tree_util.keystr(path)} is {have.dtype}{list(have.shape)}, expected '
                       f'{want.dtype}{list(want.shape)}')
  if not bool(np.asarray(_all_finite(state).addressable_data(0))):
    raise ValueError('the state holds non-finite values')
  nimg = int(np.asarray(state.nimg.addressable_data(0)))
  if not nimg == loop['nimg'] == step:
    raise ValueError(f'inconsistent: directory step {step}, state nimg {nimg}, loop nimg {loop["nimg"]}')


def _host_copy(state: train_state.TrainState) -> train_state.TrainState:
  """The replicated state as numpy copies (of this process's first replica). Copies, because the compiled steps
  donate the state's buffers; numpy, because Orbax saves it in ~0.1 s instead of ~1 s of per-array device work
  (smoke model, 8 CPU devices). Orbax writes numpy leaves from process 0."""
  def copy(x):
    if not x.sharding.is_fully_replicated:
      raise ValueError(f'a checkpointed state must be replicated, got {x.sharding}')
    return np.array(x.addressable_data(0))
  return jax.tree_util.tree_map(copy, state)


def _all_processes(ok: bool) -> bool:
  """True when `ok` on every process (all of them take the same resume decision)."""
  if jax.process_count() == 1:
    return ok
  return bool(np.all(multihost_utils.process_allgather(np.asarray(ok))))


def _attempt(fn):
  """(fn(), None), or (None, 'Error: message') if it raises: any failure to read makes a checkpoint unusable."""
  try:
    return fn(), None
  except Exception as e:  # noqa: BLE001 -- reported by the caller, with the reason
    return None, f'{type(e).__name__}: {e}'


def _restore_args(target=None) -> ocp.args.Composite:
  items = dict(loop=ocp.args.JsonRestore(), meta=ocp.args.JsonRestore())
  if target is not None:
    items['state'] = ocp.args.StandardRestore(target)
  return ocp.args.Composite(**items)


@dataclasses.dataclass
class _KeepSteps(ocp.checkpoint_managers.PreservationPolicy):
  """Orbax preservation policy: keep the checkpoints of these steps (a live set)."""
  steps: set

  def should_preserve(self, checkpoints, *, context) -> list[bool]:
    return [c.step in self.steps for c in checkpoints]


class RunCheckpoints:
  """The checkpoints of a training run in <workdir>/checkpoints (see the module doc). Every process uses one."""

  def __init__(self, workdir: str, config):
    self.directory = os.path.abspath(os.path.join(workdir, 'checkpoints'))
    self.corrupt_directory = os.path.abspath(os.path.join(workdir, 'corrupt_checkpoints'))
    self._config = config_dict(config)
    self._kept: set[int] = set()
    options = ocp.CheckpointManagerOptions(
        step_format_fixed_length=STEP_DIGITS, cleanup_tmp_directories=True, enable_async_checkpointing=True,
        preservation_policy=ocp.checkpoint_managers.AnyPreservationPolicy([
            ocp.checkpoint_managers.LatestN(config.train.checkpoints_to_keep), _KeepSteps(self._kept)]))
    self._manager = ocp.CheckpointManager(self.directory, options=options)

  def steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def path(self, step: int) -> str:
    return os.path.join(self.directory, f'{step:0{STEP_DIGITS}d}')

  def restore_latest(self, target: train_state.TrainState, *, allow_changes: bool = False) -> Optional[Restored]:
    """The newest usable checkpoint (None if there is none at all), restored to `target`'s shardings.

    Raises ConfigChangeError if its config differs from this run's (see check_config) and
    NoUsableCheckpointError if no checkpoint restores. Unusable newer ones are moved aside.
    """
    steps = self.steps()
    unusable = []
    for step in reversed(steps):
      meta, reason = _attempt(lambda: self._read_meta(step))
      if _all_processes(reason is None):
        changes = check_config(meta['config'], self._config, allow_changes)
        items, reason = _attempt(lambda: self._restore(step, target))
      if not _all_processes(reason is None):
        logger.error('checkpoint %s is unusable and skipped: %s', self.path(step),
                     reason or 'another process could not restore it')
        unusable.append(step)
        continue
      if changes:
        logger.warning('resuming with changed config keys (allowed): %s', ', '.join(changes))
      if meta['num_devices'] != jax.device_count():
        logger.warning('checkpoint %d was saved on %d devices, this run has %d: minibatch stddev groups and '
                       'style mixing are per device, so the run continues, but not exactly as before', step,
                       meta['num_devices'], jax.device_count())
      self._kept.update(meta['kept_steps'])
      self._move_aside(unusable)
      return Restored(step, self.path(step), items.state, items.loop, meta)
    if steps:
      raise NoUsableCheckpointError(f'none of the checkpoints in {self.directory} restores (steps {steps}; '
                                    'reasons logged above). Move them away to start the run afresh.')
    return None

  def _read_meta(self, step: int) -> dict:
    meta = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
    if missing := {'config', 'kept_steps', 'num_devices'} - set(meta):
      raise ValueError(f'meta/metadata lacks {sorted(missing)}')
    return meta

  def _restore(self, step: int, target: train_state.TrainState):
    items = self._manager.restore(step, args=_restore_args(target))
    _check_restored(step, target, items.state, items.loop)
    return items

  def _move_aside(self, steps: list[int]) -> None:
    if steps and jax.process_index() == 0:
      os.makedirs(self.corrupt_directory, exist_ok=True)
      for step in steps:
        destination = os.path.join(self.corrupt_directory, os.path.basename(self.path(step)))
        while os.path.exists(destination):  # the same step found unusable before
          destination += '+'
        os.replace(self.path(step), destination)
        logger.warning('moved the unusable checkpoint %s to %s', self.path(step), destination)
    if steps:
      multihost_utils.sync_global_devices('stylegan_jax.checkpoint.move_aside')
      self._manager.reload()

  def save(self, state: train_state.TrainState, loop: dict, *, reason: str, keep: bool = False) -> None:
    """Starts saving at step loop['nimg']: returns once the previous save is complete and this state is copied to
    host memory. `keep`: never delete it (stage ends)."""
    step = loop['nimg']
    if keep:
      self._kept.add(step)
    meta = dict(config=self._config, reason=reason, kept_steps=sorted(self._kept),
                num_devices=jax.device_count(), num_processes=jax.process_count(),
                saved_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'))
    start = time.time()
    self._manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(_host_copy(state)),
                                                     loop=ocp.args.JsonSave(loop), meta=ocp.args.JsonSave(meta)),
                       force=True)  # waits for the previous save to be complete first
    logger.info('saving checkpoint %s (%s) in the background (training waited %.2f s)', self.path(step), reason,
                time.time() - start)

  def close(self) -> None:
    """Waits for a pending save to be complete, then releases the manager."""
    self._manager.wait_until_finished()
    self._manager.close()


def load(workdir: str, step: Optional[int] = None, sharding: Optional[jax.sharding.Sharding] = None) -> Restored:
  """A checkpoint of `workdir` (default the newest) for reading, e.g. to export its networks; on this process's
  first device unless `sharding` is given. Raises if it is missing or unusable."""
  directory = os.path.abspath(os.path.join(workdir, 'checkpoints'))
  manager = ocp.CheckpointManager(directory, options=ocp.CheckpointManagerOptions(
      step_format_fixed_length=STEP_DIGITS, read_only=True, create=False, save_interval_steps=0))
  try:
    steps = sorted(manager.all_steps())
    if not steps:
      raise FileNotFoundError(f'no checkpoints in {directory}')
    step = steps[-1] if step is None else step
    if step not in steps:
      raise FileNotFoundError(f'no checkpoint {step} in {directory} (it has {steps})')
    meta = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
    model = NetworkConfig.from_dict(meta['config']['model'])
    target = abstract_state(model, sharding or jax.sharding.SingleDeviceSharding(jax.local_devices()[0]))
    items = manager.restore(step, args=_restore_args(target))
    _check_restored(step, target, items.state, items.loop)
    return Restored(step, os.path.join(directory, f'{step:0{STEP_DIGITS}d}'), items.state, items.loop, meta)
  finally:
    manager.close()
