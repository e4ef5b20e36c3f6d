"""Any folder of PNG/JPEG/WebP images (nested folders allowed), optional labels.

Files are found recursively (extensions matched case-insensitively; hidden
files and folders skipped; other files ignored) and ordered by relative path.
Symbolic links are followed, each real folder and file once (by device and
inode, under its first path in sorted order), so a link loop cannot repeat the
dataset; a dangling or looping file link is a bad file, and a folder that
cannot be read is reported with the bad files. Each image is converted by
`images.load_image` (crop/letterbox, channel policy).

Labels (`labels`):
  'none'        unlabeled.
  'subfolders'  the class is the first folder under `source_dir`; class names
                sorted. Images directly in `source_dir` are bad files.
  <path>        a CSV file with a header row containing `path` and `label`;
                `path` is relative to `source_dir` (forward slashes); `label` is
                a class id (if every label is a non-negative integer, ids are
                used as-is and num_classes = max + 1) or else a class name
                (names sorted and numbered). Unlisted images, and listed paths
                that do not exist, are reported as bad files.
"""

import csv
import dataclasses
import functools
import os
import re

from stylegan_jax.data.builder import LevelsBuilder, LevelsConfig, Source
from stylegan_jax.data.config import DataError
from stylegan_jax.data.images import EXTENSIONS, load_image


@dataclasses.dataclass(eq=False)
class ImageFolderConfig(LevelsConfig):
  """source_dir and a labels file path are absolute."""
  source_dir: str = ''
  crop: str = 'center'
  labels: str = 'none'


def config_name(folder_name: str, resolution: int, num_channels: int, crop: str,
                labels: str) -> str:
  """e.g. 'cars-256px-3ch-letterbox-nolabels'; only [A-Za-z0-9_.-]."""
  tag = {'none': 'nolabels', 'subfolders': 'subfolders'}.get(labels, 'labelsfile')
  folder = re.sub(r'[^\w.\-]', '_', folder_name)
  return f'{folder}-{resolution}px-{num_channels}ch-{crop}-{tag}'


def _relative(path: str, source_dir: str) -> str:
  return os.path.normpath(os.path.relpath(path, source_dir)).replace(os.sep, '/')


def _identity(path: str):
  """(st_dev, st_ino) of what `path` points to, or the path itself when it cannot be resolved (a bad file)."""
  try:
    st = os.stat(path)
  except OSError:
    return path
  return st.st_dev, st.st_ino


def find_images(source_dir: str) -> tuple[list[str], list[tuple[str, str]]]:
  """(sorted relative paths ('/'-separated) of the image files under source_dir, [(relative folder, reason)]
  of the folders that could not be read). Each real folder and file is taken once (see the module doc)."""
  if not os.path.exists(source_dir):
    raise FileNotFoundError(f'image folder {source_dir!r} does not exist')
  if not os.path.isdir(source_dir):
    raise NotADirectoryError(f'image folder {source_dir!r} is not a directory')
  unreadable = []

  def report(error: OSError):
    unreadable.append((_relative(error.filename, source_dir),
                       f'cannot read folder: [Errno {error.errno}] {error.strerror}'))

  found, folders_seen = [], set()
  for root, dirs, files in os.walk(source_dir, followlinks=True, onerror=report):
    folder = _identity(root)
    dirs[:] = [] if folder in folders_seen else sorted(d for d in dirs if not d.startswith('.'))
    if folder in folders_seen:
      continue
    folders_seen.add(folder)
    found += [_relative(os.path.join(root, f), source_dir) for f in files
              if not f.startswith('.') and f.lower().endswith(EXTENSIONS)]
  if not found:
    raise DataError(f'no image files ({"/".join(EXTENSIONS)}) under {source_dir!r}')
  paths, files_seen = [], set()
  for path in sorted(found):
    file = _identity(os.path.join(source_dir, path))
    if file not in files_seen:
      files_seen.add(file)
      paths.append(path)
  return paths, unreadable


def read_labels_file(path: str) -> dict[str, str]:
  """CSV with `path` and `label` columns -> {relative path: label string}."""
  with open(path, newline='') as f:
    reader = csv.DictReader(f)
    if not {'path', 'label'} <= set(reader.fieldnames or ()):
      raise ValueError(f'labels file {path!r} needs a header row with "path" and "label" '
                       f'columns, got {reader.fieldnames}')
    return {os.path.normpath(row['path']).replace(os.sep, '/'): row['label'].strip()
            for row in reader}


def _class_ids(labels: dict[str, str]) -> tuple[dict[str, int], list[str]]:
  """{key: label string} -> ({key: class id}, class names)."""
  values = set(labels.values())
  if all(re.fullmatch(r'\d+', v) for v in values):
    ids = {k: int(v) for k, v in labels.items()}
    return ids, [str(i) for i in range(max(ids.values()) + 1)]
  names = sorted(values)
  index = {name: i for i, name in enumerate(names)}
  return {k: index[v] for k, v in labels.items()}, names


class ImageFolder(LevelsBuilder, skip_registration=True):
  """A folder of images; configs named by `config_name`."""

  name = 'stylegan_image_folder'
  DESCRIPTION = __doc__
  builder_config: ImageFolderConfig

  def _source(self) -> Source:
    config = self.builder_config
    source_dir = os.path.abspath(config.source_dir)
    paths, unreadable = find_images(source_dir)
    bad = []
    if config.labels == 'none':
      labels = {p: None for p in paths}
    elif config.labels == 'subfolders':
      labels = {p: p.split('/')[0] for p in paths if '/' in p}
      bad = [(p, 'not inside a class sub-folder (labels=subfolders)') for p in paths
             if '/' not in p]
    else:
      listed = read_labels_file(config.labels)
      labels = {p: listed[p] for p in paths if p in listed}
      bad = [(p, f'no label in {config.labels}') for p in paths if p not in listed]
      bad += [(p, f'listed in {config.labels} but not found')
              for p in sorted(set(listed) - set(paths))]
    label_names = None
    if config.labeled:
      if not labels:
        raise DataError(f'no labeled images under {source_dir!r}')
      labels, label_names = _class_ids(labels)
    loader = functools.partial(load_image, resolution=config.resolution,
                               num_channels=config.num_channels, crop=config.crop)
    # Keys (in reports) and payloads are the full paths.
    items = [(os.path.join(source_dir, p), labels[p], os.path.join(source_dir, p))
             for p in paths if p in labels]
    bad = [(os.path.join(source_dir, p), reason) for p, reason in unreadable + bad]
    return Source(items=items, loader=loader, label_names=label_names, bad=bad,
                  metadata={'source_dir': source_dir, 'labels': config.labels, 'crop': config.crop})
