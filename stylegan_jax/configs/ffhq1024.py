"""Official FFHQ 1024x1024 (train.py default): 8 GPUs, 25M images, mirror augmentation, logistic + R1 (gamma 10).

Prepare: python -m stylegan_jax.data.prepare --config stylegan_jax/configs/ffhq1024.py --config.data.source_dir=/path/to/ffhq
Run:     python -m stylegan_jax.main --config stylegan_jax/configs/ffhq1024.py --workdir workdir/ffhq1024
Expected (paper): FID50k 4.40 at 25000 kimg; about a week on 8 V100s (spec §7). Fewer GPUs: set NUM_GPUS below
         (the official 1/2/4-GPU minibatch tables), e.g. --config stylegan_jax/configs/ffhq1024.py:4 .
"""

from stylegan_jax.configs import official


def get_config(num_gpus: str = '8'):
  config = official.official_config(1024, num_gpus=int(num_gpus), mirror_augment=True)
  config.data.update(name='image_folder', folder_name='ffhq', crop='center')
  return config
