"""Synthetic Fashion-MNIST as training data: one classifier trained on a synthetic dataset, the same classifier
trained on the real training images, both tested on the 10,000 real test images (issue #13).

Run:      stylegan-jax sample dataset --network ART --num 60000 --outdir synth/      # a conditional model
          python experiments/synthetic_classifier.py synth/ [synth-psi0.7/ ...] [--steps 2000]
Prints:   a Markdown table: training data, images, test accuracy on Fashion-MNIST's t10k, the per-class accuracy
          and the synthetic dataset's manifest (model sha256, psi, noise). README "Projection and synthetic
          datasets" keeps the latest result.

The classifier is the domain metrics' CNN (stylegan_jax/metrics/classifier.py `fit`, the same settings and seed)
at 32x32: real images are the IDX files zero-padded 28 -> 32 as `stylegan-jax prepare` does; synthetic ones are
read from the folder's samples.csv (path,label,...) and images/.
"""

import argparse
import csv
import json
import pathlib
import sys

import numpy as np
from PIL import Image

from stylegan_jax import console, errors
from stylegan_jax.data import fashion_mnist
from stylegan_jax.metrics import classifier


def read_synthetic(folder: pathlib.Path) -> tuple[np.ndarray, np.ndarray, dict]:
  """uint8 [N, H, W, 1], labels [N] and the manifest of a `stylegan-jax sample dataset` folder."""
  if not (folder / 'manifest.json').is_file():
    raise errors.UserError(f'{folder} is not a folder written by `stylegan-jax sample dataset` (no manifest.json)')
  manifest = json.loads((folder / 'manifest.json').read_text())
  if not manifest.get('complete'):
    raise errors.UserError(f'{folder} is incomplete (rerun its `stylegan-jax sample dataset` command to finish it)')
  with open(folder / 'samples.csv', newline='') as f:
    rows = list(csv.DictReader(f))
  if not rows or rows[0]['label'] == '':
    raise errors.UserError(f'{folder} has no labels: write it from a conditional model')
  images = np.stack([np.asarray(Image.open(folder / 'images' / r['path']).convert('L')) for r in rows])[..., None]
  return images, np.array([int(r['label']) for r in rows], np.int32), manifest


def per_class_accuracy(model: classifier.DomainClassifier, images: np.ndarray, labels: np.ndarray) -> list[float]:
  predicted = np.argmax(model.predict(images), axis=1)
  return [float(np.mean(predicted[labels == k] == k)) if np.any(labels == k) else np.nan for k in range(10)]


def main(argv=None) -> int:
  parser = console.ArgumentParser(description=__doc__.split('\n\n')[0],
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('synthetic', nargs='+', type=pathlib.Path, help='folders written by `stylegan-jax sample dataset`')
  parser.add_argument('--steps', type=int, default=classifier.TrainSettings.steps, help='Adam steps of batch 128')
  parser.add_argument('--source-dir', default=fashion_mnist.DEFAULT_SOURCE_DIR,
                      help='the Fashion-MNIST IDX files (default: %(default)s)')
  args = parser.parse_args(argv)
  settings = classifier.TrainSettings(steps=args.steps)
  test_images, test_labels = fashion_mnist.read_split(args.source_dir, 't10k')
  train_sets = [('real (Fashion-MNIST train)', *fashion_mnist.read_split(args.source_dir, 'train'), None)]
  train_sets += [(str(folder), *read_synthetic(folder)) for folder in args.synthetic]

  names = ', '.join(fashion_mnist.LABEL_NAMES)
  print(f'| training data | images | psi | test accuracy | per class ({names}) |\n|---|---|---|---|---|')
  for name, images, labels, manifest in train_sets:
    model = classifier.fit(images, labels, 10, settings)
    accuracy = model.accuracy(test_images, test_labels)
    per_class = ' / '.join(f'{a:.2f}' for a in per_class_accuracy(model, test_images, test_labels))
    psi = manifest['options']['psi'] if manifest else ''
    print(f'| {name} | {len(images)} | {psi} | {accuracy:.4f} | {per_class} |', flush=True)
  for name, *_, manifest in train_sets[1:]:
    print(f'\n{name}: network {manifest["network"]} sha256 {manifest["network_sha256"][:12]}, '
          f'options {json.dumps(manifest["options"])}')
  return 0


if __name__ == '__main__':
  sys.exit(console.run('synthetic_classifier.py', main, sys.argv[1:]))  # errors: one line
