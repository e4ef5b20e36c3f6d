"""Image folders that must not break prepare: symlinks (dangling, looping, duplicate), unreadable folders, and
images too large to decode in bounded memory."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from stylegan_jax.data import image_folder, images
from stylegan_jax.data.builder import split_name
from stylegan_jax.data.prepare import prepare
from test_data_prepare import data_config, rgb, save


def _prepare(src, tmp_path, **kwargs):
  return prepare(data_config(source_dir=str(src), data_dir=str(tmp_path / 'data'), **kwargs))


def test_dangling_and_looping_file_symlinks_are_skipped_as_bad_files(tmp_path, capsys):
  src = tmp_path / 'src'
  for name in ('a.png', 'b.png'):
    save(src / name, rgb())
  (src / 'dangling.png').symlink_to(src / 'missing.png')
  (src / 'loop1.png').symlink_to(src / 'loop2.png')
  (src / 'loop2.png').symlink_to(src / 'loop1.png')
  builder = _prepare(src, tmp_path)
  assert builder.info.splits[split_name(8)].num_examples == 2
  skipped = builder.info.metadata['skipped']
  assert sorted(os.path.basename(p) for p in skipped) == ['dangling.png', 'loop1.png', 'loop2.png']
  assert 'cannot read' in skipped[str(src / 'dangling.png')]
  assert 'Skipped 3 bad file(s) of 5' in capsys.readouterr().err


def test_a_directory_symlink_loop_takes_each_real_file_once(tmp_path):
  src = tmp_path / 'src'
  for name in ('a.png', 'sub/b.png', 'sub/deeper/c.png'):
    save(src / name, rgb())
  (src / 'sub' / 'deeper' / 'up').symlink_to(src)           # a loop back to the root
  (src / 'again').symlink_to(src / 'sub')                    # the same folder twice
  (src / 'c_link.png').symlink_to(src / 'sub/deeper/c.png')  # the same file twice
  assert image_folder.find_images(str(src)) == (['a.png', 'again/b.png', 'again/deeper/c.png'], [])
  builder = _prepare(src, tmp_path)
  assert builder.info.splits[split_name(8)].num_examples == 3


def test_an_unreadable_sub_folder_is_reported(tmp_path, monkeypatch, capsys):
  """As root, chmod 000 does not stop reading: os.scandir is made to fail for one folder instead."""
  src = tmp_path / 'src'
  for name in ('a.png', 'locked/b.png', 'open/c.png'):
    save(src / name, rgb())
  scandir = os.scandir

  def failing_scandir(path='.'):
    if not isinstance(path, int) and os.fspath(path) == str(src / 'locked'):
      raise PermissionError(13, 'Permission denied', os.fspath(path))
    return scandir(path)
  monkeypatch.setattr(os, 'scandir', failing_scandir)
  paths, unreadable = image_folder.find_images(str(src))
  assert paths == ['a.png', 'open/c.png']
  assert unreadable == [('locked', 'cannot read folder: [Errno 13] Permission denied')]
  builder = _prepare(src, tmp_path)
  assert builder.info.splits[split_name(8)].num_examples == 2
  assert 'cannot read folder' in builder.info.metadata['skipped'][str(src / 'locked')]
  assert f'skipping {src / "locked"}: cannot read folder' in capsys.readouterr().err


def test_images_over_the_pixel_limit_are_bad_files(monkeypatch):
  monkeypatch.setattr(images, 'MAX_PIXELS', 40 * 40 - 1)
  data = save_bytes(np.zeros((40, 40, 4), np.uint8))
  with pytest.raises(images.BadImageError, match=r'image is 40x40 = 1600 pixels, more than the limit of 1599'):
    images.load_image(data, resolution=8, num_channels=3, crop='center')
  monkeypatch.setattr(images, 'MAX_PIXELS', 40 * 40)
  assert images.load_image(data, resolution=8, num_channels=3, crop='center').shape == (8, 8, 3)


def test_alpha_compositing_is_exact_in_integers():
  """round(c * a / 255) for every (c, a) pair, as the float64 formula gave."""
  c, a = np.meshgrid(np.arange(256, dtype=np.uint8), np.arange(256, dtype=np.uint8))
  rgba = np.stack([c, c, c, a], -1)
  expected = np.rint(c.astype(np.float64) * a / 255.0).astype(np.uint8)
  out = images._to_uint8(Image.fromarray(rgba, 'RGBA'))
  np.testing.assert_array_equal(out, np.repeat(expected[..., None], 3, -1))


def save_bytes(array):
  import io
  buffer = io.BytesIO()
  Image.fromarray(array).save(buffer, 'PNG')
  return buffer.getvalue()


@pytest.mark.slow
def test_a_large_rgba_png_decodes_in_bounded_memory_and_time(tmp_path):
  """The 8000² RGBA PNG that took 5.5 GB and 144 s: now the decoded image plus a few row chunks."""
  Image.fromarray(np.zeros((8000, 8000, 4), np.uint8)).save(tmp_path / 'big.png')
  script = textwrap.dedent(f'''
      import resource, time
      from stylegan_jax.data import images
      start = time.time()
      images.load_image({str(tmp_path / 'big.png')!r}, resolution=256, num_channels=3, crop='center')
      print(time.time() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)''')
  seconds, peak = map(float, subprocess.run([sys.executable, '-c', script], check=True, capture_output=True,
                                            text=True).stdout.split())
  assert peak < 1.5e9 and seconds < 30, (peak, seconds)
