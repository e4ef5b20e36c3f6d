"""A tiny run for tests and CI: Fashion-MNIST, 8x8 -> 16x16 -> 32x32 with 4-16 feature maps, a few hundred images.

Run:      python -m stylegan_jax.main --config stylegan_jax/configs/smoke.py --workdir /tmp/smoke
Expected: finishes in about a minute on 2 CPU cores (mostly compilation); images are noise-like.
"""

from stylegan_jax.configs import default


def get_config():
  config = default.get_config()
  config.model.update(fmap_base=64, fmap_max=16, latent_size=16, dlatent_size=16, mapping_layers=2,
                      mapping_fmaps=16)
  config.schedule.update(lod_training_kimg=0.064, lod_transition_kimg=0.064, minibatch_base=8, tick_kimg_base=0.064)
  config.loss.update(penalty_interval=1)  # one D step per stage to compile (tests/test_steps.py covers lazy R1)
  config.train.update(total_kimg=0.32, grid_size=(4, 2), checkpoint_kimg=0.032, checkpoints_to_keep=2)
  config.train.compile_ahead = False  # its stages last seconds: a compile ahead only competes with the steps
  # No metrics by default (the checkpoint tests time their runs); tiny ones when a test lists names.
  config.metrics.update(names=(), num_images=64, classifier_steps=20)
  return config
