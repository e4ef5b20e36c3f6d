"""Lower resolutions for progressive growing: the official 2x2 box filter.

As NVIDIA's `dataset_tool.py` (TFRecordExporter.add_image): each level is the
2x2 average of the previous level's *unrounded* values, and each level is
rounded once (`np.rint`, clip to [0, 255], uint8). So the level at resolution
R / 2^k is the (2^k x 2^k) block mean of the full-resolution image, rounded once.
Computed in float64, where these averages are exact (the official float32 can
differ by one at exact .5 ties in deep levels).
"""

import numpy as np

MIN_RESOLUTION = 4


def level_resolutions(resolution: int) -> list[int]:
  """[4, 8, ..., resolution] for a power-of-two resolution >= 4."""
  if resolution < MIN_RESOLUTION or resolution & (resolution - 1):
    raise ValueError(f'resolution must be a power of two >= {MIN_RESOLUTION}, got {resolution}')
  return [2**k for k in range(2, resolution.bit_length())]


def box_filter_levels(image: np.ndarray) -> dict[int, np.ndarray]:
  """uint8 [R, R, C] -> {r: uint8 [r, r, C] for r in level_resolutions(R)}."""
  resolution = image.shape[0]
  if image.dtype != np.uint8 or image.ndim != 3 or image.shape[1] != resolution:
    raise ValueError(f'expected a square uint8 [R, R, C] image, got {image.dtype} {image.shape}')
  levels = {resolution: image}
  x = image.astype(np.float64)
  for r in reversed(level_resolutions(resolution)[:-1]):
    x = (x[0::2, 0::2] + x[0::2, 1::2] + x[1::2, 0::2] + x[1::2, 1::2]) * 0.25
    levels[r] = np.rint(x).clip(0, 255).astype(np.uint8)
  return levels
