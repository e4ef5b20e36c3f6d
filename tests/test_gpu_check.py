"""experiments/gpu_check.sh, the prepared GPU check of issue #11, run here on the CPU: its parts' plumbing."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, 'experiments', 'gpu_check.sh')


def run(tmp_path, *parts, **env):
  return subprocess.run(['bash', SCRIPT, *parts], capture_output=True, text=True, cwd=tmp_path,
                        env={**os.environ, 'OUT': str(tmp_path / 'out'), 'PYTHON': sys.executable, **env})


def test_an_unknown_part_is_one_line_before_anything_runs(tmp_path):
  result = run(tmp_path, 'env', 'benchmark')
  assert result.returncode == 2 and result.stdout == ''
  assert result.stderr.strip() == "gpu_check.sh: unknown part 'benchmark' (parts: env golden bench fast train; or --fetch)"


def test_a_failed_part_leaves_the_next_one_its_turn(tmp_path):
  """The benchmark part fails (a wrong row); the env part after it still runs; each verdict is in parts.txt and
  each part's output in its own file."""
  result = run(tmp_path, 'bench', 'env', GPU_CHECK_BENCH='--train nosuch:8 --sample')
  out = tmp_path / 'out'
  assert result.returncode == 0, result.stderr
  verdicts = (out / 'parts.txt').read_text().splitlines()
  assert [line.split(' in ')[0] for line in verdicts] == ['== bench: failed (2)', '== env: ok']
  assert 'neither a shipped config' in (out / 'benchmark.md').read_text()
  env = (out / 'env.txt').read_text()
  assert 'no nvidia-smi' in env and 'devices [CpuDevice(id=0)' in env and 'ml-collections 1.' in env
