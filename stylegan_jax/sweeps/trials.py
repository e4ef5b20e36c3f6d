"""A sweep's trials on disk: names, train commands, resolved configs, and each trial's status.

Layout of a sweep directory:
  <dir>/sweep.json              the sweep: config file, fixed overrides, swept keys, trials (name, overrides)
  <dir>/commands.txt            one train command per line (trial i on line i + 1)
  <dir>/trials/<name>/          a trial's workdir (what `stylegan_jax.main` writes: metrics.jsonl, checkpoints/,
                                samples/, tb/) plus trial.json (name, swept and fixed overrides, command),
                                config.json (the resolved config), train.log (the local launcher's log of the
                                run) and status.json (the launcher's record: running with its pid, or how it
                                ended)

A trial's command is the training command with the base config and the trial's overrides as flags, so running it
again resumes the trial from its newest checkpoint (checkpoint.py).
"""

import dataclasses
import hashlib
import json
import math
import os
import re
import shlex
import sys
from typing import Any, Sequence

from absl import flags
from ml_collections import config_flags

from stylegan_jax import config_validation, configs, errors
from stylegan_jax.sweeps import Sweep

MAX_NAME = 200


@dataclasses.dataclass(frozen=True)
class Trial:
  index: int
  name: str                   # readable, stable and unique within the sweep; a file name
  overrides: dict[str, Any]   # the swept values (the sweep's fixed overrides are not repeated here)


def format_flag_value(value: Any) -> str:
  """A config value as ml-collections' flag parsers read it back (see parse_config)."""
  if isinstance(value, bool) or isinstance(value, int):
    return str(value)
  if isinstance(value, float):
    return repr(value)
  if isinstance(value, str):
    return value
  if isinstance(value, (tuple, list)):
    return repr(tuple(value))
  if isinstance(value, dict):
    return repr(dict(value))
  raise errors.UsageError(f'cannot pass {value!r} ({type(value).__name__}) on the command line: use a bool, int, '
                          'float, str, tuple or dict')


def to_flags(overrides: dict[str, Any]) -> list[str]:
  return [f'--config.{key}={format_flag_value(value)}' for key, value in overrides.items()]


def parse_config(config: str, flag_list: Sequence[str]):
  """The ConfigDict the train command builds from `--config=config` and `flag_list` (ml-collections' parsing),
  with unknown keys and unparsable values raised as errors.UsageError."""
  config_validation.check_override_keys(flag_list)
  argv = ['train', f'--config={configs.config_path(config)}', *flag_list]
  values = flags.FlagValues()
  config_flags.DEFINE_config_file('config', None, 'Training config file.', flag_values=values, lock_config=True,
                                  sys_argv=argv)
  try:
    values(argv)
    return values.config
  except flags.Error as e:
    raise errors.UsageError(str(e).splitlines()[0]) from None
  except (OSError, ValueError, TypeError) as e:
    raise errors.UsageError(f'cannot load the config {config}: {str(e).splitlines()[0]}') from None


def _equal(a: Any, b: Any) -> bool:
  if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
    return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
  if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
    return True
  if isinstance(a, bool) != isinstance(b, bool):
    return False
  return a == b


def get_value(config, key: str) -> Any:
  for part in key.split('.'):
    config = config[part]
  return config.to_dict() if hasattr(config, 'to_dict') else config


def check_round_trip(config, overrides: dict[str, Any]) -> None:
  """Every override must read back from its flag as the value the sweep gave (e.g. True for model.fused_scale
  comes back as the string 'True': refused)."""
  for key, value in overrides.items():
    parsed = get_value(config, key)
    if not _equal(parsed, dict(value) if isinstance(value, dict) else value):
      raise errors.UsageError(f'{key}={value!r} does not survive the command line: --config.{key}='
                              f'{format_flag_value(value)} reads back as {parsed!r}')


def _format_name_value(value: Any, precise: bool) -> str:
  if isinstance(value, float):
    return repr(value) if precise else f'{value:.4g}'
  if isinstance(value, (tuple, list)):
    return '-'.join(_format_name_value(v, precise) for v in value)
  if isinstance(value, dict):
    return '-'.join(f'{k}:{_format_name_value(v, precise)}' for k, v in value.items())
  return str(value)


def _sanitize(name: str) -> str:
  name = re.sub(r'[^A-Za-z0-9._=,+:-]', '_', name).replace(':', '_')
  if name in ('', '.', '..'):
    name = '_' + name
  if len(name) > MAX_NAME:
    name = name[:MAX_NAME - 9] + ',' + hashlib.sha1(name.encode()).hexdigest()[:8]
  return name


def trial_names(trials: Sequence[dict[str, Any]]) -> list[str]:
  """Readable names from the swept values, 'r1_gamma=5,mapping_layers=2' (keys by their last part unless two
  swept keys share it; floats with 4 significant digits, more where that makes two names equal, and a
  ',trial=<i>' suffix for trials that are still equal), sanitized as file names."""
  keys = list(dict.fromkeys(k for t in trials for k in t))
  short = {k: k.rpartition('.')[2] for k in keys}
  if len(set(short.values())) < len(keys):
    short = {k: k for k in keys}

  def name(trial, precise):
    return _sanitize(','.join(f'{short[k]}={_format_name_value(v, precise)}' for k, v in trial.items()) or 'base')

  short_names, precise = [name(t, False) for t in trials], [name(t, True) for t in trials]
  names = [n if short_names.count(n) == 1 else p if precise.count(p) == 1 else f'{n},trial={i}'
           for i, (n, p) in enumerate(zip(short_names, precise))]
  return [f'{n},trial={i}' if names.count(n) > 1 else n for i, n in enumerate(names)]


def expand(sweep: Sweep) -> list[Trial]:
  """The trials with their names; a key both fixed and swept is refused."""
  if twice := sorted({k for t in sweep.trials for k in t} & set(sweep.overrides)):
    raise errors.UsageError(f'{", ".join(twice)}: both a fixed override and swept; keep one')
  return [Trial(i, n, dict(t)) for i, (n, t) in enumerate(zip(trial_names(sweep.trials), sweep.trials))]


def trial_dir(sweep_dir: str, trial: Trial) -> str:
  return os.path.join(os.path.abspath(sweep_dir), 'trials', trial.name)


def command(sweep: Sweep, trial: Trial, sweep_dir: str, python: str = sys.executable) -> list[str]:
  """The trial's train command: the base config with the fixed and the swept overrides as flags."""
  config = configs.config_path(sweep.config)
  name, colon, arg = config.partition(':')
  return [python, '-m', 'stylegan_jax.main', f'--config={os.path.abspath(name)}{colon}{arg}',
          f'--workdir={trial_dir(sweep_dir, trial)}', *to_flags(sweep.overrides), *to_flags(trial.overrides),
          *sweep.flags]


def resolve(sweep: Sweep, trial: Trial):
  """The trial's config as its command will build it, validated; errors.UsageError otherwise."""
  config = parse_config(sweep.config, to_flags(sweep.overrides) + to_flags(trial.overrides))
  check_round_trip(config, {**sweep.overrides, **trial.overrides})
  config_validation.validate(config)
  return config


def _write_json(path: str, value: Any) -> None:
  with open(path + '.tmp', 'w') as f:
    json.dump(value, f, indent=1)
  os.replace(path + '.tmp', path)


def read_json(path: str) -> Any:
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, json.JSONDecodeError):
    return None


def prepare(sweep: Sweep, sweep_file: str, sweep_dir: str, python: str = sys.executable
            ) -> tuple[list[Trial], dict[str, str]]:
  """Validates every trial and writes the sweep directory (sweep.json, commands.txt, each trial's trial.json and
  config.json). Returns the trials and {name: error} of those that failed validation (their status.json says
  so; nothing else is written for them)."""
  trials = expand(sweep)
  invalid = {}
  os.makedirs(os.path.join(sweep_dir, 'trials'), exist_ok=True)
  commands = []
  for trial in trials:
    directory = trial_dir(sweep_dir, trial)
    os.makedirs(directory, exist_ok=True)
    cmd = command(sweep, trial, sweep_dir, python)
    commands.append(shlex.join(cmd))
    _write_json(os.path.join(directory, 'trial.json'),
                dict(index=trial.index, name=trial.name, overrides=trial.overrides, fixed_overrides=sweep.overrides,
                     command=cmd))
    try:
      config = resolve(sweep, trial)
    except errors.UserError as e:
      invalid[trial.name] = str(e)
      write_status(directory, 'failed', error=f'invalid config: {e}')
      continue
    _write_json(os.path.join(directory, 'config.json'), json.loads(config.to_json()))
  swept = list(dict.fromkeys(k for t in trials for k in t.overrides))
  _write_json(os.path.join(sweep_dir, 'sweep.json'), dict(
      sweep_file=os.path.abspath(sweep_file), config=sweep.config, overrides=sweep.overrides, flags=list(sweep.flags),
      axes=swept, trials=[dict(name=t.name, overrides=t.overrides) for t in trials]))
  with open(os.path.join(sweep_dir, 'commands.txt'), 'w') as f:
    f.write('\n'.join(commands) + '\n')
  return trials, invalid


def write_status(directory: str, state: str, **fields) -> None:
  _write_json(os.path.join(directory, 'status.json'), dict(state=state, **fields))


def finished(directory: str) -> bool:
  """Whether the newest checkpoint is the one saved at the run's end (checkpoint.py: meta/metadata)."""
  checkpoints = os.path.join(directory, 'checkpoints')
  steps = sorted(s for s in os.listdir(checkpoints) if s.isdigit()) if os.path.isdir(checkpoints) else []
  meta = read_json(os.path.join(checkpoints, steps[-1], 'meta', 'metadata')) if steps else None
  return bool(meta) and meta.get('reason') == 'end'


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
    return True
  except (ProcessLookupError, PermissionError):
    return False


def status(directory: str) -> str:
  """'done' (the run ended), 'running' (a live launcher child), 'failed' (the last attempt failed), 'stopped'
  (started, not finished: a re-run resumes it) or 'pending'."""
  if finished(directory):
    return 'done'
  record = read_json(os.path.join(directory, 'status.json')) or {}
  if record.get('state') == 'running' and _alive(record.get('pid', -1)):
    return 'running'
  if record.get('state') == 'failed':
    return 'failed'
  started = os.path.exists(os.path.join(directory, 'metrics.jsonl')) or os.path.isdir(
      os.path.join(directory, 'checkpoints'))
  return 'stopped' if started else 'pending'


def read_metrics(directory: str) -> list[dict]:
  """The records of the trial's metrics.jsonl (a partly written last line is skipped)."""
  records = []
  try:
    with open(os.path.join(directory, 'metrics.jsonl')) as f:
      for line in f:
        try:
          records.append(json.loads(line))
        except json.JSONDecodeError:
          pass
  except OSError:
    pass
  return records
