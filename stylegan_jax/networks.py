"""StyleGAN v1 networks as pure Flax modules: mapping, synthesis, generator (G_style) and discriminator (D_basic).

Images are NHWC float32 in the nominal range [-1, 1]; dlatents are [N, num_layers, dlatent_size].
Module names follow the official TF variable scopes, so a flattened param path ('synthesis/8x8/Conv0_up/weight')
is the official variable name (see `official.py` for the few layout differences).

Variable collections:
  params  trainable weights (raw; equalized-lr multipliers are applied at run time)
  noise   synthesis noise buffers `noise{i}` [1, H, W, 1], N(0, 1), used with noise_mode='const'
  stats   `dlatent_avg` [dlatent_size], the running mean of w used by truncation

Mixed precision: `dtype` (default float32) is the compute dtype of the convolutions and the dense layers (the
mapping's and D's), which cast their inputs and weights to it, return float32 and compute their gradients in it;
params, the style modulation (a small matmul whose scale multiplies every activation) and all other ops stay
float32 (layers.py). NetworkConfig does not hold it: an exported model samples in float32.

`lod` (level of detail) is a traced scalar: 0 means full resolution, k + f blends level k (weight 1-f) with
level k+1 (weight f), the official "linear" structure. The networks may run at a stage resolution below the full
one (`resolution=` in synthesis, the input size in D): the result is what the full-resolution network gives
at that lod, without the redundant nearest-neighbour up/down-sampling.
"""

import math
from typing import Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.typing import DTypeLike

from stylegan_jax import layers, winograd
from stylegan_jax.network_config import NetworkConfig

NOISE_MODES = ('random', 'const', 'none')


class Dense(nn.Module):
  """Equalized-lr dense layer: [N, in] -> [N, features], with bias and optional leaky ReLU."""
  features: int
  gain: float = layers.LRELU_GAIN
  lrmul: float = 1.0
  use_wscale: bool = True
  activation: bool = True
  dtype: DTypeLike = jnp.float32

  @nn.compact
  def __call__(self, x):
    w = layers.weight_param(self, (x.shape[-1], self.features), gain=self.gain, use_wscale=self.use_wscale,
                            lrmul=self.lrmul)
    x = layers.dense(x, w, self.dtype) + layers.bias_param(self, self.features, lrmul=self.lrmul)
    return layers.leaky_relu(x) if self.activation else x


def _on_cpu_unless_set(flag: Optional[bool]) -> bool:
  """A CPU-measured form's switch: `flag`, or where it is None, whether JAX runs on CPU."""
  return jax.default_backend() == 'cpu' if flag is None else flag


class Conv(nn.Module):
  """Equalized-lr conv layer of D: [N, H, W, in] -> [N, H', W', features], with bias and optional leaky ReLU.

  With `down`, it is blur (optional) -> conv -> 2x2 box downsampling, fused from 128² up (Conv1_down);
  `phase_grad`: the fused form's input gradient as a phase conv (layers.conv2d_downscale2d); `winograd`: the 3x3
  convs (with the downsampling) as Winograd transforms where `winograd.pays`.
  """
  features: int
  kernel: int = 3
  gain: float = layers.LRELU_GAIN
  use_wscale: bool = True
  activation: bool = True
  down: bool = False
  fused: bool = False
  blur: bool = True
  dtype: DTypeLike = jnp.float32
  phase_grad: bool = False
  winograd: bool = False

  @nn.compact
  def __call__(self, x):
    w = layers.weight_param(self, (self.kernel, self.kernel, x.shape[-1], self.features), gain=self.gain,
                            use_wscale=self.use_wscale)
    if self.down and self.blur:
      x = layers.blur(x)
    if self.winograd and winograd.pays(x.shape, w.shape, self.dtype):
      x = winograd.conv2d_downscale2d(x, w) if self.down else winograd.conv2d(x, w)
    elif self.down:
      x = layers.conv2d_downscale2d(x, w, self.fused, self.dtype, self.phase_grad)
    else:
      x = layers.conv2d(x, w, dtype=self.dtype)
    x = x + layers.bias_param(self, self.features)
    return layers.leaky_relu(x) if self.activation else x


# ---- Mapping network ---------------------------------------------------------------------------------------


class LabelConcat(nn.Module):
  """Label embedding: labels [N, label_size] @ weight [label_size, latent_size] (N(0,1), no wscale)."""
  latent_size: int

  @nn.compact
  def __call__(self, labels):
    w = self.param('weight', nn.initializers.normal(1.0), (labels.shape[-1], self.latent_size), jnp.float32)
    return labels @ w


class Mapping(nn.Module):
  """G_mapping: latents z [N, latent_size] (+ labels [N, label_size]) -> dlatents [N, num_layers, dlatent_size]."""
  config: NetworkConfig
  dtype: DTypeLike = jnp.float32

  @nn.compact
  def __call__(self, latents, labels=None):
    cfg = self.config
    x = latents.astype(jnp.float32)
    if cfg.label_size:
      if labels is None:
        raise ValueError(f'this generator is conditional (label_size={cfg.label_size}): pass labels')
      x = jnp.concatenate([x, LabelConcat(cfg.latent_size, name='LabelConcat')(labels.astype(jnp.float32))], -1)
    if cfg.normalize_latents:
      x = layers.pixel_norm(x)
    for i in range(cfg.mapping_layers):
      features = cfg.dlatent_size if i == cfg.mapping_layers - 1 else cfg.mapping_fmaps
      x = Dense(features, lrmul=cfg.mapping_lrmul, use_wscale=cfg.use_wscale, dtype=self.dtype, name=f'Dense{i}')(x)
    return jnp.broadcast_to(x[:, None, :], (x.shape[0], cfg.num_layers, cfg.dlatent_size))


# ---- Synthesis network -------------------------------------------------------------------------------------


class NoiseStrength(nn.Module):
  """Adds per-pixel noise [N or 1, H, W, 1] scaled by a learned per-channel weight [C] (zero-initialised)."""

  @nn.compact
  def __call__(self, x, noise):
    return x + noise * self.param('weight', nn.initializers.zeros, (x.shape[-1],), jnp.float32)


class StyleMod(nn.Module):
  """Style modulation from one dlatent row [N, dlatent_size]: x * (y_s + 1) + y_b."""
  use_wscale: bool = True

  @nn.compact
  def __call__(self, x, dlatent):
    c2 = 2 * x.shape[-1]
    w = layers.weight_param(self, (dlatent.shape[-1], c2), gain=1.0, use_wscale=self.use_wscale)
    return layers.style_mod(x, dlatent @ w + layers.bias_param(self, c2))


class SynthesisLayer(nn.Module):
  """One synthesis layer: (const | conv | up-conv + blur) -> noise -> bias -> lrelu -> norms -> style.

  kind: 'const' (the learned 4x4 input, initialised to ones), 'conv' (3x3) or 'up' (2x upsampling 3x3 conv;
  `phases`: unfused as one 2x2 conv at the input's size, layers.upscale2d_conv2d). `winograd`: the convs as
  Winograd transforms where `winograd.pays` (the fused up-conv as nearest upsampling then the conv with `w` rotated
  180°, the same function).
  """
  config: NetworkConfig
  features: int
  kind: str
  fused: bool = False
  dtype: DTypeLike = jnp.float32
  phases: bool = False
  winograd: bool = False

  @nn.compact
  def __call__(self, x, dlatent, noise):
    cfg = self.config
    if self.kind == 'const':
      const = self.param('const', nn.initializers.ones, (1, 4, 4, self.features), jnp.float32)
      x = jnp.broadcast_to(const, (dlatent.shape[0], 4, 4, self.features))
    else:
      w = layers.weight_param(self, (3, 3, x.shape[-1], self.features), gain=layers.LRELU_GAIN,
                              use_wscale=cfg.use_wscale)
      use_winograd = self.winograd and winograd.pays(x.shape, w.shape, self.dtype)
      if self.kind == 'up':
        if use_winograd:
          x = winograd.upscale2d_conv2d(x, jnp.flip(w, (0, 1)) if self.fused else w)
        else:
          x = layers.upscale2d_conv2d(x, w, self.fused, self.dtype, self.phases)
        if cfg.blur:
          x = layers.blur(x)
      else:
        x = winograd.conv2d(x, w) if use_winograd else layers.conv2d(x, w, dtype=self.dtype)
    if cfg.use_noise and noise is not None:
      x = NoiseStrength(name='Noise')(x, noise)
    x = layers.leaky_relu(x + layers.bias_param(self, self.features))
    if cfg.use_pixel_norm:
      x = layers.pixel_norm(x)
    if cfg.use_instance_norm:
      x = layers.instance_norm(x)
    return StyleMod(cfg.use_wscale, name='StyleMod')(x, dlatent)


class SynthesisBlock(nn.Module):
  """The two layers at resolution 2**res_log2 ('4x4': Const, Conv; others: Conv0_up, Conv1)."""
  config: NetworkConfig
  res_log2: int
  dtype: DTypeLike = jnp.float32
  phase_upscale: bool = False
  winograd: bool = False

  @nn.compact
  def __call__(self, x, dlatents, noise_inputs):
    cfg, r, dtype = self.config, self.res_log2, self.dtype
    first, second = 2 * r - 4, 2 * r - 3
    features = cfg.nf(r - 1)
    if r == 2:
      x = SynthesisLayer(cfg, features, 'const', name='Const')(None, dlatents[:, first], noise_inputs[first])
      return SynthesisLayer(cfg, features, 'conv', dtype=dtype, winograd=self.winograd, name='Conv')(
          x, dlatents[:, second], noise_inputs[second])
    x = SynthesisLayer(cfg, features, 'up', cfg.fused(r), dtype, self.phase_upscale, self.winograd, name='Conv0_up')(
        x, dlatents[:, first], noise_inputs[first])
    return SynthesisLayer(cfg, features, 'conv', dtype=dtype, winograd=self.winograd, name='Conv1')(
        x, dlatents[:, second], noise_inputs[second])


class Synthesis(nn.Module):
  """G_synthesis: dlatents [N, num_layers, dlatent_size] -> images [N, res, res, num_channels].

  `resolution` (static) is the output resolution, default the full one; `lod` (traced) blends levels.
  noise_mode: 'random' (fresh N(0,1) per sample and call, rng stream 'noise'), 'const' (the stored buffers),
  'none' (no noise).
  `phase_upscale`: compute the unfused upsampling convs (below 128² in the official configs) as 2x2 convs at the
  input's size (layers.upscale2d_conv2d), the same function with 2.25x fewer FLOPs; None: on CPU, where it was
  measured faster (docs/performance.md). `winograd`: the 3x3 convs (with the upsampling) as Winograd transforms
  where `winograd.pays` (winograd.py: the same functions, 2.25x / 1.8x fewer multiplications); None: on CPU.
  """
  config: NetworkConfig
  dtype: DTypeLike = jnp.float32
  phase_upscale: Optional[bool] = None
  winograd: Optional[bool] = None

  @nn.compact
  def __call__(self, dlatents, lod=0.0, *, noise_mode: str = 'random', resolution: Optional[int] = None,
               noise: Optional[Sequence] = None):
    """`noise`, if given, is the per-layer noise ([N, H, W, 1] or None per layer), overriding noise_mode."""
    cfg = self.config
    full_log2 = cfg.resolution_log2
    out_log2 = full_log2 if resolution is None else int(math.log2(resolution))
    if resolution is not None and (2 ** out_log2 != resolution or not 2 <= out_log2 <= full_log2):
      raise ValueError(f'resolution must be a power of two in [4, {cfg.resolution}], got {resolution}')
    if dlatents.shape[1:] != (cfg.num_layers, cfg.dlatent_size):
      raise ValueError(f'dlatents must be [N, {cfg.num_layers}, {cfg.dlatent_size}], got {dlatents.shape}')
    noise_inputs = self._noise_inputs('none' if noise is not None else noise_mode, dlatents.shape[0], out_log2)
    if noise is not None:
      noise_inputs = list(noise) + [None] * (cfg.num_layers - len(noise))
    phases, use_winograd = _on_cpu_unless_set(self.phase_upscale), _on_cpu_unless_set(self.winograd)
    x = SynthesisBlock(cfg, 2, self.dtype, winograd=use_winograd, name='4x4')(None, dlatents, noise_inputs)
    images = self._to_rgb(x, full_log2 - 2)
    for r in range(3, out_log2 + 1):
      x = SynthesisBlock(cfg, r, self.dtype, phases, use_winograd, name=f'{2 ** r}x{2 ** r}')(x, dlatents,
                                                                                            noise_inputs)
      images = layers.lerp_clip(self._to_rgb(x, full_log2 - r), layers.upscale2d(images), lod - (full_log2 - r))
    return images

  def _to_rgb(self, x, lod_index):
    """ToRGB_lod{L}: 1x1 conv to num_channels with gain 1 and a bias, no activation."""
    cfg = self.config
    return Conv(cfg.num_channels, kernel=1, gain=1.0, use_wscale=cfg.use_wscale, activation=False, dtype=self.dtype,
                name=f'ToRGB_lod{lod_index}')(x)

  def _noise_inputs(self, noise_mode, batch, out_log2):
    """Per-layer noise, [N|1, H, W, 1] or None; the stored buffers are created at init."""
    cfg = self.config
    if noise_mode not in NOISE_MODES:
      raise ValueError(f'noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}')
    inputs = [None] * cfg.num_layers
    for i in range(cfg.num_layers):
      side = 2 ** (i // 2 + 2)
      if self.is_initializing() and cfg.use_noise:
        self.variable('noise', f'noise{i}', lambda s=side: jax.random.normal(self.make_rng('params'), (1, s, s, 1)))
      if not cfg.use_noise or noise_mode == 'none' or i >= 2 * out_log2 - 2:
        continue
      if noise_mode == 'random':
        inputs[i] = jax.random.normal(self.make_rng('noise'), (batch, side, side, 1))
      else:
        if not self.has_variable('noise', f'noise{i}'):
          raise ValueError("noise_mode='const' needs the 'noise' collection (the stored noise buffers)")
        inputs[i] = self.get_variable('noise', f'noise{i}')
    return inputs


# ---- Generator ---------------------------------------------------------------------------------------------


def truncate(dlatents, dlatent_avg, psi=1.0, cutoff=None):
  """Truncation trick: layers with index < cutoff (all if None) become avg + psi * (w - avg).

  psi == 1 or cutoff <= 0 returns `dlatents` exactly; psi and cutoff may be traced.
  """
  layer_idx = jnp.arange(dlatents.shape[1])[None, :, None]
  active = (psi != 1.0) & (True if cutoff is None else layer_idx < cutoff)
  return jnp.where(active, layers.lerp(dlatent_avg, dlatents, psi), dlatents)


def style_mix(dlatents, dlatents2, crossover):
  """Layers with index < crossover take `dlatents`, the rest `dlatents2`; crossover may be traced."""
  layer_idx = jnp.arange(dlatents.shape[1])[None, :, None]
  return jnp.where(layer_idx < crossover, dlatents, dlatents2)


class Generator(nn.Module):
  """G_style: mapping -> (training: dlatent_avg tracking, style mixing) -> truncation -> synthesis.

  Sub-modules are named 'mapping' and 'synthesis' as the official components are; `phase_upscale` and
  `winograd` as in Synthesis.
  """
  config: NetworkConfig
  dtype: DTypeLike = jnp.float32
  phase_upscale: Optional[bool] = None
  winograd: Optional[bool] = None

  def setup(self):
    self.mapping = Mapping(self.config, self.dtype)
    self.synthesis = Synthesis(self.config, self.dtype, self.phase_upscale, self.winograd)
    self.dlatent_avg = self.variable('stats', 'dlatent_avg', jnp.zeros, (self.config.dlatent_size,), jnp.float32)

  def __call__(self, latents, labels=None, lod=0.0, *, truncation_psi=1.0, truncation_cutoff=None,
               noise_mode: str = 'random', resolution: Optional[int] = None, noise: Optional[Sequence] = None,
               dlatent_avg_beta: Optional[float] = None, style_mixing_prob: Optional[float] = None):
    """latents [N, latent_size] -> images [N, res, res, num_channels].

    Inference: leave `dlatent_avg_beta` and `style_mixing_prob` None; truncation applies when psi != 1.
    Training: `dlatent_avg_beta` (0.995) updates `stats/dlatent_avg` (apply with mutable=['stats']) and
    `style_mixing_prob` (0.9) mixes in a second latent (rng stream 'mixing') with one crossover per call.
    """
    dlatents = self.mapping(latents, labels)
    if dlatent_avg_beta is not None and not self.is_initializing():
      batch_avg = jnp.mean(dlatents[:, 0], axis=0)
      self.dlatent_avg.value = layers.lerp(batch_avg, self.dlatent_avg.value, dlatent_avg_beta)
    if style_mixing_prob is not None:
      dlatents = self.random_style_mix(dlatents, labels, lod, style_mixing_prob)
    dlatents = truncate(dlatents, self.dlatent_avg.value, truncation_psi, truncation_cutoff)
    return self.synthesis(dlatents, lod, noise_mode=noise_mode, resolution=resolution, noise=noise)

  def map(self, latents, labels=None, *, truncation_psi=1.0, truncation_cutoff=None):
    """latents -> dlatents [N, num_layers, dlatent_size], truncated towards dlatent_avg when psi != 1."""
    return truncate(self.mapping(latents, labels), self.dlatent_avg.value, truncation_psi, truncation_cutoff)

  def synthesize(self, dlatents, lod=0.0, *, noise_mode: str = 'random', resolution: Optional[int] = None,
                 noise: Optional[Sequence] = None):
    """dlatents [N, num_layers, dlatent_size] -> images, as `Synthesis.__call__`."""
    return self.synthesis(dlatents, lod, noise_mode=noise_mode, resolution=resolution, noise=noise)

  def random_style_mix(self, dlatents, labels, lod, prob):
    """Official style-mixing regularisation: one draw per call (per device minibatch).

    With probability `prob` layers >= crossover ~ U{1, ..., cur_layers - 1} come from the mapping of a fresh z,
    where cur_layers = num_layers - 2 * floor(lod) are the layers active at this lod.
    """
    k_latents, k_coin, k_cross = jax.random.split(self.make_rng('mixing'), 3)
    dlatents2 = self.mapping(jax.random.normal(k_latents, dlatents.shape[:1] + (self.config.latent_size,)),
                             labels)
    cur_layers = self.config.num_layers - 2 * jnp.floor(lod).astype(jnp.int32)
    crossover = jnp.where(jax.random.uniform(k_coin) < prob, jax.random.randint(k_cross, (), 1, cur_layers),
                          cur_layers)
    return style_mix(dlatents, dlatents2, crossover)


# ---- Discriminator -----------------------------------------------------------------------------------------


class DiscriminatorBlock(nn.Module):
  """D block at resolution 2**res_log2 > 4: Conv0 then (blur) Conv1_down, halving the resolution."""
  config: NetworkConfig
  res_log2: int
  dtype: DTypeLike = jnp.float32
  fused_downscale: bool = False
  phase_grad: bool = False
  winograd: bool = False

  @nn.compact
  def __call__(self, x):
    cfg, r = self.config, self.res_log2
    x = Conv(cfg.nf(r - 1), use_wscale=cfg.use_wscale, dtype=self.dtype, winograd=self.winograd, name='Conv0')(x)
    return Conv(cfg.nf(r - 2), use_wscale=cfg.use_wscale, down=True, fused=cfg.fused(r) or self.fused_downscale,
                blur=cfg.blur, dtype=self.dtype, phase_grad=self.phase_grad, winograd=self.winograd,
                name='Conv1_down')(x)


class DiscriminatorEpilogue(nn.Module):
  """The 4x4 block: minibatch stddev -> Conv -> Dense0 (NCHW flatten) -> Dense1 -> scores [N, max(label_size,1)]."""
  config: NetworkConfig
  dtype: DTypeLike = jnp.float32
  winograd: bool = False

  @nn.compact
  def __call__(self, x):
    cfg = self.config
    if cfg.mbstd_group_size > 1:
      x = layers.minibatch_stddev(x, cfg.mbstd_group_size, cfg.mbstd_num_features)
    x = Conv(cfg.nf(1), use_wscale=cfg.use_wscale, dtype=self.dtype, winograd=self.winograd, name='Conv')(x)
    x = jnp.transpose(x, (0, 3, 1, 2)).reshape(x.shape[0], -1)  # the official NCHW flatten order
    x = Dense(cfg.nf(0), use_wscale=cfg.use_wscale, dtype=self.dtype, name='Dense0')(x)
    return Dense(max(cfg.label_size, 1), gain=1.0, use_wscale=cfg.use_wscale, activation=False, dtype=self.dtype,
                 name='Dense1')(x)


class Discriminator(nn.Module):
  """D_basic: images [N, res, res, num_channels] (+ labels) -> scores (logits) [N, 1].

  `res` may be any power of two from 4 to the full resolution (a progressive stage); `lod` (traced) blends
  the top block with the next level's FromRGB, as the official linear structure does. `fused_downscale` computes
  every block's conv + 2x2 box downsampling as the fused stride-2 4x4 conv, which the official code uses from
  128² up: the same function (equal up to float rounding) with 2.25x fewer FLOPs, for any config.
  `phase_grad` computes the input gradient of those fused convs as phase convs (layers.conv2d_downscale2d: the
  same derivatives; R1's second derivative several times faster on CPU); None: on CPU. `winograd`: the 3x3 convs
  (with the downsampling, fused or not) as Winograd transforms where `winograd.pays`; None: on CPU.
  """
  config: NetworkConfig
  dtype: DTypeLike = jnp.float32
  fused_downscale: bool = False
  phase_grad: Optional[bool] = None
  winograd: Optional[bool] = None

  @nn.compact
  def __call__(self, images, labels=None, lod=0.0):
    cfg = self.config
    full_log2 = cfg.resolution_log2
    in_log2 = int(math.log2(images.shape[1]))
    if images.shape[1:] != (2 ** in_log2, 2 ** in_log2, cfg.num_channels) or not 2 <= in_log2 <= full_log2:
      raise ValueError(f'images must be [N, R, R, {cfg.num_channels}] with R a power of two in '
                       f'[4, {cfg.resolution}], got {images.shape}')
    images = images.astype(jnp.float32)
    phase_grad, use_winograd = _on_cpu_unless_set(self.phase_grad), _on_cpu_unless_set(self.winograd)
    x = self._from_rgb(images, full_log2 - in_log2)
    for r in range(in_log2, 2, -1):
      x = DiscriminatorBlock(cfg, r, self.dtype, self.fused_downscale, phase_grad, use_winograd,
                             name=f'{2 ** r}x{2 ** r}')(x)
      images = layers.downscale2d(images)
      x = layers.lerp_clip(x, self._from_rgb(images, full_log2 - r + 1), lod - (full_log2 - r))
    scores = DiscriminatorEpilogue(cfg, self.dtype, use_winograd, name='4x4')(x)
    if cfg.label_size:
      if labels is None:
        raise ValueError(f'this discriminator is conditional (label_size={cfg.label_size}): pass labels')
      scores = jnp.sum(scores * labels, axis=1, keepdims=True)
    return scores

  def _from_rgb(self, images, lod_index):
    """FromRGB_lod{L}: 1x1 conv to the channels of the block at that level, gain sqrt(2), lrelu."""
    cfg = self.config
    return Conv(cfg.nf(cfg.resolution_log2 - lod_index - 1), kernel=1, use_wscale=cfg.use_wscale, dtype=self.dtype,
                name=f'FromRGB_lod{lod_index}')(images)


# ---- Construction ------------------------------------------------------------------------------------------


def init_generator(config: NetworkConfig, rng: jax.Array) -> dict:
  """Variables {'params', 'noise', 'stats'} of a fresh Generator (official initialisation)."""
  k_params, k_noise = jax.random.split(rng)
  latents = jnp.zeros((1, config.latent_size), jnp.float32)
  labels = jnp.zeros((1, config.label_size), jnp.float32) if config.label_size else None
  return Generator(config).init({'params': k_params, 'noise': k_noise}, latents, labels)


def init_discriminator(config: NetworkConfig, rng: jax.Array) -> dict:
  """Variables {'params'} of a fresh Discriminator (official initialisation)."""
  images = jnp.zeros((1, config.resolution, config.resolution, config.num_channels), jnp.float32)
  labels = jnp.zeros((1, config.label_size), jnp.float32) if config.label_size else None
  return Discriminator(config).init(rng, images, labels)


def count_params(tree) -> int:
  return sum(int(x.size) for x in jax.tree_util.tree_leaves(tree))
