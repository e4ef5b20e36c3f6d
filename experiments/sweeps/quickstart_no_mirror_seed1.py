"""The quickstart default without mirror augmentation (as configs/default.py since commit e758b24), seed 1: another
data order and random stream, to see whether its 49.5 (fd_domain10k at 100 kimg, seed 0, the fresh-clone run of
README "Quickstart result") holds. Two CPU devices, as ./run.sh train. Result (2026-12-04, commit fdf932b):
fd_domain of 5000 images 312.1 / 134.0 / 47.6 / 39.5 / 33.1 at 20 / 40 / 60 / 80 / 100 kimg; fd_domain10k 31.25
at 100 kimg, all 10 classes, the smallest 6.01% (results/quickstart_no_mirror_seed1/).

  stylegan-jax sweep run experiments/sweeps/quickstart_no_mirror_seed1.py --dir sweeps/no_mirror_seed1
  stylegan-jax sweep summary --dir sweeps/no_mirror_seed1
  stylegan-jax metrics evaluate 'sweeps/no_mirror_seed1/trials/seed=1' --metrics fd_domain10k,coverage10k
"""

from stylegan_jax import sweeps


def get_sweep():
  return sweeps.Sweep(config='default', overrides={'train.mirror_augment': False}, trials=[{'seed': 1}],
                      flags=('--cpu_devices=2',))
