"""`stylegan-jax project`: outputs, --help and its one-line errors."""

import json

import numpy as np
import pytest

from conftest import GOLDEN as GOLDEN_DIR
from stylegan_jax import cli, sampling

GOLDEN = str(GOLDEN_DIR / 'sg1_small32' / 'network.pkl')


def one_error_line(capsys, code, returned, expected):
  err = capsys.readouterr().err.strip().splitlines()
  assert returned == code and len(err) == 1 and err[0].startswith('error: ') and expected in err[0], err


def test_project_writes_everything(tmp_path, capsys):
  rng = np.random.RandomState(0)
  folder = tmp_path / 'photos'
  for i, shape in enumerate([(40, 40, 3), (64, 48, 3), (32, 32, 1)]):
    sampling.save_png(rng.randint(0, 256, shape, np.uint8), folder / f'img{i}.png')
  out = tmp_path / 'out'
  code = cli.main(['project', f'--network={GOLDEN}', str(folder), f'--outdir={out}', '--steps=20',
                   '--steps-per-call=10', '--batch-size=2', f'--video={out / "opt.gif"}'])
  assert code == 0, capsys.readouterr().err
  dlatents = np.load(out / 'dlatents.npy')
  assert dlatents.shape == (3, 8, 64) and dlatents.dtype == np.float32
  assert (out / 'images.txt').read_text().split() == [str(folder / f'img{i}.png') for i in range(3)]
  assert sorted(p.name for p in (out / 'projected').iterdir()) == ['0000-img0.png', '0001-img1.png', '0002-img2.png']
  report = json.loads((out / 'projection.json').read_text())
  assert [e['path'] for e in report['images']] == [str(folder / f'img{i}.png') for i in range(3)]
  assert report['options']['space'] == 'w+' and all(np.isfinite(e['psnr_db']) for e in report['images'])
  from PIL import Image  # noqa: PLC0415
  assert Image.open(out / 'side-by-side.png').size == (64, 96)
  with Image.open(out / 'opt.gif') as gif:
    assert gif.n_frames == 3 and gif.size == (64, 96)
  assert 'PSNR' in capsys.readouterr().out


def test_help_lists_the_flags(capsys):
  assert cli.main(['project', '--help']) == 0
  out = capsys.readouterr().out
  for flag in ('--space', '--noise', '--distance', '--lpips-vgg16', '--domain-classifier', '--video', '--labels'):
    assert flag in out


@pytest.mark.parametrize('argv,code,expected', [
    (['--network=x', 'a.png', '--bogus'], 2, 'unrecognized arguments: --bogus'),
    (['--network=x', 'a.png', '--space=z'], 2, "--space: invalid choice: 'z'"),
    (['--network=x', 'a.png', '--steps=30', '--steps-per-call=20'], 2, 'multiple of --steps-per-call'),
    (['--network=x'], 2, 'the following arguments are required: images'),
])
def test_usage_errors(capsys, argv, code, expected):
  one_error_line(capsys, code, cli.main(['project', *argv]), expected)


def test_missing_files(tmp_path, capsys):
  image = tmp_path / 'a.png'
  sampling.save_png(np.zeros((32, 32, 3), np.uint8), image)
  one_error_line(capsys, 1, cli.main(['project', f'--network={tmp_path / "missing.pkl"}', str(image)]),
                 'missing.pkl')
  one_error_line(capsys, 1, cli.main(['project', f'--network={GOLDEN}', str(tmp_path / 'nope.png')]), 'nope.png')
  one_error_line(capsys, 2, cli.main(['project', f'--network={GOLDEN}', str(image), '--distance=lpips']),
                 '--distance=lpips needs --lpips-vgg16')
  one_error_line(capsys, 2, cli.main(['project', f'--network={GOLDEN}', str(image), '--labels=1']),
                 'unconditional')
