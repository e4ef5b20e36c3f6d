"""Official CelebA-HQ 1024x1024: as FFHQ (train.py: mirror on). The paper trained CelebA-HQ with WGAN-GP; for
that, add --config.loss.type=wgan_gp (train.py also caps learning rates at 0.002 then).

Prepare: python -m stylegan_jax.data.prepare --config stylegan_jax/configs/celebahq1024.py --config.data.source_dir=/path/to/celebahq
Run:     python -m stylegan_jax.main --config stylegan_jax/configs/celebahq1024.py --workdir workdir/celebahq1024
Expected (paper): FID50k 5.17 (logistic + R1 here; 5.06 best, config E).
"""

from stylegan_jax.configs import official


def get_config(num_gpus: str = '8'):
  config = official.official_config(1024, num_gpus=int(num_gpus), mirror_augment=True)
  config.data.update(name='image_folder', folder_name='celebahq', crop='center')
  return config
