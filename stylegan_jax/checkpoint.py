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
                      kept_steps (the stage-end checkpoints so far), num_devices, num_processes, saved_at,
                      class_names (conditional runs: the dataset's class names, for export)
    _CHECKPOINT_METADATA, commit_success.txt   (Orbax's)
  <workdir>/corrupt_checkpoints/000013000/     an unusable checkpoint, moved aside at resume (never deleted)

The loop saves every `train.checkpoint_kimg`, at each stage's end, at the end of the run and on SIGTERM/SIGINT.
A save that fails in the background (e.g. no space left on device) is reported at the next step as a
CheckpointSaveError naming the checkpoint and the bytes it needs; training stops and the earlier checkpoints stay
usable. Before each save, less free space than the previous checkpoint's size is warned about.
Kept: the newest `train.checkpoints_to_keep` and every stage-end checkpoint. A save copies the state to host
memory (numpy), then writes it in the background into `<step>.orbax-checkpoint-tmp-*`, renamed into place once
complete: a process killed at any moment leaves every earlier checkpoint intact (leftover temporary directories
are removed at the next start).

Resuming (`RunCheckpoints.restore_latest`) takes the newest checkpoint that restores completely, with the
expected shapes and finite values; an unusable one is logged with the reason and skipped, and is moved aside
once an older one restored. Its config must equal the new one except for SAFE_CHANGES, which are accepted only
with `allow_changes` (main.py --allow_config_change); anything else is refused, naming the keys.
"""

import contextlib
import dataclasses
import datetime
import errno
import json
import logging
import os
import shutil
import sys
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
# often it logs (ticks), draws grids and saves, the grid, where and how fast the same data is read, when the steps
# compile (the same programs), what it evaluates (metrics), and the compute precision and form (train.compute_dtype,
# train.matmul_precision, train.D_fused_downscale: the same model at another rounding). Anything
# else (model, schedule, loss, seed, data identity, training hyperparameters) would change the run: refused.
SAFE_CHANGES = ('train.total_kimg', 'train.checkpoint_kimg', 'train.checkpoints_to_keep',
                'train.image_snapshot_ticks', 'train.grid_size', 'train.grid_seed', 'schedule.tick_kimg_base',
                'schedule.tick_kimg_dict', 'data.data_dir', 'data.source_dir', 'data.num_threads',
                'data.prefetch_batches', 'metrics', 'train.compute_dtype', 'train.matmul_precision',
                'train.compile_ahead', 'train.D_fused_downscale')


class ConfigChangeError(errors.UserError, ValueError):
  """The config differs from the checkpoint's in keys that may not change (or without allow_changes)."""


class NoUsableCheckpointError(errors.UserError, RuntimeError):
  """Checkpoints exist but none of them restores."""


class CheckpointSaveError(errors.UserError, OSError):
  """A checkpoint could not be written (e.g. the disk is full); the earlier ones are intact."""


def _no_space(error: BaseException) -> bool:
  """Whether `error` or an error it was raised from (the chain of a background save) is ENOSPC."""
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    if isinstance(error, OSError) and error.errno == errno.ENOSPC or 'No space left on device' in str(error):
      return True
    error = error.__cause__ or error.__context__
  return False


class _OrbaxNoiseFilter(logging.Filter):
  """Drops two kinds of Orbax log records that would only mislead: the background-thread errors (tracebacks) of
  a disk-full save, which CheckpointSaveError reports in one line, and 'Given directory is read only', which
  `load` asks for on purpose (it never writes)."""

  def filter(self, record: logging.LogRecord) -> bool:
    if 'orbax' not in record.pathname:
      return True
    if record.msg == 'Given directory is read only=%s':
      return False
    exc = record.exc_info[1] if record.exc_info else None
    return not (record.levelno >= logging.ERROR and
                ((exc is not None and _no_space(exc)) or 'No space left on device' in record.getMessage()))


def _quiet_orbax() -> None:
  logging.getLogger('absl').addFilter(_ORBAX_NOISE_FILTER)  # idempotent: the same filter object


_ORBAX_NOISE_FILTER = _OrbaxNoiseFilter()


def _ignore_closed_event_loop_callbacks() -> None:
  """When a background save fails, its writes still in flight complete into Orbax's closed asyncio loop, and
  Python prints 'Exception ignored ... Event loop is closed' for each (hundreds, before the failure is even
  seen): drop exactly those unraisable errors (installed once per process)."""
  previous = sys.unraisablehook
  if getattr(previous, 'ignores_closed_event_loop', False):
    return

  def hook(unraisable):
    if not (isinstance(unraisable.exc_value, RuntimeError) and str(unraisable.exc_value) == 'Event loop is closed'):
      previous(unraisable)
  hook.ignores_closed_event_loop = True
  sys.unraisablehook = hook


def directory_size(path: str) -> int:
  """Bytes of the files under `path` (0 if it does not exist)."""
  return sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files)


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


# Keys added to the configs after runs were saved, with the value a config without them means (what the code
# reads then, the behaviour of those runs): such a run resumes under a new config without a change to allow.
ADDED_KEYS = {'loss.penalty_interval': 1, 'train.G_smoothing_rampup': 0.0, 'train.min_minibatch_per_device': 0,
              'train.compute_dtype': 'float32', 'train.matmul_precision': 'default', 'train.compile_ahead': True,
              'train.D_fused_downscale': 'never',
              'train.adam_betas': list(train_state.OFFICIAL_ADAM_BETAS), 'schedule.lrate_rampdown_kimg': 0.0}


def config_changes(saved: dict, config: dict) -> list[str]:
  """Dotted keys whose values differ between two config_dict()s (present in only one counts, except ADDED_KEYS
  at the value their absence means)."""
  a, b = {**ADDED_KEYS, **_flatten(saved)}, {**ADDED_KEYS, **_flatten(config)}
  return sorted(k for k in a.keys() | b.keys() if a.get(k, KeyError) != b.get(k, KeyError))


def _under(key: str, prefixes) -> bool:
  """Whether dotted `key` is one of `prefixes` or below one of them."""
  return any(key == p or key.startswith(p + '.') for p in prefixes)


def _describe(keys: list[str], saved: dict, config: dict) -> str:
  """'key (old -> new), ...' of changed keys between two config_dict()s."""
  old, new = _flatten(saved), _flatten(config)
  return ', '.join(f'{k} ({old.get(k, "unset")!r} -> {new.get(k, "unset")!r})' for k in keys)


def check_config(saved: dict, config: dict, allow_changes: bool) -> list[str]:
  """The changed keys, if the resume may go on; raises ConfigChangeError (listing them) if not."""
  changes = config_changes(saved, config)
  unsafe = [k for k in changes if not _under(k, SAFE_CHANGES)]
  if unsafe or (changes and not allow_changes):
    message = f'the config differs from the checkpoint\'s: {_describe(changes, saved, config)}.'
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
    bad = [jax.tree_util.keystr(path) for path, x in got if jnp.issubdtype(x.dtype, jnp.floating)
           and not np.all(np.isfinite(np.asarray(x.addressable_data(0))))]
    raise ValueError(f'the state holds non-finite values (NaN or Inf) in {", ".join(bad[:5])}'
                     + (f' and {len(bad) - 5} more' if len(bad) > 5 else ''))
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

  def __init__(self, workdir: str, config, class_names=None):
    self._class_names = None if class_names is None else list(class_names)
    self.directory = os.path.abspath(os.path.join(workdir, 'checkpoints'))
    self.corrupt_directory = os.path.abspath(os.path.join(workdir, 'corrupt_checkpoints'))
    self._config = config_dict(config)
    self._kept: set[int] = set()
    options = ocp.CheckpointManagerOptions(
        step_format_fixed_length=STEP_DIGITS, cleanup_tmp_directories=True, enable_async_checkpointing=True,
        preservation_policy=ocp.checkpoint_managers.AnyPreservationPolicy([
            ocp.checkpoint_managers.LatestN(config.train.checkpoints_to_keep), _KeepSteps(self._kept)]))
    self._manager = ocp.CheckpointManager(self.directory, options=options)
    self._saving: Optional[int] = None  # the step of the save in flight (or whose outcome is not yet checked)
    self._failed = False
    _quiet_orbax()
    _ignore_closed_event_loop_callbacks()

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
    self._warn_if_short_of_space()
    meta = dict(config=self._config, reason=reason, kept_steps=sorted(self._kept),
                num_devices=jax.device_count(), num_processes=jax.process_count(),
                saved_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
                **({'class_names': self._class_names} if self._class_names else {}))
    start = time.time()
    items = ocp.args.Composite(state=ocp.args.StandardSave(_host_copy(state)), loop=ocp.args.JsonSave(loop),
                               meta=ocp.args.JsonSave(meta))
    with self._reporting_failures():
      self._manager.save(step, args=items, force=True)  # waits for the previous save to be complete first
    self._saving = step
    logger.info('saving checkpoint %s (%s) in the background (training waited %.2f s)', self.path(step), reason,
                time.time() - start)

  def check(self) -> None:
    """Raises CheckpointSaveError if the last background save has failed; cheap while it is still running."""
    if self._saving is not None and not self._manager.is_saving_in_progress():
      with self._reporting_failures():
        self._manager.wait_until_finished()  # nothing left to wait for: raises the failure, if any
      self._saving = None

  def close(self) -> None:
    """Waits for a pending save to be complete, then releases the manager. Raises CheckpointSaveError if that
    save failed (unless a failure was already reported)."""
    try:
      if not self._failed:
        with self._reporting_failures():
          self._manager.wait_until_finished()
    finally:
      self._saving = None
      try:
        self._manager.close()
      except Exception:  # noqa: BLE001 -- after a failed save Orbax re-raises it here; it was reported
        if not self._failed:
          raise

  def _committed_steps(self) -> list[int]:
    """The complete checkpoints on disk (Orbax's own list may already have dropped those due for deletion)."""
    return sorted(int(n) for n in os.listdir(self.directory) if n.isdigit() and len(n) == STEP_DIGITS)

  def _warn_if_short_of_space(self) -> None:
    steps = self.steps()
    if not steps:
      return
    needed, free = directory_size(self.path(steps[-1])), shutil.disk_usage(self.directory).free
    if free < needed:
      logger.warning('only %d bytes free in %s and the last checkpoint took %d: the next save will probably '
                      'fail (no space left on device)', free, self.directory, needed)

  @contextlib.contextmanager
  def _reporting_failures(self):
    """Turns an Orbax save failure (raised by a later save, a check or the close) into one CheckpointSaveError."""
    try:
      yield
    except Exception as e:  # noqa: BLE001 -- any failure of a background save means it is not there
      self._failed = True
      step = self._saving
      where = self.path(step) if step is not None else self.directory
      earlier = [s for s in self._committed_steps() if s != step]
      kept = (f'the earlier checkpoints ({", ".join(map(str, earlier))}) are intact' if earlier else
              'no earlier checkpoint exists')
      if _no_space(e):
        needed = directory_size(self.path(earlier[-1])) if earlier else 0
        free = shutil.disk_usage(self.directory).free
        need = f'it needs about {needed} bytes, {free} are free' if needed else f'{free} bytes are free'
        raise CheckpointSaveError(f'no space left on device for checkpoint {where} ({need}); {kept}: free some '
                                  'space and run the same command to resume') from e
      raise CheckpointSaveError(f'saving checkpoint {where} failed ({type(e).__name__}: {e}); {kept}') from e


# Config keys whose change makes a branch start its stage's input iterator afresh (the saved position is of another
# stream of images).
_DATA_STREAM_KEYS = ('data', 'seed', 'schedule.minibatch_base', 'schedule.minibatch_dict', 'train.mirror_augment')


def branch(source: str, config, sharding: jax.sharding.Sharding) -> tuple[Restored, list[str]]:
  """The checkpoint a new run starts from (main.py --init_from; the official code's resume_run_id/resume_kimg):
  `source` is a run's workdir (its newest checkpoint) or one checkpoint directory, <workdir>/checkpoints/<step>.

  The networks must be the same (`model` keys); every other key may differ (returned: the changed keys). The
  stage's input iterator continues where the source left it unless the stream of images changed (_DATA_STREAM_KEYS);
  a changed seed also replaces the state's random key.
  """
  source = os.path.abspath(source)
  name, parent = os.path.basename(source), os.path.dirname(source)
  workdir, step = (os.path.dirname(parent), int(name)) if name.isdigit() and os.path.basename(parent) == 'checkpoints' \
      else (source, None)
  if not os.path.isdir(os.path.join(workdir, 'checkpoints')):
    raise errors.UsageError(f'--init_from={source}: neither a training workdir nor a checkpoint directory '
                            '(<workdir>/checkpoints/<step>)')
  try:
    restored = load(workdir, step, sharding)
  except (FileNotFoundError, ValueError) as e:
    raise errors.UserError(f'--init_from={source}: {e}') from e
  saved, new = restored.meta['config'], config_dict(config)
  changes = config_changes(saved, new)
  if model_changes := [k for k in changes if _under(k, ('model',))]:
    raise ConfigChangeError(f'--init_from={source}: a branch keeps the networks, but the config changes '
                            + _describe(model_changes, saved, new))
  if any(_under(k, _DATA_STREAM_KEYS) for k in changes):
    restored.loop.update(stage=None, iterator=None)
  if 'seed' in changes:  # the new seed's randomness from here on: latents, noise, mixing
    rng = jax.device_put(jax.random.fold_in(jax.random.PRNGKey(config.seed), restored.step), sharding)
    restored = dataclasses.replace(restored, state=restored.state.replace(rng=rng))
  return restored, changes


def load(workdir: str, step: Optional[int] = None, sharding: Optional[jax.sharding.Sharding] = None) -> Restored:
  """A checkpoint of `workdir` (default the newest) for reading, e.g. to export its networks; on this process's
  first device unless `sharding` is given. Raises if it is missing or unusable."""
  directory = os.path.abspath(os.path.join(workdir, 'checkpoints'))
  _quiet_orbax()
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
