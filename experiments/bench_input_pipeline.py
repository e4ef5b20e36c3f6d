"""Input pipeline throughput (images/s) on synthetic image folders at 32², 256² and 1024².

  python experiments/bench_input_pipeline.py [--seconds=3] [--workdir=/tmp/x]

For each full resolution R it writes a folder of RGB PNGs (smooth content plus
noise, so PNG compresses about like photos), prepares it (all levels), then
times the real pipeline (`create_input_iterator`, mirror on, default threads)
reading level r, two ways:
  precomputed  the stored level-r split (what the package does);
  on the fly   the full-resolution split, decoded, then box-filtered to r in
               the same grain threads (the alternative design).
The data sit in the page cache, so this measures CPU cost, not disk reads.
"""

import argparse
import os
import tempfile
import time

import numpy as np
from PIL import Image

from stylegan_jax import input_pipeline
from stylegan_jax.data.prepare import prepare

# (full resolution, images, global batch, levels to read)
SETUPS = [(32, 4096, 64, (4, 32)), (256, 512, 32, (4, 32, 256)), (1024, 64, 8, (4, 64, 1024))]


def write_folder(path: str, resolution: int, count: int) -> None:
  rng = np.random.default_rng(0)
  yy, xx = np.mgrid[0:resolution, 0:resolution] / resolution
  os.makedirs(path)
  for i in range(count):
    phase = rng.uniform(0, 6, 3)
    smooth = [np.sin(6 * xx + p) * np.cos(4 * yy - p) for p in phase]
    image = 128 + 100 * np.stack(smooth, -1) + rng.normal(0, 6, (resolution, resolution, 3))
    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(f'{path}/{i:05d}.png')


def throughput(config, resolution: int, batch: int, seconds: float) -> float:
  it = input_pipeline.create_input_iterator(config, resolution=resolution, global_batch_size=batch,
                                            seed=0, mirror_augment=True)
  for _ in range(3):  # Warm up: threads started, buffer full.
    next(it)
  start, images = time.perf_counter(), 0
  while time.perf_counter() - start < seconds:
    next(it)
    images += batch
  rate = images / (time.perf_counter() - start)
  it.close()
  return rate


def on_the_fly(config, full: int, resolution: int, batch: int, seconds: float) -> float:
  """Reads the full-resolution split and box-filters each image to `resolution` while decoding."""
  decode, split = input_pipeline.decode_png, input_pipeline.split_name

  def decode_and_filter(data, num_channels):
    image = decode(data, num_channels).astype(np.float64)
    f = full // resolution
    means = image.reshape(resolution, f, resolution, f, num_channels).mean(axis=(1, 3))
    return np.rint(means).clip(0, 255).astype(np.uint8)
  input_pipeline.decode_png = decode_and_filter
  input_pipeline.split_name = lambda r: split(full)
  try:
    return throughput(config, resolution, batch, seconds)
  finally:
    input_pipeline.decode_png, input_pipeline.split_name = decode, split


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--seconds', type=float, default=3.0, help='timing per measurement')
  parser.add_argument('--workdir', default=None, help='default: a temporary directory')
  args = parser.parse_args()
  workdir = args.workdir or tempfile.mkdtemp(prefix='bench_input_pipeline_')
  print(f'{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f} at start; '
        f'data under {workdir}\n')
  rows = []
  for full, count, batch, levels in SETUPS:
    config = input_pipeline.get_data_config()
    config.update(name='image_folder', source_dir=f'{workdir}/src{full}', data_dir=f'{workdir}/data',
                  resolution=full, num_channels=3)
    if not os.path.exists(config.source_dir):
      write_folder(config.source_dir, full, count)
    start = time.perf_counter()
    builder = prepare(config, num_workers=os.cpu_count() or 1)
    prep_rate = count / (time.perf_counter() - start)
    splits = builder.info.splits
    for r in levels:
      stored = throughput(config, r, batch, args.seconds)
      fly = on_the_fly(config, full, r, batch, args.seconds) if r < full else stored
      rows.append((f'{full}²', count, f'{prep_rate:.0f}', f'{r}²', batch,
                   splits[f'res{r}'].num_bytes / count / 1024, stored, fly))
  print(f'\nload average {os.getloadavg()[0]:.1f} at the end (other processes skew the numbers)')
  header = ('dataset', 'images', 'prepare img/s', 'level', 'batch', 'KiB/img at level',
            'precomputed img/s', 'on the fly img/s')
  print('| ' + ' | '.join(header) + ' |')
  print('|' + '---|' * len(header))
  for row in rows:
    print('| ' + ' | '.join([*map(str, row[:5]), f'{row[5]:.1f}', f'{row[6]:.0f}',
                             f'{row[7]:.0f}']) + ' |')


if __name__ == '__main__':
  main()
