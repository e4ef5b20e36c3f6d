"""The sweep summary from synthetic trial logs: sorted CSV and Markdown tables, and the plots."""

import csv
import io
import json

import pytest
from PIL import Image

from stylegan_jax import errors
from stylegan_jax.sweeps import main as sweep_main
from stylegan_jax.sweeps import summary

# name -> (swept values, metrics.jsonl records as (kimg, fd_domain or None)).
TRIALS = {
    'r1_gamma=1,G_smoothing_kimg=0.5': ({'loss.r1_gamma': 1, 'train.G_smoothing_kimg': 0.5},
                                        [(1, None), (2, 80.0), (4, 60.0), (6, 65.0)]),
    'r1_gamma=1,G_smoothing_kimg=5': ({'loss.r1_gamma': 1, 'train.G_smoothing_kimg': 5.0},
                                      [(2, 90.0), (4, 70.0), (6, 50.0)]),
    'r1_gamma=10,G_smoothing_kimg=0.5': ({'loss.r1_gamma': 10, 'train.G_smoothing_kimg': 0.5},
                                         [(2, 100.0), (4, 95.0)]),
    'r1_gamma=10,G_smoothing_kimg=5': ({'loss.r1_gamma': 10, 'train.G_smoothing_kimg': 5.0}, []),  # not started
}


@pytest.fixture
def sweep_dir(tmp_path):
  (tmp_path / 'sweep.json').write_text(json.dumps(dict(
      axes=['loss.r1_gamma', 'train.G_smoothing_kimg'],
      trials=[dict(name=n, overrides=o) for n, (o, _) in TRIALS.items()])))
  for name, (_, records) in TRIALS.items():
    directory = tmp_path / 'trials' / name
    directory.mkdir(parents=True)
    lines = [json.dumps({'kimg': k, 'loss_D': 1.0 / k, **({'fd_domain': v} if v is not None else {})})
             for k, v in records]
    if lines:
      (directory / 'metrics.jsonl').write_text('\n'.join(lines) + '\n{"kimg": 7, "fd_dom')  # a record being written
  (tmp_path / 'trials' / 'r1_gamma=1,G_smoothing_kimg=5' / 'status.json').write_text('{"state": "failed"}')
  return tmp_path


def test_a_key_a_trial_does_not_set_shows_the_value_it_trained_with(sweep_dir):
  """A trial without one of the swept keys (here the baseline of a one-change-per-trial sweep) shows its resolved
  config's value, from its config.json; without one, nothing."""
  sweep = json.loads((sweep_dir / 'sweep.json').read_text())
  sweep['trials'][2]['overrides'] = {'train.G_smoothing_kimg': 0.5}
  (sweep_dir / 'sweep.json').write_text(json.dumps(sweep))
  name = sweep['trials'][2]['name']
  (sweep_dir / 'trials' / name / 'config.json').write_text(json.dumps({'loss': {'r1_gamma': 10.0}}))
  rows = {r.name: r for r in summary.gather(str(sweep_dir))[1]}
  assert rows[name].values == {'loss.r1_gamma': 10.0, 'train.G_smoothing_kimg': 0.5}
  (sweep_dir / 'trials' / name / 'config.json').unlink()
  rows = {r.name: r for r in summary.gather(str(sweep_dir))[1]}
  assert rows[name].values == {'loss.r1_gamma': None, 'train.G_smoothing_kimg': 0.5}


def test_csv_and_markdown_sorted_by_best(sweep_dir, capsys):
  assert sweep_main.main(['summary', '--dir', str(sweep_dir)]) == 0
  rows = list(csv.reader(io.StringIO((sweep_dir / 'summary.csv').read_text())))
  assert rows == [
      ['trial', 'loss.r1_gamma', 'train.G_smoothing_kimg', 'status', 'kimg', 'fd_domain final', 'fd_domain best',
       'best at kimg'],
      ['r1_gamma=1,G_smoothing_kimg=5', '1', '5', 'failed', '6', '50', '50', '6'],
      ['r1_gamma=1,G_smoothing_kimg=0.5', '1', '0.5', 'stopped', '6', '65', '60', '4'],
      ['r1_gamma=10,G_smoothing_kimg=0.5', '10', '0.5', 'stopped', '4', '95', '95', '4'],
      ['r1_gamma=10,G_smoothing_kimg=5', '10', '5', 'pending', '', '', '', ''],
  ]
  markdown = (sweep_dir / 'summary.md').read_text().splitlines()
  assert markdown[0] == ('| trial | loss.r1_gamma | train.G_smoothing_kimg | status | kimg | fd_domain final | '
                         'fd_domain best | best at kimg |')
  assert markdown[2] == '| r1_gamma=1,G_smoothing_kimg=5 | 1 | 5 | failed | 6 | 50 | 50 | 6 |'
  assert len(markdown) == 6 and capsys.readouterr().out.startswith(markdown[0])
  plots = sorted(p.name for p in (sweep_dir / 'plots').iterdir())
  assert plots == ['axis_loss.r1_gamma.png', 'axis_train.G_smoothing_kimg.png', 'curves.png']
  for name in plots:
    with Image.open(sweep_dir / 'plots' / name) as image:
      image.load()
      assert image.size[0] > 300 and image.size[1] > 200


def test_other_metric_and_mode(sweep_dir):
  axes, rows = summary.gather(str(sweep_dir), metric='loss_D', mode='max')
  assert [(r.name, r.best, r.best_kimg, r.final) for r in rows][:3] == [
      ('r1_gamma=1,G_smoothing_kimg=0.5', 1.0, 1, 1 / 6), ('r1_gamma=1,G_smoothing_kimg=5', 0.5, 2, 1 / 6),
      ('r1_gamma=10,G_smoothing_kimg=0.5', 0.5, 2, 0.25)]
  markdown, plots = summary.summarize(str(sweep_dir), metric='no_such_metric')
  assert plots == [] and markdown.splitlines()[2].endswith('|  |  |  |')
  with pytest.raises(errors.UserError, match='not a sweep directory'):
    summary.gather(str(sweep_dir / 'trials'))
