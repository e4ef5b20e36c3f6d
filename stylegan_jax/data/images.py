"""Decoding one source image into a uint8 [R, R, C] array, and PNG bytes.

The conversion policy, applied in this order:

1. The file is decoded completely (`Image.load()`), so truncated and corrupt
   files fail here, at prepare time. Files that cannot be read (dangling or
   looping symlinks) and images of more than MAX_PIXELS pixels (PIL's
   decompression-bomb limit, read from the header) are bad files. Multi-frame files (GIF, animated WebP)
   use their first frame. EXIF orientation is applied.
2. Mode: alpha (RGBA, LA, palette or gray/RGB with a transparency key) is
   composited on black, i.e. premultiplied: `round(c * a / 255)`; transparent
   areas become black like the letterbox bars. 16-bit gray is scaled to 8 bit
   (`round(v / 257)`). Bilevel, palette, CMYK and YCbCr go through PIL's RGB/L
   conversion. Float images (mode F) are rejected.
3. Channels: gray -> RGB replicates; RGB -> gray uses PIL's 'L' conversion,
   the ITU-R 601-2 luma L = R * 299/1000 + G * 587/1000 + B * 114/1000.
4. Geometry, to a R x R square: 'center' crops the central min(H, W) square;
   'letterbox' fits the longer side to R and pads the shorter one with black,
   centered (640x480 at R=512 -> 512x384 with 64-pixel bars top and bottom, as
   the official 512x384 cars setup). Resampling is Lanczos, only when the size
   changes.
5. An image whose square (center: the shorter side; letterbox: the longer side)
   is smaller than R is rejected, never upscaled: upscaled images would teach
   the generator blur.

Every rejection raises `BadImageError` with a one-line reason.
"""

import io
import os

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from stylegan_jax import errors

CROPS = ('center', 'letterbox')
EXTENSIONS = ('.png', '.jpg', '.jpeg', '.webp')
# Larger images are bad files (checked from the header, before decoding): PIL's decompression-bomb limit, which
# bounds a worker's memory to about 4 bytes per pixel of it (~360 MB) plus the conversions' row chunks.
MAX_PIXELS = Image.MAX_IMAGE_PIXELS
_ROWS = 256  # rows composited at a time


class BadImageError(errors.UserError, ValueError):
  """A source image that cannot be used; str(error) is the reason."""


def load_image(source: str | os.PathLike | bytes, *, resolution: int, num_channels: int,
               crop: str) -> np.ndarray:
  """Decodes a file path or encoded bytes to uint8 [resolution, resolution, num_channels]."""
  if crop not in CROPS:
    raise ValueError(f'crop must be one of {CROPS}, got {crop!r}')
  if num_channels not in (1, 3):
    raise ValueError(f'num_channels must be 1 or 3, got {num_channels}')
  try:
    size = len(source) if isinstance(source, bytes) else os.path.getsize(source)
  except OSError as e:  # a dangling or looping symlink, a file gone or unreadable
    raise BadImageError(f'cannot read: [Errno {e.errno}] {e.strerror}') from e
  if not size:
    raise BadImageError('empty file (0 bytes)')
  try:
    with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as img:
      if img.width * img.height > MAX_PIXELS:
        raise BadImageError(f'image is {img.width}x{img.height} = {img.width * img.height} pixels, more than the '
                            f'limit of {MAX_PIXELS} (PIL\'s decompression-bomb limit): downscale it first')
      img.load()
      ImageOps.exif_transpose(img, in_place=True)
      array = _to_uint8(img)
  except BadImageError:
    raise
  except UnidentifiedImageError as e:
    raise BadImageError('cannot decode: not a recognized image format') from e
  except Exception as e:  # PIL raises many types (OSError, SyntaxError, ValueError, ...).
    raise BadImageError(f'cannot decode: {type(e).__name__}: {e}') from e
  return _to_square(_to_channels(array, num_channels), resolution, crop)


def _to_uint8(img: Image.Image) -> np.ndarray:
  """PIL image -> uint8 [H, W, 1] (gray) or [H, W, 3] (RGB), alpha composited on black."""
  if img.mode.startswith('I'):  # 16/32-bit integer gray (e.g. 16-bit PNG).
    gray = np.asarray(img).astype(np.float64)
    return np.rint(np.clip(gray, 0, 65535) / 257.0).astype(np.uint8)[..., None]
  if img.mode == 'F':
    raise BadImageError('unsupported float image (mode F)')
  has_alpha = 'A' in img.getbands() or 'transparency' in img.info
  if has_alpha:  # round(c * a / 255) = (c * a + 127) // 255 exactly (c * a is an integer), in uint16 row chunks
    rgba = np.asarray(img if img.mode == 'RGBA' else img.convert('RGBA'))
    rgb = np.empty(rgba.shape[:2] + (3,), np.uint8)
    for top in range(0, rgba.shape[0], _ROWS):
      chunk = rgba[top:top + _ROWS].astype(np.uint16)
      rgb[top:top + _ROWS] = (chunk[..., :3] * chunk[..., 3:] + 127) // 255
    return rgb
  if img.mode in ('1', 'L'):
    return np.asarray(img.convert('L'))[..., None]
  return np.asarray(img.convert('RGB'))


def _to_channels(array: np.ndarray, num_channels: int) -> np.ndarray:
  if array.shape[-1] == num_channels:
    return array
  if num_channels == 3:
    return np.repeat(array, 3, axis=-1)
  return np.asarray(Image.fromarray(array, 'RGB').convert('L'))[..., None]


def _to_square(array: np.ndarray, resolution: int, crop: str) -> np.ndarray:
  """uint8 [H, W, C] -> uint8 [resolution, resolution, C]."""
  h, w, c = array.shape
  side = min(h, w) if crop == 'center' else max(h, w)
  if side < resolution:
    raise BadImageError(f'image is {w}x{h}, too small for {resolution}x{resolution} '
                        f'({crop} needs {"the shorter" if crop == "center" else "the longer"} '
                        f'side >= {resolution}); not upscaled')
  img = Image.fromarray(array[..., 0] if c == 1 else array)
  if crop == 'center':
    left, top = (w - side) // 2, (h - side) // 2
    img = img.crop((left, top, left + side, top + side))
    if side != resolution:
      img = img.resize((resolution, resolution), Image.Resampling.LANCZOS)
  else:
    new_w, new_h = round(w * resolution / side), round(h * resolution / side)
    if (new_w, new_h) != (w, h):
      img = img.resize((new_w, new_h), Image.Resampling.LANCZOS)
    canvas = Image.new(img.mode, (resolution, resolution), 0)
    canvas.paste(img, ((resolution - new_w) // 2, (resolution - new_h) // 2))
    img = canvas
  return np.asarray(img).reshape(resolution, resolution, c)


def encode_png(array: np.ndarray) -> bytes:
  """uint8 [H, W, 1 or 3] -> PNG bytes (gray or RGB)."""
  buffer = io.BytesIO()
  Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(buffer, format='PNG')
  return buffer.getvalue()


def decode_png(data: bytes, num_channels: int) -> np.ndarray:
  """PNG bytes -> uint8 [H, W, num_channels]."""
  with Image.open(io.BytesIO(data)) as img:
    array = np.asarray(img)
  return array.reshape(array.shape[0], array.shape[1], num_channels)
