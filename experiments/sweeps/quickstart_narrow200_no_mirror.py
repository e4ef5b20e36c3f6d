"""The narrow network (model.fmap_base 256: 2.3-2.5x faster steps) trained to 200 kimg without mirror augmentation,
two CPU devices as ./run.sh train: does the time its speed saves buy quality now that the mirror floor is gone?
With mirror augmentation it matched the default's 100-kimg FD in 11.5 minutes and got no better by 200 kimg
(results/quickstart_narrow200/). Compare with the default's curve at the same minutes
(results/quickstart_no_mirror/curve.csv). Results (2026-12-04, commits 0db8fd5 and 83639fd), fd_domain of 5000 images
at 100 and 200 kimg (minutes of training), fd_domain10k at 200 kimg, smallest class of those 10,000:
  seed 0   38.9 (9.5)   29.5 (19.0)   28.4   4.92%
  seed 1   42.4 (9.8)   35.5 (20.0)   33.0   5.07%
(results/quickstart_narrow200_no_mirror/; seed 1 was added to the file after seed 0 had run, in the same --dir).

  stylegan-jax sweep run experiments/sweeps/quickstart_narrow200_no_mirror.py --dir sweeps/narrow200_no_mirror
  stylegan-jax metrics evaluate 'sweeps/narrow200_no_mirror/trials/seed=0' --metrics fd_domain10k,coverage10k
"""

from stylegan_jax import sweeps


def get_sweep():
  return sweeps.Sweep(config='default',
                      overrides={'train.mirror_augment': False, 'model.fmap_base': 256, 'train.total_kimg': 200.0},
                      trials=[{'seed': 0}, {'seed': 1}], flags=('--cpu_devices=2',))
