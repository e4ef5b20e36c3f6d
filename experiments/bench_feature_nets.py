"""Throughput of the metric feature networks on the default JAX backend, as a markdown table.

FID Inception-v3 (uint8 images -> 2048-d pool3 features, the TF resize to 299 included) in images/s, and
LPIPS-VGG16 in image pairs/s, with random weights of the real shapes (no weight files needed; speed does not
depend on the values). Each row: the compile time (first batch minus a steady batch), then batches for at least
`--seconds`. Sizes: 32² gray (Fashion-MNIST), 256² and 299² RGB for Inception; for LPIPS the PPL crops of 32²
(16²) and 1024² (256², after the official downsampling) images, and 64².

  python experiments/bench_feature_nets.py
  python experiments/bench_feature_nets.py --batch-size 64 --seconds 30
"""

import argparse
import time

import jax
import numpy as np

from stylegan_jax.metrics import inception, lpips


def random_variables(shapes: dict, seed: int = 0) -> dict:
  """Random values for a {'collection': {...}} tree of ShapeDtypeStructs: He-scaled kernels, positive variances."""
  rng = np.random.default_rng(seed)

  def value(path, spec):
    name = jax.tree_util.keystr(path)
    if 'kernel' in name:
      return rng.normal(0, np.sqrt(2 / np.prod(spec.shape[:-1])), spec.shape).astype(np.float32)
    if "'var'" in name or "'scale'" in name:
      return rng.uniform(0.5, 1.5, spec.shape).astype(np.float32)
    return rng.normal(0, 0.1, spec.shape).astype(np.float32)
  return jax.device_put(jax.tree_util.tree_map_with_path(value, shapes))


def timed(fn, seconds: float) -> tuple[float, float]:
  """(compile seconds, steady seconds per call)."""
  def once():
    start = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - start
  first, times = once(), []
  while len(times) < 2 or sum(times) < seconds:
    times.append(once())
  steady = float(np.mean(times))
  return first - steady, steady


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--batch-size', type=int, default=16)
  parser.add_argument('--seconds', type=float, default=10.0, help='minimum timed seconds per row')
  args = parser.parse_args()
  n = args.batch_size
  print(f'backend: {jax.default_backend()}, device: {jax.devices()[0].device_kind}, batch {n}\n')
  print('| network | input | compile s | ms / item | items/s |\n|---|---|---|---|---|')
  shapes = jax.eval_shape(inception.InceptionV3().init, jax.random.key(0), jax.ShapeDtypeStruct((1, 299, 299, 3),
                                                                                                 np.float32))
  net = inception.FeatureNetwork(name='random', checksum='', variables=random_variables(shapes))
  rng = np.random.default_rng(0)
  for size, channels in ((32, 1), (256, 3), (299, 3)):
    images = jax.device_put(rng.integers(0, 256, (n, size, size, channels), dtype=np.uint8))
    compile_s, steady = timed(lambda: net(images), args.seconds)
    print(f'| Inception-v3 (FID) | {size}x{size}x{channels} uint8 | {compile_s:.1f} | {1000 * steady / n:.1f} '
          f'| {n / steady:.1f} img/s |', flush=True)
  pair = [jax.ShapeDtypeStruct((1, 64, 64, 3), np.float32)] * 2
  shapes = jax.eval_shape(lpips.LPIPS().init, jax.random.key(0), *pair)
  perceptual = lpips.PerceptualDistance(name='random', checksum='', variables=random_variables(shapes))
  for size in (16, 64, 256):
    a, b = (jax.device_put(rng.uniform(-1, 1, (n, size, size, 3)).astype(np.float32)) for _ in range(2))
    compile_s, steady = timed(lambda: perceptual.distance(a, b), args.seconds)
    print(f'| LPIPS-VGG16 | 2 x {size}x{size}x3 | {compile_s:.1f} | {1000 * steady / n:.1f} '
          f'| {n / steady:.1f} pairs/s |', flush=True)


if __name__ == '__main__':
  main()
