"""A tiny sweep to try the launcher in a minute: the smoke config (8x8 only, 2 steps) x 2 values of r1_gamma.

  python -m stylegan_jax.data.prepare --config stylegan_jax/configs/smoke.py   # once
  python -m stylegan_jax.sweeps.main run experiments/sweeps/smoke.py --dir sweeps/smoke --parallel 2
  python -m stylegan_jax.sweeps.main summary --dir sweeps/smoke --metric loss_D
"""

from stylegan_jax import sweeps


def get_sweep():
  return sweeps.Sweep(
      config='smoke',
      overrides={'train.total_kimg': 0.016, 'train.checkpoint_kimg': 0.008, 'schedule.tick_kimg_base': 0.008},
      trials=sweeps.axis('loss.r1_gamma', [0.5, 5.0]))
