"""Prepares a dataset (all progressive-growing levels) as TFDS array_record.

  python -m stylegan_jax.data.prepare                      # Fashion-MNIST, offline
  python -m stylegan_jax.data.prepare --config stylegan_jax/configs/default.py   # a training config's .data
  python -m stylegan_jax.data.prepare --name=image_folder --source_dir=~/cars \\
      --resolution=512 --num_channels=3 --crop=letterbox
  python -m stylegan_jax.data.prepare --name=celeb_a --resolution=128 --num_channels=3

Flags mirror the data config (`stylegan_jax.data.config.get_data_config`) and
override --config's; each is also accepted as --config.data.<field>, the
spelling training uses, so training's data flags can be passed unchanged.
Re-running on a prepared dataset returns at once; --overwrite deletes and
re-prepares it. Bad source files are reported (path and reason) and skipped,
or with --strict abort the run. An interrupted run leaves nothing that looks
complete; the next run redoes it.
"""

import argparse
import importlib.util
import os
import shutil
import sys
import time

import tensorflow_datasets as tfds

from stylegan_jax.data import config as config_lib
from stylegan_jax.data import datasets
from stylegan_jax.data.builder import split_name
from stylegan_jax.data.levels import level_resolutions

_CONFIG_FLAGS = ('name', 'data_dir', 'source_dir', 'folder_name', 'split', 'resolution',
                 'num_channels', 'crop', 'labels')


def parse_args(argv: list[str] | None) -> argparse.Namespace:
  defaults = config_lib.get_data_config()
  parser = argparse.ArgumentParser(
      prog='python -m stylegan_jax.data.prepare', description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
  parser.add_argument('--config', help='a training config file (get_config() with a .data '
                                       'field); its data config is prepared')
  for flag in _CONFIG_FLAGS:
    parser.add_argument(f'--{flag}', f'--config.data.{flag}', dest=flag, type=type(defaults[flag]),
                        help=f'data config field (default: {defaults[flag]!r})')
  parser.add_argument('--strict', action='store_true',
                      help='fail on the first bad source file instead of skipping it')
  parser.add_argument('--overwrite', action='store_true',
                      help='delete an already prepared dataset and prepare it again')
  parser.add_argument('--num_workers', type=int, default=min(os.cpu_count() or 1, 16),
                      help='decoding/encoding processes (default: CPU count, at most 16)')
  return parser.parse_args(argv)


def load_config_file(path: str):
  """The `get_config()` of a Python config file (as `--config` of training)."""
  spec = importlib.util.spec_from_file_location('_prepare_config', path)
  if spec is None:
    raise FileNotFoundError(f'cannot load config file {path!r}')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def prepare(config, *, strict: bool = False, overwrite: bool = False,
            num_workers: int = 1) -> tfds.core.DatasetBuilder:
  """Prepares `config`'s dataset unless it already is; returns its builder."""
  config_lib.validate(config)
  builder = datasets.builder_for(config, strict=strict, num_workers=num_workers)
  if builder.is_prepared():
    if not overwrite:
      if message := datasets.check_source_matches(config, builder):
        raise ValueError(message + ', or pass --overwrite to replace it')
      return builder
    shutil.rmtree(builder.data_path)
    builder = datasets.builder_for(config, strict=strict, num_workers=num_workers)
  for stale in sorted(builder.data_path.parent.glob(f'incomplete.*_{builder.data_path.name}')):
    print(f'Note: {stale} is left over from an interrupted prepare and is ignored; it can be '
          'deleted (unless another prepare of this dataset is running now).', file=sys.stderr)
  builder.download_and_prepare()
  return builder


def main(argv: list[str] | None = None) -> None:
  args = parse_args(argv)
  tfds.disable_progress_bar()  # TFDS's per-split bars; the preparation pass has its own.
  config = load_config_file(args.config).data if args.config else config_lib.get_data_config()
  config.update({f: getattr(args, f) for f in _CONFIG_FLAGS if getattr(args, f) is not None})
  start = time.time()
  builder = prepare(config, strict=args.strict, overwrite=args.overwrite,
                    num_workers=args.num_workers)
  splits = builder.info.splits
  full = split_name(config.resolution)
  print(f'{builder.data_dir}: {splits[full].num_examples} images, levels '
        f'{", ".join(str(r) for r in level_resolutions(config.resolution))} '
        f'({sum(s.num_bytes for s in splits.values()) / 2**20:.1f} MiB) '
        f'ready in {time.time() - start:.1f} s.')


if __name__ == '__main__':
  main()
