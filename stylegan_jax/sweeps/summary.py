"""A sweep's results: per trial the final and best value of one metric from metrics.jsonl, as a sorted table
(summary.csv, summary.md), a plot per swept axis (best value against the axis value, one point per trial) and a
plot of the metric against kimg (one line per trial), under the sweep directory. Reads whatever the trials have
logged so far, so it works while the sweep runs.
"""

import csv
import dataclasses
import io
import math
import os
import re
from typing import Any

from stylegan_jax import errors
from stylegan_jax.sweeps import trials as trials_lib


@dataclasses.dataclass
class Row:
  name: str
  values: dict[str, Any]                # each swept key's value in this trial: its override, else the base config's
  status: str
  kimg: float | None                    # of the newest record
  final: float | None                   # the metric's newest value
  best: float | None                    # its minimum or maximum
  best_kimg: float | None
  curve: list[tuple[float, float]]      # (kimg, value) of every record that has the metric


def gather(sweep_dir: str, metric: str = 'fd_domain', mode: str = 'min') -> tuple[list[str], list[Row]]:
  """(swept keys, rows sorted best first; trials without the metric last, in sweep order)."""
  if mode not in ('min', 'max'):
    raise errors.UsageError(f'--mode {mode!r}: must be min or max')
  sweep = trials_lib.read_json(os.path.join(sweep_dir, 'sweep.json'))
  if not sweep:
    raise errors.UserError(f'{sweep_dir} is not a sweep directory (no readable sweep.json)')
  rows = []
  for trial in sweep['trials']:
    directory = os.path.join(sweep_dir, 'trials', trial['name'])
    records = trials_lib.read_metrics(directory)
    curve = [(r['kimg'], float(r[metric])) for r in records
             if isinstance(r.get(metric), (int, float)) and math.isfinite(r[metric])]
    best = (min if mode == 'min' else max)(curve, key=lambda p: p[1]) if curve else None
    config = trials_lib.read_json(os.path.join(directory, 'config.json')) or {}  # the trial's resolved config
    values = {key: trial['overrides'][key] if key in trial['overrides'] else _lookup(config, key)
              for key in sweep['axes']}
    rows.append(Row(trial['name'], values, trials_lib.status(directory),
                    records[-1].get('kimg') if records else None, curve[-1][1] if curve else None,
                    best[1] if best else None, best[0] if best else None, curve))
  sign = 1 if mode == 'min' else -1
  rows.sort(key=lambda r: (r.best is None, sign * r.best if r.best is not None else 0))
  return sweep['axes'], rows


def _lookup(config: dict, key: str) -> Any:
  """config['a']['b'] for 'a.b'; None where it is missing."""
  for part in key.split('.'):
    config = config.get(part) if isinstance(config, dict) else None
  return config


def _cell(value: Any) -> str:
  if value is None:
    return ''
  if isinstance(value, float):
    return f'{value:.4g}'
  return str(value)


def table(axes: list[str], rows: list[Row], metric: str) -> list[list[str]]:
  """Header and rows: trial, swept values, status, kimg, final and best metric, kimg of the best."""
  header = ['trial', *axes, 'status', 'kimg', f'{metric} final', f'{metric} best', 'best at kimg']
  return [header] + [[r.name, *[_cell(r.values.get(a)) for a in axes], r.status, _cell(r.kimg), _cell(r.final),
                      _cell(r.best), _cell(r.best_kimg)] for r in rows]


def to_csv(cells: list[list[str]]) -> str:
  out = io.StringIO()
  csv.writer(out, lineterminator='\n').writerows(cells)
  return out.getvalue()


def to_markdown(cells: list[list[str]]) -> str:
  escape = lambda c: c.replace('|', '\\|')  # noqa: E731
  lines = ['| ' + ' | '.join(escape(c) for c in cells[0]) + ' |', '|' + '---|' * len(cells[0])]
  return '\n'.join(lines + ['| ' + ' | '.join(escape(c) for c in row) + ' |' for row in cells[1:]]) + '\n'


def _file_name(key: str) -> str:
  return re.sub(r'[^A-Za-z0-9._-]', '_', key)


def plot(axes: list[str], rows: list[Row], metric: str, mode: str, out_dir: str) -> list[str]:
  """axis_<key>.png per swept key and curves.png; returns the paths (none when no trial has the metric yet)."""
  import matplotlib
  matplotlib.use('Agg')
  from matplotlib import pyplot as plt

  measured = [r for r in rows if r.best is not None]
  if not measured:
    return []
  os.makedirs(out_dir, exist_ok=True)
  paths = []
  for key in axes:
    values = [r.values.get(key) for r in measured]
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    categories = sorted({str(v) for v in values})
    xs = values if numeric else [categories.index(str(v)) for v in values]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.scatter(xs, [r.best for r in measured])
    if numeric and len(set(values)) > 1 and min(values) > 0 and max(values) / min(values) >= 20:
      ax.set_xscale('log')
    if not numeric:
      ax.set_xticks(range(len(categories)), categories)
    ax.set_xlabel(key)
    ax.set_ylabel(f'{metric} ({mode} over the run)')
    ax.grid(alpha=0.3)
    fig.tight_layout()
    paths.append(os.path.join(out_dir, f'axis_{_file_name(key)}.png'))
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)
  fig, ax = plt.subplots(figsize=(6.5, 4))
  for r in measured:
    ax.plot([k for k, _ in r.curve], [v for _, v in r.curve], marker='.', label=r.name)
  ax.set_xlabel('kimg')
  ax.set_ylabel(metric)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7)
  fig.tight_layout()
  paths.append(os.path.join(out_dir, 'curves.png'))
  fig.savefig(paths[-1], dpi=100)
  plt.close(fig)
  return paths


def summarize(sweep_dir: str, metric: str = 'fd_domain', mode: str = 'min') -> tuple[str, list[str]]:
  """Writes summary.csv, summary.md and plots/*.png into `sweep_dir`; returns (the Markdown table, plot paths)."""
  axes, rows = gather(sweep_dir, metric, mode)
  cells = table(axes, rows, metric)
  markdown = to_markdown(cells)
  with open(os.path.join(sweep_dir, 'summary.csv'), 'w') as f:
    f.write(to_csv(cells))
  with open(os.path.join(sweep_dir, 'summary.md'), 'w') as f:
    f.write(markdown)
  return markdown, plot(axes, rows, metric, mode, os.path.join(sweep_dir, 'plots'))
