"""The quickstart's 32x32 stage, where 70% of its images and 80% of its time go: every trial branches from one run's
16x16-stage end (30 kimg) and trains the 32x32 fade-in and 10 kimg of the stable stage (to 50 kimg), so a trial
costs 20 kimg instead of 50 and the trials differ only where they are meant to. Round 1: R1 strength at 32x32 and
the learning rates.

  stylegan-jax prepare --config=default                                              # once
  stylegan-jax train --config=default --workdir=workdir/quickstart30 --config.train.total_kimg=32   # ~16 min
  stylegan-jax sweep run experiments/sweeps/quickstart_32_branch.py --dir sweeps/q32 --parallel 2
  stylegan-jax sweep summary --dir sweeps/q32                                        # fd_domain: lower is better

Ran at commit 4387581, when the default's learning rates were 0.002 at every stage (0.003 from 32x32 on
since, from these results): check that commit out to rerun them as they ran.
"""

from stylegan_jax import sweeps

BRANCH = 'workdir/quickstart30/checkpoints/000030016'  # the 16x16 stage-end checkpoint, relative to where you run


def get_sweep():
  lrates = [{'schedule.G_lrate_base': lr, 'schedule.D_lrate_base': lr} for lr in (0.003,)]
  return sweeps.Sweep(
      config='default', overrides={'train.total_kimg': 50.0}, flags=[f'--init_from={BRANCH}'],
      trials=sweeps.axis('loss.r1_gamma', [10.0, 1.0, 0.1]) + lrates)
