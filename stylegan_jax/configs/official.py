"""The official StyleGAN training setups (NVlabs/stylegan train.py, training_loop.py; spec §5).

`official_config` gives the networks at their official defaults (26.2M-parameter G at 1024²), the official
schedule for a number of GPUs, logistic loss with R1 (gamma 10), Gs half-life 10 kimg, style mixing 0.9, TF's Adam
(beta1 0, beta2 0.99, eps 1e-8).
The per-dataset files (ffhq1024.py, ...) call it.
"""

import ml_collections

from stylegan_jax.configs import default
from stylegan_jax.network_config import NetworkConfig

# Global minibatch by resolution for 1, 2, 4 and 8 GPUs (train.py), with the base for the rest.
MINIBATCH = {
    1: (4, {4: 128, 8: 128, 16: 128, 32: 64, 64: 32, 128: 16, 256: 8, 512: 4}),
    2: (8, {4: 256, 8: 256, 16: 128, 32: 64, 64: 32, 128: 16, 256: 8}),
    4: (16, {4: 512, 8: 256, 16: 128, 32: 64, 64: 32, 128: 16}),
    8: (32, {4: 512, 8: 256, 16: 128, 32: 64, 64: 32}),
}
LRATE = {128: 0.0015, 256: 0.002, 512: 0.003, 1024: 0.003}
TICK_KIMG = {4: 160, 8: 140, 16: 120, 32: 100, 64: 80, 128: 60, 256: 40, 512: 30, 1024: 20}


def official_config(resolution: int, *, num_gpus: int = 8, total_kimg: float = 25000, mirror_augment: bool):
  config = default.get_config()
  config.model = ml_collections.ConfigDict(NetworkConfig(resolution=resolution, num_channels=3).to_dict())
  config.data.update(resolution=resolution, num_channels=3)
  minibatch_base, minibatch_dict = MINIBATCH[num_gpus]
  config.schedule.update(lod_initial_resolution=8, lod_training_kimg=600.0, lod_transition_kimg=600.0,
                         minibatch_base=minibatch_base, G_lrate_base=0.001, D_lrate_base=0.001,
                         tick_kimg_base=160.0)
  # The tables are assigned, not updated: update() would merge them with the quickstart's.
  config.schedule.minibatch_dict = {str(k): v for k, v in minibatch_dict.items()}
  config.schedule.G_lrate_dict = {str(k): v for k, v in LRATE.items()}
  config.schedule.D_lrate_dict = {str(k): v for k, v in LRATE.items()}
  config.schedule.tick_kimg_dict = {str(k): float(v) for k, v in TICK_KIMG.items()}
  # A checkpoint every 100 kimg (about an hour of 8-GPU work at 1024^2; official network snapshots: 10 ticks).
  config.loss.update(type='logistic_r1', r1_gamma=10.0, penalty_interval=1)
  config.train.update(total_kimg=float(total_kimg), mirror_augment=mirror_augment, G_smoothing_kimg=10.0,
                      G_smoothing_rampup=0.0, style_mixing_prob=0.9, dlatent_avg_beta=0.995,
                      adam_epsilon_form='tf', adam_betas=(0.0, 0.99), grid_size=(8, 4), checkpoint_kimg=100.0)
  # fid50k as NVIDIA's train.py: at every network snapshot (10 ticks: 10 x the final resolution's tick) and at the
  # end, on full-resolution images. It needs the FID Inception weights: --config.metrics.inception_path=FILE
  # (training refuses to start without them; --config.metrics.names="()" trains without metrics).
  config.metrics.update(names=('fid50k',), interval_kimg=10.0 * TICK_KIMG[resolution], at_stage_end=False,
                        at_stage_resolution=False)
  return config
