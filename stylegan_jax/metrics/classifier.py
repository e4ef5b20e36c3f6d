"""The domain classifier: a small CNN the project trains on a labelled prepared dataset (Fashion-MNIST by
default). Its penultimate layer (128-d, before the ReLU) is the feature space of the domain metrics (`fd_domain`,
`kid_domain`, `pr_domain`); its class probabilities give `coverage` and the linear separability `ls_domain`.

It is a feature network like Inception for FID: a stable `name`, a `checksum` of its weights (for cache keys),
and `__call__(images uint8 [N, H, W, C]) -> float32 [N, 128]`.

Every level. The network works at a native size S = min(dataset resolution, 32). Any square power-of-two input is
brought to S x S the way the official code shows a low-lod image at full resolution: nearest-neighbour upsampling
(a 2x2 box average per halving above S); gray is replicated to RGB and RGB becomes ITU-R 601 luma, as the data
preparation converts. Training shows each image at a random level (S, S/2, S/4 down to 8: box-filtered as the
prepared levels, then nearest-upsampled), so one network classifies all levels; a classifier per level would
cost a training and a cache entry per level and give features that do not compare across stages.

Cache. A trained classifier lives in `<cache_dir>/classifiers/<dataset>-<fingerprint>-<settings>/` as
`params.npz` and `record.json` (format version, checksum = sha256 of the weights, and the training record:
dataset, fingerprint, data digest, resolution, steps, batch size, seed, test accuracy per level, seconds). It is
written into a temporary sibling directory and renamed into place. `load_or_train` loads it; on first use it takes
the packaged classifier when one was trained on the same data with the same settings, else trains and saves one.

Packaged. `stylegan_jax/metrics/classifiers/<dataset>-<settings>/` holds classifiers shipped with the package
(Fashion-MNIST 32x32 at the quickstart's 1000 steps: the cache entry of `stylegan-jax metrics train-classifier`).
One is used only when the digest of the data it was trained on (`data_digest`: the images and labels at its
native level, in file order) equals the prepared dataset's: the same data prepared on any machine gets the same
weights, so its domain metrics compare across machines and platforms, and a fresh machine skips the training.
"""

import dataclasses
import hashlib
import json
import logging
import os
import pathlib
import shutil
import time
import uuid
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import traverse_util

from stylegan_jax import errors
from stylegan_jax.metrics import cache as cache_lib
from stylegan_jax.metrics.reals import Reals

logger = logging.getLogger(__name__)

FORMAT = 'stylegan-jax-domain-classifier'
FORMAT_VERSION = 1
MAX_SIZE = 32          # native size cap
MIN_TRAIN_LEVEL = 8    # the lowest level shown in training
FEATURES = 128
BATCH = 256            # images per compiled feature call
PACKAGED_DIR = pathlib.Path(__file__).parent / 'classifiers'


@dataclasses.dataclass(frozen=True)
class TrainSettings:
  """How a classifier is trained; part of its cache key."""
  steps: int = 2000
  batch_size: int = 128
  learning_rate: float = 1e-3
  seed: int = 0
  test_examples: int = 10000  # the last records of the dataset (at most a sixth of it) are held out

  def key(self) -> str:
    return hashlib.sha256(json.dumps(dataclasses.asdict(self), sort_keys=True).encode()).hexdigest()[:8]


class DomainCNN(nn.Module):
  """float32 [N, S, S, C] in [-1, 1] -> (features [N, FEATURES], logits [N, num_classes])."""
  num_classes: int

  @nn.compact
  def __call__(self, x):
    for width in (32, 64, 128):
      x = nn.relu(nn.Conv(width, (3, 3))(x))
      x = nn.avg_pool(x, (2, 2), (2, 2)) if x.shape[1] > 4 else x
    features = nn.Dense(FEATURES, name='penultimate')(x.reshape((x.shape[0], -1)))
    return features, nn.Dense(self.num_classes, name='logits')(nn.relu(features))


def to_native(images: jax.Array, size: int, num_channels: int) -> jax.Array:
  """uint8 [N, H, W, C] (H = W a power of two; C 1 or 3) -> float32 [N, size, size, num_channels] in [-1, 1]."""
  n, h, w, c = images.shape
  if h != w or h & (h - 1) or c not in (1, 3):
    raise errors.UsageError(f'expected square power-of-two images with 1 or 3 channels, got {images.shape}')
  x = images.astype(jnp.float32)
  if h > size:
    f = h // size
    x = x.reshape(n, size, f, size, f, c).mean((2, 4))
  elif h < size:
    f = size // h
    x = jnp.repeat(jnp.repeat(x, f, axis=1), f, axis=2)
  if c == 1 and num_channels == 3:
    x = jnp.repeat(x, 3, axis=-1)
  elif c == 3 and num_channels == 1:
    x = (x @ jnp.asarray([0.299, 0.587, 0.114], jnp.float32))[..., None]
  return x / 127.5 - 1


def _random_level(x: jax.Array, key: jax.Array, size: int) -> jax.Array:
  """Each image of x [N, S, S, C] at a random level (S, S/2, ... >= 8): box down, nearest up; random mirror."""
  n = x.shape[0]
  factors = [2**k for k in range(size.bit_length()) if size // 2**k >= min(MIN_TRAIN_LEVEL, size)]
  versions = []
  for f in factors:
    low = x.reshape(n, size // f, f, size // f, f, -1).mean((2, 4))
    versions.append(jnp.repeat(jnp.repeat(low, f, axis=1), f, axis=2))
  level_key, flip_key = jax.random.split(key)
  choice = jax.random.randint(level_key, (n,), 0, len(factors))
  x = jnp.stack(versions)[choice, jnp.arange(n)]
  flip = jax.random.bernoulli(flip_key, 0.5, (n,))
  return jnp.where(flip[:, None, None, None], x[:, :, ::-1], x)


def data_digest(images: np.ndarray, labels: np.ndarray) -> str:
  """sha256 of uint8 images [N, S, S, C] and their labels [N] (as int64): the data's contents, not its files."""
  digest = hashlib.sha256(f'{images.shape}:{images.dtype}'.encode())
  digest.update(np.ascontiguousarray(images).tobytes())
  digest.update(np.ascontiguousarray(labels, np.int64).tobytes())
  return digest.hexdigest()


def checksum(params) -> str:
  """sha256 of the weights: every array's path, dtype, shape and bytes, in path order."""
  digest = hashlib.sha256()
  for path, value in sorted(traverse_util.flatten_dict(params, sep='/').items()):
    value = np.asarray(value)
    digest.update(f'{path}:{value.dtype}:{value.shape}'.encode())
    digest.update(np.ascontiguousarray(value).tobytes())
  return digest.hexdigest()


class DomainClassifier:
  """A trained classifier as a feature network (see the module docstring)."""

  def __init__(self, params, record: dict):
    self.params = jax.device_put(params)
    self.record = record
    self.size, self.num_channels = record['size'], record['num_channels']
    self.num_classes = record['num_classes']
    self.checksum = record['checksum']
    self.name = f'domain_cnn_v{FORMAT_VERSION}'
    model = DomainCNN(self.num_classes)

    @jax.jit
    def run(params, images):
      features, logits = model.apply({'params': params}, to_native(images, self.size, self.num_channels))
      return features, jax.nn.softmax(logits)
    self._run = run

  def features_and_probabilities(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [N, H, W, C] -> (features float32 [N, 128], class probabilities float32 [N, num_classes])."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4:
      raise ValueError(f'expected uint8 images [N, H, W, C], got {images.dtype} {images.shape}')
    features, probabilities = [], []
    for start in range(0, len(images), BATCH):
      chunk = images[start:start + BATCH]
      f, p = self._run(self.params, np.pad(chunk, [(0, BATCH - len(chunk))] + [(0, 0)] * 3))
      features.append(np.asarray(f)[:len(chunk)])
      probabilities.append(np.asarray(p)[:len(chunk)])
    return np.concatenate(features), np.concatenate(probabilities)

  def __call__(self, images: np.ndarray) -> np.ndarray:
    return self.features_and_probabilities(images)[0]

  def predict(self, images: np.ndarray) -> np.ndarray:
    """uint8 [N, H, W, C] -> class probabilities [N, num_classes]."""
    return self.features_and_probabilities(images)[1]

  def accuracy(self, images: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(self.predict(images), axis=1) == labels))


def fit(images: np.ndarray, labels: np.ndarray, num_classes: int, settings: TrainSettings = TrainSettings(), *,
        resolution: Optional[int] = None) -> DomainClassifier:
  """A DomainCNN trained on uint8 images [N, S, S, C] (S = the native size) and int labels [N]: `settings.steps`
  Adam steps on random batches, each image shown at a random level. The record has no dataset or test fields."""
  size, num_channels = images.shape[1], images.shape[3]
  model = DomainCNN(num_classes)
  key = jax.random.key(settings.seed)
  params = model.init(key, jnp.zeros((1, size, size, num_channels)))['params']
  optimizer = optax.adam(settings.learning_rate)

  @jax.jit
  def step(params, opt_state, images, labels, key):
    def loss_fn(params):
      x = _random_level(to_native(images, size, num_channels), key, size)
      _, logits = model.apply({'params': params}, x)
      return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = optimizer.update(grads, opt_state)
    return optax.apply_updates(params, updates), opt_state, loss

  opt_state = optimizer.init(params)
  rng = np.random.RandomState(settings.seed)
  for i in range(settings.steps):
    batch = rng.randint(0, len(images), settings.batch_size)
    params, opt_state, loss = step(params, opt_state, images[batch], labels[batch], jax.random.fold_in(key, i))
    if (i + 1) % 500 == 0:
      logger.info('classifier step %d/%d: loss %.4f', i + 1, settings.steps, float(loss))
  params = jax.device_get(params)
  return DomainClassifier(params, dict(
      format=FORMAT, format_version=FORMAT_VERSION, checksum=checksum(params), resolution=resolution or size,
      size=size, num_channels=num_channels, num_classes=num_classes, features=FEATURES, train_examples=len(images),
      settings=dataclasses.asdict(settings)))


def train(reals: Reals, settings: TrainSettings = TrainSettings()) -> DomainClassifier:
  """Trains on all but the last `test_examples` records at the native size's level; test accuracy per level."""
  started = time.time()
  size = min(reals.resolution, MAX_SIZE)
  images, labels = reals.read(size, labels=True)
  num_test = min(settings.test_examples, len(images) // 6)
  if len(images) - num_test < settings.batch_size or num_test < 1:
    raise errors.UserError(f'dataset {reals.name} has {len(images)} images: too few to train the domain '
                           f'classifier with batches of {settings.batch_size}')
  start = len(images) - num_test
  classifier = fit(images[:start], labels[:start], reals.num_classes, settings, resolution=reals.resolution)
  classifier.record.update(dataset=reals.name, fingerprint=reals.fingerprint(), held_out=num_test,
                           data_digest=data_digest(images, labels))
  accuracy = {str(size): classifier.accuracy(images[start:], labels[start:])}
  for r in (r for r in (8, 16) if r < size):
    accuracy[str(r)] = classifier.accuracy(reals.read(r, start, num_test), labels[start:])
  classifier.record.update(test_accuracy=accuracy, train_seconds=round(time.time() - started, 1))
  return classifier


def _directory(cache_dir: str, reals: Reals, settings: TrainSettings) -> pathlib.Path:
  return pathlib.Path(cache_dir, 'classifiers',
                      f'{reals.name.replace("/", "_")}-{reals.fingerprint()}-{settings.key()}')


def _packaged(reals: Reals, settings: TrainSettings) -> Optional[DomainClassifier]:
  """The packaged classifier of this dataset and settings, if it was trained on exactly these images and labels."""
  directory = PACKAGED_DIR / f'{reals.name.replace("/", "_")}-{settings.key()}'
  if not directory.is_dir():
    return None
  packaged = load(directory)
  images, labels = reals.read(packaged.size, labels=True)
  if data_digest(images, labels) != packaged.record.get('data_digest'):
    logger.info('the packaged classifier %s was trained on other data than %s', directory.name, reals.name)
    return None
  packaged.record.update(fingerprint=reals.fingerprint(), packaged=directory.name)
  return packaged


def save(classifier: DomainClassifier, directory: os.PathLike) -> None:
  """Writes params.npz and record.json into `directory`, atomically (temporary sibling, then rename)."""
  directory = pathlib.Path(directory)
  directory.parent.mkdir(parents=True, exist_ok=True)
  tmp = directory.with_name(f'.{directory.name}.{uuid.uuid4().hex}.tmp')
  tmp.mkdir()
  try:
    flat = traverse_util.flatten_dict(jax.device_get(classifier.params), sep='/')
    np.savez(tmp / 'params.npz', **{k: np.asarray(v) for k, v in flat.items()})
    (tmp / 'record.json').write_text(json.dumps(classifier.record, indent=1) + '\n')
    if directory.exists():
      shutil.rmtree(directory)
    os.replace(tmp, directory)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)


def load(directory: os.PathLike) -> DomainClassifier:
  """Reads a saved classifier, checking its format version and checksum."""
  directory = pathlib.Path(directory)
  try:
    record = json.loads((directory / 'record.json').read_text())
    with np.load(directory / 'params.npz', allow_pickle=False) as data:
      params = traverse_util.unflatten_dict({k: data[k] for k in data.files}, sep='/')
  except (OSError, ValueError) as e:
    raise errors.UserError(f'{directory}: not a readable domain classifier ({e})') from e
  if record.get('format') != FORMAT or record.get('format_version') != FORMAT_VERSION:
    raise errors.UserError(f'{directory}: not a {FORMAT} of version {FORMAT_VERSION}')
  if checksum(params) != record.get('checksum'):
    raise errors.UserError(f'{directory}: the weights do not match the checksum in record.json (corrupt); '
                           'delete the directory to train the classifier again')
  return DomainClassifier(params, record)


def load_or_train(data_config, cache_dir: Optional[str] = None, settings: TrainSettings = TrainSettings(), *,
                  retrain: bool = False) -> DomainClassifier:
  """The cached classifier of this dataset and settings; on first use the packaged one for the same data and
  settings, else (and with retrain) one trained now; either is saved into the cache first."""
  reals = Reals(data_config)
  directory = _directory(cache_lib.resolve(cache_dir), reals, settings)
  if directory.exists() and not retrain:
    return load(directory)
  packaged = None if retrain else _packaged(reals, settings)
  if packaged is not None:
    save(packaged, directory)
    logger.info('domain classifier: the packaged %s (trained on the same data)', packaged.record['packaged'])
    return packaged
  logger.info('training the domain classifier on %s (%d steps) into %s', reals.name, settings.steps, directory)
  classifier = train(reals, settings)
  save(classifier, directory)
  logger.info('domain classifier: test accuracy %s in %.0f s', classifier.record['test_accuracy'],
              classifier.record['train_seconds'])
  return classifier
