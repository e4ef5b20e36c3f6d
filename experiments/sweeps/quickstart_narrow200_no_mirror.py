"""The narrow network (model.fmap_base 256: 2.3-2.5x faster steps) trained to 200 kimg without mirror augmentation,
two CPU devices as ./run.sh train: does the time its speed saves buy quality now that the mirror floor is gone?
With mirror augmentation it matched the default's 100-kimg FD in 11.5 minutes and got no better by 200 kimg
(results/quickstart_narrow200/). Compare with the default's curve at the same minutes
(results/quickstart_no_mirror/curve.csv). Result (2026-12-04, commit 0db8fd5): fd_domain of 5000 images 38.9 at 100
kimg (9.5 minutes of training) and 29.5 at 200 (19.0 minutes); fd_domain10k 28.4 at 200 kimg, all 10 classes, the
smallest 4.92% (results/quickstart_narrow200_no_mirror/).

  stylegan-jax sweep run experiments/sweeps/quickstart_narrow200_no_mirror.py --dir sweeps/narrow200_no_mirror
  stylegan-jax metrics evaluate 'sweeps/narrow200_no_mirror/trials/seed=0' --metrics fd_domain10k,coverage10k
"""

from stylegan_jax import sweeps


def get_sweep():
  return sweeps.Sweep(config='default',
                      overrides={'train.mirror_augment': False, 'model.fmap_base': 256, 'train.total_kimg': 200.0},
                      trials=[{'seed': 0}], flags=('--cpu_devices=2',))
