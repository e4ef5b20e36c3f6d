"""Sampling a trained generator: seeds or latents -> dlatents -> images, batched, jitted and chunked.

Conventions (as NVIDIA's `pretrained_example.py` and `generate_figures.py`):
  latents   z [N, latent_size] float32; the latent of seed s is `np.random.RandomState(s).randn(latent_size)`
  labels    [N, label_size] float32 for conditional models; class ids (ints, or names when the artifact stores
            class names) become one-hot rows; RandomClasses() draws one class per image
  dlatents  w [N, num_layers, dlatent_size] float32, after truncation
  images    uint8 [N, H, W, C] (NHWC), converted as the official `convert_images_to_uint8`;
            or float32 in the nominal range [-1, 1] with `uint8=False`

Truncation: layers with index < `cutoff` (all layers if None) become `dlatent_avg + psi * (w - dlatent_avg)`.
The defaults here are psi=1.0 (no truncation) and cutoff=None. The official `Gs.run` defaults to psi=0.7,
cutoff=8 (layers 4²-32², what `pretrained_example.py` gets): pass psi=0.7, cutoff=8 to reproduce it.

Noise: 'random' draws N(0, 1) noise per image from `fold_in(key(noise_seed), noise_id)`, so an image does not
depend on the other images of its batch; `generate` uses the seed as the noise id. 'const' uses the stored noise
buffers (the official `randomize_noise=False`), 'none' disables noise.

Every call runs in chunks of `batch_size`, the last zero-padded, so one shape compiles per Sampler and any number
of images fits in memory. With `devices`, each chunk is split over them (data parallel; the variables replicated).
Results are deterministic for a given batch size and backend; a different batch size
compiles differently and may change float outputs by rounding (relative ~1e-6), i.e. a uint8 value by 1.
"""

import dataclasses
import functools
import os
import pathlib
from typing import Optional, Sequence, Union

import jax
import numpy as np
from PIL import Image

from stylegan_jax import errors, export, networks
from stylegan_jax.network_config import NetworkConfig


@dataclasses.dataclass(frozen=True)
class RandomClasses:
  """Labels for a conditional model: class ids drawn uniformly, `RandomState(seed).randint(label_size, size=N)`."""
  seed: int = 0


Labels = Union[None, int, str, Sequence[Union[int, str]], np.ndarray, RandomClasses]


class LabelError(errors.UsageError, ValueError):
  """Labels that do not fit the model: unknown class names, ids out of range, vectors of the wrong size."""


def seed_latents(seeds: Sequence[int], latent_size: int) -> np.ndarray:
  """z [N, latent_size] float32, one `RandomState(seed).randn(latent_size)` per seed."""
  return np.stack([np.random.RandomState(s).randn(latent_size) for s in seeds]).astype(np.float32)


def to_uint8(images: np.ndarray) -> np.ndarray:
  """The official float -> uint8 conversion (`convert_images_to_uint8`): saturate_cast(x * 127.5 + 128), i.e.
  x * 127.5 + 127.5 rounded (ties up) and clipped to [0, 255]."""
  return np.clip(np.asarray(images, np.float32) * np.float32(127.5) + np.float32(128.0), 0, 255).astype(np.uint8)


@functools.partial(jax.jit, static_argnames='config')
def _map(config, variables, latents, labels, psi, cutoff):
  return networks.Generator(config).apply(variables, latents, labels, truncation_psi=psi, truncation_cutoff=cutoff,
                                          method=networks.Generator.map)


@functools.partial(jax.jit, static_argnames=('config', 'noise_mode'))
def _synthesize(config, variables, dlatents, noise_seed, noise_ids, *, noise_mode):
  gen = networks.Generator(config)
  synthesize = functools.partial(gen.apply, variables, noise_mode=noise_mode, method=networks.Generator.synthesize)
  if noise_mode == 'random':  # one key per image: its noise does not depend on the rest of the batch
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(noise_seed), i))(noise_ids)
    return jax.vmap(lambda d, k: synthesize(d[None], rngs={'noise': k})[0])(dlatents, keys)
  return synthesize(dlatents)


class Sampler:
  """A generator (Gs or G variables) ready to sample; see the module docstring for the conventions."""

  def __init__(self, config: NetworkConfig, variables: dict, *, batch_size: int = 8,
               class_names: Optional[Sequence[str]] = None, devices: Optional[Sequence[jax.Device]] = None):
    if batch_size < 1 or (devices and batch_size % len(devices)):
      raise ValueError(f'batch_size must be >= 1 and a multiple of the number of devices, got {batch_size}')
    self.config = config
    self.class_names = None if class_names is None else list(class_names)
    self.batch_size = batch_size
    if devices:
      mesh = jax.sharding.Mesh(np.array(devices), ('batch',))
      self._sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec('batch'))
      self.variables = jax.device_put(variables, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()))
    else:
      self._sharding = None
      self.variables = jax.device_put(variables)

  @classmethod
  def from_path(cls, path: Union[str, os.PathLike], network: str = 'Gs', *, batch_size: int = 8,
                devices: Optional[Sequence[jax.Device]] = None) -> 'Sampler':
    """From an artifact directory or an official network pickle (.pkl); `network` is 'Gs' or 'G'."""
    if network not in ('Gs', 'G'):
      raise ValueError(f"network must be 'Gs' or 'G' (a generator), got {network!r}")
    artifact = export.load_networks(path, (network,))
    return cls(artifact.config, artifact.network(network), batch_size=batch_size, class_names=artifact.class_names,
               devices=devices)

  @property
  def dlatent_avg(self) -> np.ndarray:
    """The tracked average w [dlatent_size] that truncation pulls towards."""
    return np.asarray(self.variables['stats']['dlatent_avg'])

  def latents(self, seeds: Sequence[int]) -> np.ndarray:
    return seed_latents(seeds, self.config.latent_size)

  def class_name(self, class_id: int) -> str:
    """The stored name of a class id, or 'class{id}' when the model has no class names."""
    return self.class_names[class_id] if self.class_names else f'class{class_id}'

  def class_ids(self, labels: Labels, n: int) -> Optional[np.ndarray]:
    """int [n] class ids when `labels` names classes (ids or names, one for all or one per image, or
    RandomClasses); None for label vectors (float arrays) and None."""
    size = self.config.label_size
    if labels is None or (isinstance(labels, np.ndarray) and not np.issubdtype(labels.dtype, np.integer)):
      return None
    if not size:
      raise LabelError('this generator is unconditional (label_size=0): do not pass labels')
    if isinstance(labels, RandomClasses):
      return np.random.RandomState(labels.seed).randint(0, size, n)
    if isinstance(labels, np.ndarray) and labels.ndim > 1:
      raise LabelError(f'class ids must be one int or one per image ({n}), got shape {labels.shape}')
    single = isinstance(labels, (int, np.integer, str)) or np.ndim(labels) == 0
    ids = [self._class_id(c) for c in ([labels] if single else list(labels))]
    if len(ids) not in (1, n):
      raise LabelError(f'class ids: give one class for all or one per image ({n}), got {len(ids)}')
    if min(ids) < 0 or max(ids) >= size:
      raise LabelError(f'class ids must be in [0, {size}), got {ids}')
    return np.broadcast_to(np.asarray(ids, np.int64), (n,))

  def _class_id(self, label) -> int:
    if not isinstance(label, str):
      return int(label)
    if self.class_names and label in self.class_names:
      return self.class_names.index(label)
    known = (f"this model's classes are {', '.join(self.class_names)}" if self.class_names else
             f'this model stores no class names (use class ids 0-{self.config.label_size - 1})')
    raise LabelError(f'unknown class {label!r}: {known}')

  def labels(self, labels: Labels, n: int) -> Optional[np.ndarray]:
    """[n, label_size] float32 from class ids or names (one for all, or one per image), RandomClasses, or vectors
    ([label_size] or [n, label_size]); None for unconditional models. Integer arrays are class ids: pass floats
    for vectors."""
    size = self.config.label_size
    if not size:
      if labels is not None:
        raise LabelError('this generator is unconditional (label_size=0): do not pass labels')
      return None
    if labels is None:
      raise LabelError(f'this generator is conditional (label_size={size}): pass labels, as class ids '
                       f'in [0, {size}) or label vectors [N, {size}]')
    ids = self.class_ids(labels, n)
    if ids is not None:
      return np.eye(size, dtype=np.float32)[ids]
    labels = np.asarray(labels)
    if labels.shape not in ((size,), (n, size)):
      raise LabelError(f'label vectors must be [{size}] or [{n}, {size}], got {labels.shape}')
    return np.broadcast_to(labels.astype(np.float32), (n, size))

  def map(self, latents: np.ndarray, labels: Labels = None, *, psi: float = 1.0,
          cutoff: Optional[int] = None) -> np.ndarray:
    """latents z [N, latent_size] -> dlatents [N, num_layers, dlatent_size] (truncated when psi != 1)."""
    latents = np.asarray(latents, np.float32)
    if latents.ndim != 2 or latents.shape[1] != self.config.latent_size:
      raise ValueError(f'latents must be [N, {self.config.latent_size}], got {latents.shape}')
    labels = self.labels(labels, len(latents))
    cutoff = self.config.num_layers if cutoff is None else cutoff
    return self._batched(lambda z, c: _map(self.config, self.variables, z, c, np.float32(psi), np.int32(cutoff)),
                         latents, labels)

  def map_seeds(self, seeds: Sequence[int], labels: Labels = None, **truncation) -> np.ndarray:
    """Seeds -> dlatents [N, num_layers, dlatent_size]; `truncation` is psi=, cutoff=."""
    return self.map(self.latents(seeds), labels, **truncation)

  def synthesize(self, dlatents: np.ndarray, *, noise_mode: str = 'random', noise_seed: int = 0,
                 noise_ids: Optional[Sequence[int]] = None, uint8: bool = True) -> np.ndarray:
    """dlatents [N, num_layers, dlatent_size] ([N, dlatent_size] is broadcast) -> images [N, H, W, C].

    noise_ids (default 0..N-1) pick each image's random noise; uint8=False returns the raw float32 images.
    """
    cfg = self.config
    dlatents = np.asarray(dlatents, np.float32)
    if dlatents.ndim == 2:
      dlatents = np.repeat(dlatents[:, None], cfg.num_layers, axis=1)
    if dlatents.shape[1:] != (cfg.num_layers, cfg.dlatent_size):
      raise ValueError(f'dlatents must be [N, {cfg.num_layers}, {cfg.dlatent_size}], got {dlatents.shape}')
    if noise_mode not in networks.NOISE_MODES:
      raise ValueError(f'noise_mode must be one of {networks.NOISE_MODES}, got {noise_mode!r}')
    noise_ids = np.arange(len(dlatents)) if noise_ids is None else np.asarray(noise_ids)
    if noise_ids.shape != (len(dlatents),):
      raise ValueError(f'noise_ids must have one id per image ({len(dlatents)}), got shape {noise_ids.shape}')
    synth = functools.partial(_synthesize, cfg, self.variables, noise_mode=noise_mode)
    images = self._batched(lambda d, i: synth(d, np.uint32(noise_seed), i), dlatents, noise_ids.astype(np.uint32))
    return to_uint8(images) if uint8 else images

  def generate(self, seeds: Optional[Sequence[int]] = None, *, latents: Optional[np.ndarray] = None,
               labels: Labels = None, psi: float = 1.0, cutoff: Optional[int] = None, noise_mode: str = 'random',
               noise_seed: int = 0) -> np.ndarray:
    """uint8 images [N, H, W, C] from seeds (random noise id = seed) or from latents [N, latent_size]."""
    if (seeds is None) == (latents is None):
      raise ValueError('pass exactly one of seeds and latents')
    if seeds is not None:
      latents, noise_ids = self.latents(seeds), seeds
    else:
      noise_ids = None
    dlatents = self.map(latents, labels, psi=psi, cutoff=cutoff)
    return self.synthesize(dlatents, noise_mode=noise_mode, noise_seed=noise_seed, noise_ids=noise_ids)

  def _batched(self, fn, *arrays):
    """fn over `batch_size` chunks of `arrays` (None passes through), the last zero-padded; one dispatch ahead."""
    n, b = len(arrays[0]), self.batch_size
    if n == 0:
      raise ValueError('nothing to compute: got 0 inputs')
    outputs, pending = [], None
    for start in range(0, n, b):
      count = min(b, n - start)
      chunk = [None if a is None else np.pad(a[start:start + count], [(0, b - count)] + [(0, 0)] * (a.ndim - 1))
               for a in arrays]
      if self._sharding is not None:
        chunk = [None if c is None else jax.device_put(c, self._sharding) for c in chunk]
      result = fn(*chunk)  # dispatched asynchronously; fetch the previous chunk meanwhile
      if pending is not None:
        outputs.append(np.asarray(pending[0])[:pending[1]])
      pending = (result, count)
    outputs.append(np.asarray(pending[0])[:pending[1]])
    return np.concatenate(outputs)


# ---- PNG output ------------------------------------------------------------------------------------------

_MODES = {1: 'L', 2: 'LA', 3: 'RGB', 4: 'RGBA'}


def to_pil(image: np.ndarray) -> Image.Image:
  """uint8 [H, W, C] -> a PIL image (C = 1 gray, 3 RGB; 2 and 4 with alpha)."""
  image = np.asarray(image)
  if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] not in _MODES:
    raise ValueError(f'expected a uint8 [H, W, C] image with C in {sorted(_MODES)}, got {image.dtype} {image.shape}')
  return Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image, _MODES[image.shape[-1]])


def save_png(image: np.ndarray, path: Union[str, os.PathLike]) -> pathlib.Path:
  """Writes a uint8 [H, W, C] image as PNG, creating the parent directory."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  to_pil(image).save(path, format='PNG')
  return path


def image_grid(images: np.ndarray, cols: Optional[int] = None, fill: int = 255) -> np.ndarray:
  """uint8 images [N, H, W, C] -> one image [rows * H, cols * W, C], row-major; empty cells are `fill`."""
  n, h, w, c = images.shape
  cols = cols or int(np.ceil(np.sqrt(n)))
  rows = -(-n // cols)
  grid = np.full((rows * h, cols * w, c), fill, np.uint8)
  for i, image in enumerate(images):
    grid[(i // cols) * h:(i // cols + 1) * h, (i % cols) * w:(i % cols + 1) * w] = image
  return grid
