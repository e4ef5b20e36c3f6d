"""The project's benchmark: training and sampling speed per device, compile time, memory and achieved FLOP/s.

  python experiments/benchmark.py                       # this platform's preset (CPU: minutes; GPU/TPU: more rows)
  python experiments/benchmark.py --train quickstart:32@16,32@32 official:16@32 --sample official:256@16
  python experiments/benchmark.py --train official:1024@32 --sample official:1024@32     # on a GPU
  python experiments/benchmark.py --train --sample --count official:256@8,1024@4 --assume-tflops 100  # FLOPs only
  python experiments/benchmark.py --train --sample --count official:1024@4 --memory   # + compiled memory
  python experiments/benchmark.py --train --sample --count official:256@8,1024@4 --memory --forms gpu  # a GPU's
  python experiments/benchmark.py --cpu_devices 2 --train quickstart:8,16,32 --sample   # as ./run.sh train steps

A row spec is CONFIG:RES[@MINIBATCH],... with CONFIG `quickstart` (configs/default.py), `quickstart_r1` (the same
with R1 in every D step, as the official code and the PyTorch port of issue #11's comparison do), `official`
(configs/ffhq1024.py with its 1-GPU minibatches: the 1024² networks trained at stage RES) or a config file, then
optionally `+bf16` (bfloat16 convolutions, train.compute_dtype) or `+tf32` (float32 convolutions on TF32 tensor
cores, train.matmul_precision; the configs' default is true float32), e.g. official+tf32:1024@32; MINIBATCH
defaults to the schedule's at that stage. Everything runs on one device (numbers are per device), the training
rows at their config's precision, the sampling rows at JAX's default one (TF32 on recent NVIDIA GPUs), with
synthetic inputs (the input pipeline has its own benchmark). With
`--cpu_devices N` the training rows step data-parallel over N CPU devices of the process as `train --cpu_devices=N`
does (all sharing the machine's cores): img/s and FLOP/s are then the whole CPU's, memory per device. With
`--forms gpu` (or tpu) the training and count rows build the networks' convolutions in the forms that platform
runs (steps.build_stage_steps' forms_platform): on a CPU, the FLOP and memory of a GPU's program, or the CPU's
forms timed against the official ones.

Protocol: the device's peak is measured first in the same run (a large 3x3 convolution and a large matmul);
each training row compiles the stage's steps as training does (compile s: all D and G steps, with the mesh's
xla_options.step_options), runs one warm-up cycle, then times whole step pairs (D step with R1 and the Gs update,
then G step with style mixing) for at least `--seconds` and 3 lazy-R1 cycles (a cycle is one pair when R1 runs
every step); img/s = images / timed seconds. FLOP per image come from XLA's cost analysis of the compiled steps
(averaged over a lazy-R1 cycle), so GFLOP/s = img/s x GFLOP/img is what the device achieved, and "of peak"
relates it to the measured conv and matmul peaks. Memory is XLA's estimate for the larger compiled step
(arguments + outputs - donated + temporaries). Sampling rows time seeds -> uint8 images end to end (mapping +
synthesis with random noise).
"""

import argparse
import datetime
import functools
import os
import statistics
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from stylegan_jax import (accumulation, configs, errors, networks, sampling, schedule, steps, train_state,  # noqa: E402
                          xla_options)
from stylegan_jax.network_config import NetworkConfig  # noqa: E402

CONFIGS = {'quickstart': 'default', 'quickstart_r1': 'default', 'official': 'ffhq1024:1'}  # official: 1-GPU minibatches
VARIANTS = {'bf16': ('train', 'compute_dtype', 'bfloat16'),  # CONFIG+bf16: bf16 convs and matmuls
            'tf32': ('train', 'matmul_precision', 'tensorfloat32')}  # CONFIG+tf32: TF32 tensor cores (NVIDIA)
PRESETS = {
    'cpu': dict(train=['quickstart:8,16,32,32@32', 'quickstart_r1:32@16,32@32', 'official:16@32,32@16'],
                sample=['official:32@16,256@16']),
    'accelerator': dict(train=['quickstart:8,16,32', 'official:8,16,32,64,128,256,512,1024',
                               'official:256@64,1024@32'],
                        sample=['official:256@32,1024@32']),
}


def parse_rows(specs: list[str]) -> list[tuple[str, int, int]]:
  """['official:16@32,32'] -> [('official', 16, 32), ('official', 32, 0)] (0: the schedule's minibatch)."""
  rows = []
  for spec in specs:
    name, _, entries = spec.partition(':')
    if not entries:
      raise SystemExit(f'benchmark: a row spec is CONFIG:RES[@MINIBATCH],..., got {spec!r}')
    for entry in entries.split(','):
      res, _, batch = entry.partition('@')
      if not (res.isdigit() and (batch or '0').isdigit()):
        raise SystemExit(f'benchmark: a row spec is CONFIG:RES[@MINIBATCH],..., got {spec!r}')
      rows.append((name, int(res), int(batch or 0)))
  return rows


def load_config(spec: str):
  """CONFIG[+VARIANT...] of a row spec: the config with each VARIANTS setting applied."""
  name, *variants = spec.split('+')
  unknown = [v for v in variants if v not in VARIANTS]
  if unknown:
    raise errors.UsageError(f'{spec}: unknown variant {unknown[0]!r} (variants: {", ".join(VARIANTS)})')
  try:
    config = configs.load_config(CONFIGS.get(name, name))
  except errors.UserError:
    raise
  except Exception as e:  # noqa: BLE001 (a config file that does not run: one line, not a traceback)
    raise errors.UsageError(f'--config {name}: {type(e).__name__}: {e}') from e
  if name == 'quickstart_r1':
    config.loss.penalty_interval = 1
  for variant in variants:
    section, key, value = VARIANTS[variant]
    config[section][key] = value
  return config


def timed(fn, seconds: float, min_runs: int) -> list[float]:
  """Seconds of each call of `fn` (which blocks), for at least `seconds` and `min_runs` calls."""
  times = []
  while len(times) < min_runs or sum(times) < seconds:
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return times


def flops(compiled) -> float:
  analysis = compiled.cost_analysis()
  analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
  return float(analysis.get('flops', 0.0))


def measure_peak(seconds: float) -> dict[str, float]:
  """GFLOP/s of a large float32 3x3 convolution (NHWC) and a large matmul on the default device, compiled with the
  options of one device's training steps (xla_options: on a CPU, the convolution in the steps' kernels)."""
  rs = np.random.RandomState(0)
  batch = 16 if jax.default_backend() == 'cpu' else 256
  x = jnp.asarray(rs.randn(batch, 32, 32, 512), jnp.float32)
  w = jnp.asarray(rs.randn(3, 3, 512, 512) * 0.02, jnp.float32)
  size = 2048 if jax.default_backend() == 'cpu' else 8192
  a = jnp.asarray(rs.randn(size, size), jnp.float32)
  cases = {'conv': (lambda x, w: jax.lax.conv_general_dilated(x, w, (1, 1), 'SAME',
                                                              dimension_numbers=('NHWC', 'HWIO', 'NHWC')), (x, w)),
           'matmul': (lambda a, b: a @ b, (a, a))}
  peak, options = {}, xla_options.step_options(steps.make_mesh(jax.devices()[:1]))
  for name, (fn, args) in cases.items():
    compiled = jax.jit(fn).lower(*args).compile(compiler_options=options)
    jax.block_until_ready(compiled(*args))
    runs = timed(lambda: jax.block_until_ready(compiled(*args)), seconds, 3)
    peak[name] = flops(compiled) / statistics.median(runs) / 1e9
  return peak


def stage_steps(config, resolution: int, minibatch: int, num_devices: int = 1, forms: str | None = None):
  """(model, mesh, the schedule at the stage's first step, minibatch, the stage's StageSteps) on the first
  `num_devices` devices, the networks in the forms of platform `forms` (None: the devices')."""
  model = NetworkConfig.from_dict(config.model)
  mesh = steps.make_mesh(jax.devices()[:num_devices])
  nimg = 0
  while schedule.schedule_from_config(nimg, config.schedule, model.resolution).resolution < resolution:
    nimg += 100
  sched = schedule.schedule_from_config(nimg, config.schedule, model.resolution)
  batch = minibatch or sched.minibatch
  return model, mesh, sched, batch, steps.build_stage_steps(model, config, resolution, batch, mesh,
                                                            forms_platform=forms)


def pair_flops(d_step, d_step_plain, g_step, penalty_interval: int, num_devices: int = 1) -> float:
  """FLOP of one D + G step pair averaged over a lazy-R1 cycle (R1 in one of every `penalty_interval` D steps),
  from lowered or compiled steps, on all `num_devices` devices (XLA counts one device's program)."""
  d_flops = flops(d_step) + (penalty_interval - 1) * flops(d_step_plain) if penalty_interval > 1 else flops(d_step)
  return (d_flops / penalty_interval + flops(g_step)) * num_devices


def memory_mib(stage: steps.StageSteps) -> float:
  """XLA's memory estimate of the larger of a compiled stage's steps."""
  return max(accumulation.step_bytes(c) for c in (stage.d_step, stage.d_step_plain, stage.g_step)) / 2 ** 20


def count_train(config, resolution: int, minibatch: int, memory: bool, num_devices: int = 1,
                forms: str | None = None) -> dict:
  """FLOP per image of a stage's step pair from the lowered (not run) steps: any size, any device. Unoptimised
  HLO: fusion does not change the count, which matches the compiled one within a few percent. With `memory`, the
  steps are also compiled for XLA's memory estimate (and the compile seconds)."""
  model, mesh, _, batch, pair = stage_steps(config, resolution, minibatch, num_devices, forms)
  result = {}
  if memory:
    start = time.perf_counter()
    compiled = steps.compile_stage_steps(pair, model, mesh)
    result = dict(compile_s=time.perf_counter() - start, memory_mib=memory_mib(compiled))
  state, images, labels, scalar = steps.abstract_inputs(model, mesh, resolution, batch)
  d_step = pair.d_step.lower(state, images, labels, scalar, scalar)
  d_step_plain = pair.d_step_plain.lower(state, images, labels, scalar, scalar) if pair.penalty_interval > 1 \
      else d_step
  total = pair_flops(d_step, d_step_plain, pair.g_step.lower(state, labels, scalar, scalar), pair.penalty_interval,
                     num_devices)
  return dict(gflop_per_img=total / batch / 1e9, penalty_interval=pair.penalty_interval, batch=batch, **result)


def step_inputs(model: NetworkConfig, mesh, sched, resolution: int, batch: int):
  """(a fresh state, synthetic uint8 reals [batch, res, res, C], one-hot labels [batch, label_size], lod, D's
  learning rate) for a stage's steps, placed on `mesh`."""
  state = steps.replicate(train_state.create_train_state(model, 0), mesh)
  rs = np.random.RandomState(0)
  images = steps.shard_batch(rs.randint(0, 256, (batch, resolution, resolution, model.num_channels), np.uint8), mesh)
  labels = steps.shard_batch(np.eye(max(model.label_size, 1), dtype=np.float32)[np.arange(batch) % max(
      model.label_size, 1)][:, :model.label_size], mesh)
  return state, images, labels, jnp.float32(sched.lod), jnp.float32(sched.D_lrate)


def bench_train(config, resolution: int, minibatch: int, seconds: float, num_devices: int = 1,
                forms: str | None = None) -> dict:
  model, mesh, sched, batch, pair = stage_steps(config, resolution, minibatch, num_devices, forms)
  state, images, labels, lod, lr = step_inputs(model, mesh, sched, resolution, batch)

  start = time.perf_counter()
  pair = steps.compile_stage_steps(pair, model, mesh)  # as training compiles a stage
  compile_s = time.perf_counter() - start

  cycle = [pair.d_step] + [pair.d_step_plain] * (pair.penalty_interval - 1)
  total_flops = pair_flops(pair.d_step, pair.d_step_plain, pair.g_step, pair.penalty_interval, num_devices)

  def run_cycle():
    nonlocal state
    for d_step in cycle:
      state, _ = d_step(state, images, labels, lod, lr)
      state, _ = pair.g_step(state, labels, lod, lr)
    jax.block_until_ready(state)

  run_cycle()  # warm-up
  times = timed(run_cycle, seconds, 3)
  img_per_s = batch * len(cycle) * len(times) / sum(times)
  return dict(compile_s=compile_s, img_per_s=img_per_s, gflop_per_img=total_flops / batch / 1e9,
              memory_mib=memory_mib(pair), penalty_interval=pair.penalty_interval, batch=batch)


def random_generator(model: NetworkConfig, seed: int = 0) -> dict:
  """Gs variables with N(0, 1) values (mapping weights N(0, 100)), built in numpy: no init compile."""
  rng = np.random.default_rng(seed)

  def value(path, spec):
    name = jax.tree_util.keystr(path)
    return (100.0 if 'mapping' in name and 'weight' in name else 1.0) * rng.standard_normal(spec.shape, np.float32)
  shapes = jax.eval_shape(lambda key: networks.init_generator(model, key), jax.random.key(0))
  return jax.tree_util.tree_map_with_path(value, shapes)


def bench_sample(config, resolution: int, batch: int, seconds: float) -> dict:
  model = NetworkConfig.from_dict({**config.model.to_dict(), 'resolution': resolution})
  sampler = sampling.Sampler(model, random_generator(model), batch_size=batch or 16)
  batch = sampler.batch_size
  dlatents = jax.ShapeDtypeStruct((batch, model.num_layers, model.dlatent_size), jnp.float32)
  ids = jax.ShapeDtypeStruct((batch,), jnp.uint32)
  start = time.perf_counter()
  compiled_map = sampling._map.lower(model, sampler.variables, jax.ShapeDtypeStruct((batch, model.latent_size),
                                     jnp.float32), None, 1.0, None).compile()
  compiled_synthesis = sampling._synthesize.lower(model, sampler.variables, dlatents, np.uint32(0), ids,
                                                  noise_mode='random').compile()
  compile_s = time.perf_counter() - start
  sampler.generate(range(batch))  # warm-up (jit reuses the executables compiled above)
  starts = iter(range(batch, 10 ** 9, batch))
  times = timed(lambda: sampler.generate(range(start := next(starts), start + batch)), seconds, 3)
  steady = statistics.median(times)
  return dict(compile_s=compile_s, img_per_s=batch / steady,
              gflop_per_img=(flops(compiled_map) + flops(compiled_synthesis)) / batch / 1e9,
              memory_mib=accumulation.step_bytes(compiled_synthesis) / 2 ** 20, batch=batch)


def commit() -> str:
  try:
    return subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True, check=True,
                          cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    return 'unknown'


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--train', nargs='*', help='training rows (default: the preset)')
  parser.add_argument('--sample', nargs='*', help='sampling rows (default: the preset)')
  parser.add_argument('--count', nargs='*', default=[],
                      help='training rows to count FLOP/img for without running them (e.g. official:1024@4)')
  parser.add_argument('--assume-tflops', type=float, default=0.0,
                      help='with --count: also estimate img/s for a device of this many achieved TFLOP/s')
  parser.add_argument('--memory', action='store_true',
                      help='with --count: also compile the steps for their memory (minutes for large stages on a CPU)')
  parser.add_argument('--preset', choices=sorted(PRESETS), help='default: cpu on a CPU, else accelerator')
  parser.add_argument('--seconds', type=float, default=10.0, help='minimum timed seconds per row')
  parser.add_argument('--cpu_devices', type=int, default=0,
                      help='training and count rows data-parallel over this many CPU devices (as train --cpu_devices)')
  parser.add_argument('--forms', choices=('cpu', 'gpu', 'tpu'),
                      help="training and count rows: the networks' convolutions in the forms this platform runs "
                           "(default: the device's; e.g. --forms gpu on a CPU counts a GPU's program)")
  args = parser.parse_args()
  if args.cpu_devices < 0:
    parser.error(f'--cpu_devices must be >= 0, got {args.cpu_devices}')
  if args.cpu_devices:
    jax.config.update('jax_num_cpu_devices', args.cpu_devices)  # before anything starts JAX's backends
  num_devices = max(args.cpu_devices, 1)
  preset = PRESETS[args.preset or ('cpu' if jax.default_backend() == 'cpu' else 'accelerator')]
  train_rows = parse_rows(preset['train'] if args.train is None else args.train)
  sample_rows = parse_rows(preset['sample'] if args.sample is None else args.sample)
  count_rows = parse_rows(args.count)
  try:  # every row's config, before the minutes of measuring
    loaded = {name: load_config(name) for name, _, _ in train_rows + sample_rows + count_rows}
  except errors.UserError as e:
    parser.error(str(e))
  if any('+' in name for name, _, _ in sample_rows):
    parser.error('sampling rows run float32 (sampling.Sampler): a +VARIANT is for training and count rows')
  device = jax.devices()[0]
  if args.cpu_devices and device.platform != 'cpu':
    parser.error(f'--cpu_devices is for CPU runs; this one runs on {device.platform}')
  print(f'{device.platform} ({device.device_kind}{f" x {num_devices} devices" if num_devices > 1 else ""}), '
        f'jax {jax.__version__}, commit {commit()}, '
        f'{datetime.date.today().isoformat()}; {args.forms or device.platform} forms; '
        f'XLA_FLAGS={os.environ.get("XLA_FLAGS", "")!r}', flush=True)
  if train_rows or sample_rows:
    peak = measure_peak(args.seconds / 2)
    print(f'measured peak: conv {peak["conv"]:.0f} GFLOP/s, matmul {peak["matmul"]:.0f} GFLOP/s\n', flush=True)
    print('| work | config | res | minibatch | compile s | img/s | GFLOP/img | GFLOP/s | of peak: conv / matmul '
          '| MiB (XLA) |')
    print('|---|---|---|---|---|---|---|---|---|---|')
  for kind, rows, fn in (('train', train_rows, functools.partial(bench_train, num_devices=num_devices,
                                                                       forms=args.forms)),
                         ('sample', sample_rows, bench_sample)):
    for name, resolution, batch in rows:
      r = fn(loaded[name], resolution, batch, args.seconds)
      gflops = r['img_per_s'] * r['gflop_per_img']
      label = kind + (f' (R1 every {r["penalty_interval"]})' if r.get('penalty_interval', 1) > 1 else '')
      print(f'| {label} | {name} | {resolution}² | {r["batch"]} | {r["compile_s"]:.1f} | '
            f'{r["img_per_s"]:.3g} | {r["gflop_per_img"]:.3g} | {gflops:.0f} | '
            f'{gflops / peak["conv"]:.0%} / {gflops / peak["matmul"]:.0%} | '
            f'{r["memory_mib"]:.0f} |', flush=True)
  if count_rows:
    extra = (f' | img/s at {args.assume_tflops:g} TFLOP/s' if args.assume_tflops else '') + (
        ' | compile s | MiB (XLA)' if args.memory else '')
    print(f'\n| count | config | res | minibatch | GFLOP/img (lowered){extra} |')
    print('|---|---|---|---|---|' + '---|' * extra.count('|'))
    for name, resolution, batch in count_rows:
      r = count_train(loaded[name], resolution, batch, args.memory, num_devices, args.forms)
      label = 'train' + (f' (R1 every {r["penalty_interval"]})' if r['penalty_interval'] > 1 else '')
      cells = ([f'{args.assume_tflops * 1e3 / r["gflop_per_img"]:.3g}'] if args.assume_tflops else []) + (
          [f'{r["compile_s"]:.1f}', f'{r["memory_mib"]:.0f}'] if args.memory else [])
      print(f'| {label} | {name} | {resolution}² | {r["batch"]} | {r["gflop_per_img"]:.4g} |'
            + ''.join(f' {c} |' for c in cells), flush=True)

if __name__ == '__main__':
  main()
