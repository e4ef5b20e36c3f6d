"""Real images and labels of a prepared dataset, in file order, and the dataset's fingerprint.

Reals are read as the official metrics read them: the first `count` records of a level's split in file order (no
shuffle), at that level's resolution, as stored (uint8 NHWC). The fingerprint identifies the prepared files: it
changes whenever the dataset is prepared again or its files change.
"""

import hashlib
import json
import os
from typing import Optional

import numpy as np
import tensorflow_datasets as tfds

from stylegan_jax import errors
from stylegan_jax.data import datasets
from stylegan_jax.data.builder import split_name
from stylegan_jax.data.images import decode_png
from stylegan_jax.data.levels import level_resolutions

_READ_CHUNK = 1024


class Reals:
  """The prepared dataset of a data config (raises if it is not prepared)."""

  def __init__(self, data_config):
    try:
      self.builder = datasets.prepared_builder(data_config)
    except (ValueError, FileNotFoundError) as e:
      raise errors.UserError(str(e)) from e
    self.num_channels = data_config.num_channels
    self.resolution = data_config.resolution
    self.name = self.builder.info.full_name
    self.num_examples = self.builder.info.splits[split_name(self.resolution)].num_examples
    self.labeled = 'label' in self.builder.info.features

  @property
  def num_classes(self) -> int:
    self._require_labels()
    return self.builder.info.features['label'].num_classes

  def _require_labels(self) -> None:
    if not self.labeled:
      raise errors.UserError(f'dataset {self.name} has no labels; prepare a labelled one (image_folder: '
                             '--labels=subfolders or a CSV; catalog datasets: --labels=dataset)')

  def fingerprint(self) -> str:
    """sha256 (hex, 16 digits) of the prepared files' names, sizes and modification times."""
    directory = os.fspath(self.builder.data_dir)
    entries = []
    for name in sorted(os.listdir(directory)):
      stat = os.stat(os.path.join(directory, name))
      entries.append([name, stat.st_size, stat.st_mtime_ns])
    return hashlib.sha256(json.dumps([self.name, entries]).encode()).hexdigest()[:16]

  def _source(self, resolution: int):
    if resolution not in level_resolutions(self.resolution):
      raise errors.UsageError(f'resolution {resolution} is not a level of {self.name}: '
                              f'{level_resolutions(self.resolution)}')
    return self.builder.as_data_source(split=split_name(resolution),
                                       decoders={'image': tfds.decode.SkipDecoding()})

  def count(self, count: Optional[int]) -> int:
    """How many reals a request for `count` (None: all) gets: all of them when the dataset has fewer."""
    return self.num_examples if count is None else min(count, self.num_examples)

  def read(self, resolution: int, start: int = 0, count: Optional[int] = None, *, labels: bool = False):
    """Records [start, start + count) of level `resolution`: uint8 [N, r, r, C] (and int64 labels [N])."""
    if labels:
      self._require_labels()
    source = self._source(resolution)
    stop = len(source) if count is None else min(len(source), start + count)
    images, label_ids = [], []
    for begin in range(start, stop, _READ_CHUNK):
      examples = source.__getitems__(list(range(begin, min(stop, begin + _READ_CHUNK))))
      images += [decode_png(e['image'], self.num_channels) for e in examples]
      if labels:
        label_ids += [int(e['label']) for e in examples]
    images = np.stack(images) if images else np.zeros((0, resolution, resolution, self.num_channels), np.uint8)
    return (images, np.asarray(label_ids, np.int64)) if labels else images
