"""The domain classifier, cached real statistics, the registry, the metrics command and evaluation in training, on
the prepared Fashion-MNIST with a tiny classifier (the smoke config's 20 steps)."""

import json
import pathlib

import jax
import numpy as np
import pytest
from PIL import Image

from stylegan_jax import errors, export, networks, train
from stylegan_jax.configs import smoke
from stylegan_jax.data import prepare
from stylegan_jax.metrics import calibration, classifier, main, real_stats, registry
from stylegan_jax.metrics.reals import Reals
from stylegan_jax.metrics.training import TrainingMetrics
from stylegan_jax.network_config import NetworkConfig


@pytest.fixture(scope='module')
def config(fashion_mnist_data_dir, tmp_path_factory):
  config = smoke.get_config()
  config.data.data_dir = fashion_mnist_data_dir
  config.metrics.cache_dir = str(tmp_path_factory.mktemp('metrics_cache'))
  return config


@pytest.fixture(scope='module')
def net(config):
  return classifier.load_or_train(config.data, config.metrics.cache_dir,
                                  classifier.TrainSettings(steps=config.metrics.classifier_steps))


def _directory(config):
  (directory,) = pathlib.Path(config.metrics.cache_dir, 'classifiers').iterdir()
  return directory


def test_classifier_is_saved_with_its_record_and_reloaded(config, net, monkeypatch):
  record = net.record
  assert record['dataset'] == Reals(config.data).name and record['fingerprint'] == Reals(config.data).fingerprint()
  assert record['settings']['steps'] == 20 and record['resolution'] == 32 and record['num_classes'] == 10
  assert set(record['test_accuracy']) == {'8', '16', '32'} and record['test_accuracy']['32'] > 0.3  # chance: 0.1
  assert record['train_examples'] == 50000 and record['held_out'] == 10000
  directory = _directory(config)
  assert json.loads((directory / 'record.json').read_text()) == record
  monkeypatch.setattr(classifier, 'train', lambda *a, **k: pytest.fail('retrained although cached'))
  loaded = classifier.load_or_train(config.data, config.metrics.cache_dir, classifier.TrainSettings(steps=20))
  assert loaded.checksum == net.checksum == classifier.checksum(jax.device_get(net.params))
  images = Reals(config.data).read(32, 0, 10)
  np.testing.assert_array_equal(loaded(images), net(images))


def test_packaged_classifier_is_used_for_the_same_data_without_training(config, tmp_path, monkeypatch):
  """The shipped Fashion-MNIST classifier (the quickstart's 1000 steps) is taken, checksum-verified, on the data it
  was trained on, and saved into the cache; it classifies the held-out test images as its record says."""
  monkeypatch.setattr(classifier, 'train', lambda *a, **k: pytest.fail('trained although packaged'))
  settings = classifier.TrainSettings(steps=1000)
  net = classifier.load_or_train(config.data, str(tmp_path), settings)
  (shipped,) = classifier.PACKAGED_DIR.iterdir()
  assert net.record['packaged'] == shipped.name and net.checksum == classifier.load(shipped).checksum
  assert net.record['fingerprint'] == Reals(config.data).fingerprint()
  (cached,) = (tmp_path / 'classifiers').iterdir()
  assert classifier.load(cached).checksum == net.checksum
  reals = Reals(config.data)
  labels = reals.read(32, 50000, 10000, labels=True)[1]
  for r in (8, 16, 32):
    accuracy = net.accuracy(reals.read(r, 50000, 10000), labels)
    assert accuracy == pytest.approx(net.record['test_accuracy'][str(r)], abs=1e-4) and accuracy > 0.8


def test_packaged_classifier_is_not_used_for_other_data_or_settings(config, net, tmp_path, monkeypatch):
  """A packaged classifier whose data digest differs from the prepared data's, or of other settings, is ignored."""
  packaged_dir = tmp_path / 'packaged'
  settings = classifier.TrainSettings(steps=20)
  wrong = classifier.DomainClassifier(jax.device_get(net.params), dict(net.record, data_digest='0' * 64))
  classifier.save(wrong, packaged_dir / f'{Reals(config.data).name.replace("/", "_")}-{settings.key()}')
  monkeypatch.setattr(classifier, 'PACKAGED_DIR', packaged_dir)
  trained = []
  monkeypatch.setattr(classifier, 'train', lambda reals, settings: trained.append(settings) or net)
  classifier.load_or_train(config.data, str(tmp_path / 'cache_a'), settings)
  classifier.load_or_train(config.data, str(tmp_path / 'cache_b'), classifier.TrainSettings(steps=21))
  assert [s.steps for s in trained] == [20, 21]


def test_data_digest_is_the_contents():
  images = np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4, 4, 1)
  labels = np.array([3, 1])
  assert classifier.data_digest(images, labels) == classifier.data_digest(images.copy(), labels.astype(np.int32))
  assert classifier.data_digest(images, labels) != classifier.data_digest(images, labels[::-1])
  changed = images.copy()
  changed[1, 2, 3, 0] += 1
  assert classifier.data_digest(images, labels) != classifier.data_digest(changed, labels)


def test_classifier_refuses_corrupt_weights(config, net, tmp_path):
  copy = tmp_path / 'copy'
  classifier.save(net, copy)
  with np.load(copy / 'params.npz') as data:
    params = {k: data[k] for k in data.files}
  params['penultimate/bias'] = params['penultimate/bias'] + 1
  np.savez(copy / 'params.npz', **params)
  with pytest.raises(errors.UserError, match='checksum'):
    classifier.load(copy)


def test_classifier_takes_every_level_size_and_channel_count(config, net):
  reals = Reals(config.data)
  for r in (4, 8, 16, 32):
    features = net(reals.read(r, 0, 5))
    assert features.shape == (5, 128) and np.isfinite(features).all()
  low = reals.read(8, 0, 5)
  np.testing.assert_allclose(net(low), net(low.repeat(4, 1).repeat(4, 2)), rtol=1e-5, atol=1e-5)
  full = reals.read(32, 0, 5)
  np.testing.assert_allclose(net(full.repeat(2, 1).repeat(2, 2)), net(full), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(net(full.repeat(3, -1)), net(full), rtol=1e-5, atol=1e-5)


class CountingNet:
  """A feature network (flattened pixels) that counts its calls."""
  name, checksum = 'pixels', 'v1'

  def __init__(self):
    self.calls = 0

  def __call__(self, images):
    self.calls += 1
    return images.reshape(len(images), -1).astype(np.float32)


def test_real_stats_are_reused_and_invalidated_when_the_dataset_changes(tmp_path):
  source = tmp_path / 'images'
  source.mkdir()
  rng = np.random.RandomState(0)
  for i in range(12):
    Image.fromarray(rng.randint(0, 256, (8, 8), np.uint8)).save(source / f'{i:02d}.png')
  data = smoke.get_config().data
  data.update(name='image_folder', source_dir=str(source), resolution=8, data_dir=str(tmp_path / 'data'))
  prepare.prepare(data)
  net, cache = CountingNet(), str(tmp_path / 'cache')
  first = real_stats.real_stats(Reals(data), 8, 10, net, cache)
  again = real_stats.real_stats(Reals(data), 8, 10, net, cache)
  assert net.calls == 1
  np.testing.assert_array_equal(first.mu, again.mu)
  np.testing.assert_array_equal(first.features, Reals(data).read(8, 0, 10).reshape(10, -1))
  real_stats.real_stats(Reals(data), 4, 10, net, cache)  # another level
  real_stats.real_stats(Reals(data), 8, None, net, cache)  # another count (all 12)
  assert net.calls == 3
  Image.fromarray(np.zeros((8, 8), np.uint8)).save(source / '00.png')
  prepare.prepare(data, overwrite=True)
  changed = real_stats.real_stats(Reals(data), 8, 10, net, cache)
  assert net.calls == 4 and not np.array_equal(changed.mu, first.mu)


def test_domain_fd_separates_real_blur_and_one_class(config, net):
  rows = {r['condition']: r for r in calibration.calibrate(Reals(config.data), net, 600,
                                                           cache_dir=config.metrics.cache_dir)}
  fd = {k: r['fd_domain'] for k, r in rows.items()}
  assert fd['real vs real'] < fd['blur 1 px'] < fd['one class'] and fd['real vs real'] < fd['noise 10']
  assert fd['blur 0.5 px'] < fd['blur 1 px']
  assert fd['real vs real'] < fd['half mirrored'] < fd['mirrored']
  assert rows['one class']['coverage_classes'] < rows['real vs real']['coverage_classes']
  assert rows['real vs real']['kid_domain'] < rows['one class']['kid_domain']


def test_metric_names():
  assert registry.parse('fid50k', 7) == registry.Metric('fid50k', 'fid', 50000)
  assert registry.parse('fd_domain', 500).num_images == 500
  assert registry.parse('kid_domain250', 7).num_images == 250
  assert registry.parse('fd_domain10k', 7).feature_net == 'domain'
  for bad in ('fid', 'fid50m', 'frechet', 'fd_domain3'):
    with pytest.raises(errors.UsageError):
      registry.parse(bad, 1)


def test_inception_metrics_without_weights_fail_at_start_up(config):
  c = config.copy_and_resolve_references()
  c.metrics.names = ('fid50k',)
  with pytest.raises(errors.UsageError, match='inception_path'):
    TrainingMetrics(c)
  c.metrics.inception_path = '/nonexistent/pt_inception.pth'
  with pytest.raises(errors.UserError, match='not found'):
    TrainingMetrics(c)


def test_metrics_command_on_an_artifact_prints_json(config, net, tmp_path, capsys):
  model = NetworkConfig.from_dict(config.model)
  artifact = export.save_artifact(tmp_path / 'artifact', model, networks.init_generator(model, jax.random.key(0)))
  names = 'fd_domain64,kid_domain64,pr_domain64,coverage64,ls_domain64'
  code = main.main(['evaluate', str(artifact), '--config', 'smoke', '--data_dir', config.data.data_dir,
                    '--cache_dir', config.metrics.cache_dir, '--metrics', names])
  out = capsys.readouterr().out.splitlines()
  assert code == 0
  line = json.loads(out[0])
  assert line['metrics'] == names.split(',') and line['resolution'] == 32
  assert set(line['results']) == {'fd_domain64', 'kid_domain64', 'pr_domain64_precision', 'pr_domain64_recall',
                                  'coverage64_classes', 'coverage64_min_share', 'coverage64_mean_confidence',
                                  'ls_domain64_z', 'ls_domain64_w'}
  assert line['results']['fd_domain64'] > 0 and all(np.isfinite(list(line['results'].values())))
  assert out[1].startswith('| metric | value |')
  assert main.main(['evaluate', str(artifact), '--config', 'smoke', '--metrics', 'nope']) == 2


def test_calibrate_refuses_a_count_below_one(capsys):
  assert main.main(['calibrate', '--num', '0']) == 2
  assert capsys.readouterr().err.strip() == 'error: --num 0: calibrate needs at least 1 image per set'


def test_metrics_command_evaluates_g_or_gs(config, net, tmp_path, capsys):
  """--generator G evaluates the artifact's G (here another network than its Gs); an artifact without G says so."""
  model = NetworkConfig.from_dict(config.model)
  gs, g = (networks.init_generator(model, jax.random.key(seed)) for seed in (0, 1))
  both = export.save_artifact(tmp_path / 'both', model, gs, G=g)
  only_gs = export.save_artifact(tmp_path / 'gs', model, gs)
  common = ['--config', 'smoke', '--data_dir', config.data.data_dir, '--cache_dir', config.metrics.cache_dir,
            '--metrics', 'fd_domain64']
  results = {}
  for name, path, generator in [('Gs', only_gs, 'Gs'), ('G', both, 'G'), ('both Gs', both, 'Gs')]:
    assert main.main(['evaluate', str(path), '--generator', generator, *common]) == 0
    line = json.loads(capsys.readouterr().out.splitlines()[0])
    assert line['generator'] == generator
    results[name] = line['results']['fd_domain64']
  assert results['Gs'] == results['both Gs'] != results['G']
  assert main.main(['evaluate', str(only_gs), '--generator', 'G', *common]) == 1
  assert 'has no G' in capsys.readouterr().err
  assert main.main(['evaluate', str(only_gs), '--checkpoint', '64', *common]) == 2


@pytest.mark.slow  # a two-stage training run, then the metrics command on its workdir: minutes on 2 shared cores
def test_training_logs_fd_domain_at_each_stage_end(config, net, tmp_path, capsys):
  c = config.copy_and_resolve_references()
  c.train.total_kimg = 0.128  # the 8x8 stage (ends at 0.064) and the 16x16 fade-in
  c.metrics.update(names=('fd_domain', 'coverage'), at_stage_end=True)
  train.train(c, str(tmp_path))
  records = [json.loads(line) for line in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  evaluations = [r for r in records if 'fd_domain' in r]
  assert [r['resolution'] for r in evaluations] == [8, 16] and evaluations[-1]['kimg'] == 0.128
  assert (tmp_path / 'samples' / 'stage0008-end.png').exists()
  for r in evaluations:
    assert r['fd_domain'] > 0 and 1 <= r['coverage_classes'] <= 10 and r['metrics_sec'] > 0
  assert any('loss_D' in r for r in records)
  # The metrics command on the run's workdir: its newest checkpoint's Gs with the run's own data config.
  assert main.main(['evaluate', str(tmp_path), '--cache_dir', c.metrics.cache_dir, '--metrics', 'fd_domain64']) == 0
  line = json.loads(capsys.readouterr().out.splitlines()[0])
  assert line['kimg'] == 0.128 and line['resolution'] == 16 and line['results']['fd_domain64'] > 0


def test_training_metrics_are_due_at_intervals_stage_ends_and_the_run_end(config, monkeypatch):
  c = config.copy_and_resolve_references()
  c.metrics.update(names=('fd_domain',), interval_kimg=0.1, at_stage_end=True)
  calls = []
  monkeypatch.setattr(registry.Evaluator, 'prepare', lambda self, names: None)
  monkeypatch.setattr(registry.Evaluator, 'evaluate',
                      lambda self, gs, names, resolution, lod: calls.append((resolution, lod)) or {'fd_domain': 1.0})
  hook = TrainingMetrics(c)
  gs = {'w': jax.numpy.zeros(2)}
  due = [nimg for nimg in range(8, 400, 8)
         if hook(gs, nimg, 8, lod=1.0, resolution=16, stage_end=nimg == 64, run_end=nimg == 392)]
  assert due == [64, 104, 200, 304, 392] and calls[0] == (16, 1.0)
  record = hook(gs, 104, 8, lod=0.5, resolution=16, stage_end=False, run_end=False)
  assert record['fd_domain'] == 1.0 and record['resolution'] == 16 and record['lod'] == 0.5
  c.metrics.update(at_stage_end=False, at_stage_resolution=False, interval_kimg=0.0)
  hook = TrainingMetrics(c)
  assert hook(gs, 64, 8, lod=1.0, resolution=16, stage_end=True, run_end=False) is None
  assert hook(gs, 72, 8, lod=1.0, resolution=16, stage_end=False, run_end=True)['resolution'] == 32
  assert calls[-1] == (None, 1.0)  # full resolution, as the official metrics
