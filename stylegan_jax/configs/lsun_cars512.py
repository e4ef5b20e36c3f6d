"""Official LSUN Car 512x384 (train.py 'lsun-car-512x384'): images resized to 512x384 and letterboxed onto a black
512x512 canvas (64-pixel bars), so the networks are 512x512; no mirroring, about 46M images.

Prepare: python -m stylegan_jax.data.prepare --config stylegan_jax/configs/lsun_cars512.py
Run:     python -m stylegan_jax.main --config stylegan_jax/configs/lsun_cars512.py --workdir workdir/lsun_cars512
Expected (paper): FID50k 3.27.
"""

from stylegan_jax.configs import official


def get_config(num_gpus: str = '8'):
  config = official.official_config(512, num_gpus=int(num_gpus), total_kimg=46000, mirror_augment=False)
  config.data.update(name='lsun/car', crop='letterbox')
  return config
