"""Any TFDS catalog dataset with an 'image' feature (celeb_a, lsun/bedroom, cifar10, ...).

The catalog dataset is first prepared by TFDS itself into `data_dir` in the
array_record format (this one step downloads and needs TensorFlow, imported
lazily; a clear error says so when it is missing), then its encoded images go
through the same conversion as an image folder (`images.load_image`), so
reading and training never need TensorFlow. Labels, if asked for, come from the
dataset's 'label' ClassLabel feature.
"""

import dataclasses
import functools
import importlib.util
import re

import tensorflow_datasets as tfds

from stylegan_jax.data.builder import LevelsBuilder, LevelsConfig, Source
from stylegan_jax.data.images import load_image

_PIP_NAMES = {'tensorflow': 'tensorflow-cpu', 'importlib_resources': 'importlib_resources'}


@dataclasses.dataclass(eq=False)
class CatalogConfig(LevelsConfig):
  catalog_name: str = ''
  split: str = 'train'
  crop: str = 'center'


def config_name(catalog_name: str, split: str, resolution: int, num_channels: int, crop: str,
                labeled: bool) -> str:
  """e.g. 'lsun_bedroom-train-256px-3ch-center-nolabels'."""
  name, split = (re.sub(r'[^\w.]+', '_', s) for s in (catalog_name, split))
  return (f'{name}-{split}-{resolution}px-{num_channels}ch-{crop}-'
          f'{"dataset" if labeled else "nolabels"}')


def prepared_catalog_builder(catalog_name: str, data_dir: str) -> tfds.core.DatasetBuilder:
  """The TFDS catalog builder, downloaded and prepared as array_record in data_dir."""
  builder = tfds.builder(catalog_name, data_dir=data_dir, file_format='array_record')
  if not builder.is_prepared():
    # TFDS needs importlib_resources to prepare catalog datasets but does not declare it for
    # Python >= 3.9 (tensorflow/datasets#11212).
    missing = [m for m in ('tensorflow', 'importlib_resources') if importlib.util.find_spec(m) is None]
    if missing:
      raise ModuleNotFoundError(
          f'Preparing the TFDS catalog dataset {catalog_name!r} (download and conversion) needs '
          f'{" and ".join(missing)}: pip install {" ".join(_PIP_NAMES[m] for m in missing)}. '
          'Only this one prepare step needs them; reading and training do not.')
    builder.download_and_prepare(file_format='array_record')
  if builder.info.file_format != tfds.core.FileFormat.ARRAY_RECORD:
    raise ValueError(f'{builder.data_dir} holds {catalog_name!r} as {builder.info.file_format}, '
                     'not array_record; use another data_dir or delete it to re-prepare.')
  return builder


class _Items:
  """Lazy sequence of (key, label or None, encoded image bytes) over a TFDS data source."""

  def __init__(self, source, name: str, labeled: bool):
    self._source, self._name, self._labeled = source, name, labeled

  def __len__(self) -> int:
    return len(self._source)

  def __getitem__(self, i: int):
    if not 0 <= i < len(self._source):
      raise IndexError(i)
    example = self._source[i]
    label = int(example['label']) if self._labeled else None
    return f'{self._name}[{i}]', label, bytes(example['image'])


class Catalog(LevelsBuilder, skip_registration=True):
  """A TFDS catalog dataset, converted; configs named by `config_name`."""

  name = 'stylegan_catalog'
  DESCRIPTION = __doc__
  builder_config: CatalogConfig

  def __init__(self, *, catalog_data_dir: str, **kwargs):
    """catalog_data_dir: where the catalog dataset itself is (or gets) prepared."""
    self._catalog_data_dir = catalog_data_dir
    super().__init__(**kwargs)

  def _source(self) -> Source:
    config = self.builder_config
    catalog = prepared_catalog_builder(config.catalog_name, self._catalog_data_dir)
    features = dict(catalog.info.features.items())
    if not isinstance(features.get('image'), tfds.features.Image):
      raise ValueError(f'{config.catalog_name!r} has no "image" Image feature: {features}')
    label_names = None
    if config.labeled:
      if not isinstance(features.get('label'), tfds.features.ClassLabel):
        raise ValueError(f'{config.catalog_name!r} has no "label" ClassLabel feature; '
                         'use labels=none')
      label_names = features['label'].names
    source = catalog.as_data_source(split=config.split,
                                    decoders={'image': tfds.decode.SkipDecoding()})
    loader = functools.partial(load_image, resolution=config.resolution,
                               num_channels=config.num_channels, crop=config.crop)
    return Source(items=_Items(source, f'{config.catalog_name}/{config.split}', config.labeled),
                  loader=loader, label_names=label_names,
                  metadata={'catalog': catalog.info.full_name, 'split': config.split,
                            'crop': config.crop})
