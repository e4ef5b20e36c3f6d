"""Official LSUN Cat 256x256 (train.py 'lsun-cat-full'): no mirroring, about 70M images.

Prepare: python -m stylegan_jax.data.prepare --config stylegan_jax/configs/lsun_cat256.py
Run:     python -m stylegan_jax.main --config stylegan_jax/configs/lsun_cat256.py --workdir workdir/lsun_cat256
Expected (paper): FID50k 8.53.
"""

from stylegan_jax.configs import official


def get_config(num_gpus: str = '8'):
  config = official.official_config(256, num_gpus=int(num_gpus), total_kimg=70000, mirror_augment=False)
  config.data.update(name='lsun/cat', crop='center')
  return config
