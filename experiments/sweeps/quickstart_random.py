"""Random search on the reduced quickstart (as quickstart_r1_smoothing.py): R1 strength log-uniform in [0.1, 10]
and the mapping depth from {2, 4, 8}, 4 trials drawn with seed 0.

  python -m stylegan_jax.sweeps.main run experiments/sweeps/quickstart_random.py --dir sweeps/random --parallel 2
"""

from stylegan_jax import sweeps

REDUCED = {'train.total_kimg': 10.0, 'schedule.lod_training_kimg': 2.5, 'schedule.lod_transition_kimg': 2.5,
           'schedule.tick_kimg_base': 1.0, 'train.checkpoint_kimg': 2.5}


def get_sweep():
  return sweeps.Sweep(
      config='default', overrides=REDUCED,
      trials=sweeps.random_search({'loss.r1_gamma': sweeps.log_uniform(0.1, 10.0),
                                   'model.mapping_layers': sweeps.choice([2, 4, 8])}, trials=4, seed=0))
