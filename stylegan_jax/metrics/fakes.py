"""Generated images for the metrics, as the official metrics draw them (spec §9): Gs with no truncation and random
noise, converted to uint8 by x * 127.5 + 127.5 rounded and clipped (sampling.to_uint8).

Latents come from `np.random.RandomState(seed)`; a conditional Gs gets uniformly random one-hot labels. Images
come at a stage `resolution` (default the full one) and `lod`, which training uses at low stages, in batches
jitted with one shape (the last one padded) that the caller consumes as they come (50k 1024² images would not fit
in memory at once).
"""

import functools
from typing import Iterator, Optional

import jax
import jax.numpy as jnp
import numpy as np

from stylegan_jax import networks, sampling
from stylegan_jax.network_config import NetworkConfig


@functools.partial(jax.jit, static_argnames=('config', 'resolution'))
def _generate(config, variables, latents, labels, lod, key, *, resolution):
  gen = networks.Generator(config)
  dlatents = gen.apply(variables, latents, labels, method=networks.Generator.map)
  images = gen.apply(variables, dlatents, lod, noise_mode='random', resolution=resolution, rngs={'noise': key},
                     method=networks.Generator.synthesize)
  return images, dlatents[:, -1]


def latents_and_labels(config: NetworkConfig, num: int, seed: int) -> tuple[np.ndarray, Optional[np.ndarray]]:
  """z [num, latent_size] and one-hot labels [num, label_size] (None when unconditional) for `seed`."""
  rng = np.random.RandomState(seed)
  latents = rng.randn(num, config.latent_size).astype(np.float32)
  labels = (np.eye(config.label_size, dtype=np.float32)[rng.randint(0, config.label_size, num)]
            if config.label_size else None)
  return latents, labels


def batches(config: NetworkConfig, gs_variables: dict, num: int, *, seed: int = 0, lod: float = 0.0,
            resolution: Optional[int] = None, batch_size: int = 64) -> Iterator[tuple[np.ndarray, ...]]:
  """Yields (uint8 images [b, r, r, C], z [b, latent_size], w [b, dlatent_size]) for `num` images in batches of
  `batch_size` (r = `resolution`, default the full one; w is the last layer's dlatent)."""
  z, labels = latents_and_labels(config, num, seed)
  key = jax.random.key(seed)
  for start in range(0, num, batch_size):
    count = min(batch_size, num - start)
    pad = lambda a: None if a is None else np.pad(a[start:start + count], [(0, batch_size - count), (0, 0)])
    images, w = _generate(config, gs_variables, pad(z), pad(labels), jnp.float32(lod),
                          jax.random.fold_in(key, start), resolution=resolution)
    yield sampling.to_uint8(images)[:count], z[start:start + count], np.asarray(w)[:count]
