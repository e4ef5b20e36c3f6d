"""Base TFDS builder: one array_record split per progressive-growing level.

A prepared dataset lives in `<data_dir>/<builder name>/<config name>/1.0.0/` and
has one split per level, named `res4`, `res8`, ..., `res{R}` (see
`split_name`), each holding every example once as

  {'image': PNG, uint8 [r, r, C] once decoded,
   'label': int64 class id in [0, num_classes)   (only in labeled datasets)}.

`info.metadata` holds the source's facts, num_examples, the skipped files and, when labeled, class_counts
(images per class id).

Record i is the same source image in every split (TFDS shuffling is disabled,
records keep the source order; the input pipeline shuffles).

Preparation is one pass over the source (in `num_workers` processes): each
image is decoded and converted (a subclass's picklable loader), box-filtered to
every level (`levels.box_filter_levels`) and PNG-encoded per level into scratch
files; TFDS then writes each split from its scratch file. Everything happens in
TFDS's `incomplete.XXXXXX_1.0.0/` sibling directory, renamed into place only at
the end, so an interrupted prepare never looks complete and is simply redone.
"""

import abc
import collections
import contextlib
import dataclasses
import functools
import itertools
import multiprocessing
import pickle
import shutil
import sys
from concurrent import futures
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import tensorflow_datasets as tfds
import tqdm

from stylegan_jax.data.config import DataError
from stylegan_jax.data.images import BadImageError, encode_png
from stylegan_jax.data.levels import box_filter_levels, level_resolutions

_SCRATCH = 'scratch'
_CHUNK = 256  # Source items handed to the worker pool at a time (bounds memory).


def split_name(resolution: int) -> str:
  """The TFDS split holding the level at `resolution`, e.g. 'res32'."""
  return f'res{resolution}'


@dataclasses.dataclass(eq=False)
class LevelsConfig(tfds.core.BuilderConfig):
  """Full `resolution` (power of two >= 4), `num_channels` (1 or 3), whether labeled."""
  resolution: int = 32
  num_channels: int = 1
  labeled: bool = False


@dataclasses.dataclass(frozen=True)
class Source:
  """What a subclass prepares from.

  items: (key, label or None, payload) per source image; key names it in reports.
  loader: picklable; payload -> uint8 [R, R, C]; raises BadImageError.
  label_names: class names (index = label), or None when unlabeled.
  bad: (key, reason) of source files already known to be unusable.
  metadata: JSON-serializable facts stored with the dataset (`info.metadata`).
  """
  items: Sequence[tuple[str, int | None, Any]]
  loader: Callable[[Any], np.ndarray]
  label_names: list[str] | None = None
  bad: list[tuple[str, str]] = dataclasses.field(default_factory=list)
  metadata: dict[str, Any] = dataclasses.field(default_factory=dict)


def _process(loader, item) -> tuple[str, int | None, dict[int, bytes] | str]:
  """Worker: one source item -> (key, label, {resolution: PNG} or the bad-file reason)."""
  key, label, payload = item
  try:
    image = loader(payload)
  except BadImageError as e:
    return key, label, str(e)
  return key, label, {r: encode_png(x) for r, x in box_filter_levels(image).items()}


class LevelsBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Subclasses set `name`, `DESCRIPTION` and implement `_source()`."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  DESCRIPTION = ''
  builder_config: LevelsConfig

  def __init__(self, *, strict: bool = False, num_workers: int = 1, **kwargs):
    """strict: fail on the first bad source image instead of skipping it.

    num_workers: processes decoding/encoding during prepare (1 = in-process).
    """
    self._strict = strict
    self._num_workers = num_workers
    super().__init__(**kwargs)

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls) -> None:
    """No code path, hence no checksums file to look up: TFDS's lookup imports the
    `importlib_resources` backport, undeclared for Python >= 3.9 (tensorflow/datasets#11212)."""
    return None

  @abc.abstractmethod
  def _source(self) -> Source:
    """Scans the source; called once, at prepare time only."""

  def _info(self) -> tfds.core.DatasetInfo:
    config = self.builder_config
    features = {'image': tfds.features.Image(shape=(None, None, config.num_channels),
                                             encoding_format='png')}
    if config.labeled:
      features['label'] = tfds.features.ClassLabel()  # Names set at prepare time.
    return tfds.core.DatasetInfo(
        builder=self, description=self.DESCRIPTION,
        features=tfds.features.FeaturesDict(features),
        disable_shuffling=True, metadata=tfds.core.MetadataDict())

  def _split_generators(self, dl_manager):
    del dl_manager
    config = self.builder_config
    source = self._source()
    if config.labeled:
      self.info.features['label'].names = source.label_names
    scratch = self.data_path / _SCRATCH  # Inside TFDS's incomplete dir.
    scratch.mkdir()
    files = {r: open(scratch / f'{r}.pickle', 'wb') for r in level_resolutions(config.resolution)}
    try:
      label_counts, bad = self._write_scratch(source, files)
    finally:
      for f in files.values():
        f.close()
    num_examples = sum(label_counts.values())
    self.info.metadata.update(source.metadata, num_examples=num_examples, num_skipped=len(bad),
                              skipped=dict(bad))
    if config.labeled:
      self.info.metadata['class_counts'] = [label_counts[i] for i in range(len(source.label_names))]
    print(f'Writing {num_examples} images to the TFDS splits of levels '
          f'{", ".join(map(str, files))}.', file=sys.stderr)
    return {split_name(r): self._generate_examples(f.name) for r, f in files.items()}

  def _write_scratch(self, source: Source, files) -> tuple[collections.Counter, list[tuple[str, str]]]:
    """Runs the pass; returns (number of good images per label (None: unlabeled), [(key, reason)] of bad
    ones)."""
    label_counts, bad = collections.Counter(), []
    total = len(source.items) + len(source.bad)

    def report(key, reason):
      if self._strict:
        raise BadImageError(f'{key}: {reason} (strict mode; without it bad files are skipped)')
      bad.append((key, reason))
      tqdm.tqdm.write(f'skipping {key}: {reason}', file=sys.stderr)

    for key, reason in source.bad:
      report(key, reason)
    with (tqdm.tqdm(total=len(source.items), unit='img', desc=f'Preparing {self.name}',
                    disable=not sys.stderr.isatty()) as bar,  # a log file gets the summary lines only
          self._map(functools.partial(_process, source.loader)) as imap):
      for key, label, result in imap(source.items):
        bar.update()
        if isinstance(result, str):
          report(key, result)
          continue
        for r, png in result.items():
          pickle.dump((label, png), files[r], protocol=pickle.HIGHEST_PROTOCOL)
        label_counts[label] += 1
    if bad:
      print(f'Skipped {len(bad)} bad file(s) of {total}; listed above and in the metadata.json '
            'of the prepared dataset.', file=sys.stderr)
    if not label_counts:
      raise DataError(f'no usable images among {total} source file(s) ({len(bad)} bad)')
    return label_counts, bad

  @contextlib.contextmanager
  def _map(self, fn):
    """Yields an ordered `imap(items)` of fn, over worker processes fed in chunks."""
    if self._num_workers <= 1:
      yield lambda items: map(fn, items)
      return
    context = multiprocessing.get_context('spawn')  # Safe in processes that imported JAX.
    with futures.ProcessPoolExecutor(self._num_workers, mp_context=context) as pool:

      def imap(items: Sequence) -> Iterator:
        for start in range(0, len(items), _CHUNK):
          chunk = [items[i] for i in range(start, min(start + _CHUNK, len(items)))]
          try:
            yield from pool.map(fn, chunk, chunksize=max(1, len(chunk) // (4 * self._num_workers)))
          except futures.process.BrokenProcessPool as e:
            raise RuntimeError('a prepare worker process died (see its error above); retry with '
                               'num_workers=1 to run in-process') from e
      yield imap

  def _generate_examples(self, path: str):
    labeled = self.builder_config.labeled
    with open(path, 'rb') as f:
      for i in itertools.count():
        try:
          label, png = pickle.load(f)
        except EOFError:
          return
        yield i, ({'image': png, 'label': label} if labeled else {'image': png})

  def _log_download_bytes(self) -> None:
    """Instead of TFDS's 'Downloading and preparing dataset Unknown size ...': nothing is downloaded here."""
    print(f'Preparing {self.builder_config.name} in {self.data_dir}', file=sys.stderr)

  def _log_download_done(self) -> None:
    """Instead of TFDS's 'Dataset ... downloaded and prepared to ...': the prepare command sums up."""

  def _download_and_prepare(self, dl_manager, download_config=None):
    try:
      super()._download_and_prepare(dl_manager, download_config)
    finally:
      shutil.rmtree(self.data_path / _SCRATCH, ignore_errors=True)

