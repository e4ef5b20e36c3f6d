"""Round 2 of the quickstart's 32x32-stage sweep (quickstart_32_branch.py: the same branch point and length, 30 ->
50 kimg): the noise between two runs of one setting (seed 1: other latents, noise and data order), stronger R1,
a longer Gs average and minibatch 8.

  stylegan-jax sweep run experiments/sweeps/quickstart_32_branch_round2.py --dir sweeps/q32_round2 --parallel 2
  stylegan-jax sweep summary --dir sweeps/q32_round2

Ran at commit 4387581, when the default's learning rates were 0.002 at every stage (0.003 from 32x32 on
since, from these results): check that commit out to rerun them as they ran.
"""

from stylegan_jax import sweeps

BRANCH = 'workdir/quickstart30/checkpoints/000030016'  # as quickstart_32_branch.py


def get_sweep():
  return sweeps.Sweep(
      config='default', overrides={'train.total_kimg': 50.0}, flags=[f'--init_from={BRANCH}'],
      trials=[{'seed': 1}, {'loss.r1_gamma': 30.0}, {'train.G_smoothing_kimg': 2.5}, {'schedule.minibatch_base': 8}])
