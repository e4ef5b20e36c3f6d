"""Round 3 of the quickstart's 32x32-stage sweep: the baseline and the two settings that gave more learning per
image at 50 kimg (rounds 1 and 2: learning rates 0.003, minibatch 8), each trained through the whole 32x32 stage
(30 -> 100 kimg, the quickstart's end) from the same branch point, 3 at a time (about 50 minutes on 2 CPU cores).

  stylegan-jax sweep run experiments/sweeps/quickstart_32_branch_to100.py --dir sweeps/q32_to100 --parallel 3
  stylegan-jax sweep summary --dir sweeps/q32_to100

The 2026-12-03 run continued rounds 1 and 2's trials from their 50-kimg checkpoints with total_kimg 100 (a resume
is exact, so this is the same computation); results/quickstart_32_branch_to100/.

Ran at commit 4387581, when the default's learning rates were 0.002 at every stage (0.003 from 32x32 on
since, from these results): check that commit out to rerun them as they ran.
"""

from stylegan_jax import sweeps

BRANCH = 'workdir/quickstart30/checkpoints/000030016'  # as quickstart_32_branch.py


def get_sweep():
  return sweeps.Sweep(
      config='default', overrides={'train.total_kimg': 100.0}, flags=[f'--init_from={BRANCH}'],
      trials=[{'loss.r1_gamma': 10.0}, {'schedule.G_lrate_base': 0.003, 'schedule.D_lrate_base': 0.003},
              {'schedule.minibatch_base': 8}])
