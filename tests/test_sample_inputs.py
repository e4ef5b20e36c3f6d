"""The sample command's inputs: label forms and class names, seeds, non-finite flags, pickles by content."""

import re
import shutil

import numpy as np
import pytest
from PIL import Image

from stylegan_jax import errors, export, sample, sampling
from stylegan_jax.network_config import NetworkConfig
from test_export import TINY, random_variables

COND = NetworkConfig(**{**TINY.to_dict(), 'label_size': 5})
NAMES = ['cat', 'dog', 'owl', 'bat', 'eel']


@pytest.fixture(scope='module')
def plain_path(tmp_path_factory):
  return export.save_artifact(tmp_path_factory.mktemp('plain') / 'tiny', TINY, random_variables(TINY, 0))


@pytest.fixture(scope='module')
def named_path(tmp_path_factory):
  return export.save_artifact(tmp_path_factory.mktemp('named') / 'cond', COND, random_variables(COND, 1),
                              class_names=NAMES)


def generate(network, outdir, *flags):
  return sample.main(['generate', '--network', str(network), '--batch-size', '4', '--noise-mode', 'const',
                      '--outdir', str(outdir), *flags])


def png(path):
  return np.asarray(Image.open(path))


def test_style_mixing_default_styles_apply_to_every_row(plain_path, tmp_path):
  assert sample.main(['style-mixing', '--network', str(plain_path), '--row-seeds', '1-3', '--col-seeds', '4,5',
                      '--batch-size', '4', '--out', str(tmp_path / 'mix.png')]) == 0
  assert Image.open(tmp_path / 'mix.png').size == (3 * 32, 4 * 32)


def test_class_ids_and_label_vectors_are_separate_flags(named_path, tmp_path, capsys):
  """'--labels 1,0,0,0,0' is five class ids (one per seed); '--label-vector 1,0,0,0,0' one vector (class 0)."""
  assert sample.parse_labels('1,0,0,0,0') == [1, 0, 0, 0, 0]
  assert sample.parse_labels('dog, 3') == ['dog', 3]
  assert generate(named_path, tmp_path / 'ids', '--seeds', '0-4', '--labels', '1,0,0,0,0') == 0
  assert generate(named_path, tmp_path / 'vec', '--seeds', '0-4', '--label-vector', '1,0,0,0,0') == 0
  assert generate(named_path, tmp_path / 'names', '--seeds', '0-4', '--labels', 'dog,cat,cat,cat,cat') == 0
  ids = sorted(p.name for p in (tmp_path / 'ids').iterdir())
  assert ids == ['seed0000-dog.png', 'seed0001-cat.png', 'seed0002-cat.png', 'seed0003-cat.png', 'seed0004-cat.png']
  assert sorted(p.name for p in (tmp_path / 'names').iterdir()) == ids
  assert sorted(p.name for p in (tmp_path / 'vec').iterdir()) == [f'seed{s:04d}.png' for s in range(5)]
  for s in range(1, 5):  # class 0 = the one-hot vector [1, 0, 0, 0, 0]
    np.testing.assert_array_equal(png(tmp_path / 'ids' / f'seed{s:04d}-cat.png'),
                                  png(tmp_path / 'vec' / f'seed{s:04d}.png'))
  assert not np.array_equal(png(tmp_path / 'ids' / 'seed0000-dog.png'), png(tmp_path / 'vec' / 'seed0000.png'))
  np.save(tmp_path / 'v.npy', np.eye(5, dtype=np.int64)[[1, 0, 0, 0, 0]])  # an integer .npy is still vectors
  assert generate(named_path, tmp_path / 'npy', '--seeds', '0-4', '--label-vector', str(tmp_path / 'v.npy')) == 0
  np.testing.assert_array_equal(png(tmp_path / 'npy' / 'seed0000.png'), png(tmp_path / 'ids' / 'seed0000-dog.png'))
  assert 'wrote 5 images' in capsys.readouterr().out


@pytest.mark.parametrize('flags,message', [
    (['--labels', 'cow'], r"unknown class 'cow': this model's classes are cat, dog, owl, bat, eel"),
    (['--labels', '7'], r'class ids must be in \[0, 5\), got \[7\]'),
    (['--labels', '1', '--label-vector', '0,1,0,0,0'], 'pass --labels or --label-vector, not both'),
    (['--labels', '1,2'], r'one class for all or one per image \(3\)'),
])
def test_bad_labels_are_usage_errors(named_path, tmp_path, capsys, flags, message):
  assert generate(named_path, tmp_path, '--seeds', '0-2', *flags) == errors.UsageError.exit_code
  err = capsys.readouterr().err
  assert len(err.strip().splitlines()) == 1
  assert re.search(message, err), err


def test_class_names_need_a_model_that_has_them(plain_path, tmp_path, capsys):
  cond = export.save_artifact(tmp_path / 'unnamed', COND, random_variables(COND, 1))
  assert export.load_artifact(cond).class_names is None  # an artifact without class names still loads
  assert generate(cond, tmp_path / 'out', '--seeds', '0', '--labels', 'cat') == 2
  assert "unknown class 'cat': this model stores no class names (use class ids 0-4)" in capsys.readouterr().err
  assert generate(plain_path, tmp_path / 'out', '--seeds', '0', '--labels', '0') == 2
  assert 'unconditional' in capsys.readouterr().err


def test_without_labels_a_conditional_model_draws_random_classes(named_path, tmp_path, capsys):
  assert generate(named_path, tmp_path / 'a', '--seeds', '0-5') == 0
  assert 'random classes' in capsys.readouterr().err
  assert generate(named_path, tmp_path / 'b', '--seeds', '0-5') == 0
  names = sorted(p.name for p in (tmp_path / 'a').iterdir())
  assert names == sorted(p.name for p in (tmp_path / 'b').iterdir())  # reproducible
  assert len({n.split('-')[1] for n in names}) > 1 and all(n.split('-')[1][:-4] in NAMES for n in names)
  for name in names:  # each image is its seed under the class its name says
    seed, label = int(name[4:8]), NAMES.index(name.split('-')[1][:-4])
    assert generate(named_path, tmp_path / 'one', '--seeds', str(seed), '--labels', str(label)) == 0
    np.testing.assert_array_equal(png(tmp_path / 'a' / name), png(tmp_path / 'one' / f'seed{seed:04d}.png'))
  assert sample.main(['truncation', '--network', str(named_path), '--seeds', '1,2', '--psis', '1,0',
                      '--out', str(tmp_path / 't.png')]) == 0


def test_bad_class_names_in_a_manifest_are_refused(tmp_path):
  with pytest.raises(export.ArtifactError, match=r'class_names must be 5 distinct non-empty strings'):
    export.save_artifact(tmp_path / 'x', COND, random_variables(COND, 1), class_names=['a', 'b'])
  with pytest.raises(export.ArtifactError, match=r'class_names.*unconditional'):
    export.save_artifact(tmp_path / 'y', TINY, random_variables(TINY, 1), class_names=['a'])


def test_seed_ranges_and_grammar(plain_path, tmp_path, capsys):
  with pytest.raises(Exception, match=r'seed range 7-3 is descending: write 3-7'):
    sample.parse_seeds('7-3')
  assert generate(plain_path, tmp_path, '--seeds', '4') == 0
  assert 'wrote 1 image to' in capsys.readouterr().out


@pytest.mark.parametrize('flag,value', [('--psi', 'nan'), ('--psi', 'inf'), ('--psi', '-Infinity')])
def test_non_finite_numbers_are_refused(plain_path, tmp_path, capsys, flag, value):
  assert generate(plain_path, tmp_path, '--seeds', '0', f'{flag}={value}') == 2
  assert 'finite number' in capsys.readouterr().err
  assert sample.main(['truncation', '--network', str(plain_path), '--seeds', '0', f'--psis=1,{value}']) == 2
  assert 'finite numbers' in capsys.readouterr().err


def test_a_pickle_is_recognised_by_content(golden_dir, tmp_path):
  shutil.copy(golden_dir / 'network.pkl', tmp_path / 'network.pickle')
  assert generate(tmp_path / 'network.pickle', tmp_path / 'out', '--seeds', '0') == 0
  assert generate(golden_dir / 'network.pkl', tmp_path / 'ref', '--seeds', '0') == 0
  np.testing.assert_array_equal(png(tmp_path / 'out' / 'seed0000.png'), png(tmp_path / 'ref' / 'seed0000.png'))
