"""The torch-free .pth reader: round trips in both formats, views, refusal of foreign globals, truncation and
misshapen variables; cross-checked against torch.save/torch.load and the lpips package's real file when present.
"""

import importlib.util
import io
import os
import pathlib

import numpy as np
import pytest

import torch_files
from stylegan_jax.metrics import torch_weights

FORMATS = pytest.mark.parametrize('legacy', [True, False], ids=['legacy', 'zip'])


def sample_state():
  rng = np.random.default_rng(0)
  return {'conv.weight': rng.normal(size=(4, 3, 3, 3)).astype(np.float32),
          'bn.running_var': rng.uniform(size=7).astype(np.float64),
          'half': rng.normal(size=(2, 5)).astype(np.float16),
          'bn.num_batches_tracked': np.array(12, np.int64),
          'mask': np.array([True, False, True]),
          'empty': np.zeros((0, 3), np.float32)}


@FORMATS
def test_round_trip(legacy):
  state = sample_state()
  read = torch_weights.read_state_dict(torch_files.dumps(torch_files.as_tensors(state), legacy))
  assert list(read) == list(state)
  for name, value in state.items():
    assert read[name].dtype == value.dtype and read[name].shape == value.shape, name
    np.testing.assert_array_equal(read[name], value)


@FORMATS
def test_views_of_a_shared_storage(legacy):
  """Offsets and strides (a transpose, a slice) of one storage, as torch saves views."""
  base = np.arange(24, dtype=np.float32)
  storage = torch_files.Storage('0', base)
  state = {'matrix': torch_files.Tensor(storage, (4, 6)),
           'transposed': torch_files.Tensor(storage, (6, 4), strides=(1, 6)),
           'slice': torch_files.Tensor(storage, (2, 3), offset=7, strides=(6, 2))}
  read = torch_weights.read_state_dict(torch_files.dumps(state, legacy))
  np.testing.assert_array_equal(read['matrix'], base.reshape(4, 6))
  np.testing.assert_array_equal(read['transposed'], base.reshape(4, 6).T)
  np.testing.assert_array_equal(read['slice'], base.reshape(4, 6)[1:3, 1::2][:, :3])


@FORMATS
def test_tensor_beyond_its_storage_is_refused(legacy):
  state = {'w': torch_files.Tensor(torch_files.Storage('0', np.zeros(6, np.float32)), (2, 4))}
  with pytest.raises(torch_weights.TorchWeightsError, match=r'tensor w \[2, 4\] reaches beyond its storage of 6'):
    torch_weights.read_state_dict(torch_files.dumps(state, legacy))


def test_malformed_tensor_metadata_is_refused():
  storage = torch_files.Storage('0', np.zeros(6, np.float32))
  for tensor, message in ((torch_files.Tensor(storage, (2, 'x'), strides=(1, 1)), 'malformed tensor metadata'),
                          (torch_files.Tensor(storage, (-1, 2)), r'tensor w \[-1, 2\] reaches beyond'),
                          (torch_files.Tensor(storage, (2,), strides=(-1,)), r'tensor w \[2\] reaches beyond')):
    with pytest.raises(torch_weights.TorchWeightsError, match=message):
      torch_weights.read_state_dict(torch_files.dumps({'w': tensor}, legacy=True))


@FORMATS
def test_foreign_global_is_refused_and_not_executed(tmp_path, legacy):
  marker = tmp_path / 'ran'

  class Payload:
    def __reduce__(self):
      return (os.system, (f'touch {marker}',))

  state = torch_files.as_tensors({'w': np.zeros(2, np.float32)})
  state['evil'] = Payload()
  with pytest.raises(torch_weights.TorchWeightsError, match=r'refusing to unpickle global (posix|os)\.system'):
    torch_weights.read_state_dict(torch_files.dumps(state, legacy))
  assert not marker.exists()


@FORMATS
def test_truncated_file_is_refused(tmp_path, legacy):
  data = torch_files.dumps(torch_files.as_tensors(sample_state()), legacy)
  path = tmp_path / 'cut.pth'
  for size in (1, 10, len(data) // 3, len(data) // 2, len(data) - 3):
    path.write_bytes(data[:size])
    with pytest.raises(torch_weights.TorchWeightsError, match=str(path)) as e:
      torch_weights.read_state_dict(path)
    assert 'truncated' in str(e.value) or 'not a PyTorch' in str(e.value), str(e.value)


def lpips_heads_file() -> pathlib.Path:
  """weights/v0.1/vgg.pth of the installed lpips package, found without importing it (and torch)."""
  spec = importlib.util.find_spec('lpips')
  if spec is None:
    pytest.skip('the lpips package is not installed')
  return pathlib.Path(spec.origin).parent / 'weights' / 'v0.1' / 'vgg.pth'


def test_foreign_files_are_refused(tmp_path):
  path = tmp_path / 'x.pth'
  path.write_bytes(b'\x89PNG\r\n\x1a\n' + bytes(100))
  with pytest.raises(torch_weights.TorchWeightsError, match='not a PyTorch state dict file'):
    torch_weights.read_state_dict(path)
  with pytest.raises(torch_weights.TorchWeightsError, match='cannot read'):
    torch_weights.read_state_dict(tmp_path / 'missing.pth')
  path.write_bytes(torch_files.dumps([torch_files.Tensor(torch_files.Storage('0', np.zeros(1)), (1,))], True))
  with pytest.raises(torch_weights.TorchWeightsError, match='holds a list, not a state dict'):
    torch_weights.read_state_dict(path)


def test_check_shapes_names_every_problem():
  state = {'a': np.zeros((2, 3)), 'b': np.zeros(4), 'extra': np.zeros(1), 'bn.num_batches_tracked': np.zeros(()),
           'fc': np.zeros(3)}
  expected = {'a': (2, 3), 'b': (5,), 'c': (1,), 'fc': (4,), 'head': (2,)}
  with pytest.raises(torch_weights.TorchWeightsError) as e:
    torch_weights.check_shapes(state, expected, 'f.pth', unused=('fc', 'head'),
                               ignored_suffixes=('num_batches_tracked',))
  assert str(e.value) == ('f.pth: variable b has shape [4], expected [5]; missing variable c [1]; '
                          'variable fc has shape [3], expected [4]; unexpected variable extra [1]')
  torch_weights.check_shapes({'a': np.zeros((2, 3))}, {'a': (2, 3), 'fc': (4,)}, 'f.pth', unused=('fc',))


# ---- Cross-checks with PyTorch (optional) -----------------------------------------------------------------


@FORMATS
def test_reads_what_torch_saves(legacy):
  torch = pytest.importorskip('torch')
  module = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
  state = module.state_dict()
  state['0.weight_t'] = module[0].weight.detach().transpose(0, 1)  # a non-contiguous view
  state['half'] = torch.randn(3).half()
  buf = io.BytesIO()
  torch.save(state, buf, _use_new_zipfile_serialization=not legacy)
  read = torch_weights.read_state_dict(buf.getvalue())
  assert list(read) == list(state)
  for name, value in state.items():
    np.testing.assert_array_equal(read[name], value.numpy(), err_msg=name)


@FORMATS
def test_torch_reads_the_test_writer(legacy):
  """Validates tests/torch_files.py against the real loader."""
  torch = pytest.importorskip('torch')
  state = sample_state()
  read = torch.load(io.BytesIO(torch_files.dumps(torch_files.as_tensors(state), legacy)), weights_only=True)
  for name, value in state.items():
    np.testing.assert_array_equal(read[name].numpy(), value, err_msg=name)


def test_lpips_package_file():
  """The lpips package ships weights/v0.1/vgg.pth, a legacy-format file written by Python 2."""
  path = lpips_heads_file()
  assert path.read_bytes()[:2] == b'\x80\x02'
  state = torch_weights.read_state_dict(path)
  assert {k: v.shape for k, v in state.items()} == {
      f'lin{k}.model.1.weight': (1, c, 1, 1) for k, c in enumerate((64, 128, 256, 512, 512))}
  torch = pytest.importorskip('torch')
  reference = torch.load(path, map_location='cpu', weights_only=True)
  for name, value in reference.items():
    np.testing.assert_array_equal(state[name], value.numpy())
