"""Training throughput per stage: compile seconds and img/s of the D+G step pair, on synthetic reals.

  python experiments/bench_train.py                                # quickstart (stylegan_jax/configs/default.py), all stages
  python experiments/bench_train.py --config stylegan_jax/configs/lsun_bedroom256.py --minibatch 8 --stages 256
  python experiments/bench_train.py --config stylegan_jax/configs/ffhq1024.py --minibatch 32 --stages 1024   # on a GPU

Prints a markdown table (one row per stage). The input pipeline is not involved (see bench_input_pipeline.py).
"""

import argparse
import importlib.util
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, '.')
from stylegan_jax import schedule, steps, train_state  # noqa: E402
from stylegan_jax.network_config import NetworkConfig  # noqa: E402


def load_config(path: str):
  spec = importlib.util.spec_from_file_location('bench_config', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--config', default='stylegan_jax/configs/default.py')
  parser.add_argument('--minibatch', type=int, default=0, help='global minibatch (0 = the schedule\'s)')
  parser.add_argument('--stages', default='', help='comma-separated stage resolutions (default: all)')
  parser.add_argument('--steps', type=int, default=10, help='timed D+G step pairs per stage')
  args = parser.parse_args()
  config = load_config(args.config)
  model = NetworkConfig.from_dict(config.model)
  mesh = steps.make_mesh()
  stages = ([int(s) for s in args.stages.split(',')] if args.stages
            else schedule.stage_resolutions(config.schedule, model.resolution))
  state = steps.replicate(train_state.create_train_state(model, 0), mesh)
  rs = np.random.RandomState(0)
  print(f'{jax.devices()[0].platform} x{jax.device_count()} ({jax.devices()[0].device_kind}), {args.config}\n')
  print('| stage | minibatch | compile s | img/s | ms / step pair |')
  print('|---|---|---|---|---|')
  for stage in stages:
    nimg = 0
    while schedule.schedule_from_config(nimg, config.schedule, model.resolution).resolution < stage:
      nimg += 1000
    sched = schedule.schedule_from_config(nimg, config.schedule, model.resolution)
    batch = args.minibatch or sched.minibatch
    pair = steps.build_stage_steps(model, config, stage, batch, mesh)
    images = steps.shard_batch(rs.randint(0, 256, (batch, stage, stage, model.num_channels), np.uint8), mesh)
    labels = steps.shard_batch(np.eye(model.label_size, dtype=np.float32)[np.arange(batch) % max(model.label_size, 1)]
                               if model.label_size else np.zeros((batch, 0), np.float32), mesh)
    lod, lr = jnp.float32(sched.lod), jnp.float32(sched.D_lrate)

    def run(state):
      state, _ = pair.d_step(state, images, labels, lod, lr)
      state, _ = pair.g_step(state, labels, lod, lr)
      return state

    start = time.perf_counter()
    state = jax.block_until_ready(run(state))
    compile_s = time.perf_counter() - start
    state = jax.block_until_ready(run(state))  # warm-up
    start = time.perf_counter()
    for _ in range(args.steps):
      state = run(state)
    jax.block_until_ready(state)
    seconds = (time.perf_counter() - start) / args.steps
    print(f'| {stage}x{stage} | {batch} | {compile_s:.1f} | {batch / seconds:.3g} | {1000 * seconds:.1f} |', flush=True)


if __name__ == '__main__':
  main()
