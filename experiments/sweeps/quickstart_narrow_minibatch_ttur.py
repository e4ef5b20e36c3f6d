"""Minibatch 32 (the default 16) and a D learning rate twice G's (0.006 against 0.003 from the 32x32 fade-in on, as
two-timescale recipes run D faster) at the quickstart's budget, on the narrow proxy (model.fmap_base 256) with
seed 0, against its baseline (quickstart_narrow_mapping.py's first trial: fd_domain 118.4 at 100 kimg; 105.5 with
seed 1). Full runs from scratch, one CPU device each.

  stylegan-jax sweep run experiments/sweeps/quickstart_narrow_minibatch_ttur.py --dir sweeps/narrow_minibatch_ttur \
      --parallel 2
  stylegan-jax sweep summary --dir sweeps/narrow_minibatch_ttur
"""

from stylegan_jax import sweeps


def get_sweep():
  return sweeps.Sweep(config='default', overrides={'model.fmap_base': 256},
                      trials=[{'schedule.minibatch_base': 32}, {'schedule.D_lrate_base': 0.006}])
