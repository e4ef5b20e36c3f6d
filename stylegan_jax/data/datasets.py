"""Data config -> the TFDS builder of its prepared dataset."""

import logging
import os

import tensorflow_datasets as tfds

from stylegan_jax.data import catalog, config as config_lib, fashion_mnist, image_folder

logger = logging.getLogger(__name__)


class NotPreparedError(config_lib.DataError, FileNotFoundError):
  """The dataset a config names has not been prepared; the message has the command that prepares it."""


def _path(path: str) -> str:
  return os.path.abspath(os.path.expanduser(path)) if path else path


def builder_for(config, **kwargs) -> tfds.core.DatasetBuilder:
  """The builder for a validated data config; kwargs go to the builder (strict, num_workers)."""
  data_dir = _path(config.data_dir)
  kwargs = dict(kwargs, file_format='array_record')
  labeled = config.labels != 'none'
  common = dict(resolution=config.resolution, num_channels=config.num_channels, labeled=labeled)
  kind = config_lib.kind(config)
  if kind == config_lib.FASHION_MNIST:
    return fashion_mnist.FashionMnist(data_dir=data_dir, source_dir=_path(config.source_dir), **kwargs)
  if kind == config_lib.IMAGE_FOLDER:
    name = image_folder.config_name(config_lib.folder_name(config), config.resolution,
                                    config.num_channels, config.crop, config.labels)
    builder_config = image_folder.ImageFolderConfig(
        name=name, source_dir=_path(config.source_dir), crop=config.crop,
        labels=config.labels if config.labels in ('none', 'subfolders') else _path(config.labels),
        **common)
    return image_folder.ImageFolder(data_dir=data_dir, config=builder_config, **kwargs)
  name = catalog.config_name(config.name, config.split, config.resolution, config.num_channels,
                             config.crop, labeled)
  builder_config = catalog.CatalogConfig(name=name, catalog_name=config.name, split=config.split,
                                         crop=config.crop, **common)
  return catalog.Catalog(data_dir=data_dir, config=builder_config, catalog_data_dir=data_dir,
                         **kwargs)


def check_source_matches(config, builder: tfds.core.DatasetBuilder) -> str | None:
  """For image folders: a message if the prepared data came from another source_dir."""
  if config_lib.kind(config) != config_lib.IMAGE_FOLDER or not config.source_dir:
    return None
  prepared_from = builder.info.metadata.get('source_dir')
  wanted = _path(config.source_dir)
  if prepared_from != wanted:
    return (f'{builder.data_dir} was prepared from {prepared_from}, not {wanted}; set a '
            'distinct data.folder_name for this folder')
  return None


def prepared_builder(config) -> tfds.core.DatasetBuilder:
  """The builder of an already prepared dataset; a clear error naming the command otherwise."""
  config_lib.validate(config)
  builder = builder_for(config)
  if not builder.is_prepared():
    if config_lib.kind(config) == 'catalog' and not _in_catalog(config.name):
      raise config_lib.DataConfigError(f'unknown dataset name {config.name!r}: not "fashion_mnist", '
                                       '"image_folder" or a TFDS catalog dataset')
    raise NotPreparedError(
        f'dataset {config.name!r} is not prepared in {builder.data_dir}; run '
        f'`{config_lib.prepare_command(config)}` first')
  if message := check_source_matches(config, builder):
    logger.warning(message)
  return builder


def _in_catalog(name: str) -> bool:
  try:
    tfds.builder_cls(name.split('/')[0].split(':')[0])
  except tfds.core.registered.DatasetNotFoundError:
    return False
  return True


def data_config_from_directory(path: str):
  """The data config that reads the prepared dataset in `path`: the directory `stylegan-jax prepare` prints,
  `<data_dir>/<builder>/<config>/<version>` (or its parent `<data_dir>/<builder>/<config>`)."""
  directory = os.path.abspath(os.path.expanduser(path))
  if not os.path.isdir(directory):
    raise config_lib.DataError(f'--data {path}: no such directory (pass the directory `stylegan-jax prepare` '
                               'printed)')
  if not os.path.exists(os.path.join(directory, 'dataset_info.json')):
    versions = sorted(d for d in os.listdir(directory) if os.path.exists(os.path.join(directory, d, 'dataset_info.json')))
    if len(versions) != 1:
      raise config_lib.DataError(f'--data {path}: not a prepared dataset (no dataset_info.json; pass the directory '
                                 '`stylegan-jax prepare` printed)')
    directory = os.path.join(directory, versions[0])
  info = tfds.builder_from_directory(directory).info
  config_dir = os.path.dirname(directory)
  builder_name, config_name = os.path.basename(os.path.dirname(config_dir)), os.path.basename(config_dir)
  image = info.features['image']
  resolution = max(int(s[len('res'):]) for s in info.splits.keys())
  config = config_lib.get_data_config()
  config.update(data_dir=os.path.dirname(os.path.dirname(config_dir)), resolution=resolution,
                num_channels=image.shape[-1], crop=info.metadata.get('crop', 'center'))
  labeled = 'label' in info.features
  if builder_name == fashion_mnist.FashionMnist.name:
    config.update(name=config_lib.FASHION_MNIST, labels='dataset' if labeled else 'none')
  elif builder_name == image_folder.ImageFolder.name:
    labels = info.metadata.get('labels', 'none')
    suffix = image_folder.config_name('', resolution, config.num_channels, config.crop, labels)
    config.update(name=config_lib.IMAGE_FOLDER, labels=labels, folder_name=config_name[:-len(suffix)])
  elif builder_name == catalog.Catalog.name:
    config.update(name=info.metadata['catalog'].rsplit('/', 1)[0], split=info.metadata['split'],
                  labels='dataset' if labeled else 'none')
  else:
    raise config_lib.DataError(f'--data {path}: {builder_name} is not a dataset of `stylegan-jax prepare`')
  found = builder_for(config)
  if os.path.realpath(found.data_dir) != os.path.realpath(directory):
    raise config_lib.DataError(f'--data {path}: not a dataset of `stylegan-jax prepare` (its name '
                               f'{builder_name}/{config_name} does not match its contents)')
  return config
