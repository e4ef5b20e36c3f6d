"""`stylegan-jax sweep`: run a sweep here, write it out for SLURM or as commands, and summarize it.

  python -m stylegan_jax.sweeps.main run experiments/sweeps/quickstart_r1_smoothing.py --dir sweeps/r1 --parallel 2
  python -m stylegan_jax.sweeps.main slurm SWEEP_FILE --dir DIR [--parallel N] [--sbatch=--gres=gpu:1 ...]
  python -m stylegan_jax.sweeps.main commands SWEEP_FILE --dir DIR
  python -m stylegan_jax.sweeps.main summary --dir DIR [--metric fd_domain --mode min]

Every subcommand that takes a sweep file first validates every trial's config (config_validation.py).
"""

import argparse
import os
import sys
from typing import Optional, Sequence

from stylegan_jax import console, errors
from stylegan_jax import sweeps as sweeps_lib
from stylegan_jax.sweeps import launch, slurm, summary, trials as trials_lib

PROG = 'stylegan-jax sweep'


def _parser() -> argparse.ArgumentParser:
  parser = console.ArgumentParser(prog=PROG, description=__doc__.split('\n')[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = parser.add_subparsers(dest='command', required=True, parser_class=console.ArgumentParser)

  def with_sweep(name, help_text):
    p = sub.add_parser(name, help=help_text, description=help_text)
    p.add_argument('sweep_file', help='a Python file with get_sweep() (see stylegan_jax/sweeps/__init__.py)')
    p.add_argument('--dir', required=True, help='the sweep directory: trials/<name>/ are the trial workdirs')
    p.add_argument('--python', default=sys.executable, help='the Python that runs the trials (default: %(default)s)')
    return p

  run = with_sweep('run', 'Run the trials on this machine, N at a time; finished ones are skipped, stopped ones '
                          'resume.')
  run.add_argument('--parallel', type=int, default=1, help='trials at once (default: %(default)s)')
  run.add_argument('--devices', default=None, help='comma-separated GPU ids or TPU chip ids to split between the '
                   'concurrent trials (default: CUDA_VISIBLE_DEVICES or every GPU nvidia-smi lists, else '
                   'TPU_VISIBLE_CHIPS or every /dev/accel* chip; none on a CPU machine)')
  run.add_argument('--status_interval', type=float, default=60.0,
                   help='seconds between progress lines of a running trial (default: %(default)s)')
  summarize = sub.add_parser('summary', help='Tabulate and plot a metric of every trial (works while the sweep '
                                             'runs).')
  summarize.add_argument('--dir', required=True, help='the sweep directory')
  for p in (run, summarize):
    p.add_argument('--metric', default='fd_domain', help='metrics.jsonl key to rank by (default: %(default)s)')
    p.add_argument('--mode', choices=('min', 'max'), default='min', help='min: lower is better (default)')
  batch = with_sweep('slurm', 'Write a SLURM job-array script (one task per trial) to DIR/sweep.sbatch.')
  batch.add_argument('--parallel', type=int, default=0, help='at most N tasks at once (default: no limit)')
  batch.add_argument('--sbatch', action='append', default=[],
                     help="an extra #SBATCH option, repeatable: --sbatch=--gres=gpu:1 --sbatch=--time=24:00:00")
  with_sweep('commands', 'Print one train command per trial (also written to DIR/commands.txt).')
  return parser


def _prepare(args) -> tuple[sweeps_lib.Sweep, list[trials_lib.Trial], dict[str, str]]:
  sweep = sweeps_lib.load(args.sweep_file)
  trials, invalid = trials_lib.prepare(sweep, args.sweep_file, args.dir, args.python)
  for name, error in invalid.items():
    print(f'trial {name} is invalid and will not run: {error}', file=sys.stderr)
  return sweep, trials, invalid


def _main(argv: list[str]) -> int:
  """argv without the program name. Returns 0 when every trial is done (run) or the files are written."""
  args = _parser().parse_args(argv)
  if args.command == 'summary':
    markdown, plots = summary.summarize(args.dir, args.metric, args.mode)
    print(markdown + ('\n'.join(plots) if plots else f'(no trial has logged {args.metric} yet: no plots)'))
    return 0
  if args.command in ('slurm', 'commands'):
    sweep, trials, invalid = _prepare(args)
    if invalid:
      raise errors.UsageError(f'{len(invalid)} of {len(trials)} trials have invalid configs (listed above): fix the '
                              'sweep file first')
    commands_file = os.path.abspath(os.path.join(args.dir, 'commands.txt'))
    if args.command == 'commands':
      with open(commands_file) as f:
        print(f.read(), end='')
      return 0
    log_dir = os.path.abspath(os.path.join(args.dir, 'slurm'))
    os.makedirs(log_dir, exist_ok=True)
    name = os.path.splitext(os.path.basename(args.sweep_file))[0]
    path = os.path.join(args.dir, 'sweep.sbatch')
    with open(path, 'w') as f:
      f.write(slurm.script(name, commands_file, len(trials), log_dir, os.getcwd(), parallel=args.parallel,
                           sbatch=args.sbatch))
    print(f'wrote {path} ({len(trials)} array tasks) and {commands_file}; submit with: sbatch {path}')
    return 0
  if args.parallel < 1:
    raise errors.UsageError(f'--parallel {args.parallel}: must be >= 1')
  sweep, trials, invalid = _prepare(args)
  commands = {t.name: trials_lib.command(sweep, t, args.dir, args.python) for t in trials}
  kind, devices = launch.local_devices()
  if args.devices is not None:
    devices = [d for d in args.devices.split(',') if d]
  final = launch.run(trials, args.dir, commands, invalid=list(invalid), parallel=args.parallel, device_kind=kind,
                     devices=devices, metric=args.metric, status_interval=args.status_interval,
                     print_fn=lambda line: print(line, flush=True))
  markdown, _ = summary.summarize(args.dir, args.metric, args.mode)
  print(markdown, end='')
  counts = {s: sum(1 for v in final.values() if v == s) for s in sorted(set(final.values()))}
  print(', '.join(f'{n} {s}' for s, n in counts.items()) + f'; summary in {os.path.join(args.dir, "summary.md")}')
  return 0 if all(state == 'done' for state in final.values()) else 1


def main(argv: Optional[Sequence[str]] = None) -> int:
  """`stylegan-jax sweep ...` (argv without the program name); returns the exit code."""
  return console.run(PROG, _main, sys.argv[1:] if argv is None else argv)


if __name__ == '__main__':
  sys.exit(main())
