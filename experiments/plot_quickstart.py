"""The quickstart's domain FD against kimg and against wall-clock minutes: the old default and a new run.

  python experiments/plot_quickstart.py workdir/quickstart --old docs/quickstart/old_default.csv \
      --out docs/quickstart/fd_domain.png --table

`workdir/quickstart` is a training workdir (its metrics.jsonl). A run's minutes count from its start, estimated
from its first tick (that tick's images at its img/s, plus compilation). The old default's curve is a CSV of
kimg, fd_domain, minutes (docs/quickstart/old_default.csv: the README's earlier run, its minutes estimated from
that run's stage throughputs). --table prints the new run's evaluations as a markdown table.
"""

import argparse
import csv
import json
import os

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402


def read_run(workdir: str):
  """(kimg, minutes, record) of every fd_domain evaluation in workdir/metrics.jsonl."""
  records = [json.loads(line) for line in open(os.path.join(workdir, 'metrics.jsonl'))]
  first_tick = next(r for r in records if 'img_per_sec' in r)
  start = first_tick['time'] - first_tick['kimg'] * 1000 / first_tick['img_per_sec'] - first_tick['compile_sec']
  return [(r['kimg'], (r['time'] - start) / 60, r) for r in records if 'fd_domain' in r]


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('workdir')
  parser.add_argument('--old', default='docs/quickstart/old_default.csv')
  parser.add_argument('--out', default='docs/quickstart/fd_domain.png')
  parser.add_argument('--label', default='new default')
  parser.add_argument('--table', action='store_true')
  args = parser.parse_args()
  new = read_run(args.workdir)
  old = [(float(r['kimg']), float(r['minutes_estimated']), float(r['fd_domain'])) for r in csv.DictReader(open(args.old))]
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
  for ax, x_index, xlabel in [(axes[0], 0, 'kimg'), (axes[1], 1, 'minutes of training (2 CPU cores)')]:
    ax.plot([o[x_index] for o in old], [o[2] for o in old], 'o-', color='tab:gray', label='old default')
    ax.plot([n[x_index] for n in new], [n[2]['fd_domain'] for n in new], 'o-', color='tab:blue', label=args.label)
    ax.set_xlabel(xlabel)
    ax.set_yscale('log')
    ax.grid(True, which='both', alpha=0.3)
  axes[0].set_ylabel('fd_domain (5000 Gs images, lower is better)')
  axes[0].legend()
  fig.suptitle('Quickstart: domain FD at each stage\'s resolution (8x8, 16x16, 32x32)')
  fig.tight_layout()
  fig.savefig(args.out, dpi=100)
  print(f'wrote {args.out}')
  if args.table:
    print('| kimg | minutes | stage | fd_domain | classes covered | smallest class share |')
    print('|---|---|---|---|---|---|')
    for kimg, minutes, r in new:
      print(f"| {kimg:g} | {minutes:.1f} | {r['resolution']}x{r['resolution']} | {r['fd_domain']:.1f} | "
            f"{r['coverage_classes']:.0f} | {100 * r['coverage_min_share']:.2f}% |")


if __name__ == '__main__':
  main()
