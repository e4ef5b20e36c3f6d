"""Training at 32x32 from the first image instead of growing 8x8 -> 16x16 -> 32x32 (schedule.lod_initial_resolution
32: lod 0 throughout, as StyleGAN2 trains), on the narrow proxy (model.fmap_base 256) against its progressive
baseline (quickstart_narrow_mapping.py's first trial: fd_domain 118.4 at 100 kimg with seed 0, 105.5 with seed 1).
Full runs from scratch, one CPU device each; the learning rates are the default's 32x32 ones (0.003).

  stylegan-jax sweep run experiments/sweeps/quickstart_narrow_no_growing.py --dir sweeps/narrow_no_growing \
      --parallel 2
  stylegan-jax sweep summary --dir sweeps/narrow_no_growing
"""

from stylegan_jax import sweeps


def get_sweep():
  return sweeps.Sweep(config='default',
                      overrides={'model.fmap_base': 256, 'schedule.lod_initial_resolution': 32},
                      trials=[{'seed': 0}, {'seed': 1}])
