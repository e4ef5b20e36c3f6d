"""A training config for a prepared dataset, with no config file: `stylegan-jax train --data=DIR --workdir=W`.

The model's resolution, channels and label size are the dataset's. The rest suits the resolution and the kind of
device:
  cpu        the quickstart (configs/default.py): its networks (fmap_base 512, fmap_max 128, 128-d latents,
             4 mapping layers) and training settings (minibatch 16, learning rates 0.002, R1 gamma 10 on every
             16th D step, Gs half-life 1 kimg ramped up over the first 20 kimg); growing
             from 8x8 with fade-in and stable phases of P kimg, P = 50 / (2 n) rounded down to 0.5 for n
             doublings from 8 to the resolution, so full resolution is stable (after 2 n phases) by kimg 50;
             a tick every 2 kimg.
  gpu, tpu   the official setup (configs/official.py) for the device count (its 1/2/4/8-GPU minibatch tables,
             rounded up to a multiple of the devices): official networks, learning rates, ticks and losses;
             600-kimg phases from 8x8.
The run is twice as long as the growing (total_kimg = 4 n P): ~100 kimg on CPU, as the quickstart. Mirror
augmentation is off on every device (a folder's content may not be left-right symmetric: mirroring Fashion-MNIST
costs the quickstart most of its domain FD); `--config.train.mirror_augment=True` suits faces, as FFHQ's config.
Any value can still be overridden (`--config.train.total_kimg=300`).
"""

import math

import ml_collections

from stylegan_jax.configs import default, official

CPU_STABLE_KIMG = 50.0  # on CPU, full resolution is stable after about this many kimg


def _growth_steps(resolution: int, initial: int = 8) -> int:
  """Doublings from the initial stage to `resolution` (0 when the dataset is no larger than the first stage)."""
  return max(int(math.log2(resolution)) - int(math.log2(initial)), 0)


def config_for_dataset(data: ml_collections.ConfigDict, *, label_size: int, device_kind: str,
                       num_devices: int) -> ml_collections.ConfigDict:
  """A full training config for the prepared dataset `data` (a data config, e.g.
  datasets.data_config_from_directory) with `label_size` classes (0: unconditional), on `num_devices` devices
  of `device_kind` ('cpu', 'gpu' or 'tpu')."""
  resolution = data.resolution
  n = _growth_steps(resolution)
  if device_kind == 'cpu':
    config = default.get_config()
    phase = math.floor(CPU_STABLE_KIMG / n) / 2 if n else CPU_STABLE_KIMG
    minibatch = math.ceil(config.schedule.minibatch_base / num_devices) * num_devices
    config.schedule.update(lod_training_kimg=phase, lod_transition_kimg=phase, minibatch_base=minibatch,
                           G_lrate_base=0.002, D_lrate_base=0.002, tick_kimg_base=2.0)
    config.schedule.G_lrate_dict, config.schedule.D_lrate_dict = {}, {}  # 0.002 at every stage
  else:
    tables = sorted(official.MINIBATCH)
    config = official.official_config(resolution, num_gpus=max([k for k in tables if k <= num_devices] or [1]),
                                      mirror_augment=False)
    rounded = {k: math.ceil(v / num_devices) * num_devices for k, v in config.schedule.minibatch_dict.items()}
    config.schedule.update(minibatch_base=math.ceil(config.schedule.minibatch_base / num_devices) * num_devices,
                           minibatch_dict=rounded)
  phase = config.schedule.lod_training_kimg
  config.train.total_kimg = float(2 * phase * max(2 * n, 1))  # twice the kimg where full resolution is stable
  config.schedule.lod_initial_resolution = min(8, resolution)
  config.model.update(resolution=resolution, num_channels=data.num_channels, label_size=label_size)
  config.data = ml_collections.ConfigDict(data.to_dict())
  return config


def describe(config: ml_collections.ConfigDict, device_kind: str) -> str:
  """Lines that say what `config_for_dataset` chose (with any overrides applied since)."""
  m, s = config.model, config.schedule
  stages = _stages(s.lod_initial_resolution, m.resolution)
  phases = f'{s.lod_training_kimg:g}-kimg stable and {s.lod_transition_kimg:g}-kimg fade-in phases'
  minibatch = s.minibatch_base if not s.minibatch_dict else 'per resolution (official table)'
  ticks = list(s.tick_kimg_dict.values())
  tick = f'{min(ticks):g}-{max(ticks):g} (per resolution)' if ticks else f'{s.tick_kimg_base:g}'
  full = ''
  if len(stages) > 1:
    fade_in = (len(stages) - 1) * s.lod_training_kimg + (len(stages) - 2) * s.lod_transition_kimg
    full = (f'; {m.resolution}x{m.resolution} fades in from kimg {fade_in:g} and is stable from kimg '
            f'{fade_in + s.lod_transition_kimg:g}')
  return '\n'.join([
      f'  networks  fmap_base {m.fmap_base}, fmap_max {m.fmap_max}, {m.latent_size}-d latents, '
      f'{m.mapping_layers} mapping layers' + ('' if device_kind == 'cpu' else ' (official)'),
      f'  schedule  {" -> ".join(f"{r}x{r}" for r in stages)}: {phases}, minibatch {minibatch}{full}',
      f'  length    {config.train.total_kimg:g} kimg, a tick (metrics, sample grid) every {tick} kimg, a checkpoint '
      f'every {config.train.checkpoint_kimg:g} kimg',
      '  augment   ' + ('mirrored left-right at random' if config.train.mirror_augment else
                         'none (--config.train.mirror_augment=True for left-right symmetric content, e.g. faces)'),
  ])


def _stages(initial: int, resolution: int) -> list[int]:
  return [2 ** k for k in range(int(math.log2(initial)), int(math.log2(resolution)) + 1)]
