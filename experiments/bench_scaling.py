"""Data-parallel overhead: img/s and step time of one D+G step pair on 1, 2, 4 and 8 forced CPU devices (one
process each) and on 2 processes x 4 devices (jax.distributed on localhost, collectives over TCP).

  python experiments/bench_scaling.py                       # the quickstart's 16x16 stage, global minibatch 32
  python experiments/bench_scaling.py --stage 8 --minibatch 64 --steps 20

Every layout shares the same CPU cores, so this measures what splitting one minibatch across more devices and
processes costs (per-device dispatch, all-reduces), not speed-up. Prints a markdown table.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import time

LAYOUTS = [(1, 1), (1, 2), (1, 4), (1, 8), (2, 4)]  # (processes, devices per process)


def child(args) -> None:
  """One process of one layout: times the step pair and prints a JSON line (process 0)."""
  import jax  # noqa: PLC0415 (after XLA_FLAGS is set by the parent)
  import jax.numpy as jnp  # noqa: PLC0415
  import numpy as np  # noqa: PLC0415
  if args.num_processes > 1:
    jax.distributed.initialize(args.coordinator_address, args.num_processes, args.process_id)
  sys.path.insert(0, '.')
  from stylegan_jax import steps, train_state  # noqa: PLC0415
  from stylegan_jax.configs import default  # noqa: PLC0415
  from stylegan_jax.network_config import NetworkConfig  # noqa: PLC0415
  config = default.get_config()
  model = NetworkConfig.from_dict(config.model)
  mesh = steps.make_mesh()
  pair = steps.build_stage_steps(model, config, args.stage, args.minibatch, mesh)
  state = steps.replicate(train_state.create_train_state(model, 0), mesh)
  local = args.minibatch // jax.process_count()
  rs = np.random.RandomState(jax.process_index())
  images = steps.shard_batch(rs.randint(0, 256, (local, args.stage, args.stage, 1)).astype(np.uint8), mesh)
  labels = steps.shard_batch(np.zeros((local, 0), np.float32), mesh)
  lod, lr = jnp.float32(0.5), jnp.float32(0.001)

  def step_pair(state):
    state, _ = pair.d_step(state, images, labels, lod, lr)
    state, _ = pair.g_step(state, labels, lod, lr)
    return state

  start = time.time()
  state = jax.block_until_ready(step_pair(state))
  compile_s = time.time() - start
  start = time.time()
  for _ in range(args.steps):
    state = step_pair(state)
  jax.block_until_ready(state)
  step_s = (time.time() - start) / args.steps
  if jax.process_index() == 0:
    print(json.dumps(dict(processes=jax.process_count(), devices=jax.device_count(), compile_s=compile_s,
                          step_s=step_s, img_per_s=args.minibatch / step_s)), flush=True)


def free_port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def run_layout(args, processes: int, devices: int) -> dict:
  env = {**os.environ, 'JAX_PLATFORMS': 'cpu', 'XLA_FLAGS': f'--xla_force_host_platform_device_count={devices}'}
  address = f'localhost:{free_port()}'
  common = [sys.executable, __file__, '--child', f'--stage={args.stage}', f'--minibatch={args.minibatch}',
            f'--steps={args.steps}', f'--coordinator_address={address}', f'--num_processes={processes}']
  children = [subprocess.Popen(common + [f'--process_id={i}'], env=env, stdout=subprocess.PIPE, text=True)
              for i in range(processes)]
  outputs = [c.communicate()[0] for c in children]
  if any(c.returncode for c in children):
    raise SystemExit(f'layout {processes}x{devices} failed')
  return json.loads(outputs[0].strip().splitlines()[-1])


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--stage', type=int, default=16, help='stage resolution of the quickstart networks')
  parser.add_argument('--minibatch', type=int, default=32, help='global minibatch')
  parser.add_argument('--steps', type=int, default=10, help='timed D+G step pairs')
  parser.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
  parser.add_argument('--coordinator_address', help=argparse.SUPPRESS)
  parser.add_argument('--num_processes', type=int, default=1, help=argparse.SUPPRESS)
  parser.add_argument('--process_id', type=int, default=0, help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.child:
    child(args)
    return
  print(f'| processes x devices | compile s | step pair s | img/s |  (stage {args.stage}x{args.stage}, '
        f'minibatch {args.minibatch})')
  print('|---|---|---|---|')
  for processes, devices in LAYOUTS:
    r = run_layout(args, processes, devices)
    print(f"| {processes} x {devices} | {r['compile_s']:.1f} | {r['step_s']:.3f} | {r['img_per_s']:.1f} |",
          flush=True)


if __name__ == '__main__':
  main()
