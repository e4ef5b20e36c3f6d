"""`stylegan-jax sample COMMAND` (also `python -m stylegan_jax.sample COMMAND`): sampling and the paper's figures;
`stylegan-jax export` converts networks.

--network is an artifact directory (see export.py) or an official network pickle (recognised by its content).

  generate      PNGs from seeds, a latents .npy [N, latent_size] or a dlatents .npy [N, num_layers, dlatent_size]
  style-mixing  the style-mixing grid (paper figure 3); rows/columns from seeds or dlatent files (projections)
  truncation    the truncation sweep (figure 8)
  noise         noise variation and its per-pixel std (figure 4)
  interpolate   a latent walk through seeds or dlatent files, as .gif or .mp4 (needs ffmpeg)
  dataset       a synthetic dataset: N images, samples.csv (seed, label, psi, cutoff), a manifest; resumable;
                sharded over the local devices (--batch-size rounded up to a multiple of their number);
                --prepare also prepares it for training (see synthetic.py)
  export        (`stylegan-jax export`) official .pkl -> artifact, artifact -> official .pkl, artifact ->
                artifact (e.g. only Gs), or a training checkpoint (--workdir DIR [--checkpoint STEP]) -> artifact
                or official .pkl

Seeds are lists of integers and inclusive ranges, e.g. `0-7,42`.
Labels of a conditional model: `--labels` takes class ids or the class names the artifact stores, one for all
images (`3`, `cat`) or one per image (`0,1,2`); `--label-vector` takes one label vector (`0.5,0,0.5`) or a .npy
of vectors [N, label_size]. Without either, each image gets a random class (said on stderr).
"""

import argparse
import json
import math
import os
import re
import sys
import time
from typing import Optional, Sequence

import jax
import numpy as np
import tqdm

from stylegan_jax import checkpoint, console, errors, export, figures, networks, sampling, synthetic
from stylegan_jax.network_config import NetworkConfig

# `generate` maps, synthesizes and writes this many batches at a time: bounded host memory for any N.
_STEP_BATCHES = 16


def parse_seeds(text: str) -> list[int]:
  """'0-3,42' -> [0, 1, 2, 3, 42]."""
  seeds = []
  for part in text.split(','):
    lo, dash, hi = part.strip().partition('-')
    if not lo.isdigit() or (dash and not hi.isdigit()):
      raise argparse.ArgumentTypeError(f'seeds are non-negative integers or ranges a-b, got {part!r}')
    if dash and int(hi) < int(lo):
      raise argparse.ArgumentTypeError(f'seed range {lo}-{hi} is descending: write {hi}-{lo}')
    seeds += range(int(lo), int(hi or lo) + 1)
  if not seeds or max(seeds) >= 2 ** 32:
    raise argparse.ArgumentTypeError(f'need seeds in [0, 2**32), got {text!r}')
  return seeds


def finite_float(text: str) -> float:
  try:
    value = float(text)
  except ValueError:
    value = math.nan
  if not math.isfinite(value):
    raise argparse.ArgumentTypeError(f'expected a finite number, got {text!r}')
  return value


def parse_floats(text: str) -> list[float]:
  """'1,0.7,-0.5' -> [1.0, 0.7, -0.5]; NaN and infinities are refused."""
  try:
    return [finite_float(v) for v in text.split(',')]
  except argparse.ArgumentTypeError:
    raise argparse.ArgumentTypeError(f'expected comma-separated finite numbers, got {text!r}') from None


def parse_labels(text: str):
  """--labels: 'cat' or '3' (one class for all images), 'cat,dog' or '0,1,2' (one per image): names stay
  strings, ids become ints."""
  tokens = [t.strip() for t in text.split(',')]
  if not all(tokens):
    raise argparse.ArgumentTypeError(f'--labels takes comma-separated class ids or names, got {text!r}')
  values = [int(t) if re.fullmatch(r'-?\d+', t) else t for t in tokens]
  return values[0] if len(values) == 1 else values


def parse_label_vector(text: str) -> np.ndarray:
  """--label-vector: '0.5,0,0.5' (one vector for all images) or a .npy of vectors [N, label_size], as float32."""
  if text.endswith('.npy'):
    try:
      vectors = np.load(text, allow_pickle=False)
    except (OSError, ValueError) as e:
      raise argparse.ArgumentTypeError(f'cannot read label vectors {text}: {e}') from None
    if not np.issubdtype(vectors.dtype, np.number) or not np.all(np.isfinite(vectors)):
      raise argparse.ArgumentTypeError(f'{text}: label vectors must be finite numbers, got {vectors.dtype}')
    return vectors.astype(np.float32)
  return np.array(parse_floats(text), np.float32)


def _sampler(args) -> sampling.Sampler:
  return sampling.Sampler.from_path(args.network, args.generator, batch_size=args.batch_size)


def _labels(args, sampler: sampling.Sampler) -> sampling.Labels:
  """The labels of --labels / --label-vector; random classes (said on stderr) for a conditional model without."""
  if args.labels is not None and args.label_vector is not None:
    raise sampling.LabelError('pass --labels or --label-vector, not both')
  labels = args.labels if args.label_vector is None else args.label_vector
  if labels is None and sampler.config.label_size:
    names = f' ({", ".join(sampler.class_names)})' if sampler.class_names else ''
    print(f'note: conditional model with {sampler.config.label_size} classes{names} and no --labels: drawing '
          'random classes', file=sys.stderr)
    return sampling.RandomClasses()
  return labels


def _file_safe(name: str) -> str:
  return re.sub(r'[^\w.-]+', '_', name)


def _save(image: np.ndarray, path: str) -> None:
  print(f'wrote {sampling.save_png(image, path)} ({image.shape[1]}x{image.shape[0]})')


# ---- Commands ----------------------------------------------------------------------------------------------


def cmd_generate(args) -> None:
  sampler = _sampler(args)
  if sum(x is not None for x in (args.seeds, args.latents, args.dlatents)) != 1:
    raise errors.UsageError('generate: pass exactly one of --seeds, --latents and --dlatents')
  if args.dlatents and (args.labels is not None or args.label_vector is not None):
    raise sampling.LabelError('--labels and --label-vector apply to the mapping network, which --dlatents skips')
  if args.seeds is not None:
    inputs, names, ids = sampler.latents(args.seeds), [f'seed{s:04d}' for s in args.seeds], np.asarray(args.seeds)
  else:
    inputs = np.load(args.latents or args.dlatents, allow_pickle=False)
    prefix = 'latent' if args.latents else 'dlatent'
    names, ids = [f'{prefix}{i:04d}' for i in range(len(inputs))], np.arange(len(inputs))
  n = len(inputs)
  labels = None if args.dlatents else _labels(args, sampler)
  class_ids = sampler.class_ids(labels, n)
  if class_ids is not None and len(set(class_ids.tolist())) > 1:  # varying classes: name each file's
    names = [f'{name}-{_file_safe(sampler.class_name(c))}' for name, c in zip(names, class_ids)]
  labels = None if args.dlatents else sampler.labels(labels, n)
  step = _STEP_BATCHES * args.batch_size
  grid = []
  for start in range(0, n, step):
    part = slice(start, start + step)
    dlatents = inputs[part] if args.dlatents else sampler.map(
        inputs[part], None if labels is None else labels[part], psi=args.psi, cutoff=args.cutoff)
    images = sampler.synthesize(dlatents, noise_mode=args.noise_mode, noise_seed=args.noise_seed, noise_ids=ids[part])
    for name, image in zip(names[part], images):
      sampling.save_png(image, os.path.join(args.outdir, f'{name}.png'))
    if args.grid:
      grid.append(images)
  print(f'wrote {n} image{"s" if n != 1 else ""} to {args.outdir}')
  if args.grid:
    _save(sampling.image_grid(np.concatenate(grid), args.grid_cols), os.path.join(args.outdir, 'grid.png'))


def _dlatents_file(sampler: sampling.Sampler, path: Optional[str], flag: str) -> Optional[np.ndarray]:
  """A dlatents .npy (e.g. `stylegan-jax project`'s dlatents.npy) checked against the generator, or None."""
  if path is None:
    return None
  try:
    return figures.check_dlatents(sampler, np.load(path, allow_pickle=False), f'{flag} {path}')
  except ValueError as e:
    raise errors.UserError(str(e)) from None


def _one_of(args, command: str, *flags: str) -> None:
  if sum(getattr(args, f.lstrip('-').replace('-', '_')) is not None for f in flags) != 1:
    raise errors.UsageError(f'{command}: pass exactly one of {" and ".join(flags)}')


def cmd_style_mixing(args) -> None:
  _one_of(args, 'style-mixing', '--row-seeds', '--row-dlatents')
  _one_of(args, 'style-mixing', '--col-seeds', '--col-dlatents')
  sampler = _sampler(args)
  canvas = figures.style_mixing_figure(sampler, args.row_seeds, args.col_seeds, args.styles.split(','),
                                       row_dlatents=_dlatents_file(sampler, args.row_dlatents, '--row-dlatents'),
                                       col_dlatents=_dlatents_file(sampler, args.col_dlatents, '--col-dlatents'),
                                       labels=_labels(args, sampler), psi=args.psi, cutoff=args.cutoff,
                                       noise_mode=args.noise_mode)
  _save(canvas, args.out)


def cmd_truncation(args) -> None:
  sampler = _sampler(args)
  canvas = figures.truncation_figure(sampler, args.seeds, args.psis, cutoff=args.cutoff,
                                     labels=_labels(args, sampler), noise_mode=args.noise_mode)
  _save(canvas, args.out)


def cmd_noise(args) -> None:
  sampler = _sampler(args)
  canvas = figures.noise_figure(sampler, args.seeds, num_samples=args.samples, num_show=args.show,
                                labels=_labels(args, sampler), psi=args.psi, cutoff=args.cutoff,
                                noise_seed=args.noise_seed)
  _save(canvas, args.out)


def cmd_interpolate(args) -> None:
  _one_of(args, 'interpolate', '--seeds', '--dlatents')
  if args.dlatents and args.space != 'w':
    raise errors.UsageError("interpolate: --dlatents keyframes are interpolated in w (--space=w, the default)")
  sampler = _sampler(args)
  frames = figures.interpolation_frames(sampler, args.seeds, args.frames, space=args.space, loop=args.loop,
                                        dlatents=_dlatents_file(sampler, args.dlatents, '--dlatents'),
                                        labels=_labels(args, sampler), psi=args.psi, cutoff=args.cutoff,
                                        noise_mode=args.noise_mode, noise_seed=args.noise_seed)
  path = figures.save_animation(frames, args.out, args.fps)
  print(f'wrote {path} ({len(frames)} frames of {frames.shape[2]}x{frames.shape[1]} at {args.fps:g} fps)')


def cmd_dataset(args) -> None:
  devices = jax.local_devices()
  batch_size = -(-args.batch_size // len(devices)) * len(devices)  # split evenly over the local devices
  sampler = sampling.Sampler.from_path(args.network, args.generator, batch_size=batch_size, devices=devices)
  options = synthetic.Options(num_images=args.num, first_seed=args.first_seed, psi=args.psi, cutoff=args.cutoff,
                              noise_mode=args.noise_mode, noise_seed=args.noise_seed,
                              proportions=None if args.proportions is None else tuple(args.proportions))
  with tqdm.tqdm(total=args.num, unit='img', file=sys.stderr, dynamic_ncols=True,
                 disable=not sys.stderr.isatty()) as bar:
    manifest = synthetic.write(sampler, args.network, args.outdir, options, overwrite=args.overwrite,
                               progress=bar.update)
  print(f'wrote {args.num} images to {os.path.join(args.outdir, synthetic.IMAGES)} with {synthetic.SAMPLES} and '
        f'{synthetic.MANIFEST}')
  if args.prepare:
    from stylegan_jax.data import prepare  # noqa: PLC0415 (TensorFlow only when preparing)
    config = synthetic.data_config(args.outdir, manifest, args.data_dir, args.name)
    start = time.time()
    builder = prepare.prepare(config, overwrite=True)  # from the folder as it is now
    print(prepare.summary(config, builder, time.time() - start))


def _load_source(args) -> tuple[export.Artifact, str]:
  """The networks to export and where they come from: --network (an artifact directory or an official .pkl) or
  a checkpoint of --workdir (--checkpoint, default the newest), with metadata kimg and lod."""
  if (args.network is None) == (args.workdir is None):
    raise errors.UsageError('export: pass exactly one of --network and --workdir')
  if args.checkpoint is not None and args.workdir is None:
    raise errors.UsageError('export: --checkpoint needs --workdir')
  if args.network is not None:
    return export.load_networks(args.network), os.path.abspath(args.network)
  restored = checkpoint.load(args.workdir, args.checkpoint)
  state = jax.device_get(restored.state)
  config = NetworkConfig.from_dict(restored.meta['config']['model'])
  lod = restored.loop['lod']
  if lod:
    print(f'note: checkpoint {restored.step} is at lod {lod:g} (still growing); the artifact samples at full '
          'resolution (lod 0)', file=sys.stderr)
  metadata = {'kimg': restored.step / 1000, 'lod': lod}
  return export.Artifact(config, Gs=state.Gs, G=state.G, D=state.D, metadata=metadata,
                         class_names=restored.meta.get('class_names')), restored.path


def cmd_export(args) -> None:
  source, source_path = _load_source(args)
  names = args.networks.split(',') if args.networks else source.names()
  missing = [n for n in names if n not in source.names()]
  if missing or 'Gs' not in names:
    raise errors.UsageError(f'export: --networks must include Gs and only networks the source has '
                            f'({source.names()}), got {names}')
  if args.out.endswith('.pkl'):
    if os.path.exists(args.out) and not args.overwrite:
      raise FileExistsError(f'{args.out} exists (pass --overwrite to replace it)')
    export.export_official(export.Artifact(source.config, **{n: getattr(source, n) for n in names}), args.out)
    print(f'wrote official network pickle {args.out} (G, D, Gs)')
    return
  metadata = {k: v for k, v in source.metadata.items() if k != 'created'}
  metadata['source'] = source_path
  for item in args.metadata:
    key, _, value = item.partition('=')
    try:
      metadata[key] = json.loads(value)
    except json.JSONDecodeError:
      metadata[key] = value
  nets = {n: getattr(source, n) for n in names}
  path = export.save_artifact(args.out, source.config, nets.pop('Gs'), metadata=metadata, overwrite=args.overwrite,
                              class_names=source.class_names, **nets)
  print(f'wrote artifact {path} ({", ".join(names)})')


# ---- Arguments ---------------------------------------------------------------------------------------------


def _parser(prog: str) -> argparse.ArgumentParser:
  parser = console.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  commands = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')

  def command(name, func, help_, *, truncation=True, noise_mode='const', noise_seed=True, labels=True):
    p = commands.add_parser(name, help=help_, description=help_)
    p.set_defaults(func=func)
    p.add_argument('--network', required=True, help='artifact directory or official network pickle (.pkl)')
    p.add_argument('--generator', choices=('Gs', 'G'), default='Gs', help='which generator to sample (default Gs)')
    p.add_argument('--batch-size', type=int, default=8, help='images per compiled batch (default 8)')
    if labels:
      p.add_argument('--labels', type=parse_labels,
                     help="conditional models: class id or name for all images ('3', 'cat') or one per image "
                          "('0,1,2', 'cat,dog,cat'); default: random classes")
      p.add_argument('--label-vector', type=parse_label_vector,
                     help="conditional models: one label vector for all images ('0.5,0,0.5') or a .npy of "
                          "vectors [N, label_size]")
    if truncation:
      p.add_argument('--psi', type=finite_float, default=1.0,
                     help='truncation psi (default 1 = none; official Gs: 0.7)')
      p.add_argument('--cutoff', type=int, help='truncate layers < cutoff (default all; official Gs: 8)')
    if noise_mode:
      p.add_argument('--noise-mode', choices=networks.NOISE_MODES, default=noise_mode,
                     help=f'random: fresh noise; const: the stored buffers; none (default {noise_mode})')
    if noise_seed:
      p.add_argument('--noise-seed', type=int, default=0, help='seed of the random noise (default 0)')
    return p

  p = command('generate', cmd_generate, 'images from seeds, latents or dlatents, one PNG each',
              noise_mode='random')
  p.add_argument('--seeds', type=parse_seeds, help="integers and inclusive ranges, e.g. '0-7,42'")
  p.add_argument('--latents', help='a .npy of z [N, latent_size]')
  p.add_argument('--dlatents', help='a .npy of w [N, num_layers, dlatent_size] (already truncated; no labels)')
  p.add_argument('--outdir', default='out', help='output directory (default out/)')
  p.add_argument('--grid', action='store_true', help='also write grid.png with all images')
  p.add_argument('--grid-cols', type=int, help='grid columns (default ~sqrt(N))')

  p = command('style-mixing', cmd_style_mixing, 'style-mixing grid (paper figure 3)', noise_seed=False)
  p.add_argument('--row-seeds', type=parse_seeds, help='left column: the images styles go into')
  p.add_argument('--col-seeds', type=parse_seeds, help='top row: the images styles come from')
  p.add_argument('--row-dlatents', help='instead of --row-seeds: a dlatents .npy [N, num_layers, dlatent_size], '
                                        "e.g. `stylegan-jax project`'s (real images)")
  p.add_argument('--col-dlatents', help='instead of --col-seeds: a dlatents .npy')
  p.add_argument('--styles', default='coarse', help="layer range per row or one for all: coarse (4²-8²), middle "
                                                    "(16²-32²), fine (64²+) or a-b layer indices, e.g. "
                                                    "'coarse,coarse,middle,fine' or '0-3' (default coarse)")
  p.add_argument('--out', default='style-mixing.png', help='output PNG (default style-mixing.png)')

  p = command('truncation', cmd_truncation, 'truncation sweep (paper figure 8)', truncation=False, noise_seed=False)
  p.add_argument('--seeds', type=parse_seeds, required=True, help='one row per seed')
  p.add_argument('--psis', type=parse_floats, default=[1, 0.7, 0.5, 0, -0.5, -1],
                 help='one column per psi (default 1,0.7,0.5,0,-0.5,-1)')
  p.add_argument('--cutoff', type=int, help='truncate only layers < cutoff (default all, as the paper figure)')
  p.add_argument('--out', default='truncation.png', help='output PNG (default truncation.png)')

  p = command('noise', cmd_noise, 'noise variation and its per-pixel std (paper figure 4)', noise_mode=None)
  p.add_argument('--seeds', type=parse_seeds, required=True, help='one row per seed')
  p.add_argument('--samples', type=int, default=100, help='noise draws for the std image (default 100)')
  p.add_argument('--show', type=int, default=4, help='draws shown before the std image (default 4)')
  p.add_argument('--out', default='noise.png', help='output PNG (default noise.png)')

  p = command('interpolate', cmd_interpolate, 'latent walk through seeds as .gif or .mp4')
  p.add_argument('--seeds', type=parse_seeds, help='the keyframes, in order')
  p.add_argument('--dlatents', help="instead of --seeds: keyframes from a dlatents .npy (e.g. `stylegan-jax "
                                    "project`'s), in w")
  p.add_argument('--space', choices=('z', 'w'), default='w', help='slerp in z or lerp in w (default w)')
  p.add_argument('--frames', type=int, default=120, help='total frames (default 120)')
  p.add_argument('--fps', type=finite_float, default=30.0, help='frames per second (default 30)')
  p.add_argument('--loop', action='store_true', help='walk back to the first seed')
  p.add_argument('--out', default='interpolation.gif', help='.gif, or .mp4 with ffmpeg on PATH (default interpolation.gif)')

  p = command('dataset', cmd_dataset, 'a synthetic dataset: N images as PNGs + samples.csv, optionally prepared',
              noise_mode='random', labels=False)
  p.add_argument('--num', type=int, required=True, help='number of images (seeds --first-seed ...)')
  p.add_argument('--outdir', required=True, help='output directory (rerun to resume an interrupted run)')
  p.add_argument('--first-seed', type=int, default=0, help='seed of the first image (default 0)')
  p.add_argument('--proportions', type=parse_floats,
                 help="conditional models: class proportions, e.g. '2,1,1' (default balanced)")
  p.add_argument('--prepare', action='store_true', help='also prepare it as an image-folder dataset for training')
  p.add_argument('--data-dir', default='data', help='with --prepare: where prepared datasets go (default data/)')
  p.add_argument('--name', default='', help="with --prepare: the prepared dataset's name (default the outdir's)")
  p.add_argument('--overwrite', action='store_true', help='replace a dataset with other options in --outdir')

  p = commands.add_parser('export', help='convert between artifacts, official network pickles and checkpoints',
                          description='Reads --network (artifact directory or official .pkl) or a checkpoint of a '
                                      'training --workdir and writes --out: an official (G, D, Gs) pickle if it '
                                      'ends in .pkl, else an artifact directory.')
  p.set_defaults(func=cmd_export)
  p.add_argument('--network', help='artifact directory or official network pickle (.pkl)')
  p.add_argument('--workdir', help='training workdir: export the networks of one of its checkpoints')
  p.add_argument('--checkpoint', type=int, help='with --workdir: the checkpoint step (images shown, e.g. 320; '
                                                 'default the newest)')
  p.add_argument('--out', required=True, help='*.pkl: official pickle (needs D); otherwise an artifact directory')
  p.add_argument('--networks', help='comma-separated subset of Gs,G,D to write (default all the source has)')
  p.add_argument('--metadata', action='append', default=[], metavar='KEY=VALUE',
                 help='artifact metadata entry (JSON value or string), repeatable, e.g. kimg=25000')
  p.add_argument('--overwrite', action='store_true', help='replace --out if it exists')
  return parser


def _run(argv: list[str], prog: str) -> None:
  args = _parser(prog).parse_args(argv)
  args.func(args)


def main(argv: Optional[Sequence[str]] = None) -> int:
  """`stylegan-jax sample COMMAND ...`; returns the exit code (errors are printed in one line, console.py)."""
  return console.run('stylegan-jax sample', lambda a: _run(a, 'stylegan-jax sample'),
                     sys.argv[1:] if argv is None else argv)


def export_main(argv: Sequence[str]) -> int:
  """`stylegan-jax export ...` (= `stylegan-jax sample export ...`)."""
  return console.run('stylegan-jax export', lambda a: _run(['export', *a], 'stylegan-jax'), argv)


if __name__ == '__main__':
  sys.exit(main())
