"""The data config: schema, defaults, validation, and the matching prepare command."""

import os
import shlex

import ml_collections

from stylegan_jax import errors
from stylegan_jax.data.images import CROPS
from stylegan_jax.data.levels import level_resolutions

FASHION_MNIST = 'fashion_mnist'
IMAGE_FOLDER = 'image_folder'


class DataConfigError(errors.UsageError, ValueError):
  """A data config value that is not allowed; str(error) names the field."""


class DataError(errors.UserError, ValueError):
  """A source or prepared dataset that cannot be used as asked; str(error) says why."""


def get_data_config() -> ml_collections.ConfigDict:
  """Defaults: the quickstart, Fashion-MNIST 32x32x1, unlabeled."""
  c = ml_collections.ConfigDict()
  # 'fashion_mnist' (offline, Debian's IDX files; always 32x32x1), 'image_folder',
  # or any TFDS catalog name ('celeb_a', 'lsun/bedroom', 'cifar10', ...).
  c.name = FASHION_MNIST
  # Where prepared datasets (and downloaded TFDS catalog datasets) live. Relative
  # paths are relative to the working directory (the repo root: ./data is git-ignored).
  c.data_dir = 'data'
  # image_folder: the folder of images. fashion_mnist: folder of the IDX files
  # ('' = /usr/share/datasets/fashion-mnist). Only needed to prepare.
  c.source_dir = ''
  # image_folder: name of the prepared dataset ('' = basename of source_dir). Set it
  # (and leave source_dir empty) to read a dataset prepared on another machine.
  c.folder_name = ''
  # TFDS catalog: source split(s) to convert, TFDS syntax (e.g. 'train+validation').
  c.split = 'train'
  c.resolution = 32  # Full resolution, a power of two >= 4.
  c.num_channels = 1  # 1 (gray) or 3 (RGB).
  c.crop = 'center'  # 'center' (crop the central square) or 'letterbox' (fit, pad black).
  # 'none'; 'dataset' (fashion_mnist, catalog: the dataset's classes); image_folder:
  # 'subfolders' (first folder = class) or the path of a CSV file (path,label).
  c.labels = 'none'
  c.num_threads = 0  # Reading/decoding threads per process; 0 = min(cpu count, 16).
  c.prefetch_batches = 0  # Batches decoded ahead per process; 0 = 2 * num_threads.
  return c


def kind(config) -> str:
  """'fashion_mnist', 'image_folder' or 'catalog'."""
  return config.name if config.name in (FASHION_MNIST, IMAGE_FOLDER) else 'catalog'


def folder_name(config) -> str:
  return config.folder_name or os.path.basename(os.path.normpath(config.source_dir))


def validate(config) -> None:
  """Raises DataConfigError naming the offending field."""
  unknown = set(config.keys()) - set(get_data_config().keys())
  if unknown:
    raise DataConfigError(f'unknown data config field(s) {sorted(unknown)}; known: '
                     f'{sorted(get_data_config().keys())}')
  if not config.name or not isinstance(config.name, str):
    raise DataConfigError('data.name must be "fashion_mnist", "image_folder" or a TFDS catalog name')
  try:
    level_resolutions(config.resolution)
  except ValueError as e:
    raise DataConfigError(f'data.{e}') from None
  if config.num_channels not in (1, 3):
    raise DataConfigError(f'data.num_channels must be 1 or 3, got {config.num_channels}')
  if config.crop not in CROPS:
    raise DataConfigError(f'data.crop must be one of {CROPS}, got {config.crop!r}')
  if config.num_threads < 0 or config.prefetch_batches < 0:
    raise DataConfigError('data.num_threads and data.prefetch_batches must be >= 0')
  k = kind(config)
  if k == FASHION_MNIST and (config.resolution, config.num_channels) != (32, 1):
    raise DataConfigError('fashion_mnist is 32x32 with 1 channel: set data.resolution=32 and '
                     f'data.num_channels=1 (got {config.resolution}, {config.num_channels})')
  if k == IMAGE_FOLDER:
    if not (config.source_dir or config.folder_name):
      raise DataConfigError('image_folder needs data.source_dir (or data.folder_name to read a '
                       'dataset that is already prepared)')
    if config.labels == 'dataset':
      raise DataConfigError('image_folder labels are "none", "subfolders" or a CSV file path')
  elif config.labels not in ('none', 'dataset'):
    raise DataConfigError(f'{config.name} labels must be "none" or "dataset", got {config.labels!r}')


def prepare_command(config) -> str:
  """The exact `prepare` command line that prepares this config's dataset."""
  args = ['stylegan-jax', 'prepare', f'--name={config.name}',
          f'--data_dir={config.data_dir}']
  k = kind(config)
  if config.source_dir:
    args.append(f'--source_dir={config.source_dir}')
  elif k == IMAGE_FOLDER:
    args.append('--source_dir=<folder of images>')
  if k == IMAGE_FOLDER and config.folder_name:
    args.append(f'--folder_name={config.folder_name}')
  if k == 'catalog' and config.split != 'train':
    args.append(f'--split={config.split}')
  if k != FASHION_MNIST:
    args += [f'--resolution={config.resolution}', f'--num_channels={config.num_channels}',
             f'--crop={config.crop}', f'--labels={config.labels}']
  return shlex.join(args)
