"""The mapping network's learning rate at the quickstart's budget. With the official mapping_lrmul 0.01 (chosen for
25,000-kimg runs) the default's mapping weights moved 0.4-0.7% (relative norm) in its 100 kimg: W stays a random
transform of Z. The narrow quickstart (model.fmap_base 256) is the proxy: it reaches the default's fd_domain at 100
kimg (108 against 114, 5000 images) in 12 instead of 29 minutes. Full runs from scratch, one CPU device each.

  stylegan-jax sweep run experiments/sweeps/quickstart_narrow_mapping.py --dir sweeps/narrow_mapping --parallel 2
  stylegan-jax sweep summary --dir sweeps/narrow_mapping
"""

from stylegan_jax import sweeps


def get_sweep():
  return sweeps.Sweep(
      config='default', overrides={'model.fmap_base': 256},
      trials=[{}, {'model.mapping_lrmul': 0.1}, {'model.mapping_lrmul': 1.0}, {'model.use_noise': False}])
