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


class _HugeArray:
  """Pickles as numpy's `_reconstruct(ndarray, (2**42,), 'b')`: a 4-TiB allocation before any check could run."""

  def __reduce__(self):
    return official._numpy_global('_reconstruct'), (np.ndarray, (2 ** 42,), b'b')


def _set_state(i, key, value):
  return lambda nets: nets[i].__dict__.__setitem__(key, value)


def _all_kwargs(key, value):
  def mutate(nets):
    for net in nets:
      for n in (net, *net.components.values()):
        n.static_kwargs[key] = value
  return mutate


def _nan_weight(nets):
  synthesis = nets[2].components['synthesis']
  name, value = synthesis.variables[3]
  synthesis.variables[3] = (name, np.full_like(value, np.nan))


MALFORMED = {
    'version None': (_set_state(0, 'version', None), r'G: version must be an integer, got None'),
    'variables None': (_set_state(1, 'variables', None),
                       r'D: variables must be a list of \(name, array\), got NoneType'),
    'components list': (_set_state(0, 'components', [1]), r'G: components must be a dict, got list'),
    'static_kwargs list': (_set_state(1, 'static_kwargs', [1]), r'D: static_kwargs must be a dict, got list'),
    'component cycle': (lambda nets: nets[0].components.__setitem__('synthesis', nets[0]),
                        r'G/synthesis: a component refers back to G'),
    'resolution None': (_all_kwargs('resolution', None),
                        r'resolution must be a power of two from 4 to 16384, got None'),
    'huge array': (lambda nets: nets[1].variables.append(('huge', _HugeArray())),
                   r'numpy _reconstruct of shape \(4398046511104,\)'),
    'NaN weight': (_nan_weight, r'Gs: variable synthesis/noise2 holds 64 non-finite values \(NaN or Inf\)'),
}


@pytest.mark.parametrize('case', MALFORMED)
def test_malformed_pickles_are_named(nets, case):
  mutate, message = MALFORMED[case]
  mutate(nets)
  buf = io.BytesIO()
  official._OfficialPickler(buf, protocol=4).dump(tuple(nets))
  buf.seek(0)
  with pytest.raises(official.OfficialPickleError, match=message):
    official.load_official(buf)
