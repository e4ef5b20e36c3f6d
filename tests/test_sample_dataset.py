"""`stylegan-jax sample dataset` (synthetic.py): written, resumable, deterministic, prepared and read back."""

import csv
import json
import os

import jax
import numpy as np
import pytest
from PIL import Image

from conftest import GOLDEN as GOLDEN_DIR
from stylegan_jax import cli, export, networks, sampling, synthetic
from stylegan_jax.network_config import NetworkConfig

GOLDEN = str(GOLDEN_DIR / 'sg1_small32' / 'network.pkl')


def read_samples(outdir):
  with open(outdir / 'samples.csv', newline='') as f:
    return list(csv.DictReader(f))


def read_images(outdir):
  return {p.name: np.asarray(Image.open(p)) for p in sorted((outdir / 'images').iterdir())}


@pytest.mark.parametrize('proportions,counts', [((1, 1, 1), (4, 3, 3)), ((2, 1, 1), (5, 3, 2)),
                                                ((0, 1, 3), (0, 3, 7))])
def test_class_plan(proportions, counts):
  plan = synthetic.class_plan(10, proportions)
  assert tuple(np.bincount(plan, minlength=3)) == counts
  np.testing.assert_array_equal(synthetic.class_plan(6, proportions), plan[:6])  # a prefix of the longer plan
  if proportions == (1, 1, 1):
    np.testing.assert_array_equal(plan, np.arange(10) % 3)


def test_write_resume_and_determinism(tmp_path, capsys):
  out = tmp_path / 'synth'
  argv = ['sample', 'dataset', f'--network={GOLDEN}', '--num=5', f'--outdir={out}', '--psi=0.7', '--cutoff=4',
          '--batch-size=2', '--first-seed=10']
  assert cli.main(argv) == 0, capsys.readouterr().err
  rows = read_samples(out)
  assert [(r['path'], r['label'], r['seed'], r['psi'], r['cutoff']) for r in rows] == [
      (f'seed{s:08d}.png', '', str(s), '0.7', '4') for s in range(10, 15)]
  images = read_images(out)
  assert jax.local_device_count() == 8  # conftest: the command shards its batches (2 -> 8) over 8 CPU devices
  sampler = sampling.Sampler.from_path(GOLDEN, batch_size=3)  # one device, another batch: the same images (±1)
  expected = sampler.generate(list(range(10, 15)), psi=0.7, cutoff=4)
  assert np.abs(np.stack(list(images.values())).astype(int) - expected).max() <= 1
  manifest = json.loads((out / 'manifest.json').read_text())
  assert manifest['complete'] and manifest['network_sha256'] == synthetic.sha256(GOLDEN)
  assert manifest['options'] == {'num_images': 5, 'first_seed': 10, 'psi': 0.7, 'cutoff': 4, 'noise_mode': 'random',
                                 'noise_seed': 0, 'proportions': None}

  # Interrupted: one image lost, one truncated. The rerun rewrites exactly those two, identically.
  (out / 'images' / 'seed00000011.png').unlink()
  broken = out / 'images' / 'seed00000013.png'
  broken.write_bytes(broken.read_bytes()[:50])
  stamps = {p.name: p.stat().st_mtime_ns for p in (out / 'images').iterdir()}
  assert cli.main(argv) == 0
  again = read_images(out)
  assert all(np.array_equal(images[k], again[k]) for k in images)
  changed = {p.name for p in (out / 'images').iterdir() if stamps.get(p.name) != p.stat().st_mtime_ns}
  assert changed == {'seed00000011.png', 'seed00000013.png'}

  # Other options in the same directory: refused in one line, unless --overwrite.
  capsys.readouterr()
  assert cli.main([*argv[:-1], '--first-seed=0']) == 1
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and 'another model or other options' in err[0]


def conditional_artifact(path):
  cfg = NetworkConfig(resolution=8, label_size=3, fmap_base=32, fmap_max=16, latent_size=16, dlatent_size=16,
                      mapping_layers=2, mapping_fmaps=16)
  export.save_artifact(path, cfg, networks.init_generator(cfg, jax.random.key(0)))
  return path


def test_conditional_prepared_and_read_back(tmp_path, capsys):
  import tensorflow_datasets as tfds  # noqa: PLC0415
  from stylegan_jax import input_pipeline  # noqa: PLC0415
  from stylegan_jax.data import datasets  # noqa: PLC0415
  network = conditional_artifact(tmp_path / 'cond')
  out = tmp_path / 'cond_synth'
  assert cli.main(['sample', 'dataset', f'--network={network}', '--num=12', f'--outdir={out}',
                   '--proportions=2,1,1', '--prepare', f'--data-dir={tmp_path / "data"}', '--name=synth']) == 0
  printed = capsys.readouterr().out
  assert 'stylegan-jax train --data=' in printed
  rows = read_samples(out)
  assert np.bincount([int(r['label']) for r in rows]).tolist() == [6, 3, 3]
  manifest = json.loads((out / 'manifest.json').read_text())
  assert manifest['options']['proportions'] == [2.0, 1.0, 1.0] and manifest['label_size'] == 3

  config = synthetic.data_config(out, manifest, str(tmp_path / 'data'), 'synth')
  builder = datasets.prepared_builder(config)
  # TFDS's own reader, from the prepared directory alone.
  ds = tfds.builder_from_directory(builder.data_dir).as_data_source(split='res8')
  assert len(ds) == 12
  by_label = {}
  for record in ds:
    by_label[int(record['label'])] = by_label.get(int(record['label']), 0) + 1
  assert by_label == {0: 6, 1: 3, 2: 3}
  images = read_images(out)
  assert any(np.array_equal(np.asarray(record['image']), image) for record in [ds[0]] for image in images.values())
  # The project's input pipeline.
  info = input_pipeline.create_dataset_info(config)
  assert (info.num_examples, info.label_size, info.resolution) == (12, 3, 8)
  batch = next(input_pipeline.create_input_iterator(config, resolution=8, global_batch_size=8, seed=0,
                                                    mirror_augment=False))
  assert batch['image'].shape[-3:] == (8, 8, 3) and batch['label'].shape[-1] == 3


def test_dataset_errors(tmp_path, capsys):
  def error(argv, code, expected):
    assert cli.main(['sample', 'dataset', *argv]) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err

  error([f'--network={tmp_path / "missing.pkl"}', '--num=2', f'--outdir={tmp_path / "o"}'], 1, 'missing.pkl')
  error([f'--network={GOLDEN}', '--num=2', f'--outdir={tmp_path / "o"}', '--labels=1'], 2, '--labels')
  error([f'--network={GOLDEN}', '--num=2', f'--outdir={tmp_path / "o"}', '--proportions=1,1'], 2, 'unconditional')
  os.makedirs(tmp_path / 'full')
  (tmp_path / 'full' / 'x.txt').write_text('x')
  error([f'--network={GOLDEN}', '--num=2', f'--outdir={tmp_path / "full"}'], 1, 'not a synthetic dataset')


@pytest.mark.slow  # a training run (compiles the 8x8 stage): about 30 s
def test_the_project_trains_on_a_synthetic_dataset(tmp_path, capsys):
  """A conditional 32x32 model's synthetic dataset, prepared, trains the smoke config conditionally (2 steps)."""
  from stylegan_jax import train  # noqa: PLC0415
  from stylegan_jax.configs import smoke  # noqa: PLC0415
  config = smoke.get_config()
  config.model.update(label_size=3, num_channels=3)
  network, model = tmp_path / 'cond', NetworkConfig.from_dict(config.model)
  export.save_artifact(network, model, networks.init_generator(model, jax.random.key(0)))
  out = tmp_path / 'synth'
  assert cli.main(['sample', 'dataset', f'--network={network}', '--num=24', f'--outdir={out}', '--prepare',
                   f'--data-dir={tmp_path / "data"}', '--name=synth']) == 0, capsys.readouterr().err
  config.data = synthetic.data_config(out, json.loads((out / 'manifest.json').read_text()), str(tmp_path / 'data'),
                                      'synth')
  config.train.total_kimg = 0.016
  state = train.train(config, str(tmp_path / 'run'))
  assert int(jax.device_get(state.nimg)) == 16
  records = [json.loads(line) for line in (tmp_path / 'run' / 'metrics.jsonl').read_text().splitlines()]
  assert records[-1]['skipped_D_total'] == records[-1]['skipped_G_total'] == 0
  assert np.isfinite([records[-1]['loss_D'], records[-1]['loss_G']]).all()
