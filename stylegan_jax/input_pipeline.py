"""Training input pipeline: grain over a prepared TFDS array_record dataset.

Each host iterates numpy batches
  'image': uint8 [local_device_count, per_device_batch, r, r, C]  (NHWC per device)
  'label': float32 [local_device_count, per_device_batch, label_size]  (one-hot;
           label_size 0 when unlabeled)
of one level r of the prepared dataset (see `stylegan_jax.data.builder`).

Order. For a seed there is one global stream of examples: epoch e is a fresh
permutation of the whole dataset (grain's global shuffle, seeded by seed and e),
and the mirror flip of each element depends only on the seed and its position
in the stream. Global batch k is stream positions [kB, (k+1)B); host p of P
reads its contiguous block [kB + pB/P, kB + (p+1)B/P). Hosts' devices follow
in process order on the training mesh, so device d gets global rows
[dB/D, (d+1)B/D) of the same global batch whatever P is (2 processes x 2
devices train exactly as 1 x 4). The iterator state is the number of batches
consumed (plus the settings it is valid for).

Decoding (PNG, GIL-free in PIL) runs on `num_threads` threads, each producing
whole batches, `prefetch_batches` ahead. Levels are precomputed at prepare
time (one split per level), so reading level r costs an r x r PNG decode.
"""

import collections
import dataclasses
import os
from typing import Any, Iterator

import grain
import jax
import numpy as np
import tensorflow_datasets as tfds

from stylegan_jax.data import config as config_lib
from stylegan_jax.data import datasets
from stylegan_jax.data.builder import split_name
from stylegan_jax.data.config import get_data_config  # noqa: F401  (the schema lives there)
from stylegan_jax.data.images import decode_png
from stylegan_jax.data.levels import level_resolutions


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  resolution: int  # Full resolution; levels are 4, 8, ..., resolution.
  num_channels: int
  label_size: int  # Classes (one-hot labels); 0 when unlabeled.
  num_examples: int
  class_names: tuple[str, ...] = ()  # The name of each class id (label_size of them); () when unlabeled.


def _label_size(config, builder) -> int:
  return 0 if config.labels == 'none' else builder.info.features['label'].num_classes


def create_dataset_info(data_config) -> DatasetInfo:
  """Facts about the prepared dataset of `data_config` (raises if not prepared)."""
  builder = datasets.prepared_builder(data_config)
  return DatasetInfo(
      resolution=data_config.resolution, num_channels=data_config.num_channels,
      label_size=_label_size(data_config, builder),
      num_examples=builder.info.splits[split_name(data_config.resolution)].num_examples,
      class_names=tuple(builder.info.features['label'].names) if _label_size(data_config, builder) else ())


class InputIterator:
  """Iterator of host-local numpy batches (see module doc) with a JSON-able state."""

  def __init__(self, dataset: grain.MapDataset, read_options: grain.ReadOptions,
               settings: dict[str, Any]):
    self._iterator = dataset.to_iter_dataset(read_options).__iter__()
    self._settings = settings

  def __iter__(self) -> 'InputIterator':
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    return next(self._iterator)

  def get_state(self) -> dict[str, Any]:
    """JSON-serializable; valid for an iterator with the same settings (any process count)."""
    return {'settings': self._settings, 'grain': self._iterator.get_state()}

  def set_state(self, state: dict[str, Any]) -> None:
    if state['settings'] != self._settings:
      raise ValueError(f'iterator state is for {state["settings"]}, not {self._settings}')
    self._iterator.set_state(state['grain'])

  def close(self) -> None:
    self._iterator.close()


def create_input_iterator(data_config, *, resolution: int, global_batch_size: int, seed: int,
                          mirror_augment: bool, process_index: int | None = None,
                          process_count: int | None = None,
                          local_device_count: int | None = None) -> InputIterator:
  """Batches of level `resolution` for this process (see module doc).

  process_index/process_count/local_device_count default to JAX's; override
  them to simulate other topologies.
  """
  process_index = jax.process_index() if process_index is None else process_index
  process_count = jax.process_count() if process_count is None else process_count
  local_device_count = jax.local_device_count() if local_device_count is None else local_device_count
  device_count = process_count * local_device_count
  if global_batch_size <= 0 or global_batch_size % device_count:
    raise ValueError(f'global_batch_size {global_batch_size} is not divisible by '
                     f'jax.device_count() {device_count}')
  builder = datasets.prepared_builder(data_config)
  if resolution not in level_resolutions(data_config.resolution):
    raise ValueError(f'resolution {resolution} is not a level of this dataset: '
                     f'{level_resolutions(data_config.resolution)}')
  num_channels, label_size = data_config.num_channels, _label_size(data_config, builder)
  local_batch = global_batch_size // process_count
  shape = (local_device_count, local_batch // local_device_count)

  source = builder.as_data_source(split=split_name(resolution),
                                  decoders={'image': tfds.decode.SkipDecoding()})
  one_hot = np.eye(label_size, dtype=np.float32)

  def load_batch(items: list[tuple[int, bool]]) -> dict[str, np.ndarray]:
    """[(record index, flip)] -> a batch; one vectorized read of the records."""
    examples = source.__getitems__([record for record, _ in items])
    images = np.stack([decode_png(e['image'], num_channels) for e in examples])
    if images.shape[1:] != (resolution, resolution, num_channels):
      raise ValueError(f'stored images have shape {images.shape[1:]}, expected '
                       f'{(resolution, resolution, num_channels)}')
    flips = np.array([flip for _, flip in items])
    images[flips] = images[flips, :, ::-1]
    labels = (one_hot[[e['label'] for e in examples]] if label_size
              else np.zeros((len(items), 0), np.float32))
    return {'image': images.reshape(shape + images.shape[1:]),
            'label': labels.reshape(shape + (label_size,))}

  shuffle_seed, mirror_seed = (int(s) for s in np.random.SeedSequence(seed).generate_state(2))
  # Stream of record indices: a new global permutation each epoch.
  ds = grain.MapDataset.range(len(source)).shuffle(seed=shuffle_seed).repeat()
  if mirror_augment:  # The coin of stream position n depends on (seed, n) only.
    ds = ds.random_map(lambda record, rng: (record, rng.random() < 0.5), seed=mirror_seed)
  else:
    ds = ds.map(lambda record: (record, False))
  # Blocks of B/P consecutive positions (cheap: record indices only); host p loads every P-th, from the p-th.
  ds = ds.batch(local_batch, drop_remainder=True, batch_fn=list)[process_index::process_count].map(load_batch)
  num_threads = data_config.num_threads or min(os.cpu_count() or 1, 16)
  read_options = grain.ReadOptions(num_threads=num_threads,
                                   prefetch_buffer_size=data_config.prefetch_batches or 2 * num_threads)
  settings = dict(dataset=builder.info.full_name, resolution=resolution,
                  global_batch_size=global_batch_size, seed=seed, mirror_augment=mirror_augment,
                  labels=data_config.labels)
  return InputIterator(ds, read_options, settings)


def batch_sharding(devices=None) -> jax.sharding.NamedSharding:
  """Data-parallel sharding of the leading device axis over a 1-D mesh axis 'batch'."""
  mesh = jax.sharding.Mesh(np.asarray(devices if devices is not None else jax.devices()),
                           ('batch',))
  return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec('batch'))


class DevicePrefetchIterator:
  """Keeps `size` batches on device ahead of the consumer.

  Its state is that of the host iterator right after the last batch *returned*,
  so a checkpoint never skips the batches still waiting here.
  """

  def __init__(self, iterator: InputIterator, sharding: jax.sharding.Sharding, size: int = 2):
    self._iterator, self._sharding, self._size = iterator, sharding, size
    self._queue = collections.deque()
    self._state = iterator.get_state()

  def __iter__(self) -> 'DevicePrefetchIterator':
    return self

  def __next__(self) -> dict[str, jax.Array]:
    self._fill()
    if not self._queue:
      raise StopIteration
    batch, self._state = self._queue.popleft()
    self._fill()
    return batch

  def _fill(self) -> None:
    while len(self._queue) < self._size:
      try:
        batch = next(self._iterator)
      except StopIteration:
        return
      # Host-local [local_device_count, ...] -> global [device_count, ...]; unlike
      # jax.device_put, this is right when each process holds different data.
      batch = jax.tree.map(
          lambda x: jax.make_array_from_process_local_data(self._sharding, x), batch)
      self._queue.append((batch, self._iterator.get_state()))

  def get_state(self) -> dict[str, Any]:
    return self._state

  def set_state(self, state: dict[str, Any]) -> None:
    self._queue.clear()
    self._iterator.set_state(state)
    self._state = state


def prefetch_to_device(iterator: InputIterator, sharding: jax.sharding.Sharding,
                       size: int = 2) -> Iterator[dict[str, jax.Array]]:
  """Puts the next `size` batches on device with `sharding` (e.g. `batch_sharding()`).

  Returns a `DevicePrefetchIterator`; checkpoint its `get_state()`, not the host
  iterator's, which runs `size` batches ahead.
  """
  return DevicePrefetchIterator(iterator, sharding, size)
