"""experiments/benchmark.py: row specs, and a full run of its table on the smoke config."""

import importlib.util
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, 'experiments', 'benchmark.py')


def load():
  spec = importlib.util.spec_from_file_location('benchmark', SCRIPT)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_row_specs():
  benchmark = load()
  assert benchmark.parse_rows(['official:16@32,32', 'smoke:8']) == [('official', 16, 32), ('official', 32, 0),
                                                                     ('smoke', 8, 0)]
  with pytest.raises(SystemExit, match='CONFIG:RES'):
    benchmark.parse_rows(['official'])
  with pytest.raises(SystemExit, match="got 'smoke:8@x'"):
    benchmark.parse_rows(['smoke:8@x'])


def test_quickstart_r1_is_the_quickstart_with_r1_every_step():
  benchmark = load()
  quickstart, r1 = benchmark.load_config('quickstart'), benchmark.load_config('quickstart_r1')
  assert quickstart.loss.penalty_interval == 16 and r1.loss.penalty_interval == 1
  r1.loss.penalty_interval = 16
  assert r1.to_dict() == quickstart.to_dict()


def test_an_unknown_config_is_one_line_before_any_measuring():
  run = subprocess.run([sys.executable, SCRIPT, '--train', 'nosuch:8', '--sample'], capture_output=True, text=True,
                       cwd=ROOT)
  assert run.returncode == 2 and 'Traceback' not in run.stderr and 'peak' not in run.stdout
  assert run.stderr.splitlines()[-1].startswith('benchmark.py: error: --config nosuch: neither a shipped config')


def test_a_broken_config_file_is_one_line(tmp_path):
  """A config file that does not run (here a syntax error) is one line naming it, in both scripts."""
  broken = tmp_path / 'broken.py'
  broken.write_text('def get_config(:\n')
  for script, args in ((SCRIPT, ['--count', f'{broken}:8']),
                       (os.path.join(ROOT, 'experiments', 'step_times.py'), [f'{broken}:8'])):
    run = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 2 and 'Traceback' not in run.stderr, run.stderr
    assert run.stderr.splitlines()[-1].endswith(f'error: --config {broken}: SyntaxError: invalid syntax '
                                                '(broken.py, line 1)')


@pytest.mark.slow  # 35-40 s of compiling and measuring in a subprocess (CI budget)
def test_table_on_the_smoke_config():
  """One training and one sampling row: every column filled, FLOP/s = img/s x GFLOP/img, the peak measured; the
  count of the same stage, lowered, agrees with the compiled steps' FLOP within 10%."""
  out = subprocess.run([sys.executable, SCRIPT, '--train', 'smoke:8', '--sample', 'smoke:8@4', '--count', 'smoke:8',
                        '--memory', '--seconds', '0.2'], capture_output=True, text=True, check=True, cwd=ROOT).stdout
  assert 'measured peak: conv' in out
  measured, counted = out.split('| count |')
  rows = [line.split('|')[1:-1] for line in measured.splitlines() if line.startswith(('| train', '| sample'))]
  assert [r[0].strip() for r in rows] == ['train', 'sample']
  for row in rows:
    img_per_s, gflop_per_img, gflop_per_s = (float(row[i]) for i in (5, 6, 7))
    assert img_per_s > 0 and gflop_per_img > 0
    assert gflop_per_s == pytest.approx(img_per_s * gflop_per_img, rel=0.01, abs=1)
  assert rows[1][3].strip() == '4' and '%' in rows[0][8]
  (count,) = [line.split('|')[1:-1] for line in counted.splitlines() if line.startswith('| train')]
  assert float(count[4]) == pytest.approx(float(rows[0][6]), rel=0.1)
  assert float(count[6]) == pytest.approx(float(rows[0][9]), rel=0.01, abs=1)  # the same compiled steps' memory


def count_smoke_16(*extra) -> tuple[str, float]:
  """(the header line, GFLOP/img) of `benchmark.py --count smoke:16 EXTRA...`."""
  out = subprocess.run([sys.executable, SCRIPT, '--train', '--sample', '--count', 'smoke:16', *extra],
                       capture_output=True, text=True, check=True, cwd=ROOT).stdout
  (row,) = [line.split('|')[1:-1] for line in out.splitlines() if line.startswith('| train')]
  return out.splitlines()[0], float(row[4])


def test_data_parallel_rows_count_every_device():
  """With --cpu_devices 2 each device lowers half the minibatch: the FLOP per image of the whole step pair are the
  one-device count's (XLA's cost analysis sees one device's program)."""
  (one_header, one), (two_header, two) = count_smoke_16(), count_smoke_16('--cpu_devices', '2')
  assert 'x 2 devices' in two_header and 'devices' not in one_header
  assert two == pytest.approx(one, rel=0.02)


def test_forms_count_another_platforms_program():
  """--forms gpu on this CPU counts the program a GPU runs: the official separate downsampling and upsampling
  convs, 2.25x the FLOP of the CPU's fused and phase forms at those layers, so more FLOP per image than the
  CPU's forms (the default here, as --forms cpu)."""
  (cpu_header, cpu), (gpu_header, gpu) = count_smoke_16(), count_smoke_16('--forms', 'gpu')
  assert 'cpu forms' in cpu_header and 'gpu forms' in gpu_header
  assert gpu > 1.2 * cpu
  run = subprocess.run([sys.executable, SCRIPT, '--count', 'smoke:16', '--forms', 'metal'], capture_output=True,
                       text=True, cwd=ROOT)
  assert run.returncode == 2 and "invalid choice: 'metal'" in run.stderr.splitlines()[-1]


def test_variants_set_the_precision_and_are_counted():
  benchmark = load()
  assert benchmark.load_config('official+bf16').train.compute_dtype == 'bfloat16'
  assert benchmark.load_config('official').train.compute_dtype == 'float32'
  tf32 = benchmark.load_config('official+tf32+bf16').train
  assert (tf32.matmul_precision, tf32.compute_dtype) == ('tensorfloat32', 'bfloat16')
  with pytest.raises(Exception, match="unknown variant 'fp8'"):
    benchmark.load_config('smoke+fp8')
  out = subprocess.run([sys.executable, SCRIPT, '--train', '--sample', '--count', 'smoke:8', 'smoke+bf16:8'],
                       capture_output=True, text=True, check=True, cwd=ROOT).stdout
  rows = [line.split('|')[1:-1] for line in out.splitlines() if line.startswith('| train')]
  assert [r[1].strip() for r in rows] == ['smoke', 'smoke+bf16']
  run = subprocess.run([sys.executable, SCRIPT, '--train', '--sample', 'smoke+bf16:8'], capture_output=True,
                       text=True, cwd=ROOT)
  assert run.returncode == 2 and run.stderr.splitlines()[-1].endswith('a +VARIANT is for training and count rows')


def test_step_times_prints_each_step_and_refuses_two_rows():
  """experiments/step_times.py: per round, each of the stage's steps with its wall ms and busy cores (> 0); with
  --kernels, each step's convolutions and matmuls alone (all rebuilt, FLOP/s = FLOP / time)."""
  script = os.path.join(ROOT, 'experiments', 'step_times.py')
  out = subprocess.run([sys.executable, script, '--steps', '2', '--rounds', '2', '--kernels', 'smoke:8'],
                       capture_output=True, text=True, check=True, cwd=ROOT).stdout.splitlines()
  assert out[0].startswith('smoke:8, minibatch 8, 1 device(s)')
  rounds = [line for line in out if line.startswith('round ')]
  assert len(rounds) == 2
  for line in rounds:
    cells = dict(re.fullmatch(r'(.+) ([\d.]+) ms, cores ([\d.]+)', cell).group(1, 3)
                 for cell in line.split(': ', 1)[1].split(' | '))
    assert set(cells) == {'D step with penalty', 'G step'} and all(float(c) > 0 for c in cells.values())
  (kernels,) = [line for line in out if line.startswith('kernels alone: ')]
  cells = [re.fullmatch(r'(.+) ([\d.]+) ms \((\d+) convolutions and matmuls, ([\d.]+) GFLOP, (\d+) GFLOP/s\)', cell)
           for cell in kernels.split(': ', 1)[1].split(' | ')]
  assert [c.group(1) for c in cells] == ['D step with penalty', 'G step']
  for cell in cells:
    ms, count, gflop, rate = float(cell.group(2)), int(cell.group(3)), float(cell.group(4)), int(cell.group(5))
    assert ms > 0 and count > 10 and gflop > 0
    assert rate == pytest.approx(gflop / ms * 1e3, rel=0.05, abs=1 + 5 / ms)  # GFLOP printed to 0.01
  for args, message in ((['smoke:8,16'], "one row (one resolution), got 'smoke:8,16'"),
                        (['--kernels', '--cpu_devices', '2', 'smoke:8'], 'leave out --cpu_devices')):
    run = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 2 and run.stderr.splitlines()[-1].endswith(message), run.stderr
