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


def test_editing_with_projected_dlatents(tmp_path, capsys):
  """Two 'real' images projected (const noise), then mixed with seeds and interpolated by the figure commands."""
  from PIL import Image  # noqa: PLC0415
  rng = np.random.RandomState(1)
  for i in range(2):
    sampling.save_png(rng.randint(0, 256, (32, 32, 3), np.uint8), tmp_path / f'real{i}.png')
  out = tmp_path / 'proj'
  assert cli.main(['project', f'--network={GOLDEN}', str(tmp_path / 'real0.png'), str(tmp_path / 'real1.png'),
                   f'--outdir={out}', '--steps=20', '--steps-per-call=10', '--noise=const']) == 0
  projected = np.stack([np.asarray(Image.open(out / 'projected' / f'000{i}-real{i}.png')) for i in range(2)])
  dlatents = str(out / 'dlatents.npy')

  grid = tmp_path / 'mix.png'
  assert cli.main(['sample', 'style-mixing', f'--network={GOLDEN}', f'--row-dlatents={dlatents}',
                   '--col-seeds=3-5', '--styles=coarse', f'--out={grid}']) == 0, capsys.readouterr().err
  canvas = np.asarray(Image.open(grid))
  assert canvas.shape == (3 * 32, 4 * 32, 3)
  for i in range(2):  # the left column is each real image's projection, as `project` rendered it
    assert np.abs(canvas[(i + 1) * 32:(i + 2) * 32, :32].astype(int) - projected[i]).max() <= 1

  video = tmp_path / 'walk.gif'
  assert cli.main(['sample', 'interpolate', f'--network={GOLDEN}', f'--dlatents={dlatents}', '--frames=4',
                   f'--out={video}']) == 0, capsys.readouterr().err
  with Image.open(video) as gif:
    frames = []
    for k in range(gif.n_frames):
      gif.seek(k)
      frames.append(np.asarray(gif.convert('RGB')))
  assert len(frames) == 4
  # GIF palettes are lossy: compare coarsely, start and end on the two projections.
  assert np.abs(frames[0].astype(int) - projected[0]).mean() < 8
  assert np.abs(frames[-1].astype(int) - projected[1]).mean() < 8

  capsys.readouterr()
  assert cli.main(['sample', 'style-mixing', f'--network={GOLDEN}', f'--row-dlatents={dlatents}',
                   '--row-seeds=1', '--col-seeds=3']) == 2
  assert 'exactly one of --row-seeds and --row-dlatents' in capsys.readouterr().err
  np.save(tmp_path / 'bad.npy', np.zeros((2, 5, 64), np.float32))
  assert cli.main(['sample', 'interpolate', f'--network={GOLDEN}', f'--dlatents={tmp_path / "bad.npy"}']) == 1
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and 'must be [N >= 1, 8, 64]' in err[0], err
