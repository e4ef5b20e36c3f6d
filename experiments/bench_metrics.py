"""Cost of the quickstart's evaluation during training: `config.metrics.names` of a fresh quickstart Gs at each
stage's resolution and lod (8² lod 2, 16² lod 1, 32² lod 0), then 32² again (warm: compiled, reals cached).

The domain classifier is trained first if it is not in the cache (its time is reported separately).

  python experiments/bench_metrics.py [--data_dir data] [--cache_dir DIR]
"""

import argparse
import time

import jax

from stylegan_jax import networks
from stylegan_jax.configs import default
from stylegan_jax.metrics import registry
from stylegan_jax.network_config import NetworkConfig


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--data_dir', default='data')
  parser.add_argument('--cache_dir', default='')
  args = parser.parse_args()
  config = default.get_config()
  config.data.data_dir, config.metrics.cache_dir = args.data_dir, args.cache_dir
  model = NetworkConfig.from_dict(config.model)
  gs = networks.init_generator(model, jax.random.key(0))
  evaluator = registry.Evaluator(config)
  start = time.time()
  evaluator.prepare(config.metrics.names)
  print(f'classifier loaded or trained: {time.time() - start:.1f} s')
  print(f'| resolution | lod | seconds | {" | ".join(config.metrics.names)} ({config.metrics.num_images} images) |')
  for resolution, lod in ((8, 2.0), (16, 1.0), (32, 0.0), (32, 0.0)):
    start = time.time()
    results = evaluator.evaluate(gs, config.metrics.names, resolution=resolution, lod=lod)
    print(f'| {resolution} | {lod} | {time.time() - start:.1f} | {results} |', flush=True)


if __name__ == '__main__':
  main()
