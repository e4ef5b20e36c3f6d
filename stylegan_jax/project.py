"""`stylegan-jax project` (also `python -m stylegan_jax.project`): finds the dlatents that reproduce images.

  stylegan-jax project --network=net.pkl photo1.jpg photo2.png --outdir=proj
  stylegan-jax project --network=art/ faces/ --space=w --steps=500 --video=proj/optimisation.gif
  stylegan-jax project --network=art/ img.png --distance=lpips --lpips-vgg16=vgg16-397923af.pth --lpips-heads=vgg.pth

Images (files, or folders of PNG/JPEG/WebP) of any size are resized and cropped as dataset preparation does
(--crop). The method is StyleGAN2's projector (see projector.py). Writes to --outdir:
  dlatents.npy      float32 [N, num_layers, dlatent_size], in the order of images.txt
  images.txt        the source image of each row
  projected/*.png   each projection (rendered with its optimised noise, or the const noise with --noise=const)
  side-by-side.png  one row per image: target | projection
  projection.json   per image: PSNR (dB), final distance, class (conditional models); and the options

The dlatents feed the figure commands: `sample generate --dlatents`, `sample style-mixing --row-dlatents`,
`sample interpolate --dlatents`. Those render with const noise by default: --noise=const makes the projection
exact for them; --noise=optimize (StyleGAN2's, the default) fits better with its own noise maps.
"""

import argparse
import json
import os
import sys
from typing import Optional, Sequence

import numpy as np
import tqdm

from stylegan_jax import console, errors, figures, projector, sampling
from stylegan_jax.data import image_folder, images as images_lib

PROG = 'stylegan-jax project'


def image_paths(inputs: Sequence[str]) -> list[str]:
  """Files as given, folders expanded to their images (sorted, recursive); a sub-folder that cannot be read is an
  error naming it."""
  paths = []
  for item in inputs:
    if os.path.isdir(item):
      found, unreadable = image_folder.find_images(item)
      if unreadable:
        raise errors.UserError(f'{os.path.join(item, unreadable[0][0])}: {unreadable[0][1]}')
      paths += [os.path.join(item, p) for p in found]
    elif os.path.isfile(item):
      paths.append(item)
    else:
      raise FileNotFoundError(2, 'No such file or directory', item)
  return paths


def distance_from_args(args) -> projector.Distance:
  if args.distance != 'lpips' and (args.lpips_vgg16 or args.lpips_heads):
    raise errors.UsageError(f'{PROG}: --lpips-vgg16/--lpips-heads apply only to --distance=lpips')
  if args.distance != 'domain' and args.domain_classifier:
    raise errors.UsageError(f'{PROG}: --domain-classifier applies only to --distance=domain')
  if args.distance == 'pixel':
    return projector.PIXEL
  if args.distance == 'domain':
    if not args.domain_classifier:
      raise errors.UsageError(f'{PROG}: --distance=domain needs --domain-classifier (a trained classifier\'s '
                              'directory, see stylegan-jax metrics train-classifier)')
    return projector.domain_distance(args.domain_classifier)
  if not (args.lpips_vgg16 and args.lpips_heads):
    raise errors.UsageError(f'{PROG}: --distance=lpips needs --lpips-vgg16 (torchvision vgg16-397923af.pth) and '
                            '--lpips-heads (the lpips package v0.1 vgg.pth)')
  return projector.lpips_distance(args.lpips_vgg16, args.lpips_heads)


def side_by_side(targets: np.ndarray, projections: np.ndarray) -> np.ndarray:
  """uint8 [N, H, W, C] twice -> [N * H, 2 * W, C]: one row per image, target | projection."""
  pairs = np.stack([targets, projections], axis=1)
  return sampling.image_grid(pairs.reshape(-1, *targets.shape[1:]), cols=2)


def _parse_args(argv):
  parser = console.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('images', nargs='+', help='image files or folders of images')
  parser.add_argument('--network', required=True, help='artifact directory or official network pickle (.pkl)')
  parser.add_argument('--generator', choices=('Gs', 'G'), default='Gs', help='which generator (default Gs)')
  parser.add_argument('--outdir', default='projection', help='output directory (default projection/)')
  parser.add_argument('--space', choices=projector.SPACES, default='w+',
                      help='w: one w for all layers; w+: one per layer (default w+)')
  parser.add_argument('--noise', choices=projector.NOISE, default='optimize',
                      help="optimize the noise maps (StyleGAN2, default) or keep the model's const noise")
  parser.add_argument('--distance', choices=('pixel', 'lpips', 'domain'), default='pixel',
                      help='pixel: mean squared error (default); lpips: LPIPS-VGG16 from the two weight files; '
                           "domain: the domain classifier's features")
  parser.add_argument('--domain-classifier', help='a trained domain classifier directory (under '
                                                  '~/.cache/stylegan-jax/classifiers/)')
  parser.add_argument('--lpips-vgg16', help="torchvision's vgg16-397923af.pth")
  parser.add_argument('--lpips-heads', help="the lpips package's weights/v0.1/vgg.pth")
  parser.add_argument('--steps', type=int, default=1000, help='optimisation steps (default 1000, StyleGAN2)')
  parser.add_argument('--steps-per-call', type=int, default=50,
                      help='steps per jitted call: progress and video granularity; divides --steps (default 50)')
  parser.add_argument('--batch-size', type=int, default=8, help='images projected together (default 8)')
  parser.add_argument('--labels', help="conditional models: one class id for all ('3') or one per image "
                                       "('0,4,1'); default: try every class and keep the best")
  parser.add_argument('--crop', choices=images_lib.CROPS, default='center',
                      help='fit to a square as prepare does: center crop or letterbox (default center)')
  parser.add_argument('--seed', type=int, default=0, help='seed of the initial noise maps and w exploration')
  parser.add_argument('--video', help='also write the optimisation as .gif or .mp4 (needs ffmpeg)')
  parser.add_argument('--fps', type=float, default=10.0, help='video frames per second (default 10)')
  args = parser.parse_args(argv)
  if args.steps < 1 or args.steps_per_call < 1 or args.steps % args.steps_per_call:
    parser.error(f'--steps ({args.steps}) must be a positive multiple of --steps-per-call ({args.steps_per_call})')
  if args.batch_size < 1:
    parser.error(f'--batch-size must be >= 1, got {args.batch_size}')
  return args


def _labels(text: Optional[str], n: int, label_size: int) -> Optional[np.ndarray]:
  if text is None:
    return None
  if not label_size:
    raise errors.UsageError(f'{PROG}: --labels given but the generator is unconditional')
  try:
    ids = np.array([int(v) for v in text.split(',')])
  except ValueError:
    raise errors.UsageError(f'{PROG}: --labels takes class ids, got {text!r}') from None
  if len(ids) not in (1, n) or ids.min() < 0 or ids.max() >= label_size:
    raise errors.UsageError(f'{PROG}: --labels needs one class id or one per image ({n}), each in '
                            f'[0, {label_size}), got {text!r}')
  return np.broadcast_to(ids, (n,))


def _main(argv) -> None:
  args = _parse_args(argv)
  paths = image_paths(args.images)
  sampler = sampling.Sampler.from_path(args.network, args.generator)
  cfg = sampler.config
  labels = _labels(args.labels, len(paths), cfg.label_size)
  distance = distance_from_args(args)
  targets = projector.load_images(paths, cfg, args.crop)
  schedule = projector.Schedule(num_steps=args.steps)
  b = min(args.batch_size, len(paths))
  searched = cfg.label_size if cfg.label_size and labels is None else 1
  total = -(-len(paths) // b) * args.steps * searched
  results = []
  with tqdm.tqdm(total=total, unit='step', file=sys.stderr, dynamic_ncols=True,
                 disable=not sys.stderr.isatty()) as bar:
    for start in range(0, len(paths), b):
      count = min(b, len(paths) - start)
      pad = np.arange(b) % count  # a short last batch repeats its images: one compiled shape
      chunk_labels = None if labels is None else labels[start:start + count][pad]
      done = [0]

      def progress(steps, _total):
        bar.update(steps - done[0])
        done[0] = steps

      result = projector.project(sampler, targets[start:start + count][pad], space=args.space, noise=args.noise,
                                 distance=distance, schedule=schedule, labels=chunk_labels, seed=args.seed + start,
                                 steps_per_call=args.steps_per_call, keep_frames=bool(args.video), progress=progress)
      results.append((result, count))
  _write(args, paths, targets, results, distance.name)


def _write(args, paths, targets, results, distance_name) -> None:
  def take(field, axis=0):  # the field over all batches, without a short last batch's repeats
    return np.concatenate([np.take(getattr(r, field), np.arange(c), axis=axis) for r, c in results], axis)

  dlatents, images, dist = take('dlatents'), take('images'), take('distance')
  os.makedirs(args.outdir, exist_ok=True)
  np.save(os.path.join(args.outdir, 'dlatents.npy'), dlatents)
  with open(os.path.join(args.outdir, 'images.txt'), 'w') as f:
    f.writelines(f'{p}\n' for p in paths)
  names = [f'{i:04d}-{os.path.splitext(os.path.basename(p))[0]}' for i, p in enumerate(paths)]
  for name, image in zip(names, images):
    sampling.save_png(image, os.path.join(args.outdir, 'projected', f'{name}.png'))
  sampling.save_png(side_by_side(targets, images), os.path.join(args.outdir, 'side-by-side.png'))
  psnr = projector.psnr(targets, images)
  labels = take('labels') if results[0][0].labels is not None else [None] * len(paths)
  report = {'options': {k: v for k, v in vars(args).items() if k not in ('images', 'verbosity')},
            'distance': distance_name,
            'images': [{'path': p, 'psnr_db': round(float(q), 3), 'distance': float(d),
                        **({} if c is None else {'class': int(c)})} for p, q, d, c in zip(paths, psnr, dist, labels)]}
  with open(os.path.join(args.outdir, 'projection.json'), 'w') as f:
    json.dump(report, f, indent=1)
  if args.video:
    frames = take('frames', axis=1)  # [F, N, H, W, C]
    video = np.stack([side_by_side(targets, f) for f in frames])
    figures.save_animation(video, args.video, args.fps)
  for entry in report['images']:
    print(f"{entry['path']}: PSNR {entry['psnr_db']:.2f} dB, {distance_name} {entry['distance']:.4g}"
          + (f", class {entry['class']}" if 'class' in entry else ''))
  print(f'wrote {len(paths)} projections ({args.space}) to {args.outdir}: dlatents.npy, projected/, side-by-side.png, '
        'projection.json' + (f', {args.video}' if args.video else ''))


def main(argv: Optional[Sequence[str]] = None) -> int:
  """`stylegan-jax project ...` (argv without the program name); returns the exit code."""
  return console.run(PROG, _main, sys.argv[1:] if argv is None else argv)


if __name__ == '__main__':
  sys.exit(main())
