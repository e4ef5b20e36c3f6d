"""Synthetic datasets: N images from a generator, as a folder another project can train on, and prepared.

Layout of the output directory:
  images/seed<SEED>.png  one PNG per image (written atomically: a temporary file, then renamed)
  samples.csv            path,label,seed,psi,cutoff: one row per image, in seed order (path relative to images/;
                         label the class id, empty for unconditional models; cutoff empty = all layers). It is
                         also the labels file of the image-folder preparation.
  manifest.json          the model (path and sha256), the options, and `complete` once every image is written

Image i has seed `first_seed + i`: latent `RandomState(seed).randn(latent_size)`, random noise id = seed (see
sampling.py), so an image depends only on its seed, label and options, not on N, the batch or the devices.
Classes follow `class_plan`: each next image takes the class furthest below its share of the images so far, so
balanced classes cycle 0, 1, ..., K-1 and the plan for N images is the start of the plan for more.

Resuming: a rerun with the same model and options skips every image already written that decodes to the right
shape, and writes the rest; other options are refused (a new directory, or --overwrite).
"""

import csv
import dataclasses
import hashlib
import json
import os
import pathlib
import shutil
from typing import Callable, Optional, Sequence

import numpy as np
from PIL import Image

from stylegan_jax import errors, sampling

MANIFEST = 'manifest.json'
SAMPLES = 'samples.csv'
IMAGES = 'images'


@dataclasses.dataclass(frozen=True)
class Options:
  """What decides the images (recorded in the manifest; a resume must match)."""
  num_images: int
  first_seed: int = 0
  psi: float = 1.0
  cutoff: Optional[int] = None
  noise_mode: str = 'random'
  noise_seed: int = 0
  proportions: Optional[tuple] = None  # per class; None = balanced (conditional models)


def class_plan(num_images: int, proportions: Sequence[float]) -> np.ndarray:
  """Class ids [num_images]: image i takes the class k maximising p_k * (i + 1) - count_k (ties: lowest k), so
  every class count stays within 1 of its share and the plan of N images is a prefix of the plan of more."""
  p = np.asarray(proportions, np.float64)
  p = p / p.sum()
  counts = np.zeros(len(p))
  plan = np.empty(num_images, np.int64)
  for i in range(num_images):
    k = int(np.argmax(p * (i + 1) - counts))
    plan[i] = k
    counts[k] += 1
  return plan


def sha256(path: os.PathLike) -> str:
  """sha256 of a file; of a directory (an artifact): over its files' relative paths and sha256s, sorted."""
  path = pathlib.Path(path)
  if path.is_file():
    with open(path, 'rb') as f:
      return hashlib.file_digest(f, 'sha256').hexdigest()
  digest = hashlib.sha256()
  for file in sorted(p for p in path.rglob('*') if p.is_file()):
    digest.update(file.relative_to(path).as_posix().encode() + b'\0')
    with open(file, 'rb') as f:
      digest.update(hashlib.file_digest(f, 'sha256').digest())
  return digest.hexdigest()


def _valid_png(path: pathlib.Path, shape: tuple) -> bool:
  try:
    with Image.open(path) as img:
      img.load()
      return img.format == 'PNG' and (img.height, img.width, len(img.getbands())) == shape
  except (OSError, SyntaxError, ValueError):
    return False


def _save_atomic(image: np.ndarray, path: pathlib.Path) -> None:
  tmp = path.with_name(f'.{path.name}.tmp')
  sampling.to_pil(image).save(tmp, format='PNG')
  os.replace(tmp, path)


def write(sampler: sampling.Sampler, network_path: os.PathLike, outdir: os.PathLike, options: Options, *,
          overwrite: bool = False, progress: Optional[Callable[[int], None]] = None) -> dict:
  """Writes (or completes) the synthetic dataset in `outdir`; returns the manifest. `progress(n)` after each
  batch of n images written or found valid."""
  cfg = sampler.config
  outdir = pathlib.Path(outdir)
  if options.num_images < 1:
    raise errors.UsageError(f'the number of images must be >= 1, got {options.num_images}')
  if cfg.label_size:
    proportions = options.proportions or (1.0,) * cfg.label_size
    if len(proportions) != cfg.label_size or min(proportions) < 0 or sum(proportions) <= 0:
      raise errors.UsageError(f'class proportions need {cfg.label_size} non-negative numbers, not all zero; '
                              f'got {list(proportions)}')
    labels = class_plan(options.num_images, proportions)
  elif options.proportions is not None:
    raise errors.UsageError('class proportions apply to conditional models; this generator is unconditional')
  else:
    labels = None
  manifest = {'format': 'stylegan-jax-synthetic-dataset', 'network': os.path.abspath(network_path),
              'network_sha256': sha256(network_path), 'options': dataclasses.asdict(options),
              'resolution': cfg.resolution, 'num_channels': cfg.num_channels, 'label_size': cfg.label_size}
  manifest_path = outdir / MANIFEST
  if manifest_path.exists() and overwrite:
    shutil.rmtree(outdir)
  elif manifest_path.exists():
    old = json.loads(manifest_path.read_text())
    if {k: v for k, v in old.items() if k != 'complete'} != json.loads(json.dumps(manifest)):
      raise errors.UserError(f'{outdir} holds a synthetic dataset of another model or other options (see its '
                             f'{MANIFEST}): choose a new directory, or pass --overwrite to replace it')
  elif outdir.exists() and any(outdir.iterdir()):
    raise errors.UserError(f'{outdir} exists and is not a synthetic dataset: choose a new or empty directory')
  (outdir / IMAGES).mkdir(parents=True, exist_ok=True)
  manifest_path.write_text(json.dumps({**manifest, 'complete': False}, indent=1) + '\n')

  seeds = np.arange(options.num_images, dtype=np.int64) + options.first_seed
  paths = [outdir / IMAGES / f'seed{s:08d}.png' for s in seeds]
  shape = (cfg.resolution, cfg.resolution, cfg.num_channels)
  step = sampler.batch_size * 16
  for start in range(0, len(seeds), step):
    todo = [i for i in range(start, min(start + step, len(seeds))) if not _valid_png(paths[i], shape)]
    if todo:
      images = sampler.generate(seeds[todo].tolist(), labels=None if labels is None else labels[todo],
                                psi=options.psi, cutoff=options.cutoff, noise_mode=options.noise_mode,
                                noise_seed=options.noise_seed)
      for i, image in zip(todo, images):
        _save_atomic(image, paths[i])
    if progress is not None:
      progress(min(step, len(seeds) - start))
  with open(outdir / f'.{SAMPLES}.tmp', 'w', newline='') as f:
    rows = csv.writer(f)
    rows.writerow(['path', 'label', 'seed', 'psi', 'cutoff'])
    for i, (seed, path) in enumerate(zip(seeds, paths)):
      rows.writerow([path.name, '' if labels is None else int(labels[i]), int(seed), options.psi,
                     '' if options.cutoff is None else options.cutoff])
  os.replace(outdir / f'.{SAMPLES}.tmp', outdir / SAMPLES)
  manifest['complete'] = True
  manifest_path.write_text(json.dumps(manifest, indent=1) + '\n')
  return manifest


def data_config(outdir: os.PathLike, manifest: dict, data_dir: str, name: str = ''):
  """The image-folder data config that prepares `outdir` (labels from samples.csv for conditional models)."""
  from stylegan_jax.data import config as config_lib  # noqa: PLC0415 (TensorFlow only when preparing)
  outdir = pathlib.Path(outdir).absolute()
  config = config_lib.get_data_config()
  config.update(name=config_lib.IMAGE_FOLDER, source_dir=str(outdir / IMAGES), folder_name=name or outdir.name,
                data_dir=data_dir, resolution=manifest['resolution'], num_channels=manifest['num_channels'],
                labels=str(outdir / SAMPLES) if manifest['label_size'] else 'none')
  return config
