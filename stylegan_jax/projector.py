"""Projection: images -> the dlatents (and noise) that make the generator reproduce them.

The method and its schedule are StyleGAN2's projector (Karras et al. 2020, `projector.py` of NVlabs/stylegan2),
applied to a StyleGAN v1 generator and run for a batch of images at once, each image independently:

  start     w = w_avg, the mean of 10,000 mapped latents z ~ N(0, I) (RandomState(123)); their spread
            w_std = sqrt(E ||w - w_avg||²) scales the exploration noise. Space 'w' optimises one w [D] per image
            (broadcast to all layers), 'w+' one per layer [L, D], both starting at w_avg. Conditional models map
            the z with the image's label.
  noise     every per-layer noise input is optimised too, per image [N, H, W, 1], starting from N(0, 1), and
            renormalised to zero mean and unit variance after every step (noise='optimize'; noise='const'
            instead keeps the model's stored noise buffers and optimises only w, without the regulariser).
  step t    of T, with u = t / T:
              lr    = 0.1 * min(1, u / 0.05) * (0.5 - 0.5 cos(pi * min(1, (1 - u) / 0.25)))  (Adam 0.9, 0.999, 1e-8)
              w'    = w + N(0, I) * w_std * 0.05 * max(0, 1 - u / 0.75)²   (the synthesised w, not the variable)
              loss  = sum over images of distance(G(w', noise), target) + 1e5 * noise_regularisation
  noise_regularisation  for each noise map and each of its box-downsampled halvings down to 8x8 (inclusive):
            mean(n * roll(n, 1, x))² + mean(n * roll(n, 1, y))², summed (penalises spatial autocorrelation, so
            noise cannot encode the image).

`distance(a, b) -> [N]` compares float NHWC images in [-1, 1]: `PIXEL` (MSE), `lpips_distance(...)` (LPIPS-VGG16
from user-supplied weights; images over 256² are box-downsampled to 256² first, as StyleGAN2), `domain_distance(...)`
(mean squared difference of the domain classifier's 128-d penultimate features, metrics/classifier.py).
The optimisation runs as one jitted `lax.fori_loop` over `steps_per_call` steps, called repeatedly (for progress
and animation frames), which compiles once per batch shape, distance and schedule.

Images in: uint8 [N, R, R, C] at the model's resolution; `load_images` decodes files of any size, resized and
cropped as the dataset preparation does (`data/images.py`).
"""

import dataclasses
import functools
import os
from typing import Any, Callable, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np
import optax

from stylegan_jax import networks, sampling
from stylegan_jax.data import images as images_lib
from stylegan_jax.network_config import NetworkConfig

SPACES = ('w', 'w+')
NOISE = ('optimize', 'const')


@dataclasses.dataclass(frozen=True)
class Schedule:
  """StyleGAN2's projector hyperparameters (its defaults)."""
  num_steps: int = 1000
  initial_learning_rate: float = 0.1
  lr_rampup_length: float = 0.05
  lr_rampdown_length: float = 0.25
  initial_noise_factor: float = 0.05
  noise_ramp_length: float = 0.75
  regularize_noise_weight: float = 1e5
  dlatent_avg_samples: int = 10000

  def __post_init__(self):
    if self.num_steps < 1 or self.dlatent_avg_samples < 1:
      raise ValueError(f'num_steps and dlatent_avg_samples must be >= 1, got {self.num_steps}, '
                       f'{self.dlatent_avg_samples}')
    if min(self.lr_rampup_length, self.lr_rampdown_length, self.noise_ramp_length) < 0:
      raise ValueError('ramp lengths must be >= 0 (fractions of num_steps)')

  def learning_rate(self, step):
    u = step / self.num_steps
    ramp = _ramp((1.0 - u), self.lr_rampdown_length)
    return self.initial_learning_rate * (0.5 - 0.5 * jnp.cos(ramp * jnp.pi)) * _ramp(u, self.lr_rampup_length)

  def noise_strength(self, step, w_std):
    """The std of the exploration noise added to w at `step`, for images whose w spread is `w_std`."""
    decay = 1.0 - _ramp(step / self.num_steps, self.noise_ramp_length) if self.noise_ramp_length else 0.0
    return w_std * self.initial_noise_factor * decay ** 2


def _ramp(u, length: float):
  """min(1, u / length); 1 for length 0."""
  return jnp.minimum(1.0, u / length) if length else 1.0


@dataclasses.dataclass(frozen=True)
class Distance:
  """`fn(params, a, b) -> [N]` for float NHWC images in [-1, 1]; `params` (arrays or None) is traced, `fn` static."""
  name: str
  fn: Callable[[Any, jax.Array, jax.Array], jax.Array]
  params: Any = None

  def __call__(self, a, b) -> jax.Array:
    return self.fn(self.params, a, b)


def _mse(params, a, b):
  del params
  return jnp.mean(jnp.square(a - b), axis=(1, 2, 3))


def _downsample_to(images, size):
  n, h, w, c = images.shape
  if h <= size:
    return images
  f = h // size
  return images.reshape(n, size, f, size, f, c).mean(axis=(2, 4))


def _lpips(params, a, b):
  from stylegan_jax.metrics import lpips  # noqa: PLC0415 (only LPIPS projections need VGG16)
  a, b = _downsample_to(a, 256), _downsample_to(b, 256)
  if a.shape[-1] == 1:
    a, b = jnp.repeat(a, 3, axis=-1), jnp.repeat(b, 3, axis=-1)
  return lpips.LPIPS().apply(params, a, b)


PIXEL = Distance('pixel', _mse)


def lpips_distance(vgg16_path: Union[str, os.PathLike], heads_path: Union[str, os.PathLike]) -> Distance:
  """LPIPS-VGG16 v0.1 from the user's weight files (see metrics/lpips.py); needs a resolution >= 16."""
  from stylegan_jax.metrics import lpips  # noqa: PLC0415
  perceptual = lpips.load(vgg16_path, heads_path)
  return Distance('lpips', _lpips, perceptual.variables)


@dataclasses.dataclass(frozen=True)
class _DomainFeatureDistance:
  """Mean squared difference of the domain classifier's penultimate features (metrics/classifier.py)."""
  size: int
  num_channels: int
  num_classes: int

  def __call__(self, params, a, b):
    from stylegan_jax.metrics import classifier  # noqa: PLC0415

    def features(x):  # the classifier takes 0..255 values
      return classifier.DomainCNN(self.num_classes).apply(
          {'params': params}, classifier.to_native(x * 127.5 + 127.5, self.size, self.num_channels))[0]

    return jnp.mean(jnp.square(features(a) - features(b)), axis=-1)


def domain_distance(net: Union[str, os.PathLike, 'classifier.DomainClassifier']) -> Distance:
  """The domain classifier's feature distance, from a loaded classifier or a trained classifier's directory
  (`stylegan-jax metrics train-classifier` caches it under ~/.cache/stylegan-jax/classifiers/)."""
  from stylegan_jax.metrics import classifier  # noqa: PLC0415
  if not isinstance(net, classifier.DomainClassifier):
    net = classifier.load(net)
  return Distance('domain', _DomainFeatureDistance(net.size, net.num_channels, net.num_classes), net.params)


def psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """Per-image PSNR in dB of uint8 images [N, H, W, C] (peak 255); inf where identical."""
  mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2, axis=(1, 2, 3))
  with np.errstate(divide='ignore'):
    return 10 * np.log10(255.0 ** 2 / mse)


def load_images(paths: Sequence[Union[str, os.PathLike]], config: NetworkConfig, crop: str = 'center') -> np.ndarray:
  """Image files of any size -> uint8 [N, R, R, C] at the model's resolution and channels (`data/images.py`)."""
  return np.stack([images_lib.load_image(p, resolution=config.resolution, num_channels=config.num_channels,
                                         crop=crop) for p in paths])


def noise_sides(config: NetworkConfig) -> list[int]:
  """The side of each layer's noise map: 4, 4, 8, 8, ..., R, R."""
  return [2 ** (2 + i // 2) for i in range(config.num_layers)]


def noise_regularization(noise: Sequence[jax.Array]) -> jax.Array:
  """[N] StyleGAN2's noise autocorrelation penalty, per image, over noise maps [N, H, W, 1]."""
  total = 0.0
  for n in noise:
    while True:
      total += (jnp.mean(n * jnp.roll(n, 1, axis=2), axis=(1, 2, 3)) ** 2 +
                jnp.mean(n * jnp.roll(n, 1, axis=1), axis=(1, 2, 3)) ** 2)
      if n.shape[1] <= 8:
        break
      b, h, w, c = n.shape
      n = n.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))
  return total


def normalize_noise(noise: Sequence[jax.Array]) -> list[jax.Array]:
  """Each map of each image to zero mean, unit variance."""
  out = []
  for n in noise:
    n = n - jnp.mean(n, axis=(1, 2, 3), keepdims=True)
    out.append(n * jax.lax.rsqrt(jnp.mean(jnp.square(n), axis=(1, 2, 3), keepdims=True)))
  return out


@functools.partial(jax.jit, static_argnames=('config', 'num_samples'))
def _w_stats(config, variables, latents, labels, num_samples):
  """(w_avg [D], w_std scalar) of `num_samples` latents mapped with one label (or None)."""
  labels = None if labels is None else jnp.broadcast_to(labels, (num_samples, labels.shape[-1]))
  w = networks.Generator(config).apply(variables, latents, labels, method=networks.Generator.map)[:, 0]
  avg = jnp.mean(w, axis=0)
  return avg, jnp.sqrt(jnp.sum(jnp.square(w - avg)) / num_samples)


def _expand(config: NetworkConfig, w):
  return jnp.repeat(w, config.num_layers, axis=1) if w.shape[1] == 1 else w


def _optimizer(schedule: Schedule) -> optax.GradientTransformation:
  return optax.adam(schedule.learning_rate, b1=0.9, b2=0.999, eps=1e-8)


@functools.partial(jax.jit, static_argnames=('config', 'schedule', 'distance_fn', 'steps_per_call'),
                   donate_argnames=('state',))
def _run_steps(config, schedule, distance_fn, steps_per_call, variables, distance_params, targets, w_std, state,
               first_step):
  """`steps_per_call` optimisation steps from `first_step`; state = (params, opt_state, key)."""
  optimizer = _optimizer(schedule)

  def loss_fn(params, key, step):
    explore = jax.random.normal(key, params['w'].shape) * schedule.noise_strength(step, w_std)[:, None, None]
    w = params['w'] + explore
    images = _synthesize(config, variables, w, params.get('noise'))
    dist = distance_fn(distance_params, images, targets)
    if 'noise' not in params:
      return jnp.sum(dist), dist
    reg = noise_regularization(params['noise'])
    return jnp.sum(dist + schedule.regularize_noise_weight * reg), dist

  def body(i, carry):
    params, opt_state, key, _ = carry
    key, sub = jax.random.split(key)
    step = first_step + i
    (_, dist), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, sub, step)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    if 'noise' in params:
      params = dict(params, noise=normalize_noise(params['noise']))
    return params, opt_state, key, dist

  params, opt_state, key = state
  dist0 = jnp.zeros(targets.shape[0], jnp.float32)
  params, opt_state, key, dist = jax.lax.fori_loop(0, steps_per_call, body, (params, opt_state, key, dist0))
  return (params, opt_state, key), dist


def _synthesize(config, variables, w, noise):
  """Images from w [N, 1 or L, D] with the given noise maps, or the stored buffers when noise is None."""
  return networks.Generator(config).apply(variables, _expand(config, w), noise=noise, noise_mode='const',
                                          method=networks.Generator.synthesize)


_render = jax.jit(_synthesize, static_argnames='config')


@dataclasses.dataclass
class Projection:
  """The result for N images: dlatents [N, L, D], noise (per layer [N, H, W, 1]), the rendered uint8 images
  [N, R, R, C], the final distance [N], the labels used ([N] class ids, None if unconditional), the distance
  after each call of the loop `history` [calls, N] and, if asked for, uint8 `frames` [calls + 1, N, R, R, C]
  (the start, then after each call)."""
  dlatents: np.ndarray
  noise: Optional[list]
  images: np.ndarray
  distance: np.ndarray
  labels: Optional[np.ndarray]
  history: np.ndarray
  frames: Optional[np.ndarray] = None


def project(sampler: sampling.Sampler, targets: np.ndarray, *, space: str = 'w+', noise: str = 'optimize',
            distance: Distance = PIXEL, schedule: Schedule = Schedule(),
            labels: Optional[Union[int, Sequence[int]]] = None, seed: int = 0, steps_per_call: int = 50,
            keep_frames: bool = False,
            progress: Optional[Callable[[int, int], None]] = None) -> Projection:
  """Projects uint8 targets [N, R, R, C] (the model's resolution and channels) into `space` ('w' or 'w+').

  noise 'optimize' optimises the noise maps (StyleGAN2); 'const' keeps the model's stored noise buffers, so the
  dlatents reproduce the image wherever the model is sampled with const noise (the figure commands).
  Conditional models: `labels` are class ids (one for all or one per image); None searches every class and keeps,
  per image, the one with the lowest final distance. `progress(steps_done, steps_total)` is called after each call
  of the jitted loop.
  """
  cfg = sampler.config
  targets = np.asarray(targets)
  if targets.ndim != 4 or targets.shape[1:] != (cfg.resolution, cfg.resolution, cfg.num_channels):
    raise ValueError(f'targets must be uint8 [N, {cfg.resolution}, {cfg.resolution}, {cfg.num_channels}], '
                     f'got {targets.dtype} {list(targets.shape)}')
  if space not in SPACES:
    raise ValueError(f'space must be one of {SPACES}, got {space!r}')
  if noise not in NOISE:
    raise ValueError(f'noise must be one of {NOISE}, got {noise!r}')
  if schedule.num_steps % steps_per_call:
    raise ValueError(f'num_steps ({schedule.num_steps}) must be a multiple of steps_per_call ({steps_per_call})')
  n = len(targets)
  run = functools.partial(_project, sampler, targets, space=space, noise=noise, distance=distance,
                          schedule=schedule, seed=seed, steps_per_call=steps_per_call, keep_frames=keep_frames)
  if not cfg.label_size:
    if labels is not None:
      raise ValueError('this generator is unconditional: do not pass labels')
    return run(None, progress=progress)
  if labels is not None:
    ids = np.broadcast_to(np.asarray(labels), (n,))
    if ids.min() < 0 or ids.max() >= cfg.label_size:
      raise ValueError(f'class ids must be in [0, {cfg.label_size}), got {ids.tolist()}')
    return run(ids, progress=progress)
  best = None
  for c in range(cfg.label_size):
    report = None if progress is None else (
        lambda done, total, c=c: progress(c * total + done, cfg.label_size * total))
    result = run(np.full(n, c), progress=report)
    best = result if best is None else _pick(best, result)
  return best


def _pick(a: Projection, b: Projection) -> Projection:
  """Per image, the projection with the lower final distance."""
  take_b = b.distance < a.distance

  def choose(x, y, axis=0):
    if x is None:
      return None
    mask = take_b.reshape([-1 if d == axis else 1 for d in range(x.ndim)])
    return np.where(mask, y, x)

  noise = None if a.noise is None else [choose(x, y) for x, y in zip(a.noise, b.noise)]
  return Projection(dlatents=choose(a.dlatents, b.dlatents), noise=noise, images=choose(a.images, b.images),
                    distance=np.minimum(a.distance, b.distance),
                    labels=choose(a.labels, b.labels), history=choose(a.history, b.history, axis=1),
                    frames=choose(a.frames, b.frames, axis=1))


def _project(sampler, targets, class_ids, *, space, noise, distance, schedule, seed, steps_per_call, keep_frames,
             progress):
  cfg, variables = sampler.config, sampler.variables
  n = len(targets)
  latents = np.random.RandomState(123).randn(schedule.dlatent_avg_samples, cfg.latent_size).astype(np.float32)
  stats = {}
  for c in [None] if class_ids is None else np.unique(class_ids).tolist():
    label = None if c is None else np.eye(cfg.label_size, dtype=np.float32)[c]
    avg, std = _w_stats(cfg, variables, latents, label, schedule.dlatent_avg_samples)
    stats[c] = (np.asarray(avg), float(std))
  per_image = [None] * n if class_ids is None else class_ids.tolist()
  avg = np.stack([stats[c][0] for c in per_image])
  std = np.array([stats[c][1] for c in per_image], np.float32)
  layers = 1 if space == 'w' else cfg.num_layers
  key_noise, key_loop = jax.random.split(jax.random.key(seed))
  params = {'w': jnp.asarray(np.repeat(avg[:, None], layers, axis=1))}
  if noise == 'optimize':
    noise_keys = jax.random.split(key_noise, cfg.num_layers)
    params['noise'] = normalize_noise([jax.random.normal(k, (n, s, s, 1))
                                       for k, s in zip(noise_keys, noise_sides(cfg))])
  state = (params, _optimizer(schedule).init(params), key_loop)
  target_f = jnp.asarray(targets, jnp.float32) / 127.5 - 1.0
  frames = [_render(cfg, variables, params['w'], params.get('noise'))] if keep_frames else None
  history = []
  for first in range(0, schedule.num_steps, steps_per_call):
    state, dist = _run_steps(cfg, schedule, distance.fn, steps_per_call, variables, distance.params, target_f,
                             jnp.asarray(std), state, jnp.int32(first))
    history.append(np.asarray(dist))
    if keep_frames:
      frames.append(_render(cfg, variables, state[0]['w'], state[0].get('noise')))
    if progress is not None:
      progress(first + steps_per_call, schedule.num_steps)
  params = state[0]
  images = _render(cfg, variables, params['w'], params.get('noise'))
  final = np.asarray(distance(images, target_f))
  noise_maps = None if noise == 'const' else [np.asarray(x) for x in params['noise']]
  return Projection(dlatents=np.asarray(_expand(cfg, params['w'])), noise=noise_maps,
                    images=sampling.to_uint8(images), distance=final, labels=class_ids, history=np.stack(history),
                    frames=None if frames is None else np.stack([sampling.to_uint8(f) for f in frames]))
