"""The narrow quickstart (model.fmap_base 256: 16 feature maps at 32x32, 2.5x the images per second of the default's
32) levels off at fd_domain 105-121 from 100 to 180 kimg and scores 145.5 at 200. Is that the optimizer's noise,
which a longer Gs average or lower learning rates remove, or capacity? Each trial branches from that run's 200-kimg
checkpoint and trains 20 kimg more with one change, one process per trial on one CPU device.

  stylegan-jax train --config=default --config.model.fmap_base=256 --config.train.total_kimg=200 \
      --workdir=workdir/narrow200 --cpu_devices=2
  stylegan-jax sweep run experiments/sweeps/quickstart_narrow_branch.py --dir sweeps/narrow_branch --parallel 2
  stylegan-jax sweep summary --dir sweeps/narrow_branch
"""

from stylegan_jax import sweeps

BRANCH = 'workdir/narrow200/checkpoints/000200000'


def get_sweep():
  return sweeps.Sweep(
      config='default', overrides={'model.fmap_base': 256, 'train.total_kimg': 220.0},
      flags=[f'--init_from={BRANCH}'],
      trials=[{}, {'train.G_smoothing_kimg': 5.0},
              {'schedule.G_lrate_base': 0.001, 'schedule.D_lrate_base': 0.001},
              {'train.G_smoothing_kimg': 5.0, 'schedule.G_lrate_base': 0.001, 'schedule.D_lrate_base': 0.001}])
