"""Learning rates ramped linearly to 0 over the run's last 40 kimg (schedule.lrate_rampdown_kimg, a deviation; from
60 kimg on in a 100-kimg run), on the narrow proxy (model.fmap_base 256) with both seeds, against its baseline
(quickstart_narrow_mapping.py's first trial: fd_domain 118.4 at 100 kimg with seed 0; 105.5 with seed 1). Full runs
from scratch, one CPU device each.

  stylegan-jax sweep run experiments/sweeps/quickstart_narrow_rampdown.py --dir sweeps/narrow_rampdown --parallel 2
  stylegan-jax sweep summary --dir sweeps/narrow_rampdown
"""

from stylegan_jax import sweeps


def get_sweep():
  return sweeps.Sweep(config='default', overrides={'model.fmap_base': 256, 'schedule.lrate_rampdown_kimg': 40.0},
                      trials=[{'seed': 0}, {'seed': 1}])
