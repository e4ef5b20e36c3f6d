"""experiments/synthetic_classifier.py: real and synthetic training sets reach the classifier with their labels."""

import csv
import gzip
import importlib.util
import json
import pathlib

import numpy as np
import pytest
from PIL import Image

from stylegan_jax import errors

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / 'experiments' / 'synthetic_classifier.py'
spec = importlib.util.spec_from_file_location('synthetic_classifier', SCRIPT)
synthetic_classifier = importlib.util.module_from_spec(spec)
spec.loader.exec_module(synthetic_classifier)


def write_idx(path, array):
  header = bytes([0, 0, 8, array.ndim]) + b''.join(int(n).to_bytes(4, 'big') for n in array.shape)
  with gzip.open(path, 'wb') as f:
    f.write(header + array.astype(np.uint8).tobytes())


def images_of(labels, size):
  """Class k: a flat gray of 25 k + 10 at every level (easy to tell apart, impossible with shuffled labels)."""
  return np.broadcast_to((25 * np.asarray(labels) + 10)[:, None, None], (len(labels), size, size)).astype(np.uint8)


def test_real_and_synthetic_sets_train_a_classifier_that_reads_the_real_test_set(tmp_path, capsys):
  source = tmp_path / 'fmnist'
  source.mkdir()
  rs = np.random.RandomState(0)
  for split, n in (('train', 200), ('t10k', 100)):
    labels = 9 * rs.randint(0, 2, n)  # classes 0 and 9: learnt in a few steps
    write_idx(source / f'{split}-images-idx3-ubyte.gz', images_of(labels, 28))
    write_idx(source / f'{split}-labels-idx1-ubyte.gz', labels)
  synth = tmp_path / 'synth'
  (synth / 'images').mkdir(parents=True)
  labels = 9 * (np.arange(200) % 2)
  for i, image in enumerate(np.pad(images_of(labels, 28), [(0, 0), (2, 2), (2, 2)])):
    Image.fromarray(image).save(synth / 'images' / f'seed{i:08d}.png')
  with open(synth / 'samples.csv', 'w', newline='') as f:
    rows = csv.writer(f)
    rows.writerow(['path', 'label', 'seed', 'psi', 'cutoff'])
    rows.writerows([f'seed{i:08d}.png', k, i, 0.7, ''] for i, k in enumerate(labels))
  (synth / 'manifest.json').write_text(json.dumps({
      'network': 'net/', 'network_sha256': 'ab' * 32, 'complete': True,
      'options': {'num_images': 200, 'psi': 0.7}}))

  assert synthetic_classifier.main([str(synth), '--steps', '30', '--source-dir', str(source)]) == 0
  rows = [line.split('|')[1:-1] for line in capsys.readouterr().out.splitlines() if line.startswith('| ')][1:]
  assert [(r[0].strip(), r[1].strip(), r[2].strip()) for r in rows] == [
      ('real (Fashion-MNIST train)', '200', ''), (str(synth), '200', '0.7')]
  for row in rows:
    assert float(row[3]) >= 0.9  # labels aligned with their images in both sets
    per_class = row[4].split(' / ')
    assert len(per_class) == 10 and per_class[1].strip() == 'nan'  # no test image of class 1


def test_a_missing_incomplete_or_unlabelled_folder_is_refused(tmp_path):
  with pytest.raises(errors.UsageError, match='unrecognized arguments: --stepz'):
    synthetic_classifier.main([str(tmp_path), '--stepz', '3'])
  with pytest.raises(errors.UserError, match='no manifest.json'):
    synthetic_classifier.read_synthetic(tmp_path / 'missing')
  (tmp_path / 'images').mkdir()
  (tmp_path / 'manifest.json').write_text(json.dumps({'complete': False}))
  with pytest.raises(errors.UserError, match='incomplete'):
    synthetic_classifier.read_synthetic(tmp_path)
  (tmp_path / 'manifest.json').write_text(json.dumps({'complete': True}))
  (tmp_path / 'samples.csv').write_text('path,label,seed,psi,cutoff\nseed00000000.png,,0,1.0,\n')
  with pytest.raises(errors.UserError, match='no labels'):
    synthetic_classifier.read_synthetic(tmp_path)
