"""Writes PyTorch state-dict files in both container formats with the standard library only (no torch), so the
reader's tests run where PyTorch is not installed. Layouts as `torch.serialization` writes them (see
stylegan_jax/metrics/torch_weights.py); `Tensor` can describe any view (offset, strides) of a shared storage.
"""

import collections
import io
import pickle
import struct
import zipfile

import numpy as np

STORAGE_NAMES = {np.dtype(np.float32): 'FloatStorage', np.dtype(np.float64): 'DoubleStorage',
                 np.dtype(np.float16): 'HalfStorage', np.dtype(np.int64): 'LongStorage',
                 np.dtype(np.int32): 'IntStorage', np.dtype(np.uint8): 'ByteStorage',
                 np.dtype(np.bool_): 'BoolStorage'}


def torch_global(module: str, name: str) -> type:
  """A class that the pickler below writes as the global `module.name`."""
  return type(name, (), {'__module__': module, '__qualname__': name, 'torch_global': (module, name)})


REBUILD_TENSOR = torch_global('torch._utils', '_rebuild_tensor_v2')


class Storage:
  def __init__(self, key: str, data: np.ndarray):
    self.key, self.data = key, np.ascontiguousarray(data).reshape(-1)


class Tensor:
  """A tensor of `storage` at element `offset` with `shape` and element `strides` (default contiguous)."""

  def __init__(self, storage: Storage, shape, offset=0, strides=None):
    if strides is None:
      strides = tuple(int(np.prod(shape[i + 1:])) for i in range(len(shape)))
    self.storage, self.shape, self.offset, self.strides = storage, tuple(shape), offset, tuple(strides)

  def __reduce__(self):
    return REBUILD_TENSOR, (self.storage, self.offset, self.shape, self.strides, False, collections.OrderedDict())


class _Pickler(pickle._Pickler):  # the pure-Python pickler lets save_global write names of absent modules

  def __init__(self, file, legacy: bool):
    super().__init__(file, protocol=2)
    self.legacy, self.storages = legacy, {}

  def persistent_id(self, obj):
    if not isinstance(obj, Storage):
      return None
    self.storages[obj.key] = obj
    pid = ('storage', torch_global('torch', STORAGE_NAMES[obj.data.dtype]), obj.key, 'cpu', obj.data.size)
    return pid + (None,) if self.legacy else pid

  def save_global(self, obj, name=None):
    if not hasattr(obj, 'torch_global'):
      return super().save_global(obj, name)
    module, name = obj.torch_global
    self.write(pickle.GLOBAL + f'{module}\n{name}\n'.encode())
    self.memoize(obj)


def as_tensors(state: dict[str, np.ndarray]) -> dict:
  """{name: array} -> an OrderedDict of Tensors, each on its own contiguous storage."""
  return collections.OrderedDict((name, Tensor(Storage(str(i), value), value.shape))
                                 for i, (name, value) in enumerate(state.items()))


def dumps(obj, legacy: bool) -> bytes:
  """The file bytes of `obj` (Tensors, OrderedDicts, ...) in the legacy or the zip format."""
  body = io.BytesIO()
  pickler = _Pickler(body, legacy)
  pickler.dump(obj)
  out = io.BytesIO()
  if legacy:
    for header in (0x1950A86A20F9469CFC6C, 1001,
                   {'protocol_version': 1001, 'little_endian': True,
                    'type_sizes': {'short': 2, 'int': 4, 'long': 4}}):
      pickle.dump(header, out, protocol=2)
    out.write(body.getvalue())
    keys = sorted(pickler.storages)
    pickle.dump(keys, out, protocol=2)
    for key in keys:
      data = pickler.storages[key].data
      out.write(struct.pack('<q', data.size) + data.astype(data.dtype.newbyteorder('<')).tobytes())
  else:
    with zipfile.ZipFile(out, 'w', zipfile.ZIP_STORED) as archive:
      archive.writestr('archive/data.pkl', body.getvalue())
      archive.writestr('archive/byteorder', 'little')
      for key, storage in pickler.storages.items():
        archive.writestr(f'archive/data/{key}', storage.data.tobytes())
      archive.writestr('archive/version', '3\n')
  return out.getvalue()


def write(path, state: dict[str, np.ndarray], legacy: bool = True) -> None:
  with open(path, 'wb') as f:
    f.write(dumps(as_tensors(state), legacy))
