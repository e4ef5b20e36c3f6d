"""The quickstart at reduced length (10 kimg: 8x8 -> 16x16 -> 32x32 faded in) over R1 strength x Gs half-life.

4 trials; on the 2-core CPU machine, 2 at a time, about 15 minutes in all (each trial ~6 min of steps and ~2 min
of compilation while sharing the cores):

  python -m stylegan_jax.data.prepare --config stylegan_jax/configs/default.py     # once
  python -m stylegan_jax.sweeps.main run experiments/sweeps/quickstart_r1_smoothing.py --dir sweeps/r1_smoothing \
      --parallel 2
  python -m stylegan_jax.sweeps.main summary --dir sweeps/r1_smoothing             # fd_domain, lower is better
"""

from stylegan_jax import sweeps

REDUCED = {'train.total_kimg': 10.0, 'schedule.lod_training_kimg': 2.5, 'schedule.lod_transition_kimg': 2.5,
           'schedule.tick_kimg_base': 1.0, 'train.checkpoint_kimg': 2.5}


def get_sweep():
  return sweeps.Sweep(
      config='default', overrides=REDUCED,
      trials=sweeps.product(sweeps.axis('loss.r1_gamma', [0.3, 3.0]),
                            sweeps.axis('train.G_smoothing_kimg', [0.5, 5.0])))
