"""Hyperparameter sweeps: what a sweep file uses to say which trials to run.

A sweep file is a Python file with `get_sweep()` returning a `Sweep`: a base training config (a shipped name such
as 'default' or a path, as `--config` takes), overrides fixed for every trial, and the trials, each a dict
{dotted config key: value} built from axes:

  from stylegan_jax import sweeps

  def get_sweep():
    return sweeps.Sweep(
        config='default', overrides={'train.total_kimg': 12.0},
        trials=sweeps.product(sweeps.axis('loss.r1_gamma', [0.3, 3.0]),
                              sweeps.axis('train.G_smoothing_kimg', [0.5, 5.0])))

`product` is the grid of its arguments, `zipped` pairs them element by element, `random_search` draws values
from `uniform`, `log_uniform`, `choice` and `integer` distributions (reproducible for a seed); they nest
(`product(zipped(a, b), random_search(...))`). `stylegan-jax sweep` (sweeps/main.py) runs them.
"""

import dataclasses
import importlib.util
import itertools
import math
import os
from typing import Any, Sequence

import numpy as np

from stylegan_jax import errors

Trials = list[dict[str, Any]]


@dataclasses.dataclass
class Sweep:
  config: str                                   # shipped config name or path (relative: to the sweep file first)
  trials: Trials                                # one dict of overrides per trial
  overrides: dict[str, Any] = dataclasses.field(default_factory=dict)  # fixed for every trial
  flags: Sequence[str] = ()                     # extra flags for every trial's train command


def axis(key: str, values: Sequence[Any]) -> Trials:
  """One trial per value of config key `key` ('loss.r1_gamma')."""
  return [{key: v} for v in values]


def product(*sweeps: Trials) -> Trials:
  """Every combination (the first argument varies slowest)."""
  return [_merge(combo) for combo in itertools.product(*sweeps)]


def zipped(*sweeps: Trials) -> Trials:
  """The i-th trials of every argument together; all must have the same length."""
  if len({len(s) for s in sweeps}) > 1:
    raise errors.UsageError(f'zipped() needs sweeps of equal length, got {[len(s) for s in sweeps]}')
  return [_merge(combo) for combo in zip(*sweeps)]


def _merge(trials: Sequence[dict]) -> dict:
  merged = {}
  for trial in trials:
    if twice := set(merged) & set(trial):
      raise errors.UsageError(f'a sweep sets {sorted(twice)} twice in one trial')
    merged.update(trial)
  return merged


@dataclasses.dataclass(frozen=True)
class uniform:  # noqa: N801 -- reads as a function in sweep files
  low: float
  high: float

  def sample(self, rng: np.random.Generator) -> float:
    return float(rng.uniform(self.low, self.high))


@dataclasses.dataclass(frozen=True)
class log_uniform:  # noqa: N801
  low: float
  high: float

  def sample(self, rng: np.random.Generator) -> float:
    if not 0 < self.low <= self.high:
      raise errors.UsageError(f'log_uniform({self.low}, {self.high}) needs 0 < low <= high')
    return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))


@dataclasses.dataclass(frozen=True)
class integer:  # noqa: N801
  low: int
  high: int     # inclusive

  def sample(self, rng: np.random.Generator) -> int:
    return int(rng.integers(self.low, self.high + 1))


@dataclasses.dataclass(frozen=True)
class choice:  # noqa: N801
  values: Sequence[Any]

  def sample(self, rng: np.random.Generator) -> Any:
    return self.values[int(rng.integers(len(self.values)))]


def random_search(space: dict[str, Any], trials: int, seed: int) -> Trials:
  """`trials` draws of every key's distribution (in the order of `space`), from numpy's PCG64 seeded by `seed`."""
  rng = np.random.default_rng(seed)
  return [{key: dist.sample(rng) for key, dist in space.items()} for _ in range(trials)]


def load(path: str) -> Sweep:
  """The Sweep of a sweep file; its `config` made absolute when it names a file beside the sweep file."""
  if not os.path.isfile(path):
    raise errors.UsageError(f'sweep file {path} does not exist')
  spec = importlib.util.spec_from_file_location('stylegan_jax_sweep_file', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  if not callable(getattr(module, 'get_sweep', None)):
    raise errors.UsageError(f'sweep file {path} has no get_sweep() function')
  sweep = module.get_sweep()
  if not isinstance(sweep, Sweep) or not sweep.trials:
    raise errors.UsageError(f'get_sweep() in {path} must return a sweeps.Sweep with at least one trial')
  name, colon, arg = sweep.config.partition(':')
  beside = os.path.join(os.path.dirname(os.path.abspath(path)), name)
  if not os.path.isabs(name) and os.path.isfile(beside):
    sweep.config = beside + colon + arg
  return sweep
