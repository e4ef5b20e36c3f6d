"""Config validation: every key, type and value of a training config, checked before anything runs.

The default config (configs/default.py) defines every key, so it is the schema: a key it lacks is unknown, and a
value must have the type of the default's value (an int where a float is expected is fine). An empty dict there
(`schedule.minibatch_dict`, ...) is a table keyed by stage resolution. On top come the value rules of RULES (plus
rules by key suffix for keys added later: `*_prob` in [0, 1], `*_kimg` >= 0, `*lrate*` > 0), the dataset config's
own checks, model vs dataset, and the minibatch at every stage against the device count. Every error is an
errors.UsageError naming the key, its value and what is allowed, in one line.
"""

import difflib
import math
import re
from typing import Any, Callable, Sequence

from stylegan_jax import errors, schedule
from stylegan_jax.configs import default
from stylegan_jax.data import config as data_config
from stylegan_jax.losses import LOSSES
from stylegan_jax.network_config import NetworkConfig


def _power_of_two(lo: int, hi: int) -> tuple[Callable[[Any], bool], str]:
  return (lambda v: lo <= v <= hi and not v & (v - 1)), f'a power of two in [{lo}, {hi}]'


_POSITIVE = (lambda v: v > 0), 'a number > 0'
_NON_NEGATIVE = (lambda v: v >= 0), 'a number >= 0'
_UNIT = (lambda v: 0 <= v <= 1), 'a number in [0, 1]'

# key -> (predicate on a value of the right type, what is allowed). Tables (`*_dict`) apply it to every entry.
RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    'model.resolution': _power_of_two(8, 1024),
    'model.num_channels': _POSITIVE, 'model.label_size': _NON_NEGATIVE, 'model.fmap_base': _POSITIVE,
    'model.fmap_decay': _NON_NEGATIVE, 'model.fmap_max': _POSITIVE, 'model.latent_size': _POSITIVE,
    'model.dlatent_size': _POSITIVE, 'model.mapping_layers': _POSITIVE, 'model.mapping_fmaps': _POSITIVE,
    'model.mapping_lrmul': _POSITIVE, 'model.mbstd_group_size': _NON_NEGATIVE,
    'model.mbstd_num_features': _POSITIVE,
    'model.fused_scale': ((lambda v: v in (True, False, 'auto') and type(v) in (bool, str)), "True, False or 'auto'"),
    'schedule.lod_initial_resolution': _power_of_two(4, 1024),
    'schedule.lod_training_kimg': _NON_NEGATIVE, 'schedule.lod_transition_kimg': _NON_NEGATIVE,
    'schedule.minibatch_base': _POSITIVE, 'schedule.minibatch_dict': _POSITIVE,
    'schedule.G_lrate_base': _POSITIVE, 'schedule.G_lrate_dict': _POSITIVE, 'schedule.D_lrate_base': _POSITIVE,
    'schedule.D_lrate_dict': _POSITIVE, 'schedule.lrate_rampup_kimg': _NON_NEGATIVE,
    'schedule.lrate_rampdown_kimg': _NON_NEGATIVE,
    'schedule.tick_kimg_base': _POSITIVE, 'schedule.tick_kimg_dict': _POSITIVE,
    'loss.type': ((lambda v: v in LOSSES), ' or '.join(repr(t) for t in LOSSES)),
    'loss.r1_gamma': _NON_NEGATIVE, 'loss.wgan_lambda': _NON_NEGATIVE, 'loss.wgan_target': _POSITIVE,
    'loss.wgan_epsilon': _NON_NEGATIVE, 'loss.penalty_interval': _POSITIVE,
    'train.G_smoothing_rampup': _NON_NEGATIVE, 'train.min_minibatch_per_device': _NON_NEGATIVE,
    'train.total_kimg': _POSITIVE, 'train.G_smoothing_kimg': _POSITIVE, 'train.dlatent_avg_beta': _UNIT,
    'train.style_mixing_prob': _UNIT, 'train.image_snapshot_ticks': _POSITIVE,
    'train.grid_size': ((lambda v: len(v) == 2 and all(x > 0 for x in v)), '(columns, rows), two integers > 0'),
    'train.checkpoint_kimg': _NON_NEGATIVE, 'train.checkpoints_to_keep': _POSITIVE,
    'train.adam_betas': ((lambda v: len(v) == 2 and all(0 <= b < 1 for b in v)),
                         '(beta1, beta2), two numbers in [0, 1)'),
    'train.adam_epsilon_form': ((lambda v: v in ('tf', 'optax')), "'tf' or 'optax' (train_state.ADAM_EPSILON_FORMS)"),
    'train.compute_dtype': ((lambda v: v in ('float32', 'bfloat16')), "'float32' or 'bfloat16' (steps.COMPUTE_DTYPES)"),
    'train.matmul_precision': ((lambda v: v in ('float32', 'tensorfloat32', 'default')),
                               "'float32', 'tensorfloat32' or 'default' (steps.MATMUL_PRECISIONS)"),
    'train.D_fused_downscale': ((lambda v: v in ('auto', 'always', 'never')),
                                "'auto', 'always' or 'never' (steps.FUSED_DOWNSCALE)"),
}
# Rules by the key's last part, for keys without an entry in RULES (e.g. added by later features).
SUFFIX_RULES: list[tuple[str, tuple[Callable[[Any], bool], str]]] = [
    (r'_prob$|_psi$|^psi$', _UNIT), (r'_kimg$', _NON_NEGATIVE), (r'lrate', _POSITIVE)]
# Keys whose value may have another type than the default's.
TYPES = {'model.fused_scale': (bool, str)}


def _flatten(tree: dict, prefix: str = '', tables: frozenset[str] = frozenset()) -> dict[str, Any]:
  """{'a': {'b': 1}, 't': {}} -> {'a.b': 1, 't': {}}: a non-empty dict is descended into unless its key is one of
  `tables`; an empty one (a table in the default config) is a leaf."""
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict) and value and prefix + key not in tables:
      flat.update(_flatten(value, f'{prefix}{key}.', tables))
    else:
      flat[f'{prefix}{key}'] = value
  return flat


# Tables {resolution: value} (keys are the stage resolutions as strings): leaves of the schema, not sub-configs.
TABLES = frozenset({'schedule.minibatch_dict', 'schedule.G_lrate_dict', 'schedule.D_lrate_dict',
                    'schedule.tick_kimg_dict'})


def _schema() -> dict[str, Any]:
  return _flatten(default.get_config().to_dict(), tables=TABLES)


def _unknown(key: str, schema: dict[str, Any]) -> errors.UsageError:
  """The error for a key the schema lacks: its first unknown part, a close match, and the keys there."""
  parts = key.split('.')
  for i, part in enumerate(parts):
    prefix = '.'.join(parts[:i])
    siblings = sorted({k[len(prefix) + 1:].split('.')[0] for k in schema if k.startswith(prefix + '.')} if prefix
                      else {k.split('.')[0] for k in schema})
    if part not in siblings:
      break
  unknown = '.'.join(parts[:i + 1])
  if not siblings:
    return errors.UsageError(f'unknown config key {unknown}: {prefix} is a value, not a group of keys')
  close = ['.'.join(parts[:i] + [c] + parts[i + 1:])
           for c in difflib.get_close_matches(part, siblings, n=1, cutoff=0.7)]
  close = close or [k for k in schema if difflib.get_close_matches(parts[-1], [k.rpartition('.')[2]], n=1, cutoff=0.7)][:1]
  hint = f'did you mean {close[0]}? ' if close else ''
  return errors.UsageError(f'unknown config key {unknown}: {hint}{prefix or "the config"} has {", ".join(siblings)}')


def _type_ok(value: Any, expected: Any) -> bool:
  """Whether `value` may stand where the default config has `expected`."""
  if expected is None:
    return True
  if isinstance(expected, bool):
    return isinstance(value, bool)
  if isinstance(expected, int):
    return isinstance(value, int) and not isinstance(value, bool)
  if isinstance(expected, float):
    return isinstance(value, (int, float)) and not isinstance(value, bool)
  if isinstance(expected, (tuple, list)):
    return isinstance(value, (tuple, list)) and (not expected or all(_type_ok(v, expected[0]) for v in value))
  if isinstance(expected, dict):
    return isinstance(value, dict) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                           for v in value.values())
  return isinstance(value, type(expected))


def _type_name(expected: Any) -> str:
  if isinstance(expected, dict):
    return 'a table {resolution: number}'
  if isinstance(expected, (tuple, list)):
    return f'a tuple of {_type_name(expected[0]) if expected else "values"}'
  return {bool: 'True or False', int: 'an integer', float: 'a number', str: 'a string'}.get(
      type(expected), type(expected).__name__)


def _non_finite(value: Any) -> bool:
  if isinstance(value, float):
    return not math.isfinite(value)
  if isinstance(value, (tuple, list)):
    return any(_non_finite(v) for v in value)
  if isinstance(value, dict):
    return any(_non_finite(v) for v in value.values())
  return False


def _rule(key: str):
  if key in RULES:
    return RULES[key]
  last = key.rpartition('.')[2]
  return next((rule for pattern, rule in SUFFIX_RULES if re.search(pattern, last)), None)


def _check_value(key: str, value: Any, expected: Any) -> str | None:
  """What is wrong with one value, or None."""
  allowed_types = TYPES.get(key)
  if allowed_types and not isinstance(value, allowed_types) or not allowed_types and not _type_ok(value, expected):
    return f'{key}={value!r}: must be {_type_name(expected)}'
  if _non_finite(value):
    return f'{key}={value!r}: must be finite (no NaN or Infinity)'
  rule = _rule(key)
  if rule is None:
    return None
  predicate, allowed = rule
  if isinstance(value, dict):  # a table: {resolution: value}
    for resolution, entry in value.items():
      if not str(resolution).isdigit() or not predicate(entry):
        return (f'{key}={value!r}: must map stage resolutions (4, 8, ...) to {allowed}, '
                f'got {resolution!r}: {entry!r}')
    return None
  if isinstance(value, (tuple, list)) and key not in RULES:
    return None if all(predicate(v) for v in value) else f'{key}={value!r}: each must be {allowed}'
  return None if predicate(value) else f'{key}={value!r}: must be {allowed}'


def check_keys(config) -> None:
  """Raises UsageError naming the first key the default config does not define."""
  schema = _schema()
  for key in _flatten(config.to_dict(), tables=TABLES):
    if key not in schema:
      raise _unknown(key, schema)


def check_override_keys(argv: Sequence[str], flag: str = 'config') -> None:
  """Refuses `--config.a.b=...` arguments whose key the default config does not define, before ml-collections
  parses them (it reports such a key as three chained tracebacks ending in `AttributeError: "'b'"`)."""
  schema = _schema()
  known = set(schema) | {k.rsplit('.', i)[0] for k in schema for i in range(1, k.count('.') + 1)}
  for arg in argv:
    match = re.match(rf'^--?{re.escape(flag)}\.([^=\s]+)', arg)
    if match:
      key = match.group(1)
      if key not in known and not any(key.startswith(t + '.') for t in TABLES):
        raise _unknown(key, schema)


def check_dataset(model: NetworkConfig, info) -> None:
  """The prepared dataset (input_pipeline.DatasetInfo) must have the shape the networks are built for."""
  problems = [f'model.{name}={getattr(model, name)} vs the dataset\'s {getattr(info, name)}'
              for name in ('resolution', 'num_channels', 'label_size') if getattr(model, name) != getattr(info, name)]
  if problems:
    raise errors.UsageError('config.model does not match the dataset: ' + '; '.join(problems))


def validate(config, *, num_devices: int | None = None, accumulation_steps: int = 1) -> None:
  """Raises errors.UsageError (one line: key, value, what is allowed) unless `config` is a valid training config.

  `num_devices`: also check that every stage's minibatch splits across that many devices (x `accumulation_steps`
  micro-batches each). The prepared dataset is checked separately (check_dataset), once it is known to exist.
  """
  check_keys(config)
  schema = _schema()
  values = _flatten(config.to_dict(), tables=TABLES)
  problems = [p for key, value in values.items() if (p := _check_value(key, value, schema[key])) is not None]
  if problems:
    raise errors.UsageError('invalid config value ' + '; '.join(problems))
  try:
    data_config.validate(config.data)
  except ValueError as e:
    raise errors.UsageError(f'invalid data config: {e}') from None
  model = NetworkConfig.from_dict(config.model)
  mismatched = [f'model.{k}={getattr(model, k)} vs data.{k}={config.data[k]}' for k in ('resolution', 'num_channels')
                if getattr(model, k) != config.data[k]]
  if (model.label_size == 0) != (config.data.labels == 'none'):
    mismatched.append(f'model.label_size={model.label_size} vs data.labels={config.data.labels!r} (0 exactly when '
                      "the labels are 'none')")
  if mismatched:
    raise errors.UsageError('config.model does not match config.data: ' + '; '.join(mismatched))
  if config.schedule.lod_initial_resolution > model.resolution:
    raise errors.UsageError(f'schedule.lod_initial_resolution={config.schedule.lod_initial_resolution}: must be at '
                            f'most model.resolution={model.resolution}')
  if num_devices is not None:
    try:
      schedule.check_minibatches(config.schedule, model.resolution, num_devices, accumulation_steps)
    except ValueError as e:
      raise errors.UsageError(str(e)) from None
