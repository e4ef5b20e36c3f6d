"""The StyleGAN paper's sampling figures, from any generator (as NVIDIA's `generate_figures.py`).

Each figure function takes a `sampling.Sampler` and returns a uint8 canvas [H, W, C] (white background, C the
model's channels), or frames [F, H, W, C] for interpolations. Seeds give latents as in `sampling`.

  style_mixing_figure  Fig. 3: top row = column sources, left column = row sources; cell (r, c) is row source r
                       with the layers of style range r taken from column source c (const noise)
  truncation_figure    Fig. 8: one row per seed, one column per psi (all layers unless cutoff; const noise)
  noise_figure         Fig. 4: one row per seed: a few random-noise draws of the same dlatents, then the per-pixel
                       standard deviation over `num_samples` draws
  interpolation_frames latent walks through seeds: slerp in z or lerp in w; `save_animation` writes GIF or MP4
"""

import os
import pathlib
import re
import shutil
import subprocess
from typing import Optional, Sequence, Union

import numpy as np

from stylegan_jax import sampling

# Layer ranges of the paper's style-mixing figure, by resolution: coarse 4²-8², middle 16²-32², fine 64² and up.
STYLE_PRESETS = {'coarse': (0, 4), 'middle': (4, 8), 'fine': (8, None)}
PAPER_STYLES = ('coarse',) * 3 + ('middle',) * 2 + ('fine',)  # the rows of the paper's figure 3


def style_range(spec: str, num_layers: int) -> range:
  """A layer range from a preset name ('coarse', 'middle', 'fine') or 'a-b' / 'a' (inclusive layer indices)."""
  if spec in STYLE_PRESETS:
    start, stop = STYLE_PRESETS[spec]
    stop = num_layers if stop is None else min(stop, num_layers)
  elif m := re.fullmatch(r'(\d+)(?:-(\d+))?', spec.strip()):
    start = int(m.group(1))
    stop = int(m.group(2) or start) + 1
    if stop > num_layers:
      raise ValueError(f'style range {spec!r} goes past the last layer ({num_layers - 1})')
  else:
    raise ValueError(f"style range must be one of {sorted(STYLE_PRESETS)} or 'a-b', got {spec!r}")
  if start >= stop:
    raise ValueError(f'style range {spec!r} selects no layer of this {num_layers}-layer generator')
  return range(start, stop)


def mix_styles(row_dlatents: np.ndarray, col_dlatents: np.ndarray, ranges: Sequence[range]) -> np.ndarray:
  """[R, L, D] and [C, L, D] -> [R, C, L, D]: row r's dlatents with layers ranges[r] from each column's."""
  mixed = np.repeat(row_dlatents[:, None], len(col_dlatents), axis=1)
  for r, layers in enumerate(ranges):
    mixed[r][:, layers] = col_dlatents[:, layers]
  return mixed


def _canvas(rows: int, cols: int, h: int, w: int, c: int) -> np.ndarray:
  return np.full((rows * h, cols * w, c), 255, np.uint8)


def _paste(canvas: np.ndarray, image: np.ndarray, row: int, col: int) -> None:
  h, w = image.shape[:2]
  canvas[row * h:(row + 1) * h, col * w:(col + 1) * w] = image


def check_dlatents(sampler: sampling.Sampler, dlatents: np.ndarray, what: str = 'dlatents') -> np.ndarray:
  """dlatents as float32 [N, num_layers, dlatent_size] (e.g. a projection's), or a ValueError naming `what`."""
  cfg = sampler.config
  dlatents = np.asarray(dlatents, np.float32)
  if dlatents.ndim != 3 or dlatents.shape[1:] != (cfg.num_layers, cfg.dlatent_size) or not len(dlatents):
    raise ValueError(f'{what} must be [N >= 1, {cfg.num_layers}, {cfg.dlatent_size}] for this generator, '
                     f'got {list(dlatents.shape)}')
  return dlatents


def _keyframes(sampler, seeds, dlatents, labels, psi, cutoff, what: str) -> np.ndarray:
  """The dlatents of seeds (mapped, truncated) or the given dlatents (used as they are); exactly one."""
  if (seeds is None) == (dlatents is None):
    raise ValueError(f'give the {what} as seeds or as dlatents (exactly one)')
  if dlatents is not None:
    return check_dlatents(sampler, dlatents, what)
  return sampler.map_seeds(seeds, labels, psi=psi, cutoff=cutoff)


def style_mixing_figure(sampler: sampling.Sampler, row_seeds: Optional[Sequence[int]],
                        col_seeds: Optional[Sequence[int]], styles: Union[str, Sequence[str]] = PAPER_STYLES, *,
                        row_dlatents: Optional[np.ndarray] = None, col_dlatents: Optional[np.ndarray] = None,
                        labels=None, psi: float = 1.0, cutoff: Optional[int] = None,
                        noise_mode: str = 'const') -> np.ndarray:
  """Style-mixing grid [(R+1) * H, (C+1) * W, ch]. `styles`: one style range spec for all rows (a string or a
  list of one), or one per row.

  Each side is seeds or dlatents [N, L, D] (e.g. projected real images: a real image's coarse styles into
  another); labels and truncation apply to the seeds' mapping only, labels one per seed of both sides.
  """
  num_layers = sampler.config.num_layers
  for side, seeds, dlatents in (('row', row_seeds, row_dlatents), ('column', col_seeds, col_dlatents)):
    if (seeds is None) == (dlatents is None):
      raise ValueError(f'give the {side} sources as seeds or as dlatents (exactly one)')
  seeds = list(row_seeds or []) + list(col_seeds or [])
  mapped = sampler.map_seeds(seeds, labels, psi=psi, cutoff=cutoff) if seeds else None
  rows = check_dlatents(sampler, row_dlatents, 'row dlatents') if row_seeds is None else mapped[:len(row_seeds)]
  cols = (check_dlatents(sampler, col_dlatents, 'column dlatents') if col_seeds is None
          else mapped[len(seeds) - len(col_seeds):])
  styles = [styles] if isinstance(styles, str) else list(styles)
  styles = styles * len(rows) if len(styles) == 1 else styles
  if len(styles) != len(rows):
    raise ValueError(f'give one style range, or one per row source ({len(rows)}), got {len(styles)}')
  ranges = [style_range(s, num_layers) for s in styles]
  mixed = mix_styles(rows, cols, ranges).reshape(-1, num_layers, sampler.config.dlatent_size)
  images = sampler.synthesize(np.concatenate([rows, cols, mixed]), noise_mode=noise_mode)
  r, c = len(rows), len(cols)
  canvas = _canvas(r + 1, c + 1, *images.shape[1:])
  for i in range(r):
    _paste(canvas, images[i], i + 1, 0)
  for j in range(c):
    _paste(canvas, images[r + j], 0, j + 1)
  for k, image in enumerate(images[r + c:]):
    _paste(canvas, image, k // c + 1, k % c + 1)
  return canvas


def truncation_figure(sampler: sampling.Sampler, seeds: Sequence[int],
                      psis: Sequence[float] = (1, 0.7, 0.5, 0, -0.5, -1), *, cutoff: Optional[int] = None,
                      labels=None, noise_mode: str = 'const') -> np.ndarray:
  """Truncation sweep [len(seeds) * H, len(psis) * W, ch]: w' = avg + psi * (w - avg) on layers < cutoff."""
  dlatents = sampler.map_seeds(seeds, labels)  # [S, L, D]
  avg = sampler.dlatent_avg
  psi = np.asarray(psis, np.float32)[None, :, None, None]
  truncated = np.where(psi == 1, dlatents[:, None], avg + psi * (dlatents[:, None] - avg))  # [S, P, L, D]
  if cutoff is not None:
    keep = np.arange(sampler.config.num_layers) >= cutoff
    truncated[:, :, keep] = dlatents[:, None, keep]
  images = sampler.synthesize(truncated.reshape(-1, *dlatents.shape[1:]), noise_mode=noise_mode)
  canvas = _canvas(len(seeds), len(psis), *images.shape[1:])
  for k, image in enumerate(images):
    _paste(canvas, image, k // len(psis), k % len(psis))
  return canvas


def noise_std(images: np.ndarray) -> np.ndarray:
  """Float images [N, H, W, C] (nominal [-1, 1]) -> per-pixel std over N of the channel mean, in 0..255 units.

  Computed in float64, so a pixel that noise does not change has a std of exactly 0.
  """
  return np.std(np.mean(images, axis=-1, dtype=np.float64) * 127.5, axis=0)


def noise_figure(sampler: sampling.Sampler, seeds: Sequence[int], *, num_samples: int = 100, num_show: int = 4,
                 labels=None, psi: float = 1.0, cutoff: Optional[int] = None, noise_seed: int = 0) -> np.ndarray:
  """Noise variation [len(seeds) * H, (num_show + 1) * W, ch]: per seed, `num_show` random-noise draws, then
  the std image over `num_samples` draws, scaled so its maximum over the figure is white (all-zero stays black).
  The official figure instead shows 4 * std on the same 0..255 scale, unnormalised."""
  if num_samples < 2 or not 0 <= num_show <= num_samples:
    raise ValueError(f'need num_samples >= 2 and 0 <= num_show <= num_samples, got {num_samples}, {num_show}')
  dlatents = sampler.map_seeds(seeds, labels, psi=psi, cutoff=cutoff)
  shown, stds = [], []
  for row in range(len(seeds)):
    images = sampler.synthesize(np.repeat(dlatents[row:row + 1], num_samples, axis=0), noise_mode='random',
                                noise_seed=noise_seed, noise_ids=np.arange(num_samples), uint8=False)
    shown.append(sampling.to_uint8(images[:num_show]))
    stds.append(noise_std(images))
  peak = max(float(s.max()) for s in stds)
  h, w = stds[0].shape
  canvas = _canvas(len(seeds), num_show + 1, h, w, sampler.config.num_channels)
  for row, (images, std) in enumerate(zip(shown, stds)):
    for col, image in enumerate(images):
      _paste(canvas, image, row, col)
    gray = np.rint(std * (255.0 / peak)) if peak > 0 else np.zeros_like(std)
    _paste(canvas, np.repeat(gray.astype(np.uint8)[..., None], canvas.shape[-1], axis=-1), row, num_show)
  return canvas


def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
  """Spherical interpolation of rows a, b [N, D] at t [N] (lerp where they are parallel)."""
  cos = np.sum(a * b, -1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
  omega = np.arccos(np.clip(cos, -1.0, 1.0))[:, None]
  t = np.asarray(t, np.float64)[:, None]
  sin = np.sin(omega)
  parallel = sin < 1e-6
  safe = np.where(parallel, 1.0, sin)
  out = np.where(parallel, a + (b - a) * t, (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / safe)
  return out.astype(np.float32)


def interpolation_frames(sampler: sampling.Sampler, seeds: Optional[Sequence[int]], num_frames: int, *,
                         space: str = 'z', loop: bool = False, dlatents: Optional[np.ndarray] = None, labels=None,
                         psi: float = 1.0, cutoff: Optional[int] = None, noise_mode: str = 'const',
                         noise_seed: int = 0) -> np.ndarray:
  """uint8 frames [num_frames, H, W, C] walking through the seeds' latents at constant speed per segment.

  space 'z': slerp of the latents, then mapping; 'w': lerp of the (truncated) dlatents. Instead of seeds, the
  keyframes can be `dlatents` [K, L, D] (e.g. projected real images; space 'w', no mapping or truncation). The
  walk ends on the last keyframe, or with `loop` returns towards the first (the last frame is one step before
  it). Random noise is drawn once (the same for every frame), so the video does not flicker.
  """
  if space == 'w':
    w = _keyframes(sampler, seeds, dlatents, labels, psi, cutoff, 'keyframes')
    keys = len(w)
  elif space == 'z':
    if seeds is None or dlatents is not None:
      raise ValueError("space 'z' interpolates seeds; dlatent keyframes are interpolated in space 'w'")
    keys = len(seeds)
  else:
    raise ValueError(f"space must be 'z' or 'w', got {space!r}")
  if keys < 2 or num_frames < 2:
    raise ValueError(f'need at least 2 keyframes and 2 frames, got {keys} and {num_frames}')
  pos = np.arange(num_frames) * (keys / num_frames if loop else (keys - 1) / (num_frames - 1))
  start = np.minimum(np.floor(pos).astype(int), keys - 1 if loop else keys - 2)
  end, t = (start + 1) % keys, pos - start
  if space == 'z':
    z = sampler.latents(seeds)
    dlatents = sampler.map(slerp(z[start], z[end], t), labels, psi=psi, cutoff=cutoff)
  else:
    tt = t[:, None, None].astype(np.float32)
    dlatents = w[start] * (1 - tt) + w[end] * tt  # exactly the keyframes at t = 0 and t = 1
  return sampler.synthesize(dlatents, noise_mode=noise_mode, noise_seed=noise_seed,
                            noise_ids=np.zeros(num_frames, np.int64))


def save_animation(frames: np.ndarray, path: Union[str, os.PathLike], fps: float = 30.0) -> pathlib.Path:
  """Writes uint8 frames [F, H, W, C] as an animated GIF (Pillow) or, with an `ffmpeg` on PATH, an H.264 MP4.

  GIF note: Pillow merges identical consecutive frames into one longer frame.
  """
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  suffix = path.suffix.lower()
  if suffix == '.gif':
    images = [sampling.to_pil(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=max(1, round(1000 / fps)), loop=0)
  elif suffix == '.mp4':
    ffmpeg = shutil.which('ffmpeg')
    if ffmpeg is None:
      raise RuntimeError(f'writing {path.name} needs an ffmpeg binary on PATH: install ffmpeg '
                         '(e.g. apt-get install ffmpeg) or write a .gif instead')
    n, h, w, c = frames.shape
    pix_fmt = {1: 'gray', 3: 'rgb24', 4: 'rgba'}.get(c)
    if pix_fmt is None:
      raise ValueError(f'MP4 frames need 1, 3 or 4 channels, got {c}')
    cmd = [ffmpeg, '-y', '-loglevel', 'error', '-f', 'rawvideo', '-pix_fmt', pix_fmt, '-s', f'{w}x{h}',
           '-r', str(fps), '-i', '-', '-pix_fmt', 'yuv420p', str(path)]
    result = subprocess.run(cmd, input=np.ascontiguousarray(frames).tobytes(), capture_output=True)
    if result.returncode:
      raise RuntimeError(f'ffmpeg failed writing {path}: {result.stderr.decode(errors="replace").strip()}')
  else:
    raise ValueError(f'animation path must end in .gif or .mp4, got {path.name!r}')
  return path
