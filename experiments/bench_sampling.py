"""Sampling throughput of `sampling.Sampler` on the default JAX backend (CPU or GPU), as a markdown table.

Random weights with the official architecture at each resolution (NetworkConfig(resolution=R); 1024 is the FFHQ
default). For each resolution and noise mode: the compile time of mapping + synthesis (first batch minus a
steady batch), then seeds -> uint8 images end to end (host latents in, host uint8 out) for at least `--seconds`
(and at least `--min-batches` batches). Default matmul precision of the backend.

  python experiments/bench_sampling.py                       # 256² and 1024², batch 8, random noise
  python experiments/bench_sampling.py --resolutions 1024 --batch-size 32 --noise-modes random,const
"""

import argparse
import time

import jax
import numpy as np

from stylegan_jax import networks, sampling
from stylegan_jax.network_config import NetworkConfig


def random_generator(config: NetworkConfig, seed: int = 0) -> dict:
  """Gs variables with N(0, 1) values (mapping weights N(0, 100)), built in numpy: no init compile."""
  rng = np.random.default_rng(seed)

  def value(path, spec):
    scale = 100.0 if 'mapping' in jax.tree_util.keystr(path) and 'weight' in jax.tree_util.keystr(path) else 1.0
    return scale * rng.standard_normal(spec.shape, np.float32)
  shapes = jax.eval_shape(lambda key: networks.init_generator(config, key), jax.random.key(0))
  return jax.tree_util.tree_map_with_path(value, shapes)


def bench(resolution: int, batch_size: int, noise_mode: str, seconds: float, min_batches: int) -> dict:
  config = NetworkConfig(resolution=resolution)
  sampler = sampling.Sampler(config, random_generator(config), batch_size=batch_size)

  def batch(i):
    start = time.perf_counter()
    sampler.generate(range(i * batch_size, (i + 1) * batch_size), noise_mode=noise_mode)
    return time.perf_counter() - start

  first = batch(0)  # compiles mapping and synthesis (nothing if a previous row compiled the same shapes)
  times = []
  while len(times) < min_batches or sum(times) < seconds:
    times.append(batch(len(times) + 1))
  steady = float(np.mean(times))
  return dict(resolution=resolution, batch=batch_size, noise=noise_mode, compile=first - steady,
              images=len(times) * batch_size, img_per_s=batch_size / steady, ms_per_img=1000 * steady / batch_size)


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--resolutions', default='256,1024')
  parser.add_argument('--batch-size', type=int, default=8)
  parser.add_argument('--noise-modes', default='random', help='comma-separated: random, const, none')
  parser.add_argument('--seconds', type=float, default=20.0, help='minimum timed seconds per row')
  parser.add_argument('--min-batches', type=int, default=2, help='minimum timed batches per row')
  args = parser.parse_args()
  device = jax.devices()[0]
  print(f'backend: {jax.default_backend()}, device: {device.device_kind} (x{jax.device_count()}), '
        f'jax {jax.__version__}\n')
  print('| resolution | batch | noise | compile (s) | images timed | img/s | ms/img |')
  print('|---|---|---|---|---|---|---|')
  for resolution in (int(r) for r in args.resolutions.split(',')):
    for noise_mode in args.noise_modes.split(','):
      r = bench(resolution, args.batch_size, noise_mode, args.seconds, args.min_batches)
      print(f"| {r['resolution']}² | {r['batch']} | {r['noise']} | {r['compile']:.1f} | {r['images']} | "
            f"{r['img_per_s']:.2f} | {r['ms_per_img']:.0f} |", flush=True)


if __name__ == '__main__':
  main()
