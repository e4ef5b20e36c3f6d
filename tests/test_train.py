"""End to end: the smoke config grows 8x8 -> 16x16 -> 32x32 on Fashion-MNIST, logging and writing grids."""

import json

import jax
import numpy as np
import pytest
from PIL import Image

from stylegan_jax.configs import smoke
from stylegan_jax import train


@pytest.fixture(scope='module')
def config(fashion_mnist_data_dir):
  config = smoke.get_config()
  config.data.data_dir = fashion_mnist_data_dir
  return config


def test_smoke_run_grows_through_every_stage(config, tmp_path):
  state = train.train(config, str(tmp_path))
  records = [json.loads(line) for line in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  resolutions = [r['resolution'] for r in records]
  assert sorted(set(resolutions)) == [8, 16, 32] and resolutions == sorted(resolutions)
  lods = [r['lod'] for r in records]
  assert lods == sorted(lods, reverse=True) and lods[-1] == 0.0 and lods[0] == 2.0
  assert records[-1]['kimg'] == pytest.approx(config.train.total_kimg)
  assert int(jax.device_get(state.nimg)) == config.train.total_kimg * 1000
  for r in records:
    assert np.isfinite([r['loss_D'], r['loss_G'], r['r1_penalty'], r['img_per_sec']]).all()
    assert r['skipped_D_total'] == r['skipped_G_total'] == 0
  for stage in (8, 16, 32):
    grid = Image.open(tmp_path / 'samples' / f'stage{stage:04d}-end.png')
    assert grid.mode == 'L'
    assert grid.size[0] >= 4 * 32 and grid.size[1] >= 2 * 32  # 4x2 full-resolution cells
  assert list((tmp_path / 'tb').glob('events.out.tfevents.*'))
