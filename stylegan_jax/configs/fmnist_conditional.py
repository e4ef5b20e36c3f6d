"""The quickstart conditioned on Fashion-MNIST's ten classes (the official label embedding, spec §1).

Run:      stylegan-jax prepare --config=fmnist_conditional
          stylegan-jax train --config=fmnist_conditional --workdir workdir/fmnist_conditional
Expected: the quickstart's schedule and time (about 40 minutes on 2 CPU cores); `stylegan-jax sample generate
          --network ART --seeds 0-9 --labels 3` then draws class 3 (dress). Used for synthetic Fashion-MNIST
          (README "Projection and synthetic datasets").
"""

from stylegan_jax.configs import default


def get_config():
  config = default.get_config()
  config.data.labels = 'dataset'
  config.model.label_size = 10
  return config
