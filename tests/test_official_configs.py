"""Every official config carries NVIDIA's training hyperparameters (train.py, training_loop.py; spec §4, §5)."""

import importlib

import pytest

from stylegan_jax import schedule

LRATE = {128: 0.0015, 256: 0.002, 512: 0.003, 1024: 0.003}
TICK_KIMG = {4: 160.0, 8: 140.0, 16: 120.0, 32: 100.0, 64: 80.0, 128: 60.0, 256: 40.0, 512: 30.0, 1024: 20.0}
# train.py's minibatch tables by GPU count: (minibatch_base, minibatch_dict).
MINIBATCH = {
    1: (4, {4: 128, 8: 128, 16: 128, 32: 64, 64: 32, 128: 16, 256: 8, 512: 4}),
    2: (8, {4: 256, 8: 256, 16: 128, 32: 64, 64: 32, 128: 16, 256: 8}),
    4: (16, {4: 512, 8: 256, 16: 128, 32: 64, 64: 32, 128: 16}),
    8: (32, {4: 512, 8: 256, 16: 128, 32: 64, 64: 32}),
}
# What every official run shares: train.py's G_opt/D_opt/G_loss/D_loss/sched and training_loop.py's defaults.
COMMON = {
    'loss.type': 'logistic_r1',             # G_logistic_nonsaturating + D_logistic_simplegp
    'loss.r1_gamma': 10.0,
    'loss.lod_scaled_penalty': True,        # R1 on upscaled reals, reproduced at native resolution (spec §4)
    'train.adam_epsilon_form': 'tf',        # tf.train.AdamOptimizer(beta1=0, beta2=0.99, epsilon=1e-8)
    'train.adam_betas': (0.0, 0.99),
    'train.G_smoothing_kimg': 10.0,
    'train.dlatent_avg_beta': 0.995,
    'train.style_mixing_prob': 0.9,
    'train.image_snapshot_ticks': 1,
    'schedule.lod_initial_resolution': 8,
    'schedule.lod_training_kimg': 600.0,
    'schedule.lod_transition_kimg': 600.0,
    'schedule.G_lrate_base': 0.001,
    'schedule.D_lrate_base': 0.001,
    'schedule.lrate_rampup_kimg': 0.0,
    'schedule.lrate_rampdown_kimg': 0.0,
    'schedule.tick_kimg_base': 160.0,
    'model.mapping_layers': 8,
    'model.latent_size': 512,
    'model.dlatent_size': 512,
    'model.mapping_lrmul': 0.01,
    'model.fmap_base': 8192,
    'model.fmap_max': 512,
    'model.mbstd_group_size': 4,
    'model.num_channels': 3,
    'model.label_size': 0,
}
# Per dataset: resolution, total_kimg (FFHQ: train.py; LSUN: the paper's lengths, spec §7), mirror_augment.
DATASETS = {
    'ffhq1024': (1024, 25000.0, True),
    'celebahq1024': (1024, 25000.0, True),
    'lsun_bedroom256': (256, 70000.0, False),
    'lsun_cat256': (256, 70000.0, False),
    'lsun_cars512': (512, 46000.0, False),
}
CASES = [(name, gpus) for name in DATASETS for gpus in (1, 2, 4, 8)]


def _get(config, dotted):
  for key in dotted.split('.'):
    config = config[key]
  return config


@pytest.mark.parametrize('name,gpus', CASES, ids=[f'{n}-{g}gpu' for n, g in CASES])
def test_official_config_matches_nvidia(name, gpus):
  config = importlib.import_module(f'stylegan_jax.configs.{name}').get_config(str(gpus))
  resolution, total_kimg, mirror = DATASETS[name]
  minibatch_base, minibatch_dict = MINIBATCH[gpus]
  expected = dict(COMMON, **{
      'model.resolution': resolution, 'data.resolution': resolution, 'train.total_kimg': total_kimg,
      'train.mirror_augment': mirror, 'schedule.minibatch_base': minibatch_base})
  got = {key: _get(config, key) for key in expected}
  assert got == expected
  # The tables, compared through the schedule at the start of every stage (8²: 0 kimg; each later one 1 kimg
  # into its fade-in, which starts after 600 kimg of training at the previous one).
  for k, stage in enumerate(schedule.stage_resolutions(config.schedule, resolution)):
    s = schedule.schedule_from_config(max(1200 * k - 599, 0) * 1000, config.schedule, resolution)
    assert (s.resolution, s.minibatch, s.G_lrate, s.D_lrate, s.tick_kimg) == (
        stage, minibatch_dict.get(stage, minibatch_base), LRATE.get(stage, 0.001), LRATE.get(stage, 0.001),
        TICK_KIMG[stage])
