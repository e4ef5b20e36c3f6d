"""Adam's betas and the mapping network's depth at the quickstart's budget, on the narrow proxy (model.fmap_base 256,
as quickstart_narrow_mapping.py, whose first trial is the baseline: fd_domain 118.4 at 100 kimg with seed 0, 105.5
with seed 1). Official: betas (0, 0.99), 8 mapping layers (the quickstart has 4). Full runs from scratch, one CPU
device each.

  stylegan-jax sweep run experiments/sweeps/quickstart_narrow_adam_mapping.py --dir sweeps/narrow_adam_mapping \
      --parallel 2
  stylegan-jax sweep summary --dir sweeps/narrow_adam_mapping
"""

from stylegan_jax import sweeps


def get_sweep():
  return sweeps.Sweep(
      config='default', overrides={'model.fmap_base': 256},
      trials=[{'train.adam_betas': (0.5, 0.99)}, {'train.adam_betas': (0.0, 0.999)}, {'model.mapping_layers': 2},
              {'model.mapping_layers': 8}])
