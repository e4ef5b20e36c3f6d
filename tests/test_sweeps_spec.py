"""Sweep files: grid / zip / random expansion, trial names, overrides through the command line and back, the
prepared sweep directory, the SLURM array script and the command list. No training runs here."""

import json
import math
import os
import pathlib
import shlex
import subprocess

import pytest

from stylegan_jax import errors, sweeps
from stylegan_jax.sweeps import main as sweep_main
from stylegan_jax.sweeps import trials as trials_lib

REPO = pathlib.Path(__file__).resolve().parents[1]
R1 = sweeps.axis('loss.r1_gamma', [1, 5])
LAYERS = sweeps.axis('model.mapping_layers', [2, 4, 8])


def test_grid_and_zip():
  assert sweeps.product(R1, LAYERS) == [
      {'loss.r1_gamma': r, 'model.mapping_layers': m} for r in (1, 5) for m in (2, 4, 8)]
  assert sweeps.zipped(R1, sweeps.axis('train.G_smoothing_kimg', [0.5, 10.0])) == [
      {'loss.r1_gamma': 1, 'train.G_smoothing_kimg': 0.5}, {'loss.r1_gamma': 5, 'train.G_smoothing_kimg': 10.0}]
  nested = sweeps.product(sweeps.zipped(R1, sweeps.axis('seed', [0, 1])), sweeps.axis('loss.type', ['wgan_gp']))
  assert nested == [{'loss.r1_gamma': 1, 'seed': 0, 'loss.type': 'wgan_gp'},
                    {'loss.r1_gamma': 5, 'seed': 1, 'loss.type': 'wgan_gp'}]
  with pytest.raises(errors.UsageError, match=r'equal length, got \[2, 3\]'):
    sweeps.zipped(R1, LAYERS)
  with pytest.raises(errors.UsageError, match=r"sets \['loss.r1_gamma'\] twice"):
    sweeps.product(R1, R1)


SPACE = {'loss.r1_gamma': sweeps.log_uniform(0.1, 100.0), 'train.style_mixing_prob': sweeps.uniform(0.0, 1.0),
         'model.mapping_layers': sweeps.integer(1, 3), 'loss.type': sweeps.choice(['logistic_r1', 'wgan_gp'])}


def test_random_search_is_reproducible_for_a_seed():
  a, b = sweeps.random_search(SPACE, trials=50, seed=0), sweeps.random_search(SPACE, trials=50, seed=0)
  assert a == b and a != sweeps.random_search(SPACE, trials=50, seed=1)
  gammas = [t['loss.r1_gamma'] for t in a]
  assert all(0.1 <= g <= 100 for g in gammas) and min(gammas) < 1 < 10 < max(gammas)  # spread over the decades
  assert all(0 <= t['train.style_mixing_prob'] <= 1 for t in a)
  assert {t['model.mapping_layers'] for t in a} == {1, 2, 3}  # the upper bound is included
  assert {t['loss.type'] for t in a} == {'logistic_r1', 'wgan_gp'}
  assert all(type(t['model.mapping_layers']) is int and type(t['loss.r1_gamma']) is float for t in a)


def test_names_are_readable_stable_and_unique():
  trials = sweeps.product(R1, LAYERS)
  names = trials_lib.trial_names(trials)
  assert names[:2] == ['r1_gamma=1,mapping_layers=2', 'r1_gamma=1,mapping_layers=4']
  assert names == trials_lib.trial_names(sweeps.product(R1, LAYERS))
  # Floats that agree to 4 digits get their full digits; equal trials get the trial index.
  close = trials_lib.trial_names([{'loss.r1_gamma': 0.123451}, {'loss.r1_gamma': 0.123452}, {'loss.r1_gamma': 2.0},
                                  {'loss.r1_gamma': 2.0}])
  assert close == ['r1_gamma=0.123451', 'r1_gamma=0.123452', 'r1_gamma=2,trial=2', 'r1_gamma=2,trial=3']
  # Swept keys with the same last part are named in full; odd characters are replaced; long names are capped.
  assert trials_lib.trial_names([{'a.lr': 1, 'b.lr': 2}]) == ['a.lr=1,b.lr=2']
  assert trials_lib.trial_names([{'data.source_dir': '../my pics/*'}]) == ['source_dir=.._my_pics__']
  assert trials_lib.trial_names([{'train.grid_size': (4, 2)}]) == ['grid_size=4-2']
  long = trials_lib.trial_names([{'data.folder_name': 'x' * 300}, {'data.folder_name': 'x' * 299 + 'y'}])
  assert all(len(n) == trials_lib.MAX_NAME for n in long) and long[0] != long[1]
  random_names = trials_lib.trial_names(sweeps.random_search(SPACE, trials=50, seed=0))
  assert len(set(random_names)) == 50


# One override of every type ml-collections parses from a flag, with the value the trial's config must get.
OVERRIDES = [
    ('model.mapping_layers', 2, 2),                 # int
    ('loss.r1_gamma', 5, 5.0),                      # int for a float field
    ('train.G_smoothing_kimg', 0.25, 0.25),         # float
    ('train.mirror_augment', False, False),         # bool
    ('loss.type', 'wgan_gp', 'wgan_gp'),            # str
    ('train.grid_size', (4, 2), (4, 2)),            # tuple
    ('schedule.minibatch_dict', {'16': 16}, {'16': 16}),  # a nested table
    ('seed', 7, 7),                                 # a top-level key
]


def test_overrides_round_trip_through_the_command(tmp_path):
  sweep = sweeps.Sweep(config='smoke', overrides={'train.total_kimg': 0.5},
                       trials=[{key: value for key, value, _ in OVERRIDES}])
  (trial,) = trials_lib.expand(sweep)
  config = trials_lib.resolve(sweep, trial)
  for key, _, expected in OVERRIDES:
    assert trials_lib.get_value(config, key) == expected, key
  assert config.train.total_kimg == 0.5 and config.model.fmap_max == 16  # the smoke config's own values stay
  command = trials_lib.command(sweep, trial, str(tmp_path))
  assert command[1:3] == ['-m', 'stylegan_jax.main'] and command[4] == f'--workdir={tmp_path}/trials/{trial.name}'
  assert '--config.train.grid_size=(4, 2)' in command and '--config.loss.r1_gamma=5' in command
  # The command's own flags, parsed as the train command parses them, give the same config.
  flags = [a for a in shlex.split(shlex.join(command)) if a.startswith('--config.')]
  assert trials_lib.parse_config(command[3].split('=', 1)[1], flags).to_dict() == config.to_dict()
  with pytest.raises(errors.UsageError, match='seed: both a fixed override and swept'):
    trials_lib.expand(sweeps.Sweep(config='smoke', overrides={'seed': 1}, trials=[{'seed': 2}]))


@pytest.mark.parametrize('trial,message', [
    ({'train.r1_gamma': 5}, 'unknown config key train.r1_gamma: did you mean loss.r1_gamma?'),
    ({'train.total_kimg': 'ten'}, 'flag --config.train.total_kimg=ten: could not convert string to float'),
    ({'train.total_kimg': 0}, 'train.total_kimg=0.0: must be a number > 0'),
    ({'train.total_kimg': math.nan}, 'train.total_kimg=nan: must be finite'),
    ({'model.fused_scale': True}, "model.fused_scale=True does not survive the command line: "
                                  "--config.model.fused_scale=True reads back as 'True'"),
    ({'data.source_dir': None}, 'cannot pass None (NoneType) on the command line'),
], ids=['unknown', 'unparsable', 'range', 'nan', 'type_lost', 'none'])
def test_invalid_trials_are_refused_naming_the_key(trial, message):
  sweep = sweeps.Sweep(config='smoke', trials=[trial])
  with pytest.raises(errors.UsageError) as raised:
    trials_lib.resolve(sweep, trials_lib.expand(sweep)[0])
  assert message in str(raised.value) and '\n' not in str(raised.value)


def write_sweep(path: pathlib.Path, body: str) -> pathlib.Path:
  path.write_text(f'from stylegan_jax import sweeps\n\n\ndef get_sweep():\n  return {body}\n')
  return path


TWO_AXES = ("sweeps.Sweep(config='smoke', overrides={'train.total_kimg': 0.1}, trials=sweeps.product("
            "sweeps.axis('loss.r1_gamma', [1, 5]), sweeps.axis('model.mapping_layers', [1, 2, 4])))")


def test_slurm_array_has_one_task_per_trial(tmp_path, capsys):
  sweep_file = write_sweep(tmp_path / 'two_axes.py', TWO_AXES)
  out = tmp_path / 'out'
  assert sweep_main.main(['slurm', str(sweep_file), '--dir', str(out), '--parallel', '2',
                          '--sbatch=--gres=gpu:1']) == 0
  script = (out / 'sweep.sbatch').read_text()
  assert subprocess.run(['bash', '-n', str(out / 'sweep.sbatch')]).returncode == 0
  assert '#SBATCH --array=0-5%2\n' in script and '#SBATCH --requeue\n' in script and '#SBATCH --gres=gpu:1\n' in script
  commands = (out / 'commands.txt').read_text().splitlines()
  names = [t['name'] for t in json.loads((out / 'sweep.json').read_text())['trials']]
  assert len(commands) == 6 and len(set(names)) == 6
  # What each array task runs: the script with its final exec replaced by an echo.
  assert script.rstrip().endswith('eval "exec ${line}"')
  echo = script.replace('eval "exec ${line}"', 'echo "${line}"')
  for index, name in enumerate(names):
    ran = subprocess.run(['bash', '-c', echo], env={**os.environ, 'SLURM_ARRAY_TASK_ID': str(index)},
                         capture_output=True, text=True, check=True).stdout.splitlines()[-1]
    assert ran == commands[index] and f'--workdir={out}/trials/{name}' in ran
    assert json.loads((out / 'trials' / name / 'config.json').read_text())['model']['mapping_layers'] == int(
        name.split('mapping_layers=')[1])
  assert sweep_main.main(['commands', str(sweep_file), '--dir', str(out)]) == 0
  assert capsys.readouterr().out.splitlines()[-6:] == commands


def test_sweep_file_config_beside_it_and_invalid_ones_refused(tmp_path, capsys):
  (tmp_path / 'mine.py').write_text('from stylegan_jax.configs import smoke\n\n\ndef get_config():\n'
                                    '  return smoke.get_config()\n')
  sweep_file = write_sweep(tmp_path / 's.py', "sweeps.Sweep(config='mine.py', trials=sweeps.axis('seed', [1]))")
  assert sweeps.load(str(sweep_file)).config == str(tmp_path / 'mine.py')
  bad = write_sweep(tmp_path / 'bad.py', "sweeps.Sweep(config='smoke', trials=sweeps.axis('loss.r1_gamma', [1, -1]))")
  assert sweep_main.main(['commands', str(bad), '--dir', str(tmp_path / 'out')]) == 2
  assert 'error: 1 of 2 trials have invalid configs' in capsys.readouterr().err
  status = json.loads((tmp_path / 'out' / 'trials' / 'r1_gamma=-1' / 'status.json').read_text())
  assert status['state'] == 'failed' and 'loss.r1_gamma=-1.0: must be a number >= 0' in status['error']
  with pytest.raises(errors.UsageError, match='has no get_sweep'):
    sweeps.load(str(tmp_path / 'mine.py'))


@pytest.mark.parametrize('sweep_file', sorted((REPO / 'experiments' / 'sweeps').glob('*.py')), ids=lambda p: p.name)
def test_shipped_sweep_files_expand_into_valid_trials(sweep_file, tmp_path):
  """Every sweep file in experiments/sweeps/ loads, and each of its trials' configs validates (keys and values)."""
  sweep = sweeps.load(str(sweep_file))
  trials, invalid = trials_lib.prepare(sweep, str(sweep_file), str(tmp_path), 'python')
  assert trials and not invalid
