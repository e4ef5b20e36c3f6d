"""A SLURM job array for a sweep: one array task per trial, each running its line of commands.txt.

A task that is requeued (`--requeue`, preemption) or resubmitted resumes its trial from the trial's checkpoints,
and a finished trial returns at once. `--signal=B:TERM@120` asks the trial to save a checkpoint and stop two
minutes before the time limit (the command is exec'ed, so the training process gets the signal).
"""

import os
import shlex
from typing import Sequence


def script(name: str, commands_file: str, num_trials: int, log_dir: str, workdir: str, *,
           parallel: int = 0, sbatch: Sequence[str] = ()) -> str:
  """The batch script: `#SBATCH` header (array 0..num_trials-1, at most `parallel` at once when > 0, plus the
  extra `sbatch` options), then the task's command from line SLURM_ARRAY_TASK_ID + 1 of `commands_file`, run
  in `workdir` (where relative data paths are resolved)."""
  throttle = f'%{parallel}' if parallel > 0 else ''
  header = [f'--job-name={name}', f'--array=0-{num_trials - 1}{throttle}', '--requeue', '--open-mode=append',
            f'--output={os.path.join(log_dir, "%A_%a.out")}', '--signal=B:TERM@120', *sbatch]
  return '\n'.join([
      '#!/bin/bash',
      *[f'#SBATCH {option}' for option in header],
      f'# Sweep {name}: {num_trials} trials, array task i runs line i + 1 of {commands_file}.',
      'set -euo pipefail',
      f'cd {shlex.quote(workdir)}',
      f'line=$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" {shlex.quote(commands_file)})',
      'echo "task ${SLURM_ARRAY_TASK_ID} (restart ${SLURM_RESTART_COUNT:-0}): ${line}"',
      'eval "exec ${line}"',
      ''])
