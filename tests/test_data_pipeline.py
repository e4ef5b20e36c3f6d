"""The input pipeline: shapes, levels, determinism, mirroring, sharding, save/restore, device prefetch."""

import io
import json
import os

import jax
import numpy as np
import pytest
from PIL import Image

from stylegan_jax import input_pipeline
from stylegan_jax.data.levels import box_filter_levels
from stylegan_jax.data.prepare import prepare

N = 40  # Images; image i has red = 5 * i everywhere (its id), green rising along W.


def source_image(i: int) -> np.ndarray:
  image = np.zeros((8, 8, 3), np.uint8)
  image[..., 0] = 5 * i
  image[..., 1] = np.arange(8) * 30
  image[..., 2] = 100
  return image


@pytest.fixture(scope='module')
def root(tmp_path_factory):
  root = tmp_path_factory.mktemp('pipeline')
  for i in range(N):
    path = root / 'imgs' / f'class{i % 3}' / f'{i:02d}.png'
    os.makedirs(path.parent, exist_ok=True)
    Image.fromarray(source_image(i)).save(path)
  for labels in ('none', 'subfolders'):
    prepare(config(root, labels))
  return root


def config(root, labels='none'):
  c = input_pipeline.get_data_config()
  c.update(name='image_folder', source_dir=str(root / 'imgs'), data_dir=str(root / 'data'),
           resolution=8, num_channels=3, labels=labels, num_threads=2)
  return c


def iterator(root, labels='none', resolution=8, batch=8, seed=0, mirror=False,
             local_device_count=1, **kwargs):
  """One simulated local device unless told otherwise (None: JAX's devices)."""
  return input_pipeline.create_input_iterator(
      config(root, labels), resolution=resolution, global_batch_size=batch, seed=seed,
      mirror_augment=mirror, local_device_count=local_device_count, **kwargs)


def take(it, n):
  return [next(it) for _ in range(n)]


def ids(batch) -> list[int]:
  return (batch['image'][..., 0, 0, 0].reshape(-1) // 5).tolist()


def flips(batch) -> list[bool]:
  green = batch['image'][..., 0, :, 1].reshape(-1, batch['image'].shape[-2])
  return (green[:, 0] > green[:, -1]).tolist()


def assert_batches_equal(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    assert x.keys() == y.keys()
    for k in x:
      np.testing.assert_array_equal(x[k], y[k])


def test_dataset_info(root):
  assert input_pipeline.create_dataset_info(config(root)) == input_pipeline.DatasetInfo(
      resolution=8, num_channels=3, label_size=0, num_examples=N)
  labeled = input_pipeline.create_dataset_info(config(root, 'subfolders'))
  assert (labeled.label_size, labeled.class_names) == (3, ('class0', 'class1', 'class2'))


@pytest.mark.parametrize('resolution', [8, 4])
def test_batches_hold_the_stored_levels_and_one_hot_labels(root, resolution):
  (batch,) = take(iterator(root, 'subfolders', resolution=resolution), 1)
  assert batch['image'].shape == (1, 8, resolution, resolution, 3)
  assert batch['image'].dtype == np.uint8
  assert batch['label'].shape == (1, 8, 3) and batch['label'].dtype == np.float32
  for image, label, i in zip(batch['image'][0], batch['label'][0], ids(batch)):
    np.testing.assert_array_equal(image, box_filter_levels(source_image(i))[resolution])
    np.testing.assert_array_equal(label, np.eye(3)[i % 3])  # Classes class0, class1, class2.


def test_unlabeled_labels_have_size_zero(root):
  (batch,) = take(iterator(root), 1)
  assert batch['label'].shape == (1, 8, 0) and batch['label'].dtype == np.float32


def test_each_epoch_is_a_new_permutation(root):
  batches = take(iterator(root), 10)  # Two epochs of 40.
  first = sum((ids(b) for b in batches[:5]), [])
  second = sum((ids(b) for b in batches[5:]), [])
  assert sorted(first) == sorted(second) == list(range(N))
  assert first != second and first != list(range(N))


def test_same_seed_same_batches_other_seed_other_batches(root):
  a = take(iterator(root, seed=7, mirror=True), 6)
  assert_batches_equal(a, take(iterator(root, seed=7, mirror=True), 6))
  b = take(iterator(root, seed=8, mirror=True), 6)
  assert [ids(x) for x in a] != [ids(x) for x in b]


def test_mirror_flips_about_half_along_width(root):
  batches = take(iterator(root, mirror=True), 20)
  flipped = sum((flips(b) for b in batches), [])
  assert 0.3 < np.mean(flipped) < 0.7
  for b in batches:
    for image, i, f in zip(b['image'][0], ids(b), flips(b)):
      np.testing.assert_array_equal(image, source_image(i)[:, ::-1] if f else source_image(i))
  assert not any(sum((flips(b) for b in take(iterator(root), 20)), []))


def test_two_processes_read_the_halves_of_the_global_batches(root):
  """Process p reads the p-th contiguous half of each global batch: process 0's devices then process 1's hold
  the single process's batch in its order (so the device a sample lands on does not depend on the process
  count)."""
  single = take(iterator(root, mirror=True), 5)  # One epoch.
  hosts = [take(iterator(root, mirror=True, process_index=p, process_count=2), 5)
           for p in range(2)]
  seen = [sum((ids(b) for b in host), []) for host in hosts]
  assert not set(seen[0]) & set(seen[1])
  assert sorted(seen[0] + seen[1]) == list(range(N))
  for step in range(5):
    assert all(b['image'].shape == (1, 4, 8, 8, 3) for b in (hosts[0][step], hosts[1][step]))
    assert ids(hosts[0][step]) + ids(hosts[1][step]) == ids(single[step])
    assert flips(hosts[0][step]) + flips(hosts[1][step]) == flips(single[step])
    np.testing.assert_array_equal(np.concatenate([hosts[0][step]['image'], hosts[1][step]['image']], axis=1),
                                  single[step]['image'])


def test_local_devices_split_the_host_batch(root):
  (split,) = take(iterator(root, local_device_count=2), 1)
  (whole,) = take(iterator(root), 1)
  assert split['image'].shape == (2, 4, 8, 8, 3) and split['label'].shape == (2, 4, 0)
  np.testing.assert_array_equal(split['image'].reshape(whole['image'].shape), whole['image'])


def test_global_batch_must_divide_by_device_count(root):
  with pytest.raises(ValueError, match=r'global_batch_size 6 is not divisible by '
                                       r'jax.device_count\(\) 4'):
    iterator(root, batch=6, process_index=0, process_count=2, local_device_count=2)
  with pytest.raises(ValueError, match='global_batch_size 0'):
    iterator(root, batch=0)


def test_restore_mid_epoch_gives_the_same_following_batches(root):
  it = iterator(root, mirror=True, seed=3)
  take(it, 3)
  state = json.loads(json.dumps(it.get_state()))
  expected = take(it, 4)  # Crosses into the second epoch.
  restored = iterator(root, mirror=True, seed=3)
  restored.set_state(state)
  assert_batches_equal(take(restored, 4), expected)
  # The state counts global batches, so it also restores onto another process count.
  halves = []
  for p in range(2):
    host = iterator(root, mirror=True, seed=3, process_index=p, process_count=2)
    host.set_state(state)
    halves.append(next(host))
  assert sorted(ids(halves[0]) + ids(halves[1])) == sorted(ids(expected[0]))


def test_restore_refuses_state_of_other_settings(root):
  state = iterator(root, seed=1).get_state()
  with pytest.raises(ValueError, match='iterator state is for'):
    iterator(root, seed=2).set_state(state)


def test_prefetch_to_device(root):
  sharding = input_pipeline.batch_sharding()
  assert sharding.mesh.axis_names == ('batch',) and sharding.mesh.size == jax.device_count()
  device_it = input_pipeline.prefetch_to_device(
      iterator(root, mirror=True, local_device_count=None), sharding, size=2)
  host = take(iterator(root, mirror=True, local_device_count=None), 4)
  assert host[0]['image'].shape == (jax.local_device_count(), 8 // jax.local_device_count(), 8, 8, 3)
  for expected in host[:3]:
    batch = next(device_it)
    assert isinstance(batch['image'], jax.Array) and batch['image'].sharding == sharding
    assert len(batch['image'].addressable_shards) == jax.local_device_count()
    np.testing.assert_array_equal(np.asarray(batch['image']), expected['image'])
    np.testing.assert_array_equal(np.asarray(batch['label']), expected['label'])
  # Its state is after the 3 batches returned, not the ones prefetched beyond them.
  restored = iterator(root, mirror=True, local_device_count=None)
  restored.set_state(device_it.get_state())
  assert_batches_equal([next(restored)], host[3:])


def test_missing_dataset_and_bad_resolution_are_clear_errors(root, tmp_path):
  missing = config(root)
  missing.data_dir = str(tmp_path)
  with pytest.raises(FileNotFoundError, match=r'not prepared .*run `stylegan-jax prepare --name=image_folder'):
    input_pipeline.create_dataset_info(missing)
  fmnist = input_pipeline.get_data_config()
  fmnist.data_dir = str(tmp_path)
  with pytest.raises(FileNotFoundError, match=r'`stylegan-jax prepare --name=fashion_mnist --data_dir=.*` first'):
    input_pipeline.create_input_iterator(fmnist, resolution=32, global_batch_size=8, seed=0,
                                         mirror_augment=False)
  with pytest.raises(ValueError, match=r'resolution 16 is not a level .*\[4, 8\]'):
    iterator(root, resolution=16)
