"""A reader of PyTorch state-dict files (`torch.save(module.state_dict())`) that needs no PyTorch.

Two container formats exist:
  zip     (torch >= 1.6): a zip archive `<prefix>/data.pkl` + `<prefix>/data/<key>` (raw storage bytes) +
          `<prefix>/version` (and `<prefix>/byteorder` since torch 2.1).
  legacy  (torch < 1.6, or `_use_new_zipfile_serialization=False`): five pickles in a row (magic number
          0x1950a86a20f9469cfc6c, protocol version 1001, sys_info, the object, the sorted storage keys), then
          for each key an int64 element count and the storage's raw bytes. pytorch-fid's FID Inception weights
          `pt_inception-2015-12-05-6726825d.pth` (2019) and the `lpips` package's `weights/v0.1/vgg.pth`
          are in this format.
In both, tensors are pickled as `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)` with the
storage a persistent id `('storage', torch.FloatStorage, key, location, numel[, view])`. The unpickler resolves
only those globals (and OrderedDict); any other global is refused before it can run.
"""

import collections
import io
import os
import struct
import zipfile
from typing import Union

import numpy as np

from stylegan_jax import errors, restricted_pickle

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

# torch.<Name>Storage -> numpy dtype of one element.
STORAGE_DTYPES = {
    'FloatStorage': np.float32, 'DoubleStorage': np.float64, 'HalfStorage': np.float16,
    'LongStorage': np.int64, 'IntStorage': np.int32,
    'ShortStorage': np.int16, 'CharStorage': np.int8, 'ByteStorage': np.uint8, 'BoolStorage': np.bool_,
}


class TorchWeightsError(errors.UserError, ValueError):
  """The file is not a PyTorch state dict we can read, or does not hold the expected variables."""


class _StorageType:
  """Stand-in for a `torch.<Name>Storage` class: only its element dtype matters."""

  def __init__(self, name: str):
    self.name, self.dtype = name, np.dtype(STORAGE_DTYPES[name])


class _Storage:
  """One storage, filled with its elements once the container's data is read."""

  def __init__(self, storage_type: _StorageType, key: str, numel: int):
    self.dtype, self.key, self.numel = storage_type.dtype, key, int(numel)
    self.data = None


class _TensorRef:
  """A tensor to materialise once its storage is filled (legacy files store the data after the pickle)."""

  def __init__(self, storage, offset, size, stride):
    self.storage, self.offset, self.size, self.stride = storage, int(offset), tuple(size), tuple(stride)

  def materialise(self, name: str) -> np.ndarray:
    data = self.storage.data if isinstance(self.storage, _Storage) else None
    if data is None:
      raise TorchWeightsError(f'tensor {name} has no storage data in the file')
    last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride) if n > 0)
    if (self.offset < 0 or min(self.stride + self.size, default=0) < 0
        or (0 not in self.size and last >= data.size)):
      raise TorchWeightsError(f'tensor {name} {list(self.size)} reaches beyond its storage of {data.size} '
                              'elements: the file is corrupt')
    view = np.lib.stride_tricks.as_strided(data[self.offset:], self.size,
                                           [s * data.itemsize for s in self.stride], writeable=False)
    return np.array(view)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
  del requires_grad, backward_hooks, metadata
  return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
  del requires_grad, backward_hooks
  return data


_ALLOWED_GLOBALS = {
    ('torch._utils', '_rebuild_tensor_v2'): lambda: _rebuild_tensor_v2,
    ('torch._utils', '_rebuild_parameter'): lambda: _rebuild_parameter,
    ('collections', 'OrderedDict'): lambda: collections.OrderedDict,
    **{('torch', name): (lambda name=name: _StorageType(name)) for name in STORAGE_DTYPES},
}


class _Unpickler(restricted_pickle.RestrictedUnpickler):
  allowed = _ALLOWED_GLOBALS

  def __init__(self, file, source: str):
    super().__init__(file, encoding='utf-8')
    self.source, self.storages = source, {}

  def refuse(self, module, name):
    return TorchWeightsError(f'{self.source}: refusing to unpickle global {module}.{name}: a PyTorch state '
                             'dict only references tensor rebuilders, storage types and OrderedDict '
                             '(nothing from the file was executed)')

  def persistent_load(self, pid):
    if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] in ('storage', b'storage')
            and isinstance(pid[1], _StorageType)):
      raise TorchWeightsError(f'{self.source}: unsupported persistent id {pid!r:.80} (not a tensor storage)')
    if len(pid) == 6 and pid[5] is not None:
      raise TorchWeightsError(f'{self.source}: pickles a storage view, which only PyTorch < 0.4 wrote; '
                              'not supported')
    storage_type, key, _, numel = pid[1:5]
    key = key.decode() if isinstance(key, bytes) else str(key)
    return self.storages.setdefault(key, _Storage(storage_type, key, numel))


def _load_pickle(unpickler: _Unpickler):
  try:
    return unpickler.load()
  except TorchWeightsError:
    raise
  except Exception as e:  # truncated or corrupt stream
    raise TorchWeightsError(f'{unpickler.source}: cannot read the pickled state dict '
                            f'({type(e).__name__}: {e}); the file is truncated or not a PyTorch file') from e


def _fill(storage: _Storage, raw: bytes, source: str):
  expected = storage.numel * storage.dtype.itemsize
  if len(raw) != expected:
    raise TorchWeightsError(f'{source}: storage {storage.key} holds {len(raw)} bytes, expected {expected}: '
                            'the file is truncated or corrupt')
  storage.data = np.frombuffer(raw, storage.dtype)


def _read_zip(data: bytes, source: str):
  try:
    archive = zipfile.ZipFile(io.BytesIO(data))
    names = archive.namelist()
  except (zipfile.BadZipFile, OSError, ValueError) as e:
    raise TorchWeightsError(f'{source}: not a readable zip archive ({e}): the file is truncated or corrupt') from e
  pickles = [n for n in names if n.endswith('/data.pkl') and n.count('/') == 1]
  if len(pickles) != 1:
    kind = 'a TorchScript archive' if any(n.endswith('/constants.pkl') for n in names) else 'not a PyTorch file'
    raise TorchWeightsError(f'{source}: zip archive without one top-level */data.pkl ({kind})')
  prefix = pickles[0][:-len('data.pkl')]
  try:
    if f'{prefix}byteorder' in names and archive.read(f'{prefix}byteorder').strip() != b'little':
      raise TorchWeightsError(f'{source}: big-endian tensors are not supported')
    unpickler = _Unpickler(io.BytesIO(archive.read(pickles[0])), source)
    obj = _load_pickle(unpickler)
    for key, storage in unpickler.storages.items():
      name = f'{prefix}data/{key}'
      if name not in names:
        raise TorchWeightsError(f'{source}: storage {key} is missing from the archive')
      _fill(storage, archive.read(name), source)
  except (zipfile.BadZipFile, OSError, EOFError) as e:  # a damaged member
    raise TorchWeightsError(f'{source}: cannot read the archive ({e}): the file is truncated or corrupt') from e
  return obj


def _read_legacy(data: bytes, source: str):
  stream = io.BytesIO(data)

  def header(what):
    try:
      return _Unpickler(stream, source).load()
    except TorchWeightsError:
      raise
    except Exception as e:
      raise TorchWeightsError(f'{source}: cannot read the {what} ({type(e).__name__}: {e}); '
                              'the file is truncated or not a PyTorch file') from e

  if header('magic number') != LEGACY_MAGIC:
    raise TorchWeightsError(f'{source}: not a PyTorch file (wrong magic number)')
  if (version := header('protocol version')) != LEGACY_PROTOCOL:
    raise TorchWeightsError(f'{source}: unsupported legacy protocol version {version!r} (expected 1001)')
  sys_info = header('system info')
  if not isinstance(sys_info, dict) or not sys_info.get('little_endian', False):
    raise TorchWeightsError(f'{source}: only little-endian legacy files are supported')
  unpickler = _Unpickler(stream, source)
  obj = _load_pickle(unpickler)
  keys = header('storage keys')
  if not isinstance(keys, list) or set(map(str, keys)) != set(unpickler.storages):
    raise TorchWeightsError(f'{source}: the storage key list does not match the pickled tensors')
  for key in map(str, keys):
    storage = unpickler.storages[key]
    count = stream.read(8)
    if len(count) != 8:
      raise TorchWeightsError(f'{source}: storage {key} is missing: the file is truncated')
    (numel,) = struct.unpack('<q', count)
    if numel != storage.numel:
      raise TorchWeightsError(f'{source}: storage {key} has {numel} elements, its tensors say {storage.numel}')
    _fill(storage, stream.read(numel * storage.dtype.itemsize), source)
  return obj


def read_state_dict(source: Union[str, os.PathLike, bytes]) -> dict[str, np.ndarray]:
  """Reads a PyTorch state dict file (zip or legacy format) into {name: numpy array}, in the file's order."""
  if isinstance(source, bytes):
    data, where = source, 'state dict'
  else:
    where = os.fspath(source)
    try:
      with open(source, 'rb') as f:
        data = f.read()
    except OSError as e:
      raise TorchWeightsError(f'cannot read {where}: {e.strerror or e}') from e
  if data.startswith(b'PK\x03\x04'):
    obj = _read_zip(data, where)
  elif data.startswith(b'\x80'):
    obj = _read_legacy(data, where)
  else:
    raise TorchWeightsError(f'{where}: not a PyTorch state dict file (neither a zip archive nor a pickle)')
  if not isinstance(obj, dict) or not all(isinstance(k, str) and isinstance(v, _TensorRef)
                                          for k, v in obj.items()):
    raise TorchWeightsError(f'{where}: holds a {type(obj).__name__}, not a state dict of named tensors')
  try:
    return {name: ref.materialise(name) for name, ref in obj.items()}
  except TorchWeightsError:
    raise
  except (TypeError, ValueError) as e:  # sizes or strides that are not integers
    raise TorchWeightsError(f'{where}: malformed tensor metadata ({e}): the file is corrupt') from e


def check_shapes(state: dict[str, np.ndarray], expected: dict[str, tuple[int, ...]], source: str,
                 unused: tuple[str, ...] = (), ignored_suffixes: tuple[str, ...] = ()) -> None:
  """Raises TorchWeightsError naming every missing, misshapen or unexpected variable of `state`.

  Names in `unused` (variables the caller does not need) may be absent; their shape is checked when present.
  Names ending in one of `ignored_suffixes` (e.g. BatchNorm's `num_batches_tracked`) are not checked at all.
  """
  problems = []
  for name, shape in expected.items():
    if name not in state:
      if name not in unused:
        problems.append(f'missing variable {name} {list(shape)}')
    elif state[name].shape != tuple(shape):
      problems.append(f'variable {name} has shape {list(state[name].shape)}, expected {list(shape)}')
  problems += [f'unexpected variable {name} {list(value.shape)}' for name, value in state.items()
               if name not in expected and not name.endswith(ignored_suffixes)]
  if problems:
    raise TorchWeightsError(f'{source}: ' + '; '.join(problems))
