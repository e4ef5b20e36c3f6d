"""Perceptual path length (Karras et al. 2019, §4.2), exactly as the official `metrics/perceptual_path_length.py`.

For each pair of latents z0, z1 ~ N(0, I) and t (U(0, 1) for sampling 'full', 0 for 'end'):
  space 'z': z_t = slerp(z0, z1, t), z_t+ε = slerp(z0, z1, t + ε) of the *normalised* z, then mapped;
  space 'w': w0, w1 = mapping(z0), mapping(z1) (the broadcast [N, num_layers, dlatent_size]), lerped at t, t + ε;
no truncation, labels none (or one random one-hot label per pair for a conditional network). Both ends are
synthesised at full resolution with the noise buffers re-drawn from N(0, 1) for every batch and shared by
all of its images (the official `randomize_noise=False` after re-initialising the noise variables). Each image
is cropped to rows 3c:7c and columns 2c:6c with c = H/8 (the official face crop, always applied),
box-downsampled by H_crop // 256 when larger than 256, and mapped from [-1, 1] to [0, 255]. The path length of
a pair is distance(img_t, img_t+ε) / ε². The result is the mean of the values within the [1st ('lower'),
99th ('higher')] percentiles.

`distance` is a `lpips.PerceptualDistance` (LPIPS-VGG16, the official measure, applied to x / 127.5 - 1) or
any callable (a, b) -> [N] on float32 [N, H, W, C] images in [0, 255].
"""

import functools
import math
from typing import Callable, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from stylegan_jax import errors, networks
from stylegan_jax.metrics import lpips
from stylegan_jax.network_config import NetworkConfig

SPACES = ('z', 'w')
SAMPLINGS = ('full', 'end')
EPSILON = 1e-4
MAX_SIZE = 256  # crops larger than this are box-downsampled (VGG was built for 224x224)

Distance = Union[lpips.PerceptualDistance, Callable[[jax.Array, jax.Array], jax.Array]]


def normalize(v: jax.Array) -> jax.Array:
  return v / jnp.sqrt(jnp.sum(v * v, axis=-1, keepdims=True))


def slerp(a: jax.Array, b: jax.Array, t: jax.Array) -> jax.Array:
  """Spherical interpolation of the normalised a, b [N, D] at t [N, 1], as the official code: unit length."""
  a, b = normalize(a), normalize(b)
  d = jnp.sum(a * b, axis=-1, keepdims=True)
  p = t * jnp.arccos(d)
  c = normalize(b - d * a)
  return normalize(a * jnp.cos(p) + c * jnp.sin(p))


def lerp(a: jax.Array, b: jax.Array, t: jax.Array) -> jax.Array:
  return a + (b - a) * t


def crop(images: jax.Array) -> jax.Array:
  """The official PPL crop of NHWC images: rows 3c:7c, columns 2c:6c with c = H // 8."""
  c = images.shape[1] // 8
  return images[:, 3 * c:7 * c, 2 * c:6 * c]


def downsample(images: jax.Array, max_size: int = MAX_SIZE) -> jax.Array:
  """Box filter by factor H // max_size when H > max_size (NHWC), as the official code."""
  n, h, w, ch = images.shape
  if h <= max_size:
    return images
  f = h // max_size
  return images.reshape(n, h // f, f, w // f, f, ch).mean(axis=(2, 4))


@functools.partial(jax.jit, static_argnames=('config', 'space', 'sampling', 'num_pairs', 'epsilon'))
def image_pairs(variables: dict, key: jax.Array, config: NetworkConfig, space: str, sampling: str,
                num_pairs: int, epsilon: float = EPSILON) -> tuple[jax.Array, jax.Array]:
  """One batch: the processed images at t and t + ε, two float32 [num_pairs, h, w, C] in [0, 255]."""
  k_latents, k_t, k_noise, k_labels = jax.random.split(key, 4)
  latents = jax.random.normal(k_latents, (2 * num_pairs, config.latent_size))  # z0, z1 interleaved
  t = jax.random.uniform(k_t, (num_pairs,), maxval=1.0 if sampling == 'full' else 0.0)
  labels = None
  if config.label_size:
    classes = jax.random.randint(k_labels, (num_pairs,), 0, config.label_size)
    labels = jnp.repeat(jax.nn.one_hot(classes, config.label_size), 2, axis=0)
  g = networks.Generator(config)
  if space == 'z':
    z0, z1 = latents[0::2], latents[1::2]
    ends = jnp.stack([slerp(z0, z1, t[:, None]), slerp(z0, z1, t[:, None] + epsilon)], axis=1)
    dlatents = g.apply(variables, ends.reshape(latents.shape), labels, method=networks.Generator.map)
  else:
    w = g.apply(variables, latents, labels, method=networks.Generator.map)
    w0, w1 = w[0::2], w[1::2]
    ends = jnp.stack([lerp(w0, w1, t[:, None, None]), lerp(w0, w1, t[:, None, None] + epsilon)], axis=1)
    dlatents = ends.reshape(w.shape)
  noise = variables.get('noise', {})
  leaves, treedef = jax.tree_util.tree_flatten(noise)
  keys = jax.random.split(k_noise, max(len(leaves), 1))
  noise = jax.tree_util.tree_unflatten(treedef, [jax.random.normal(k, x.shape) for k, x in zip(keys, leaves)])
  images = g.apply({**variables, 'noise': noise}, dlatents, noise_mode='const',
                   method=networks.Generator.synthesize)
  images = (downsample(crop(images)) + 1.0) * (255.0 / 2.0)
  return images[0::2], images[1::2]


def lpips_on_255(perceptual: lpips.PerceptualDistance) -> Callable[[jax.Array, jax.Array], jax.Array]:
  """LPIPS for [0, 255] images: the official PPL feeds its perceptual network that range."""
  return lambda a, b: perceptual.distance(a / 127.5 - 1.0, b / 127.5 - 1.0)


def path_lengths(generator_variables: dict, config: NetworkConfig, distance: Distance, *, space: str = 'z',
                 sampling: str = 'full', num_samples: int = 100_000, batch_size: int = 16, seed: int = 0,
                 epsilon: float = EPSILON, progress: bool = False) -> np.ndarray:
  """The unfiltered path lengths distance / ε² of `num_samples` pairs, float64 [num_samples].

  Batches of `batch_size` pairs (one compiled function per batch shape); batch i uses fold_in(key(seed), i),
  so a seed gives the same values on every run.
  """
  if space not in SPACES:
    raise errors.UsageError(f'PPL space {space!r} is not one of {SPACES}')
  if sampling not in SAMPLINGS:
    raise errors.UsageError(f'PPL sampling {sampling!r} is not one of {SAMPLINGS}')
  if num_samples < 1 or batch_size < 1:
    raise errors.UsageError(f'PPL needs num_samples >= 1 and batch_size >= 1, got {num_samples}, {batch_size}')
  if isinstance(distance, lpips.PerceptualDistance):
    distance = lpips_on_255(distance)
  key = jax.random.key(seed)
  values = []
  batches = math.ceil(num_samples / batch_size)
  for i in tqdm.trange(batches, desc=f'ppl_{space}{sampling}', disable=not progress):
    a, b = image_pairs(generator_variables, jax.random.fold_in(key, i), config, space, sampling, batch_size,
                       epsilon)
    values.append(np.asarray(distance(a, b), np.float64) / epsilon ** 2)
  return np.concatenate(values)[:num_samples]


def filtered_mean(values: np.ndarray) -> float:
  """The mean of the values within [1st percentile (method 'lower'), 99th percentile (method 'higher')]."""
  lo = np.percentile(values, 1, method='lower')
  hi = np.percentile(values, 99, method='higher')
  return float(np.mean(values[(lo <= values) & (values <= hi)]))


def ppl(generator_variables: dict, config: NetworkConfig, space: str = 'z', sampling: str = 'full',
        num_samples: int = 100_000, distance: Optional[Distance] = None, **kwargs) -> float:
  """Perceptual path length of a generator (Gs variables); `distance` as the module docstring says.

  Official settings: num_samples 100,000, epsilon 1e-4, LPIPS-VGG16 (`lpips.load(...)`). Further keyword
  arguments (batch_size, seed, epsilon, progress) go to `path_lengths`.
  """
  if distance is None:
    raise errors.UsageError('PPL needs a distance: lpips.load(vgg16_file, lpips_heads_file) for the official '
                            'LPIPS-VGG16, or a callable on [0, 255] image batches')
  return filtered_mean(path_lengths(generator_variables, config, distance, space=space, sampling=sampling,
                                    num_samples=num_samples, **kwargs))
