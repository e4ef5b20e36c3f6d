"""Sampling artifacts: fresh-process round trip, the official layout both ways, and refusal of bad artifacts."""

import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile

import jax
import numpy as np
import pytest
from flax import traverse_util

from stylegan_jax import export, networks, official, sample, sampling
from stylegan_jax.network_config import NetworkConfig

TINY = NetworkConfig(resolution=32, fmap_base=64, fmap_max=32, latent_size=16, dlatent_size=16, mapping_layers=2,
                     mapping_fmaps=16)


def random_variables(config, seed, init=networks.init_generator):
  """Random values for every variable (numpy, fast), so that each one affects the outputs.

  N(0, 1), except the mapping weights N(0, 100) (their runtime multiplier is 0.01 / sqrt(fan_in)) and biases,
  noise strengths and dlatent_avg N(0, 0.2): like the golden pickle's weights.
  """
  rng = np.random.RandomState(seed)

  def value(path, spec):
    name = jax.tree_util.keystr(path)
    scale = 100.0 if 'mapping' in name and 'weight' in name else 0.2 if any(
        k in name for k in ('bias', 'Noise', 'dlatent_avg')) else 1.0
    return (scale * rng.randn(*spec.shape)).astype(np.float32)
  return jax.tree_util.tree_map_with_path(value, jax.eval_shape(lambda k: init(config, k), jax.random.key(0)))


def flat(variables):
  return traverse_util.flatten_dict(variables, sep='/')


def assert_same_variables(a, b):
  a, b = flat(a), flat(b)
  assert sorted(a) == sorted(b)
  for key in a:
    np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.fixture(scope='module')
def tiny():
  return export.Artifact(TINY, Gs=random_variables(TINY, 0), G=random_variables(TINY, 10),
                         D=random_variables(TINY, 20, networks.init_discriminator))


@pytest.fixture(scope='module')
def tiny_path(tiny, tmp_path_factory):
  path = tmp_path_factory.mktemp('artifacts') / 'tiny'
  return export.save_artifact(path, TINY, tiny.Gs, G=tiny.G, D=tiny.D, metadata={'kimg': 123, 'source': 'test'})


def test_save_load_keeps_every_array_and_the_manifest(tiny, tiny_path):
  loaded = export.load_artifact(tiny_path)
  assert loaded.config == TINY
  for name in ('Gs', 'G', 'D'):
    assert_same_variables(getattr(loaded, name), getattr(tiny, name))
  manifest = json.loads((tiny_path / 'manifest.json').read_text())
  assert manifest['format'] == 'stylegan-jax-artifact' and manifest['format_version'] == 1
  assert manifest['networks'] == ['Gs', 'G', 'D'] and manifest['network_config'] == TINY.to_dict()
  assert loaded.metadata['kimg'] == 123 and 'created' in loaded.metadata
  assert sorted(os.listdir(tiny_path)) == ['D.npz', 'G.npz', 'Gs.npz', 'manifest.json']
  with np.load(tiny_path / 'Gs.npz', allow_pickle=False) as npz:  # documented flat keys, our layouts
    assert npz['params/synthesis/4x4/Const/const'].shape == (1, 4, 4, 32)
    assert npz['noise/synthesis/noise7'].shape == (1, 32, 32, 1)
    assert npz['stats/dlatent_avg'].shape == (16,)
  only_gs = export.load_artifact(tiny_path, ['Gs'])
  assert only_gs.G is None and only_gs.D is None
  with pytest.raises(export.ArtifactError, match=r'this artifact has no G'):
    only_gs.network('G')


def test_fresh_process_gives_identical_images(tiny, tiny_path, tmp_path):
  """save -> load in a new Python process -> the same images, bit for bit."""
  expected = sampling.Sampler(TINY, tiny.Gs, batch_size=4).generate(range(6), psi=0.7, cutoff=4, noise_mode='const')
  script = textwrap.dedent(f"""
      import jax, numpy as np
      jax.config.update('jax_default_matmul_precision', {jax.config.jax_default_matmul_precision!r})
      from stylegan_jax import sampling
      sampler = sampling.Sampler.from_path({str(tiny_path)!r}, batch_size=4)
      np.save('images.npy', sampler.generate(range(6), psi=0.7, cutoff=4, noise_mode='const'))
      """)
  subprocess.run([sys.executable, '-c', script], check=True, cwd=tmp_path, timeout=120)
  np.testing.assert_array_equal(np.load(tmp_path / 'images.npy'), expected)
  assert len(np.unique(expected.reshape(6, -1), axis=0)) == 6


def test_official_pickle_artifact_official_round_trip(golden_dir, tmp_path):
  """golden pickle -> artifact -> official pickle -> ours: identical arrays, and identical official variables."""
  direct = official.load_official(golden_dir / 'network.pkl')
  export.import_official(golden_dir / 'network.pkl', tmp_path / 'art')
  artifact = export.load_artifact(tmp_path / 'art')
  assert artifact.config == direct.config
  export.export_official(tmp_path / 'art', tmp_path / 'back.pkl')
  back = official.load_official(tmp_path / 'back.pkl')
  assert back.config == direct.config
  for name in ('G', 'D', 'Gs'):
    assert_same_variables(getattr(artifact, name), getattr(direct, name))
    assert_same_variables(getattr(back, name), getattr(direct, name))
  original = official.read_official_pickle(golden_dir / 'network.pkl')
  written = official.read_official_pickle(tmp_path / 'back.pkl')
  for name in ('G', 'D', 'Gs'):
    assert set(written[name].variables) == set(original[name].variables)
    for key, value in original[name].variables.items():
      np.testing.assert_array_equal(written[name].variables[key], value)


def test_official_export_needs_d_and_falls_back_to_gs_for_g(tiny, tmp_path):
  export.save_artifact(tmp_path / 'gs', TINY, tiny.Gs)
  with pytest.raises(export.ArtifactError, match=r'\(G, D, Gs\) tuple and this artifact has no D'):
    export.export_official(tmp_path / 'gs', tmp_path / 'x.pkl')
  assert not (tmp_path / 'x.pkl').exists()
  export.export_official(export.Artifact(TINY, Gs=tiny.Gs, D=tiny.D), tmp_path / 'y.pkl')
  back = official.load_official(tmp_path / 'y.pkl')
  assert_same_variables(back.G, tiny.Gs)
  assert_same_variables(back.Gs, tiny.Gs)
  assert_same_variables(back.D, tiny.D)


def _tamper_manifest(path, **changes):
  manifest = json.loads((path / 'manifest.json').read_text())
  manifest.update(changes)
  (path / 'manifest.json').write_text(json.dumps(manifest))


def _tamper_shape(path):
  with np.load(path / 'Gs.npz') as npz:
    arrays = dict(npz)
  arrays['params/synthesis/8x8/Conv1/weight'] = np.zeros((3, 3, 16, 15), np.float32)
  np.savez(path / 'Gs.npz', **arrays)


def _tamper_names(path):
  with np.load(path / 'D.npz') as npz:
    arrays = dict(npz)
  arrays['params/16x16/Conv2/bias'] = arrays.pop('params/16x16/Conv0/bias')
  np.savez(path / 'D.npz', **arrays)


def _object_array(path):
  with np.load(path / 'Gs.npz') as npz:
    arrays = dict(npz)
  arrays['stats/dlatent_avg'] = np.array([{'x': 1}] * 16, dtype=object)
  np.savez(path / 'Gs.npz', **arrays)


def _nan_weight(path):
  with np.load(path / 'G.npz') as npz:
    arrays = dict(npz)
  arrays['params/mapping/Dense1/weight'][3, :2] = [np.nan, np.inf]
  np.savez(path / 'G.npz', **arrays)


def _huge_members(path, name, shape=(16384, 16384)):
  """Gs.npz with member `name` declaring a 1-GiB float32 array (its header only: a few hundred bytes)."""
  with np.load(path / 'Gs.npz') as npz:
    arrays = dict(npz)
  arrays.pop(name, None)
  np.savez(path / 'Gs.npz', **arrays)
  header = io.BytesIO()
  np.lib.format.write_array_header_1_0(header, {'descr': '<f4', 'fortran_order': False, 'shape': shape})
  with zipfile.ZipFile(path / 'Gs.npz', 'a') as zf:
    zf.writestr(name + '.npy', header.getvalue())


BAD_ARTIFACTS = {
    'no manifest': (lambda p: (p / 'manifest.json').unlink(), r'not a stylegan-jax artifact: manifest.json is missing'),
    'bad json': (lambda p: (p / 'manifest.json').write_text('{"format": '), r'manifest.json is not valid JSON'),
    'wrong format': (lambda p: _tamper_manifest(p, format='something-else'), r"format is 'something-else'"),
    'future version': (lambda p: _tamper_manifest(p, format_version=2), r'unsupported format_version 2'),
    'no Gs': (lambda p: _tamper_manifest(p, networks=['G', 'D']), r'networks must list Gs'),
    'bad config': (lambda p: _tamper_manifest(p, network_config={'resolution': 48}),
                   r'bad network_config.*power of two'),
    'huge resolution': (lambda p: _tamper_manifest(p, network_config={**TINY.to_dict(), 'resolution': 2 ** 40}),
                        r'resolution must be a power of two from 4 to 16384, got 1099511627776'),
    'fmap_decay null': (lambda p: _tamper_manifest(p, network_config={**TINY.to_dict(), 'fmap_decay': None}),
                        r'fmap_decay must be a number from 0 to 10, got None'),
    'missing npz': (lambda p: (p / 'G.npz').unlink(), r'lists G but G.npz is missing'),
    'truncated npz': (lambda p: (p / 'G.npz').write_bytes((p / 'G.npz').read_bytes()[:1000]), r'not a readable npz'),
    'pickled array': (_object_array, r'Gs.npz: .*stats/dlatent_avg has dtype object, expected float32'),
    'NaN weight': (_nan_weight, r'G.npz: .*params/mapping/Dense1/weight holds 2 non-finite values \(NaN or Inf\)'),
    'huge member': (lambda p: _huge_members(p, 'params/mapping/Dense0/weight'),
                    r'params/mapping/Dense0/weight has shape \[16384, 16384\], expected \[16, 16\]'),
    'huge extra member': (lambda p: _huge_members(p, 'params/extra'), r'unexpected params/extra \[16384, 16384\]'),
    'tampered shape': (_tamper_shape, r'params/synthesis/8x8/Conv1/weight has shape \[3, 3, 16, 15\], expected '
                                      r"\[3, 3, 16, 16\]"),
    'renamed variable': (_tamper_names, r'D.npz: .*missing params/16x16/Conv0/bias \[8\]; '
                                        r'unexpected params/16x16/Conv2/bias \[8\]'),
}


@pytest.mark.parametrize('case', BAD_ARTIFACTS)
def test_bad_artifacts_are_named(tiny_path, tmp_path, case):
  tamper, message = BAD_ARTIFACTS[case]
  path = shutil.copytree(tiny_path, tmp_path / 'bad')
  tamper(path)
  with pytest.raises(export.ArtifactError, match=message):
    export.load_artifact(path)


def test_not_an_artifact(golden_dir, tmp_path):
  with pytest.raises(export.ArtifactError, match='not an artifact directory.*official network pickle'):
    export.load_artifact(golden_dir / 'network.pkl')
  with pytest.raises(export.ArtifactError, match='not an artifact directory'):
    export.load_artifact(tmp_path / 'nothing')


def test_save_is_checked_atomic_and_does_not_overwrite(tiny, tmp_path, monkeypatch):
  path = tmp_path / 'art'
  with pytest.raises(export.ArtifactError,
                     match=r'Gs to save: .*params/mapping/Dense1/weight has shape \[16, 16\], expected \[16, 8\]'):
    export.save_artifact(path, NetworkConfig(**{**TINY.to_dict(), 'dlatent_size': 8}), tiny.Gs)
  assert not path.exists()
  export.save_artifact(path, TINY, tiny.Gs, metadata={'kimg': 1})
  with pytest.raises(FileExistsError, match='overwrite'):
    export.save_artifact(path, TINY, tiny.Gs)

  def crash(*args, **kwargs):
    raise KeyboardInterrupt
  monkeypatch.setattr(np, 'savez', crash)
  with pytest.raises(KeyboardInterrupt):  # a crash while writing leaves the old artifact and no temp files
    export.save_artifact(path, TINY, tiny.Gs, G=tiny.G, metadata={'kimg': 2}, overwrite=True)
  with pytest.raises(KeyboardInterrupt):
    export.save_artifact(tmp_path / 'new', TINY, tiny.Gs)
  assert sorted(os.listdir(tmp_path)) == ['art']
  assert export.load_artifact(path).metadata['kimg'] == 1
  monkeypatch.undo()
  export.save_artifact(path, TINY, tiny.Gs, G=tiny.G, metadata={'kimg': 2}, overwrite=True)
  assert export.load_artifact(path).metadata['kimg'] == 2 and sorted(os.listdir(tmp_path)) == ['art']


def test_cli_export_both_ways(golden_dir, tmp_path, capsys):
  pkl = str(golden_dir / 'network.pkl')
  assert sample.main(['export', '--network', pkl, '--out', str(tmp_path / 'gs'), '--networks', 'Gs',
                      '--metadata', 'kimg=25000', '--metadata', 'note=ffhq run']) == 0
  artifact = export.load_artifact(tmp_path / 'gs')
  assert artifact.names() == ['Gs']
  assert artifact.metadata['kimg'] == 25000 and artifact.metadata['note'] == 'ffhq run'
  assert artifact.metadata['source'] == os.path.abspath(pkl)
  assert sample.main(['export', '--network', str(tmp_path / 'gs'), '--out', str(tmp_path / 'x.pkl')]) == 1
  assert 'has no D' in capsys.readouterr().err
  assert sample.main(['export', '--network', pkl, '--out', str(tmp_path / 'all')]) == 0
  assert sample.main(['export', '--network', str(tmp_path / 'all'), '--out', str(tmp_path / 'back.pkl')]) == 0
  assert sample.main(['export', '--network', pkl, '--out', str(tmp_path / 'back.pkl')]) == 1
  assert 'exists' in capsys.readouterr().err
  assert_same_variables(official.load_official(tmp_path / 'back.pkl').D, official.load_official(pkl).D)
