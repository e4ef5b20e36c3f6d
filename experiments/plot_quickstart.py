"""The quickstart's domain FD against kimg and against wall-clock minutes: earlier defaults and a new run.

  python experiments/plot_quickstart.py workdir/quickstart --out docs/quickstart/fd_domain.png --table

`workdir/quickstart` is a training workdir (its metrics.jsonl). A run's minutes count from its start, estimated
from its first tick (that tick's images at its img/s, plus compilation). Each --earlier LABEL=CSV is a curve of
kimg, fd_domain, minutes_estimated (default: docs/quickstart/old_default.csv, the first default's run, its minutes
estimated from its stage throughputs, the fresh-clone run in default_2026-12-03.csv and the last mirror-augmented
default in default_mirror_6ccd851.csv; default_2026-12-02.csv is the one-device default's). --table prints the
new run's evaluations as a markdown table.
"""

import argparse
import csv
import json
import os

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402


EARLIER = ['first default (2497d7b)=docs/quickstart/old_default.csv',
           'default of 2026-12-03 (4860316, 2 CPU devices)=docs/quickstart/default_2026-12-03.csv',
           'mirror-augmented default (6ccd851)=docs/quickstart/default_mirror_6ccd851.csv']


def read_run(workdir: str):
  """(kimg, minutes, record) of every fd_domain evaluation in workdir/metrics.jsonl."""
  records = [json.loads(line) for line in open(os.path.join(workdir, 'metrics.jsonl'))]
  first_tick = next(r for r in records if 'img_per_sec' in r)
  start = first_tick['time'] - first_tick['kimg'] * 1000 / first_tick['img_per_sec'] - first_tick['compile_sec']
  return [(r['kimg'], (r['time'] - start) / 60, r) for r in records if 'fd_domain' in r]


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('workdir')
  parser.add_argument('--earlier', action='append', metavar='LABEL=CSV',
                      help=f'an earlier curve (repeatable; default: the {len(EARLIER)} runs of EARLIER in '
                           'docs/quickstart/)')
  parser.add_argument('--out', default='docs/quickstart/fd_domain.png')
  parser.add_argument('--label', default='new default')
  parser.add_argument('--table', action='store_true')
  args = parser.parse_args()
  new = read_run(args.workdir)
  earlier = [spec.split('=', 1) for spec in args.earlier or EARLIER]
  curves = [(label, [(float(r['kimg']), float(r['minutes_estimated']), float(r['fd_domain']))
                     for r in csv.DictReader(open(path))]) for label, path in earlier]
  fig, axes = plt.subplots(1, 2, figsize=(10, 4.6), sharey=True)
  for ax, x_index, xlabel in [(axes[0], 0, 'kimg'), (axes[1], 1, 'minutes of training (2 CPU cores)')]:
    for (label, points), color in zip(curves, ('tab:gray', 'tab:orange', 'tab:green', 'tab:purple')):
      ax.plot([p[x_index] for p in points], [p[2] for p in points], 'o-', color=color, label=label)
    ax.plot([n[x_index] for n in new], [n[2]['fd_domain'] for n in new], 'o-', color='tab:blue', label=args.label)
    ax.set_xlabel(xlabel)
    ax.set_yscale('log')
    ax.grid(True, which='both', alpha=0.3)
  axes[0].set_ylabel('fd_domain (5000 Gs images, lower is better)')
  handles, labels = axes[0].get_legend_handles_labels()
  fig.legend(handles, labels, loc='lower center', ncol=2, fontsize=9)
  fig.suptitle('Quickstart: domain FD at each stage\'s resolution (8x8, 16x16, 32x32)')
  fig.tight_layout(rect=(0, 0.12, 1, 1))
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
