"""Source image conversion (modes, channels, crop/letterbox, bad files) and the box-filter levels."""

import io

import numpy as np
import pytest
from PIL import Image

from stylegan_jax.data.images import BadImageError, decode_png, encode_png, load_image
from stylegan_jax.data.levels import box_filter_levels, level_resolutions

RNG = np.random.default_rng(0)


def encode(image: Image.Image, fmt: str = 'PNG', **kwargs) -> bytes:
  buffer = io.BytesIO()
  image.save(buffer, fmt, **kwargs)
  return buffer.getvalue()


def rand_rgb(h, w):
  return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def load(data, resolution=8, num_channels=3, crop='center'):
  return load_image(data, resolution=resolution, num_channels=num_channels, crop=crop)


def test_rgb_center_crop_without_resize_is_exact():
  rgb = rand_rgb(8, 12)
  np.testing.assert_array_equal(load(encode(Image.fromarray(rgb))), rgb[:, 2:10])
  tall = rand_rgb(13, 8)  # Odd margin: the extra row goes to the bottom.
  np.testing.assert_array_equal(load(encode(Image.fromarray(tall))), tall[2:10])


def test_center_crop_resizes_with_lanczos():
  rgb = rand_rgb(16, 24)
  expected = np.asarray(Image.fromarray(rgb[:, 4:20]).resize((8, 8), Image.Resampling.LANCZOS))
  np.testing.assert_array_equal(load(encode(Image.fromarray(rgb))), expected)


def test_letterbox_fits_longer_side_and_pads_black_centered():
  # The official cars setup scaled down by 16: 40x30 -> 32x24 on a 32x32 canvas, 4-pixel bars.
  rgb = np.full((30, 40, 3), 200, np.uint8)
  out = load(encode(Image.fromarray(rgb)), resolution=32, crop='letterbox')
  assert out.shape == (32, 32, 3)
  assert (out[:4] == 0).all() and (out[28:] == 0).all()
  assert (out[4:28] == 200).all()
  portrait = load(encode(Image.fromarray(np.full((32, 16, 3), 99, np.uint8))), resolution=32,
                  crop='letterbox')
  assert (portrait[:, :8] == 0).all() and (portrait[:, 24:] == 0).all()
  assert (portrait[:, 8:24] == 99).all()


def test_rgba_is_composited_on_black():
  rgba = np.zeros((8, 8, 4), np.uint8)
  rgba[..., :3] = [200, 100, 51]
  rgba[..., 3] = 128
  rgba[0, 0, 3] = 0
  rgba[0, 1, 3] = 255
  out = load(encode(Image.fromarray(rgba, 'RGBA')))
  np.testing.assert_array_equal(out[1, 1], np.rint(np.array([200, 100, 51]) * 128 / 255))
  np.testing.assert_array_equal(out[0, 0], [0, 0, 0])
  np.testing.assert_array_equal(out[0, 1], [200, 100, 51])


def test_palette_with_transparency_and_gray_with_alpha():
  indices = np.zeros((8, 8), np.uint8)
  indices[:, 4:] = 1
  palette = Image.fromarray(indices, 'P')
  palette.putpalette([90, 90, 90, 10, 20, 30])
  out = load(encode(palette, transparency=0))  # Index 0 fully transparent -> black.
  np.testing.assert_array_equal(out[:, :4], 0)
  np.testing.assert_array_equal(out[:, 4:], np.broadcast_to([10, 20, 30], (8, 4, 3)))
  la = Image.fromarray(np.stack([np.full((8, 8), 100, np.uint8), np.full((8, 8), 51, np.uint8)], -1),
                       'LA')
  np.testing.assert_array_equal(load(encode(la), num_channels=1), 20)  # 100 * 51 / 255.


def test_gray_to_rgb_replicates_and_rgb_to_gray_is_itu_601_luma():
  gray = RNG.integers(0, 256, (8, 8), dtype=np.uint8)
  out = load(encode(Image.fromarray(gray)))
  np.testing.assert_array_equal(out, np.repeat(gray[..., None], 3, -1))
  rgb = rand_rgb(8, 8)
  luma = load(encode(Image.fromarray(rgb)), num_channels=1)
  assert luma.shape == (8, 8, 1)
  expected = rgb.astype(np.float64) @ [0.299, 0.587, 0.114]
  assert np.abs(luma[..., 0] - expected).max() <= 0.5 + 1e-6
  np.testing.assert_array_equal(luma[..., 0], np.asarray(Image.fromarray(rgb).convert('L')))


def test_16_bit_gray_is_scaled_to_8_bit():
  gray16 = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000)
  out = load(encode(Image.fromarray(gray16)), num_channels=1)
  np.testing.assert_array_equal(out[..., 0], np.rint(gray16 / 257).astype(np.uint8))


def test_cmyk_jpeg_and_webp_decode():
  rgb = np.full((8, 8, 3), [10, 200, 90], np.uint8)
  cmyk = load(encode(Image.fromarray(rgb).convert('CMYK'), 'JPEG', quality=100))
  assert np.abs(cmyk.astype(int) - rgb).max() < 12
  webp = load(encode(Image.fromarray(rgb), 'WEBP', lossless=True))
  np.testing.assert_array_equal(webp, rgb)


def test_exif_orientation_is_applied():
  img = np.zeros((8, 16, 3), np.uint8)
  img[:, :8] = 255  # Left half white.
  exif = Image.Exif()
  exif[0x0112] = 6  # Viewer rotates 90 degrees clockwise: white ends up on top.
  out = load(encode(Image.fromarray(img), 'JPEG', quality=100, exif=exif), resolution=8,
             crop='letterbox')
  assert out[:2, 2:6].min() > 200 and out[6:, 2:6].max() < 50


@pytest.mark.parametrize('cut, reason', [(0, 'empty file'), (40, 'cannot decode'),
                                         (0.5, 'cannot decode')])
@pytest.mark.parametrize('fmt', ['PNG', 'JPEG', 'WEBP'])
def test_empty_and_truncated_files_are_bad(fmt, cut, reason):
  data = encode(Image.fromarray(rand_rgb(32, 32)), fmt)
  data = data[:int(cut * len(data)) if isinstance(cut, float) else cut]
  with pytest.raises(BadImageError, match=reason):
    load(data)


def test_garbage_and_float_images_are_bad(tmp_path):
  path = tmp_path / 'x.png'
  path.write_bytes(b'not an image at all' * 10)
  with pytest.raises(BadImageError, match='cannot decode'):
    load(path)
  with pytest.raises(BadImageError, match='mode F'):
    load(encode(Image.fromarray(np.zeros((8, 8), np.float32)), 'TIFF'))


@pytest.mark.parametrize('size, crop, ok', [((7, 20), 'center', False), ((8, 20), 'center', True),
                                            ((4, 7), 'letterbox', False), ((4, 8), 'letterbox', True)])
def test_too_small_is_bad_never_upscaled(size, crop, ok):
  data = encode(Image.fromarray(rand_rgb(*size)))
  if ok:
    assert load(data, crop=crop).shape == (8, 8, 3)
  else:
    with pytest.raises(BadImageError, match='too small'):
      load(data, crop=crop)


def test_png_roundtrip():
  for c in (1, 3):
    x = RNG.integers(0, 256, (4, 8, c), dtype=np.uint8)
    np.testing.assert_array_equal(decode_png(encode_png(x), c), x)


def test_level_resolutions():
  assert level_resolutions(4) == [4]
  assert level_resolutions(32) == [4, 8, 16, 32]
  for bad in (2, 3, 48, 0):
    with pytest.raises(ValueError, match='power of two'):
      level_resolutions(bad)


def test_box_filter_levels_are_block_means_rounded_once():
  image = RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)
  levels = box_filter_levels(image)
  assert sorted(levels) == [4, 8, 16, 32, 64]
  np.testing.assert_array_equal(levels[64], image)
  for r, level in levels.items():
    f = 64 // r
    direct = image.astype(np.float64).reshape(r, f, r, f, 3).mean(axis=(1, 3))
    np.testing.assert_array_equal(level, np.rint(direct).clip(0, 255).astype(np.uint8))
    assert level.dtype == np.uint8


def test_box_filter_rounds_once_not_per_level():
  image = np.zeros((16, 16, 1), np.uint8)
  image[:4, :4, 0] = [[1, 1, 1, 1], [0, 0, 0, 0], [1, 1, 1, 1], [0, 0, 1, 0]]
  levels = box_filter_levels(image)
  np.testing.assert_array_equal(levels[8][:2, :2, 0], [[0, 0], [0, 1]])  # rint(.5,.5,.5,.75)
  # The 4x4 block mean is 9/16 -> 1; averaging the rounded level 8 would give rint(0.25) = 0.
  assert levels[4][0, 0, 0] == 1
