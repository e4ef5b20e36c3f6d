"""`stylegan-jax prepare` (also `python -m stylegan_jax.data.prepare`): prepares a dataset, every
progressive-growing level, as TFDS array_record.

  stylegan-jax prepare                                       # Fashion-MNIST, offline
  stylegan-jax prepare --source_dir=~/icons --resolution=64  # a folder of images (RGB unless --num_channels=1)
  stylegan-jax prepare --config=default                      # a training config's .data
  stylegan-jax prepare --source_dir=~/cars --resolution=512 --crop=letterbox
  stylegan-jax prepare --name=celeb_a --resolution=128 --num_channels=3

Flags mirror the data config (`stylegan_jax.data.config.get_data_config`) and override --config's; each is also
accepted as --config.data.<field>, the spelling training uses, so training's data flags can be passed unchanged.
--source_dir without --name or --config means an image folder. Re-running on a prepared dataset returns at once;
--overwrite deletes and re-prepares it. Bad source files are reported (path and reason) and skipped, or with
--strict abort the run. An interrupted run leaves nothing that looks complete; the next run redoes it. The
summary lists the classes and the command that trains on the dataset.
"""

import argparse
import os
import shutil
import sys
import time

import tensorflow_datasets as tfds

from stylegan_jax import configs, console
from stylegan_jax.data import config as config_lib
from stylegan_jax.data import datasets
from stylegan_jax.data.builder import split_name
from stylegan_jax.data.levels import level_resolutions

PROG = 'stylegan-jax prepare'
_CONFIG_FLAGS = ('name', 'data_dir', 'source_dir', 'folder_name', 'split', 'resolution',
                 'num_channels', 'crop', 'labels')
_FLAG_HELP = {
    'name': "'fashion_mnist', 'image_folder' or a TFDS catalog name ('celeb_a', 'lsun/bedroom', ...)",
    'data_dir': 'where prepared datasets go',
    'source_dir': 'image_folder: the folder of PNG/JPEG/WebP images (nested folders allowed); given alone, it '
                  'implies --name=image_folder',
    'folder_name': "image_folder: name of the prepared dataset ('' = the folder's name)",
    'split': "TFDS catalog: the split(s) to convert, e.g. 'train+validation'",
    'resolution': 'full resolution, a power of two >= 4',
    'num_channels': '1 (gray) or 3 (RGB); an image folder defaults to 3',
    'crop': "'center' (the central square) or 'letterbox' (fit, pad black)",
    'labels': "'none'; 'dataset' (fashion_mnist, catalog); image_folder: 'subfolders' (first folder = class) or "
              "a CSV file with path,label columns",
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
  defaults = config_lib.get_data_config()
  parser = console.ArgumentParser(prog=PROG, description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--config', help='a shipped training config (default, smoke, ffhq1024, ...) or a config '
                                       "file; its .data is prepared (default: none)")
  for flag in _CONFIG_FLAGS:
    parser.add_argument(f'--{flag}', f'--config.data.{flag}', dest=flag, type=type(defaults[flag]),
                        help=f'{_FLAG_HELP[flag]} (default: {defaults[flag]!r})')
  parser.add_argument('--strict', action='store_true',
                      help='fail on the first bad source file instead of skipping it')
  parser.add_argument('--overwrite', action='store_true',
                      help='delete an already prepared dataset and prepare it again')
  parser.add_argument('--num_workers', type=int, default=min(os.cpu_count() or 1, 16),
                      help='decoding/encoding processes (default: CPU count, at most 16)')
  return parser.parse_args(argv)


def prepare(config, *, strict: bool = False, overwrite: bool = False,
            num_workers: int = 1) -> tfds.core.DatasetBuilder:
  """Prepares `config`'s dataset unless it already is; returns its builder."""
  config_lib.validate(config)
  builder = datasets.builder_for(config, strict=strict, num_workers=num_workers)
  if builder.is_prepared():
    if not overwrite:
      if message := datasets.check_source_matches(config, builder):
        raise config_lib.DataError(message + ', or pass --overwrite to replace it')
      return builder
    shutil.rmtree(builder.data_path)
    builder = datasets.builder_for(config, strict=strict, num_workers=num_workers)
  for stale in sorted(builder.data_path.parent.glob(f'incomplete.*_{builder.data_path.name}')):
    print(f'Note: {stale} is left over from an interrupted prepare and is ignored; it can be '
          'deleted (unless another prepare of this dataset is running now).', file=sys.stderr)
  builder.download_and_prepare()
  return builder


def data_config(args: argparse.Namespace):
  """The data config of the command line: --config's .data (or the defaults), then the flags given."""
  config = configs.load_config(args.config).data if args.config else config_lib.get_data_config()
  given = {f: getattr(args, f) for f in _CONFIG_FLAGS if getattr(args, f) is not None}
  if not args.config and 'source_dir' in given and 'name' not in given:
    given['name'] = config_lib.IMAGE_FOLDER
  if not args.config and given.get('name') == config_lib.IMAGE_FOLDER and 'num_channels' not in given:
    given['num_channels'] = 3
  config.update(given)
  return config


def summary(config, builder: tfds.core.DatasetBuilder, seconds: float, config_spec: str | None = None) -> str:
  """What was prepared, its classes, and what training on it will use (with `config_spec`: that config)."""
  splits = builder.info.splits
  path = os.path.relpath(builder.data_dir)
  path = builder.data_dir if path.startswith('..') else path
  lines = [f'{path}: {splits[split_name(config.resolution)].num_examples} images, levels '
           f'{", ".join(str(r) for r in level_resolutions(config.resolution))} '
           f'({sum(s.num_bytes for s in splits.values()) / 2**20:.1f} MiB) ready in {seconds:.1f} s.']
  kind = f'{config.resolution}x{config.resolution} {"RGB" if config.num_channels == 3 else "gray"}'
  if 'label' in builder.info.features:
    names = builder.info.features['label'].names
    counts = builder.info.metadata.get('class_counts') or [None] * len(names)
    lines.append(f'{len(names)} classes: ' + ', '.join(name if n is None else f'{name} ({n})'
                                                         for name, n in zip(names, counts)))
    training = f'a {kind} StyleGAN conditioned on the {len(names)} classes'
  else:
    hint = (' (--labels=subfolders makes the first sub-folder the class)'
            if config_lib.kind(config) == config_lib.IMAGE_FOLDER else '')
    lines.append(f'No classes{hint}.')
    training = f'an unconditional {kind} StyleGAN'
  if config_spec:  # the config decides: e.g. the quickstart trains unconditionally on labelled Fashion-MNIST
    label_size = configs.load_config(config_spec).get('model', {}).get('label_size', 0)  # a data-only file: 0
    lines.append(f'Training with --config={config_spec}: a {kind} StyleGAN, ' +
                 (f'conditioned on {label_size} classes.' if label_size else 'unconditional (its model.label_size is 0).'))
    lines.append(f'  stylegan-jax train --config={config_spec} --workdir=workdir/{config_spec.split(":")[0]}')
  else:
    lines.append(f'Training on it: {training}.')
    workdir = os.path.join('workdir', config_lib.folder_name(config) if config_lib.kind(config) ==
                           config_lib.IMAGE_FOLDER else config.name.replace('/', '_'))
    lines.append(f'  stylegan-jax train --data={path} --workdir={workdir}')
  return '\n'.join(lines)


def _main(argv: list[str]) -> None:
  args = parse_args(argv)
  tfds.disable_progress_bar()  # TFDS's per-split bars; the preparation pass has its own.
  config = data_config(args)
  start = time.time()
  builder = prepare(config, strict=args.strict, overwrite=args.overwrite, num_workers=args.num_workers)
  print(summary(config, builder, time.time() - start, args.config))


def main(argv: list[str] | None = None) -> int:
  """`stylegan-jax prepare ...` (argv without the program name); returns the exit code."""
  return console.run(PROG, _main, sys.argv[1:] if argv is None else argv)


if __name__ == '__main__':
  sys.exit(main())
