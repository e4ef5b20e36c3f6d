"""Fashion-MNIST, offline, from the IDX files of Debian's `dataset-fashion-mnist`.

The 60,000 training images (28x28 gray) are zero-padded by 2 pixels on every
side to 32x32x1, as the official StyleGAN MNIST setup; labels 0-9 are always
stored (`LABEL_NAMES`), the data config decides whether training sees them.
"""

import gzip
import os

import numpy as np

from stylegan_jax.data.builder import LevelsBuilder, LevelsConfig, Source

DEFAULT_SOURCE_DIR = '/usr/share/datasets/fashion-mnist'
APT_PACKAGE = 'dataset-fashion-mnist'
IMAGES_FILE = 'train-images-idx3-ubyte.gz'
LABELS_FILE = 'train-labels-idx1-ubyte.gz'
LABEL_NAMES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt',
               'Sneaker', 'Bag', 'Ankle boot']
RESOLUTION = 32


def read_idx(path: str | os.PathLike) -> np.ndarray:
  """Reads a (gzipped) IDX file of unsigned bytes: uint8 [N] labels or [N, H, W] images."""
  opener = gzip.open if os.fspath(path).endswith('.gz') else open
  with opener(path, 'rb') as f:
    data = f.read()
  if len(data) < 4 or data[:3] != b'\0\0\x08':
    raise ValueError(f'{path}: not an IDX file of unsigned bytes')
  ndim = data[3]
  shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], 'big') for i in range(ndim))
  body = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
  if body.size != np.prod(shape):
    raise ValueError(f'{path}: truncated, {body.size} bytes of data for shape {shape}')
  return body.reshape(shape)


def pad_to_32(images: np.ndarray) -> np.ndarray:
  """uint8 [..., 28, 28] -> uint8 [..., 32, 32, 1], black border of 2 pixels."""
  return np.pad(images, [(0, 0)] * (images.ndim - 2) + [(2, 2), (2, 2)])[..., None]


def read_split(source_dir: str, split: str) -> tuple[np.ndarray, np.ndarray]:
  """uint8 images [N, 32, 32, 1] (padded as prepared) and int32 labels [N] of the 'train' or 't10k' IDX files."""
  images = read_idx(os.path.join(source_dir, f'{split}-images-idx3-ubyte.gz'))
  labels = read_idx(os.path.join(source_dir, f'{split}-labels-idx1-ubyte.gz'))
  return pad_to_32(images), labels.astype(np.int32)


class FashionMnist(LevelsBuilder, skip_registration=True):
  """Fashion-MNIST train split, 32x32x1, labeled."""

  name = 'stylegan_fashion_mnist'
  DESCRIPTION = __doc__
  BUILDER_CONFIGS = [LevelsConfig(name='32px-1ch', resolution=RESOLUTION, num_channels=1,
                                  labeled=True)]

  def __init__(self, *, source_dir: str = DEFAULT_SOURCE_DIR, **kwargs):
    self._source_dir = source_dir or DEFAULT_SOURCE_DIR
    super().__init__(**kwargs)

  def _source(self) -> Source:
    paths = [os.path.join(self._source_dir, f) for f in (IMAGES_FILE, LABELS_FILE)]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
      raise FileNotFoundError(
          f'Fashion-MNIST IDX file(s) not found: {", ".join(missing)}. Install the Debian '
          f'package (apt-get install {APT_PACKAGE}) or pass --source_dir=<folder with '
          f'{IMAGES_FILE} and {LABELS_FILE}>.')
    images, labels = (read_idx(p) for p in paths)
    if images.shape[1:] != (28, 28) or labels.shape != images.shape[:1]:
      raise ValueError(f'unexpected Fashion-MNIST shapes: images {images.shape}, '
                       f'labels {labels.shape}')
    items = [(f'train/{i}', int(label), image) for i, (image, label) in
             enumerate(zip(images, labels))]
    return Source(items=items, loader=pad_to_32, label_names=LABEL_NAMES,
                  metadata={'source_dir': os.path.abspath(self._source_dir)})
