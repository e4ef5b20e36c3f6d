"""Quickstart: progressive StyleGAN on Fashion-MNIST 32x32 (Debian's dataset-fashion-mnist), for a 2-core CPU.

Run:      ./run.sh train
          (= python -m stylegan_jax.data.prepare --config stylegan_jax/configs/default.py, then
             python -m stylegan_jax.main --config stylegan_jax/configs/default.py --workdir workdir/quickstart
             --cpu_devices=2)
Expected: grows 8x8 -> 16x16 -> 32x32 and reaches 100 kimg in 20-28 minutes on 2 CPU cores (compilation and
          evaluations included; 22.1 for ./run.sh train on a fresh clone at commit e9d0848, 21.4 at 477fa66, 20.0
          at 522d661, 23.7 at e758b24: README "Quickstart result"): all 10 classes (the smallest 4.0% of 10k Gs
          images at e9d0848, 4.3% at 477fa66, 2.8% at 522d661, 5.2% at e758b24), domain FD of 10k Gs images 37.5
          (31.3 at 477fa66, 47.3 at 522d661, 49.5 at e758b24; 31.3 with --config.seed=1 at e758b24;
          `stylegan-jax metrics evaluate workdir/quickstart --metrics fd_domain10k,coverage10k`);
          workdir/quickstart/samples/ holds the sample grids.

This file also defines every config key (the other configs start from it): `model` (NetworkConfig fields),
`data` (stylegan_jax/data/config.py), `schedule` (schedule.training_schedule arguments), `loss`, `train`, `metrics`.
Resuming a run refuses changed keys other than checkpoint.SAFE_CHANGES (see stylegan_jax/checkpoint.py).
"""

import ml_collections

from stylegan_jax.data.config import get_data_config


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0

  # Networks: the official architecture with fewer feature maps (4², 8²: 128, 16²: 64, 32²: 32) and a 4-layer
  # mapping network.
  config.model = ml_collections.ConfigDict(dict(
      resolution=32, num_channels=1, label_size=0, fmap_base=512, fmap_decay=1.0, fmap_max=128,
      latent_size=128, dlatent_size=128, mapping_layers=4, mapping_fmaps=128, mapping_lrmul=0.01,
      normalize_latents=True, use_wscale=True, use_noise=True, use_instance_norm=True, use_pixel_norm=False,
      blur=True, fused_scale='auto', mbstd_group_size=4, mbstd_num_features=1))

  config.data = get_data_config()  # Fashion-MNIST, 32x32, 1 channel, unlabeled

  # Progressive growing: 8² for 10 kimg, then each new resolution fades in over 10 kimg and trains 10 kimg;
  # 32² trains on to the end. Minibatch 16: twice the updates of 32 for the same images and CPU time. Learning
  # rates 0.003 from the 32² fade-in on, 0.002 before (the tables' keys: a stage's resolution, as a string): 15%
  # lower domain FD at 100 kimg than 0.002 at 32² when branched from one 16² stage end (docs/quickstart_recipe.md).
  config.schedule = ml_collections.ConfigDict(dict(
      lod_initial_resolution=8, lod_training_kimg=10.0, lod_transition_kimg=10.0,
      minibatch_base=16, minibatch_dict={}, G_lrate_base=0.003, G_lrate_dict={'8': 0.002, '16': 0.002},
      D_lrate_base=0.003, D_lrate_dict={'8': 0.002, '16': 0.002}, lrate_rampup_kimg=0.0,
      lrate_rampdown_kimg=0.0,  # > 0: learning rates fall linearly to 0 over the run's last kimg (a deviation)
      tick_kimg_base=4.0, tick_kimg_dict={}))

  # Losses (losses.py). 'logistic_r1': non-saturating logistic G loss, D with R1 on reals (official FFHQ,
  # gamma 10; at gamma 1 the quickstart dropped classes in its 16² stage: docs/quickstart_recipe.md).
  # 'wgan_gp': WGAN-GP (lambda 10, target 1, epsilon 0.001). lod_scaled_penalty=True multiplies R1 by
  # 4**-floor(lod) (the gradient norm by 2**-floor(lod)): the strength the official code gets from feeding D
  # upscaled images, reproduced at our native stage resolution (spec §4).
  # penalty_interval=k (a deviation; official: 1): lazy regularisation as StyleGAN2's D_reg_interval, the
  # penalty k times as strong on every k-th D step only (counted from each optimizer reset), the others skip it.
  config.loss = ml_collections.ConfigDict(dict(
      type='logistic_r1', r1_gamma=10.0, lod_scaled_penalty=True, wgan_lambda=10.0, wgan_target=1.0,
      wgan_epsilon=0.001, penalty_interval=16))

  config.train = ml_collections.ConfigDict(dict(
      total_kimg=100.0,
      adam_epsilon_form='tf',     # Adam's eps as TF adds it (train_state.adam); 'optax': optax.scale_by_adam
      adam_betas=(0.0, 0.99),     # Adam's (beta1, beta2), the official values
      G_smoothing_kimg=1.0,       # Gs half-life in kimg (official: 10, for runs of 25000 kimg)
      G_smoothing_rampup=0.05,    # > 0: the half-life is at most this x images shown (a deviation; StyleGAN2-ADA: 0.05)
      dlatent_avg_beta=0.995,
      style_mixing_prob=0.9,
      mirror_augment=False,       # Fashion-MNIST is not mirror-symmetric (its shoes all face left): 10k reals, half
                                  # of them mirrored, score fd_domain 98.9, the mirror-augmented defaults ~108
      min_minibatch_per_device=0,  # > 0: raise smaller stage minibatches to this x devices, lr x sqrt (a deviation)
      compute_dtype='float32',    # 'bfloat16': G's and D's convs and dense matmuls in bf16 (GPU/TPU), all else float32
      matmul_precision='float32',  # float32 convs/matmuls as the official code; 'tensorfloat32': TF32 tensor cores
                                  # on NVIDIA GPUs (a deviation); 'default': JAX's (TF32 on GPUs, bf16 on TPUs)
      compile_ahead=True,         # compile the next stage's steps in the background while a stage trains
      D_fused_downscale='auto',   # D's conv + box downsampling as one stride-2 conv in every step ('auto': on
                                  # CPU, 1.1-1.2x faster there; the same function)
      image_snapshot_ticks=1,     # a sample grid every tick
      grid_size=(8, 8),           # (columns, rows) of the sample grid
      grid_seed=123,
      checkpoint_kimg=5.0,        # a checkpoint every 5 kimg (~1.5 min here), plus at each stage end and the end
      checkpoints_to_keep=3))     # the newest 3 are kept, and every stage-end checkpoint (checkpoint.py)

  # Evaluation during training (stylegan_jax/metrics/registry.py): metric names are KIND[COUNT[k]] with KIND fid,
  # kid, pr (need inception_path), fd_domain, kid_domain, pr_domain, coverage or ls_domain (the project's domain
  # classifier, trained on first use); a name without COUNT uses num_images generated images. They run on Gs
  # every interval_kimg (0: never), at the end of each stage (at_stage_end) and at the end of the run; with
  # at_stage_resolution at the stage's resolution and lod against the dataset's level of that resolution (else at
  # full resolution, as the official code), and are logged to metrics.jsonl and TensorBoard under their names
  # (fd_domain, coverage_classes, ...). Here: the domain FD and class coverage of 5000 images every 20 kimg (10-13 s
  # each on 2 CPU cores: five evaluations, about 1 minute of the run; every 10 kimg took 2, past the 30 minutes).
  config.metrics = ml_collections.ConfigDict(dict(
      names=('fd_domain', 'coverage'),
      num_images=5000,
      interval_kimg=20.0,
      at_stage_end=False,         # the 10-kimg evaluations fall on this schedule's stage ends anyway
      at_stage_resolution=True,
      seed=0,                     # latents and noise of the evaluated images (the same at every evaluation)
      cache_dir='',               # classifiers and real statistics; '' = $STYLEGAN_JAX_CACHE or ~/.cache/stylegan-jax
      classifier_steps=1000,      # training steps of the domain classifier (batch 128; a few minutes on a CPU)
      inception_path=''))         # the FID Inception-v3 weights file, for fid/kid/pr
  return config
