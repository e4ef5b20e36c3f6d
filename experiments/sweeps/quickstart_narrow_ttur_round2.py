"""Round 2 of quickstart_narrow_minibatch_ttur.py, whose D learning rate 0.006 (twice G's 0.003 from the 32x32
fade-in on) scored fd_domain 108.4 at 100 kimg against 118.4 for the seed-0 baseline: the same with seed 1
(baseline 105.5), and D at four times G's (0.012) with seed 0. Narrow proxy (model.fmap_base 256), full runs from
scratch, one CPU device each.

  stylegan-jax sweep run experiments/sweeps/quickstart_narrow_ttur_round2.py --dir sweeps/narrow_ttur_round2 \
      --parallel 2
  stylegan-jax sweep summary --dir sweeps/narrow_ttur_round2
"""

from stylegan_jax import sweeps


def get_sweep():
  return sweeps.Sweep(config='default', overrides={'model.fmap_base': 256},
                      trials=[{'schedule.D_lrate_base': 0.006, 'seed': 1}, {'schedule.D_lrate_base': 0.012}])
