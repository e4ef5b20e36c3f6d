"""The architecture hyperparameters of the StyleGAN v1 networks, validated and frozen.

`NetworkConfig` holds every build argument of the official `G_style`/`G_mapping`/`G_synthesis`/`D_basic`
that this package supports, with the official defaults (spec §1-3). G and D share one config, as the official
training loop builds them from the same dataset shape and defaults.
"""

import dataclasses
import math
from typing import Any, Mapping


MAX_RESOLUTION = 2 ** 14


def _is_int(value) -> bool:
  return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
  """Architecture of G (mapping + synthesis) and D. Defaults are the official FFHQ 1024² networks."""

  resolution: int = 1024            # output/input image side; a power of two from 4 to 2**14 (square only)
  num_channels: int = 3             # image channels
  label_size: int = 0               # conditioning labels (one-hot or multi-hot), 0 = unconditional
  # Feature maps: nf(stage) = min(int(fmap_base / 2**(stage * fmap_decay)), fmap_max).
  fmap_base: int = 8192
  fmap_decay: float = 1.0
  fmap_max: int = 512
  # Mapping network.
  latent_size: int = 512            # z
  dlatent_size: int = 512           # w
  mapping_layers: int = 8
  mapping_fmaps: int = 512          # width of the hidden mapping layers
  mapping_lrmul: float = 0.01
  normalize_latents: bool = True    # pixel norm of [z, label embedding]
  # Synthesis and discriminator.
  use_wscale: bool = True           # equalized learning rate
  use_noise: bool = True            # per-layer noise inputs
  use_instance_norm: bool = True
  use_pixel_norm: bool = False      # pixel norm in the synthesis epilogue (off in StyleGAN)
  blur: bool = True                 # the [1,2,1] low-pass filter around up/down-sampling
  fused_scale: Any = 'auto'         # True, False or 'auto' (fused up/down-conv from 128² up)
  mbstd_group_size: int = 4         # 0 or 1 disables minibatch stddev
  mbstd_num_features: int = 1

  def __post_init__(self):
    errors = []
    if not _is_int(self.resolution) or not 4 <= self.resolution <= MAX_RESOLUTION or \
        self.resolution & (self.resolution - 1):
      errors.append(f'resolution must be a power of two from 4 to {MAX_RESOLUTION}, got {self.resolution!r}')
    for name in ('num_channels', 'latent_size', 'dlatent_size', 'mapping_layers', 'mapping_fmaps', 'fmap_base',
                 'fmap_max', 'mbstd_num_features'):
      if not _is_int(getattr(self, name)) or getattr(self, name) < 1:
        errors.append(f'{name} must be a positive integer, got {getattr(self, name)!r}')
    for name in ('label_size', 'mbstd_group_size'):
      if not _is_int(getattr(self, name)) or getattr(self, name) < 0:
        errors.append(f'{name} must be a non-negative integer, got {getattr(self, name)!r}')
    if not _is_real(self.fmap_decay) or not 0 <= self.fmap_decay <= 10:
      errors.append(f'fmap_decay must be a number from 0 to 10, got {self.fmap_decay!r}')
    if not _is_real(self.mapping_lrmul) or not 0 < self.mapping_lrmul < math.inf:
      errors.append(f'mapping_lrmul must be a positive finite number, got {self.mapping_lrmul!r}')
    for name in ('normalize_latents', 'use_wscale', 'use_noise', 'use_instance_norm', 'use_pixel_norm', 'blur'):
      if not isinstance(getattr(self, name), bool):
        errors.append(f'{name} must be true or false, got {getattr(self, name)!r}')
    if self.fused_scale not in (True, False, 'auto') or not isinstance(self.fused_scale, (bool, str)):
      errors.append(f"fused_scale must be True, False or 'auto', got {self.fused_scale!r}")
    if errors:
      raise ValueError('Invalid network config: ' + '; '.join(errors))

  @classmethod
  def from_dict(cls, values: Mapping[str, Any]) -> 'NetworkConfig':
    """Builds a config from a dict or ConfigDict, refusing unknown keys by name."""
    values = dict(values)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
      raise ValueError(f'Unknown network config keys: {unknown}. Known keys: {sorted(known)}')
    return cls(**values)

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  @property
  def resolution_log2(self) -> int:
    return int(math.log2(self.resolution))

  @property
  def num_layers(self) -> int:
    """Synthesis layers (two per resolution from 4²), = number of dlatent rows."""
    return 2 * self.resolution_log2 - 2

  def nf(self, stage: int) -> int:
    """Feature maps of a stage; blocks at resolution 2**r use nf(r - 1)."""
    return min(int(self.fmap_base / (2.0 ** (stage * self.fmap_decay))), self.fmap_max)

  def fused(self, res_log2: int) -> bool:
    """Whether the block at resolution 2**res_log2 uses a fused up-conv (G) / down-conv (D)."""
    if self.fused_scale == 'auto':
      return 2 ** res_log2 >= 128
    return bool(self.fused_scale)

  def max_lod(self) -> int:
    """The largest meaningful lod: the 4² level."""
    return self.resolution_log2 - 2
