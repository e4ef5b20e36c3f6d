"""Preparing datasets: image folders (bad files, labels, modes), Fashion-MNIST, catalog, interruption."""

import gzip
import importlib.util
import io
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from stylegan_jax.data import builder as builder_lib
from stylegan_jax.data import config as config_lib
from stylegan_jax.data import datasets, fashion_mnist, image_folder
from stylegan_jax.data.builder import split_name
from stylegan_jax.data.images import BadImageError
from stylegan_jax.data.levels import box_filter_levels
from stylegan_jax.data.prepare import main, prepare

RNG = np.random.default_rng(0)
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def save(path, array, fmt=None, mode=None, **kwargs) -> bytes:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  buffer = io.BytesIO()
  Image.fromarray(array, mode).save(buffer, fmt or os.path.splitext(path)[1][1:].replace('jpg', 'jpeg'),
                                    **kwargs)
  with open(path, 'wb') as f:
    f.write(buffer.getvalue())
  return buffer.getvalue()


def rgb(h=8, w=8):
  return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def data_config(**kwargs):
  config = config_lib.get_data_config()
  config.update(dict(name='image_folder', resolution=8, num_channels=3) | kwargs)
  return config


def read_split(builder, resolution, num_channels=3):
  source = builder.as_data_source(split=split_name(resolution))
  return [dict(e, image=e['image'].reshape(resolution, resolution, num_channels)) for e in source]


@pytest.fixture
def messy_folder(tmp_path):
  """7 good images (modes, formats, sizes, nesting) and 6 bad ones, plus files to ignore."""
  src = tmp_path / 'messy'
  good = {
      'a.png': rgb(), 'b/c.jpg': rgb(10, 12), 'b/d/e.webp': rgb(9, 8),
      'f.PNG': RNG.integers(0, 256, (8, 8), dtype=np.uint8),
      'g.png': RNG.integers(0, 256, (8, 16, 4), dtype=np.uint8), 'h/i.jpeg': rgb(20, 8),
  }
  for name, array in good.items():
    save(src / name, array)
  save(src / 'h/j.png', np.zeros((8, 8), np.uint8), mode='L')
  truncated_png = save(src / 'trunc.png', rgb(32, 32))
  (src / 'trunc.png').write_bytes(truncated_png[:len(truncated_png) // 2])
  truncated_jpg = save(src / 'b/trunc.jpg', rgb(32, 32))
  (src / 'b/trunc.jpg').write_bytes(truncated_jpg[:len(truncated_jpg) // 2])
  (src / 'empty.jpg').write_bytes(b'')
  (src / 'garbage.webp').write_bytes(os.urandom(100))
  save(src / 'small.png', rgb(4, 16))
  save(src / 'h/tiny.png', rgb(7, 9))
  (src / 'notes.txt').write_text('ignored')
  (src / '.hidden.png').write_bytes(b'ignored')
  bad = {'trunc.png': 'cannot decode', 'b/trunc.jpg': 'cannot decode', 'empty.jpg': 'empty file',
         'garbage.webp': 'cannot decode', 'small.png': 'too small', 'h/tiny.png': 'too small'}
  return src, 7, bad


def test_image_folder_skips_and_reports_bad_files(messy_folder, tmp_path, capsys):
  src, num_good, bad = messy_folder
  builder = prepare(data_config(source_dir=str(src), data_dir=str(tmp_path / 'data')))
  err = capsys.readouterr().err
  info = builder.info
  assert info.splits[split_name(8)].num_examples == num_good
  assert info.splits[split_name(4)].num_examples == num_good
  skipped = info.metadata['skipped']
  assert {os.path.relpath(p, src) for p in skipped} == set(bad)
  lines = err.replace('\r', '\n').splitlines()
  for rel, reason in bad.items():
    assert reason in skipped[str(src / rel)]
    (line,) = [l for l in lines if l.startswith(f'skipping {src / rel}: ')]
    assert reason in line
  assert f'Skipped {len(bad)} bad file(s) of {num_good + len(bad)}' in err
  images = read_split(builder, 8)
  assert all(e['image'].shape == (8, 8, 3) and e['image'].dtype == np.uint8 for e in images)
  # Record order is the sorted relative path: a.png first, exactly as saved.
  assert images[0]['image'].tobytes() == np.asarray(Image.open(src / 'a.png')).tobytes()
  # Every lower level is the box filter of the full level, record by record.
  for r in (4,):
    for full, low in zip(images, read_split(builder, r)):
      np.testing.assert_array_equal(low['image'], box_filter_levels(full['image'])[r])


def test_strict_fails_on_first_bad_file_and_leaves_nothing(messy_folder, tmp_path):
  src, _, _ = messy_folder
  config = data_config(source_dir=str(src), data_dir=str(tmp_path / 'data'))
  with pytest.raises(BadImageError, match=r'b/trunc.jpg: cannot decode.*strict'):
    prepare(config, strict=True)
  builder = datasets.builder_for(config)
  assert not builder.is_prepared()
  assert os.listdir(builder.data_path.parent) == []  # No incomplete.* directory left.


def test_missing_and_empty_folders_are_clear_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match='does not exist'):
    prepare(data_config(source_dir=str(tmp_path / 'nope'), data_dir=str(tmp_path / 'data')))
  (tmp_path / 'empty' / 'sub').mkdir(parents=True)
  (tmp_path / 'empty' / 'readme.txt').write_text('no images here')
  with pytest.raises(ValueError, match='no image files'):
    prepare(data_config(source_dir=str(tmp_path / 'empty'), data_dir=str(tmp_path / 'data')))
  (tmp_path / 'only_bad').mkdir()
  (tmp_path / 'only_bad' / 'x.png').write_bytes(b'')
  with pytest.raises(ValueError, match='no usable images among 1'):
    prepare(data_config(source_dir=str(tmp_path / 'only_bad'), data_dir=str(tmp_path / 'data')))


def test_subfolder_labels(tmp_path):
  src = tmp_path / 'classes'
  for name in ('zebra/1.png', 'zebra/deep/2.png', 'ant/3.png', 'top.png'):
    save(src / name, rgb())
  builder = prepare(data_config(source_dir=str(src), data_dir=str(tmp_path / 'data'),
                                labels='subfolders'))
  assert builder.info.features['label'].names == ['ant', 'zebra']
  assert [e['label'] for e in read_split(builder, 8)] == [0, 1, 1]  # ant/3, zebra/1, zebra/deep/2
  assert 'not inside a class sub-folder' in builder.info.metadata['skipped'][str(src / 'top.png')]


@pytest.mark.parametrize('rows, names, labels', [
    ([('a.png', '3'), ('b/c.png', '0')], [str(i) for i in range(4)], [3, 0]),
    ([('a.png', 'dog'), ('b/c.png', 'cat')], ['cat', 'dog'], [1, 0]),
])
def test_labels_file(tmp_path, rows, names, labels):
  src = tmp_path / 'imgs'
  for name in ('a.png', 'b/c.png', 'unlisted.png'):
    save(src / name, rgb())
  csv_path = tmp_path / 'labels.csv'
  csv_path.write_text('path,label\n' + ''.join(f'{p},{l}\n' for p, l in rows) + 'gone.png,1\n')
  builder = prepare(data_config(source_dir=str(src), data_dir=str(tmp_path / 'data'),
                                labels=str(csv_path)))
  assert builder.info.features['label'].names == names
  assert [e['label'] for e in read_split(builder, 8)] == labels
  skipped = builder.info.metadata['skipped']
  assert 'no label' in skipped[str(src / 'unlisted.png')]
  assert 'not found' in skipped[str(src / 'gone.png')]


def test_gray_dataset_and_letterbox(tmp_path):
  src = tmp_path / 'cars'
  save(src / 'car.png', np.full((12, 16, 3), 255, np.uint8))
  builder = prepare(data_config(source_dir=str(src), data_dir=str(tmp_path / 'data'),
                                num_channels=1, crop='letterbox'))
  assert builder.data_path.parent.name == 'cars-8px-1ch-letterbox-nolabels'
  (image,) = [e['image'] for e in read_split(builder, 8, num_channels=1)]
  expected = np.zeros((8, 8), np.uint8)
  expected[1:7] = 255  # 16x12 -> 8x6, one black row above and below.
  np.testing.assert_array_equal(image[:, :, 0], expected)


def test_rerun_is_instant_and_overwrite_redoes(tmp_path, monkeypatch):
  src = tmp_path / 'imgs'
  save(src / 'a.png', rgb())
  config = data_config(source_dir=str(src), data_dir=str(tmp_path / 'data'))
  prepare(config)
  save(src / 'b.png', rgb())

  def no_scan(self):
    raise AssertionError('the source was scanned again')
  with monkeypatch.context() as m:
    m.setattr(image_folder.ImageFolder, '_source', no_scan)
    assert prepare(config).info.splits['res8'].num_examples == 1
  assert prepare(config, overwrite=True).info.splits['res8'].num_examples == 2


def test_same_name_from_another_folder_is_refused(tmp_path):
  for name in ('one/faces', 'two/faces'):
    save(tmp_path / name / 'a.png', rgb())
  prepare(data_config(source_dir=str(tmp_path / 'one/faces'), data_dir=str(tmp_path / 'data')))
  with pytest.raises(ValueError, match='was prepared from .*one/faces.*folder_name'):
    prepare(data_config(source_dir=str(tmp_path / 'two/faces'), data_dir=str(tmp_path / 'data')))
  builder = prepare(data_config(source_dir=str(tmp_path / 'two/faces'), folder_name='faces2',
                                data_dir=str(tmp_path / 'data')))
  assert builder.info.metadata['source_dir'] == str(tmp_path / 'two/faces')


def test_interrupted_prepare_leaves_nothing_complete_and_is_redone(tmp_path, monkeypatch):
  src = tmp_path / 'imgs'
  for i in range(6):
    save(src / f'{i}.png', rgb())
  config = data_config(source_dir=str(src), data_dir=str(tmp_path / 'data'))
  calls = []
  real_encode = builder_lib.encode_png

  def interrupt_midway(array):
    calls.append(1)
    if len(calls) == 10:
      raise KeyboardInterrupt
    return real_encode(array)
  with monkeypatch.context() as m:
    m.setattr(builder_lib, 'encode_png', interrupt_midway)
    with pytest.raises(KeyboardInterrupt):
      prepare(config)
  builder = datasets.builder_for(config)
  assert not builder.is_prepared()
  with pytest.raises(FileNotFoundError, match='stylegan-jax prepare'):
    datasets.prepared_builder(config)
  assert prepare(config).info.splits['res8'].num_examples == 6


def test_killed_prepare_is_detected_and_redone(tmp_path):
  """SIGKILL mid-pass leaves TFDS's incomplete.* directory, never a complete-looking dataset."""
  src = tmp_path / 'imgs'
  for i in range(6):
    save(src / f'{i}.png', rgb())
  data_dir = tmp_path / 'data'
  script = textwrap.dedent(f'''
      import os, signal
      from stylegan_jax.data import builder, config, prepare
      calls = []
      real = builder.encode_png
      def die(array):
        calls.append(1)
        if len(calls) == 10:
          os.kill(os.getpid(), signal.SIGKILL)
        return real(array)
      builder.encode_png = die
      c = config.get_data_config()
      c.update(dict(name='image_folder', source_dir={str(src)!r}, data_dir={str(data_dir)!r},
                    resolution=8, num_channels=3))
      prepare.prepare(c)
  ''')
  result = subprocess.run([sys.executable, '-c', script], cwd=REPO, capture_output=True)
  assert result.returncode == -9, result.stderr.decode()
  config = data_config(source_dir=str(src), data_dir=str(data_dir))
  builder = datasets.builder_for(config)
  leftovers = os.listdir(builder.data_path.parent)
  assert len(leftovers) == 1 and leftovers[0].startswith('incomplete.')
  assert not builder.is_prepared()
  builder = prepare(config)
  assert builder.info.splits['res8'].num_examples == 6
  assert len(read_split(builder, 8)) == 6


def test_worker_processes_give_identical_records(tmp_path):
  src = tmp_path / 'imgs'
  for i in range(20):
    save(src / f'{i:02d}.png', rgb(9, 11))
  out = []
  for workers in (1, 2):
    builder = prepare(data_config(source_dir=str(src), data_dir=str(tmp_path / f'data{workers}')),
                      num_workers=workers)
    out.append([e['image'].tobytes() for e in read_split(builder, 8)])
  assert out[0] == out[1] and len(out[0]) == 20


def test_cli(tmp_path, capsys):
  src = tmp_path / 'imgs'
  save(src / 'x/a.png', rgb(16, 16))
  save(src / 'y/b.png', rgb(16, 16))
  argv = ['--name=image_folder', f'--source_dir={src}', f'--data_dir={tmp_path / "data"}',
          '--resolution=16', '--num_channels=3', '--labels=subfolders', '--num_workers=1']
  main(argv)
  out = capsys.readouterr().out
  assert 'imgs-16px-3ch-center-subfolders/1.0.0: 2 images, levels 4, 8, 16' in out
  main(argv)
  assert 'ready in 0.' in capsys.readouterr().out


def test_cli_with_a_training_config_file_and_its_override_spelling(tmp_path, capsys):
  save(tmp_path / 'imgs/a.png', rgb(8, 8))
  config_file = tmp_path / 'train_config.py'
  config_file.write_text(textwrap.dedent(f'''
      import ml_collections
      from stylegan_jax.data.config import get_data_config
      def get_config():
        config = ml_collections.ConfigDict()
        config.data = get_data_config()
        config.data.update(name='image_folder', data_dir={str(tmp_path / 'data')!r},
                           resolution=8, num_channels=1, source_dir='/nonexistent')
        return config
  '''))
  main(['--config', str(config_file), f'--config.data.source_dir={tmp_path / "imgs"}',
        '--num_workers=1'])
  assert 'imgs-8px-1ch-center-nolabels/1.0.0: 1 images' in capsys.readouterr().out


def write_idx(path, array):
  header = b'\0\0\x08' + bytes([array.ndim]) + b''.join(d.to_bytes(4, 'big') for d in array.shape)
  with gzip.open(path, 'wb') as f:
    f.write(header + array.tobytes())


@pytest.fixture(scope='module')
def debian_fashion_mnist():
  paths = [os.path.join(fashion_mnist.DEFAULT_SOURCE_DIR, f)
           for f in (fashion_mnist.IMAGES_FILE, fashion_mnist.LABELS_FILE)]
  if not all(os.path.isfile(p) for p in paths):
    pytest.skip(f'Fashion-MNIST IDX files absent: apt-get install {fashion_mnist.APT_PACKAGE}')
  return [fashion_mnist.read_idx(p) for p in paths]


def test_fashion_mnist_idx_files(debian_fashion_mnist):
  images, labels = debian_fashion_mnist
  assert images.shape == (60000, 28, 28) and images.dtype == np.uint8
  assert labels.shape == (60000,) and set(np.unique(labels)) == set(range(10))
  assert np.bincount(labels).tolist() == [6000] * 10


def test_fashion_mnist_builder(debian_fashion_mnist, tmp_path):
  images, labels = debian_fashion_mnist
  subset = tmp_path / 'fmnist'
  subset.mkdir()
  write_idx(subset / fashion_mnist.IMAGES_FILE, images[:50])
  write_idx(subset / fashion_mnist.LABELS_FILE, labels[:50])
  config = config_lib.get_data_config()  # The defaults: fashion_mnist 32x32x1.
  config.update(data_dir=str(tmp_path / 'data'), source_dir=str(subset))
  builder = prepare(config)
  assert builder.info.features['label'].names == fashion_mnist.LABEL_NAMES
  records = read_split(builder, 32, num_channels=1)
  assert len(records) == 50
  for i, e in enumerate(records):
    assert e['label'] == labels[i]
    np.testing.assert_array_equal(e['image'][2:30, 2:30, 0], images[i])
    assert not e['image'][:2].any() and not e['image'][30:].any()
    assert not e['image'][:, :2].any() and not e['image'][:, 30:].any()
  for e, low in zip(records, read_split(builder, 4, num_channels=1)):
    np.testing.assert_array_equal(low['image'], box_filter_levels(e['image'])[4])


def test_fashion_mnist_missing_files_names_the_package(tmp_path):
  config = config_lib.get_data_config()
  config.update(data_dir=str(tmp_path / 'data'), source_dir=str(tmp_path))
  with pytest.raises(FileNotFoundError, match='apt-get install dataset-fashion-mnist'):
    prepare(config)


def test_fashion_mnist_config_is_fixed():
  config = config_lib.get_data_config()
  config.resolution = 64
  with pytest.raises(ValueError, match='fashion_mnist is 32x32'):
    prepare(config)


@pytest.mark.slow
def test_fashion_mnist_full_prepare(debian_fashion_mnist, tmp_path, capsys):
  main([f'--data_dir={tmp_path}'])
  assert '60000 images, levels 4, 8, 16, 32' in capsys.readouterr().out


class StyleganTestToyCatalog(tfds.core.GeneratorBasedBuilder):
  """A stand-in for a TFDS catalog dataset: registered by name, JPEG images, a label."""
  VERSION = tfds.core.Version('1.0.0')

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls):
    return None

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
        'image': tfds.features.Image(shape=(None, None, 3)),
        'label': tfds.features.ClassLabel(names=['x', 'y'])}))

  def _split_generators(self, dl_manager):
    return {'train': self._generate_examples(12), 'test': self._generate_examples(3)}

  def _generate_examples(self, n):
    for i in range(n):
      image = np.full((12, 10, 3), 20 * i, np.uint8)
      yield i, {'image': _png(image), 'label': i % 2}


def _png(array):
  buffer = io.BytesIO()
  Image.fromarray(array).save(buffer, 'PNG')
  return buffer.getvalue()


def test_catalog_dataset(tmp_path):
  data_dir = str(tmp_path / 'data')
  StyleganTestToyCatalog(data_dir=data_dir, file_format='array_record').download_and_prepare(
      file_format='array_record')
  config = config_lib.get_data_config()
  config.update(name='stylegan_test_toy_catalog', data_dir=data_dir, resolution=8,
                num_channels=3, labels='dataset')
  builder = prepare(config)
  assert builder.data_path.parent.name == 'stylegan_test_toy_catalog-train-8px-3ch-center-dataset'
  assert builder.info.features['label'].names == ['x', 'y']
  records = read_split(builder, 8)
  # TFDS stored the catalog in hashed-key order; pixel value 20 * i identifies example i.
  assert sorted((int(e['image'][0, 0, 0]), e['label']) for e in records) == [
      (20 * i, i % 2) for i in range(12)]


@pytest.mark.skipif(importlib.util.find_spec('tensorflow') is not None,
                    reason='TensorFlow is installed: this would download cifar10')
def test_catalog_without_tensorflow_is_a_clear_error(tmp_path):
  config = config_lib.get_data_config()
  config.update(name='cifar10', data_dir=str(tmp_path), resolution=32, num_channels=3)
  with pytest.raises(ModuleNotFoundError, match='needs tensorflow.*pip install tensorflow-cpu'):
    prepare(config)


def test_unknown_name_and_bad_config(tmp_path):
  config = config_lib.get_data_config()
  config.update(name='no_such_dataset_xyz', data_dir=str(tmp_path), num_channels=3)
  with pytest.raises(ValueError, match="unknown dataset name 'no_such_dataset_xyz'"):
    datasets.prepared_builder(config)
  for field, value, message in [('crop', 'stretch', 'crop'), ('num_channels', 4, 'num_channels'),
                                ('resolution', 48, 'power of two')]:
    bad = data_config(source_dir='x', **{field: value})
    with pytest.raises(ValueError, match=message):
      config_lib.validate(bad)
  typo = data_config(source_dir='x')
  typo.resoluton = 8
  with pytest.raises(ValueError, match="unknown data config field.*resoluton"):
    config_lib.validate(typo)


def test_metadata_is_json(messy_folder, tmp_path):
  src, _, _ = messy_folder
  builder = prepare(data_config(source_dir=str(src), data_dir=str(tmp_path / 'data')))
  with open(builder.data_path / 'metadata.json') as f:
    stored = json.load(f)
  assert stored['source_dir'] == str(src) and stored['num_examples'] == 7
