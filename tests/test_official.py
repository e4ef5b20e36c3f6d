"""The official-pickle importer: refusal of foreign or tampered pickles, and the official-layout round trip."""

import io
import pickle

import jax
import numpy as np
import pytest

from stylegan_jax import official


@pytest.fixture()
def nets(golden_dir):
  """The golden pickle's (G, D, Gs) as Network stand-ins, to tamper with."""
  with open(golden_dir / 'network.pkl', 'rb') as f:
    return official._RestrictedUnpickler(f, encoding='latin1').load()


def write(nets_) -> io.BytesIO:
  buf = io.BytesIO()
  official.write_official_pickle(nets_, buf)
  buf.seek(0)
  return buf



def test_unexpected_global_is_refused_and_not_executed(tmp_path, nets):
  marker = tmp_path / 'ran'
  class Payload:
    def __reduce__(self):
      return (open, (str(marker), 'w'))
  nets[0].__dict__['static_kwargs']['evil'] = Payload()
  buf = io.BytesIO()
  official._OfficialPickler(buf, protocol=4).dump(tuple(nets))
  buf.seek(0)
  with pytest.raises(official.OfficialPickleError, match=r'refusing to unpickle global (io|builtins)\.open'):
    official.load_official(buf)
  assert not marker.exists()
  shell = io.BytesIO(b'cos\nsystem\n(S"touch ' + str(marker).encode() + b'"\ntR.')  # os.system('touch ...')
  with pytest.raises(official.OfficialPickleError, match=r'refusing to unpickle global os\.system'):
    official.load_official(shell)
  assert not marker.exists()


def test_wrong_shape_is_named(nets):
  variables = dict(nets[2].components['synthesis'].variables)
  variables['8x8/Conv1/weight'] = np.zeros((3, 3, 32, 33), np.float32)
  nets[2].components['synthesis'].variables = list(variables.items())
  expected = r'variable synthesis/8x8/Conv1/weight has shape \[3, 3, 32, 33\], expected \[3, 3, 32, 32\]'
  with pytest.raises(official.OfficialPickleError, match=expected):
    official.load_official(write(nets))


def test_missing_and_unexpected_variables_are_named(nets):
  nets[1].variables = [(n, v) for n, v in nets[1].variables if n != '16x16/Conv0/bias']
  nets[1].variables.append(('16x16/Conv2/bias', np.zeros(16, np.float32)))
  with pytest.raises(official.OfficialPickleError) as e:
    official.load_official(write(nets))
  assert 'missing variable 16x16/Conv0/bias [16]' in str(e.value)
  assert 'unexpected variable 16x16/Conv2/bias [16]' in str(e.value)


def test_kwargs_disagreeing_with_weights(nets):
  nets[0].static_kwargs['fmap_max'] = 32
  with pytest.raises(official.OfficialPickleError, match='fmap_max is 32 in G but 64 in D'):
    official.load_official(write(nets))


def test_unknown_build_argument(nets):
  nets[1].static_kwargs['use_gdrop'] = True
  with pytest.raises(official.OfficialPickleError, match='D: unknown build argument use_gdrop=True'):
    official.load_official(write(nets))


def test_truncated_and_foreign_files(golden_dir):
  data = (golden_dir / 'network.pkl').read_bytes()
  with pytest.raises(official.OfficialPickleError, match='cannot read the network pickle'):
    official.load_official(io.BytesIO(data[: len(data) // 2]))
  with pytest.raises(official.OfficialPickleError, match=r'expected a \(G, D, Gs\) tuple, got dict'):
    official.load_official(io.BytesIO(pickle.dumps({'a': 1})))


def test_official_round_trip_keeps_every_array(golden_dir, tmp_path):
  """official -> ours -> official -> ours gives identical arrays and config."""
  first = official.load_official(golden_dir / 'network.pkl')
  path = tmp_path / 'exported.pkl'
  official.write_official_pickle(official.official_networks(first.config, first.G, first.D, first.Gs), path)
  second = official.load_official(path)
  assert second.config == first.config
  for net in ('G', 'D', 'Gs'):
    a = jax.tree_util.tree_leaves_with_path(getattr(first, net))
    b = jax.tree_util.tree_leaves_with_path(getattr(second, net))
    assert [p for p, _ in a] == [p for p, _ in b]
    for (_, x), (_, y) in zip(a, b):
      np.testing.assert_array_equal(x, y)
  # The written file names only the globals an official pickle names, so the official loader can read it.
  original = official.read_official_pickle(golden_dir / 'network.pkl')
  written = official.read_official_pickle(path)
  for net in ('G', 'D', 'Gs'):
    assert set(written[net].variables) == set(original[net].variables)
    for name, value in original[net].variables.items():
      np.testing.assert_array_equal(written[net].variables[name], value)
