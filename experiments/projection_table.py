"""Projection with a trained Fashion-MNIST model (issue #13): how closely real test images and generated ones are
recovered, in W and W+, with const and optimised noise, as PSNR and the domain distance; and a figure.

Run:      stylegan-jax export --workdir workdir/fmnist_conditional --out cond-art
          python experiments/projection_table.py --network cond-art --outdir proj/ [--steps 1000] [--per-class 1]
Prints:   a Markdown table (README "Projection and synthetic datasets" keeps the latest): per setting the PSNR
          (mean, min) and the domain distance (mean squared difference of the domain classifier's 128-d features,
          the projector's `domain` distance) between targets and projections, the share of images whose distance
          fell at every quarter of the run, and two scale rows: another real image of the same class, and the
          generated targets against the mean-w image of their class. Writes proj/figure.png (rows: real test
          images, their W+ projections with const noise, the projections' coarse styles (4x4, 8x8) mixed with the
          next column's middle and fine ones) and proj/projection_table.json (every number per image).

Targets: the first `--per-class` t10k images of each class (labels given to a conditional model), and images the
model generates from seeds 0.. with const noise and psi 1 (one per class for a conditional model).
"""

import argparse
import json
import pathlib
import sys

import numpy as np

from stylegan_jax import configs, console, figures, projector, sampling
from stylegan_jax.data import fashion_mnist
from stylegan_jax.metrics import classifier

SETTINGS = [('generated', 'w+', 'const'), ('generated', 'w', 'const'), ('generated', 'w+', 'optimize'),
            ('real', 'w+', 'optimize'), ('real', 'w+', 'const'), ('real', 'w', 'const')]
FIGURE_SETTING = ('real', 'w+', 'const')  # stored noise: what the figure commands render from the dlatents


def to_float(images: np.ndarray) -> np.ndarray:
  return np.asarray(images, np.float32) / 127.5 - 1


def first_of_each_class(labels: np.ndarray, per_class: int, skip: int = 0) -> np.ndarray:
  """Indices of the `skip`+1-th to `skip`+per_class-th image of each class, class by class."""
  return np.concatenate([np.flatnonzero(labels == k)[skip:skip + per_class] for k in range(10)])


def falling_share(history: np.ndarray) -> float:
  """The share of images whose distance fell from each quarter of the run to the next ([calls, N] history)."""
  quarters = history[np.linspace(0, len(history) - 1, 5).round().astype(int)]
  return float(np.mean(np.all(np.diff(quarters, axis=0) < 0, axis=0)))


def summary(targets, images, domain) -> dict:
  psnr = projector.psnr(targets, images)
  distance = np.asarray(domain(to_float(targets), to_float(images)))
  return dict(psnr_db=psnr.round(3).tolist(), domain=distance.round(4).tolist(),
              psnr_mean=float(psnr.mean()), psnr_min=float(psnr.min()), domain_mean=float(distance.mean()))


def main(argv=None) -> int:
  parser = console.ArgumentParser(description=__doc__.split('\n\n')[0],
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--network', required=True, help='an artifact or network pickle of a Fashion-MNIST model')
  parser.add_argument('--outdir', required=True, type=pathlib.Path)
  parser.add_argument('--steps', type=int, default=1000, help='projector steps (default 1000, StyleGAN2)')
  parser.add_argument('--per-class', type=int, default=1, help='real test images per class (default 1)')
  parser.add_argument('--config', default='fmnist_conditional',
                      help="the training config whose dataset's domain classifier measures (default %(default)s)")
  parser.add_argument('--source-dir', default=fashion_mnist.DEFAULT_SOURCE_DIR, help='the Fashion-MNIST IDX files')
  args = parser.parse_args(argv)

  sampler = sampling.Sampler.from_path(args.network)
  cfg = sampler.config
  domain = projector.domain_distance(classifier.load_or_train(configs.load_config(args.config).data))
  test_images, test_labels = fashion_mnist.read_split(args.source_dir, 't10k')
  chosen = first_of_each_class(test_labels, args.per_class)
  others = first_of_each_class(test_labels, args.per_class, skip=args.per_class)
  real, real_labels = test_images[chosen], test_labels[chosen]
  seeds = list(range(len(real)))
  generated_labels = (np.arange(len(real)) % 10) if cfg.label_size else None
  generated = sampler.generate(seeds, labels=generated_labels, noise_mode='const')
  targets = {'real': (real, real_labels if cfg.label_size else None), 'generated': (generated, generated_labels)}

  schedule = projector.Schedule(num_steps=args.steps)
  report = {'network': args.network, 'steps': args.steps, 'real_test_indices': chosen.tolist(), 'rows': []}
  print('| targets | space | noise | PSNR mean (min) | domain distance | distance fell every quarter |\n'
        '|---|---|---|---|---|---|')
  for kind, space, noise in SETTINGS:
    images, labels = targets[kind]
    result = projector.project(sampler, images, space=space, noise=noise, labels=labels, schedule=schedule,
                               steps_per_call=args.steps // 20)
    if (kind, space, noise) == FIGURE_SETTING:
      projected = result
    row = dict(targets=kind, space=space, noise=noise, **summary(images, result.images, domain),
               falling_share=falling_share(result.history))
    report['rows'].append(row)
    print(f'| {kind} | {space.upper()} | {noise} | {row["psnr_mean"]:.2f} dB ({row["psnr_min"]:.2f}) | '
          f'{row["domain_mean"]:.3f} | {row["falling_share"]:.0%} |', flush=True)

  scale = {'another real image of the class': summary(real, test_images[others], domain)}
  if cfg.label_size:
    latents = np.random.RandomState(123).randn(256, cfg.latent_size)
    class_mean = np.stack([sampler.map(latents, int(k)).mean(axis=0) for k in generated_labels])
    scale['generated vs its class mean-w image'] = summary(
        generated, sampler.synthesize(class_mean, noise_mode='const'), domain)
  for name, row in scale.items():
    report['rows'].append(dict(targets=name, **row))
    print(f'| {name} (scale) | | | {row["psnr_mean"]:.2f} dB ({row["psnr_min"]:.2f}) | {row["domain_mean"]:.3f} | |')

  args.outdir.mkdir(parents=True, exist_ok=True)
  coarse = figures.style_range('coarse', cfg.num_layers)  # the 4x4 and 8x8 layers
  mixed = np.roll(projected.dlatents, -1, axis=0)  # the next column's middle and fine styles
  mixed[:, coarse] = projected.dlatents[:, coarse]
  rows = [real, projected.images, sampler.synthesize(mixed, noise_mode='const')]
  grid = sampling.image_grid(np.concatenate(rows), cols=len(real))
  sampling.save_png(grid.repeat(4, axis=0).repeat(4, axis=1), args.outdir / 'figure.png')
  np.save(args.outdir / 'real_dlatents.npy', projected.dlatents)
  (args.outdir / 'projection_table.json').write_text(json.dumps(report, indent=1) + '\n')
  print(f'\nwrote {args.outdir / "figure.png"} (real / W+ projections / coarse styles mixed with the next column\'s '
        f'middle and fine), {args.outdir / "projection_table.json"}')
  return 0


if __name__ == '__main__':
  sys.exit(console.run('projection_table.py', main, sys.argv[1:]))  # errors: one line
