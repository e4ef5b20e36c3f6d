"""Round 4 of the quickstart's 32x32-stage sweep, on the default with learning rates 0.003 from 32x32 on (rounds
1-3: quickstart_32_branch*.py, run on the earlier 0.002): the same branch point and length (30 -> 50 kimg), one
process per trial on one CPU device as before. A second seed of the new learning rates (its seed-0 twin is round
1's lr 0.003 trial: the same computation), higher learning rates, and less style mixing.

  stylegan-jax sweep run experiments/sweeps/quickstart_32_branch_round4.py --dir sweeps/q32_round4 --parallel 2
  stylegan-jax sweep summary --dir sweeps/q32_round4
"""

from stylegan_jax import sweeps

BRANCH = 'workdir/quickstart30/checkpoints/000030016'  # as quickstart_32_branch.py


def get_sweep():
  return sweeps.Sweep(
      config='default', overrides={'train.total_kimg': 50.0}, flags=[f'--init_from={BRANCH}'],
      trials=[{'seed': 1}, {'schedule.G_lrate_base': 0.004, 'schedule.D_lrate_base': 0.004},
              {'train.style_mixing_prob': 0.5}, {'train.style_mixing_prob': 0.0}])
