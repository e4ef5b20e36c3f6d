"""Wall and CPU time per step of one stage's compiled steps: how many cores a step keeps busy, and (run once
under `taskset -c 0`) how its time scales from one core to all.

  python experiments/step_times.py quickstart_r1:32@16                 # the issue #11 protocol's stage
  taskset -c 0 python experiments/step_times.py quickstart_r1:32@16    # the same on one core
  python experiments/step_times.py --cpu_devices 2 quickstart:32       # as ./run.sh train steps
  python experiments/step_times.py --kernels quickstart_r1:32@16       # and each step's kernels alone

A row is a benchmark.py training row (CONFIG:RES[@MINIBATCH]). Each step (the D step with the penalty, the
plain D step where the config has lazy regularisation, the G step) is run `--steps` times per round from the same
evolving state; printed per round: the median wall milliseconds and the process's CPU seconds per wall second
("cores": user + system time of all threads, spin-waiting included, over the steps' wall time).

With `--kernels` (one device), then per step: the sum of its convolutions and matmuls each compiled and timed alone
(hlo_kernels.py: rebuilt from the compiled step's HLO, with the step's compiler options), their GFLOP and GFLOP/s:
the time the step would take if everything else in it were free.
"""

import argparse
import os
import resource
import statistics
import sys
import time

import jax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchmark  # noqa: E402  (experiments/benchmark.py: rows, configs, stage steps)
import hlo_kernels  # noqa: E402
from stylegan_jax import errors, steps, xla_options  # noqa: E402


def cpu_seconds() -> float:
  usage = resource.getrusage(resource.RUSAGE_SELF)
  return usage.ru_utime + usage.ru_stime


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('row', help='a training row, e.g. quickstart_r1:32@16')
  parser.add_argument('--steps', type=int, default=15, help='timed calls of each step per round')
  parser.add_argument('--rounds', type=int, default=2)
  parser.add_argument('--cpu_devices', type=int, default=1, help='data-parallel over this many CPU devices')
  parser.add_argument('--kernels', action='store_true', help="then time each step's convolutions and matmuls alone")
  args = parser.parse_args()
  if args.steps < 1 or args.rounds < 1 or args.cpu_devices < 1:
    parser.error('--steps, --rounds and --cpu_devices must be positive')
  if args.kernels and args.cpu_devices > 1:
    parser.error('--kernels times the kernels on one device: leave out --cpu_devices')
  jax.config.update('jax_num_cpu_devices', args.cpu_devices)
  rows = benchmark.parse_rows([args.row])
  if len(rows) != 1:
    parser.error(f'one row (one resolution), got {args.row!r}')
  (name, resolution, minibatch), = rows
  try:
    config = benchmark.load_config(name)
  except errors.UserError as e:
    parser.error(str(e))
  model, mesh, sched, batch, pair = benchmark.stage_steps(config, resolution, minibatch, args.cpu_devices)
  state, images, labels, lod, lr = benchmark.step_inputs(model, mesh, sched, resolution, batch)
  pair = steps.compile_stage_steps(pair, model, mesh)
  step_calls = {'D step with penalty': (pair.d_step, (images, labels, lod, lr)),
                'G step': (pair.g_step, (labels, lod, lr))}  # name: (compiled step, its inputs after the state)
  if pair.penalty_interval > 1:
    step_calls['plain D step'] = (pair.d_step_plain, (images, labels, lod, lr))
  for step, inputs in step_calls.values():  # warm-up
    state = jax.block_until_ready(step(state, *inputs)[0])
  print(f'{args.row}, minibatch {batch}, {args.cpu_devices} device(s), {len(os.sched_getaffinity(0))} core(s) '
        f'available, jax {jax.__version__}')
  for round_index in range(args.rounds):
    cells = []
    for step_name, (step, inputs) in step_calls.items():
      walls, cpus = [], []
      for _ in range(args.steps):
        cpu_start, start = cpu_seconds(), time.perf_counter()
        state = jax.block_until_ready(step(state, *inputs)[0])
        walls.append(time.perf_counter() - start)
        cpus.append(cpu_seconds() - cpu_start)
      cells.append(f'{step_name} {statistics.median(walls) * 1e3:.1f} ms, cores {sum(cpus) / sum(walls):.2f}')
    print(f'round {round_index + 1}: ' + ' | '.join(cells), flush=True)
  if args.kernels:
    print('timing each step\'s kernels alone (two compiles per distinct kernel: about a minute)...', file=sys.stderr,
          flush=True)
    cells, options = [], xla_options.step_options(mesh)
    for step_name, (step, _) in step_calls.items():
      seconds, flop, count, skipped = hlo_kernels.time_kernels(step.as_text(), mesh.devices.flat[0], options)
      cells.append(f'{step_name} {seconds * 1e3:.1f} ms ({count - skipped} convolutions and matmuls'
                   + (f', {skipped} not rebuilt' if skipped else '') + f', {flop / 1e9:.2f} GFLOP, '
                   f'{flop / 1e9 / max(seconds, 1e-9):.0f} GFLOP/s)')
    print('kernels alone: ' + ' | '.join(cells), flush=True)


if __name__ == '__main__':
  main()
