"""The metrics command: evaluate a generator, train the domain classifier, print the calibration table.

  python -m stylegan_jax.metrics.main evaluate NETWORK [--metrics fd_domain10k,coverage10k] [--config default]
  python -m stylegan_jax.metrics.main train-classifier [--config default] [--classifier_steps 1000] [--retrain]
  python -m stylegan_jax.metrics.main calibrate [--config default] [--num 5000]

NETWORK is a training workdir (its newest checkpoint's Gs at that checkpoint's stage resolution and lod, against
the run's dataset at that level), an exported artifact directory or an official .pkl (full resolution, with the
data of --config). `evaluate` prints one JSON line, then a table.
Common options: --data_dir (where the dataset is prepared), --cache_dir (classifiers, real statistics),
--inception FILE (FID Inception weights for fid/kid/pr).
"""

import argparse
import importlib.util
import json
import os
import sys
from typing import Optional, Sequence

import ml_collections

from stylegan_jax import checkpoint, configs, console, errors, export
from stylegan_jax.metrics import calibration, classifier, registry
from stylegan_jax.metrics.reals import Reals

PROG = 'stylegan-jax metrics'


def load_config(spec: str) -> ml_collections.ConfigDict:
  """A shipped config name or a config file path (with an optional ':ARG' for its get_config)."""
  path, _, arg = configs.config_path(spec).partition(':')
  if not os.path.isfile(path):
    raise errors.UsageError(f'--config {spec!r}: not a shipped config ({", ".join(configs.names())}) nor a file')
  module_spec = importlib.util.spec_from_file_location('_metrics_config', path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(arg) if arg else module.get_config()


def _config(args) -> ml_collections.ConfigDict:
  config = load_config(args.config)
  for key in ('data_dir',):
    if getattr(args, key, None):
      config.data[key] = getattr(args, key)
  for key in ('cache_dir', 'inception_path', 'num_images', 'classifier_steps', 'seed'):
    if getattr(args, key, None) is not None:
      config.metrics[key] = getattr(args, key)
  return config


def load_generator(path: str, config: ml_collections.ConfigDict, data_dir: Optional[str] = None,
                   generator: str = 'Gs', step: Optional[int] = None) -> tuple[dict, dict]:
  """(variables of `generator`, 'Gs' or 'G', facts) from a workdir (its checkpoint `step`, default the newest),
  an artifact or an official pickle. Sets config.model, and for a workdir config.data to the run's (in
  `data_dir` when given). facts: kimg, and the resolution and lod the network is evaluated at: a checkpoint's
  stage resolution and lod, else full resolution and lod 0."""
  if os.path.isdir(os.path.join(path, 'checkpoints')):
    restored = checkpoint.load(path, step)
    saved = restored.meta['config']
    config.model = ml_collections.ConfigDict(saved['model'])
    config.data = ml_collections.ConfigDict(saved['data'])
    config.data.data_dir = data_dir or config.data.data_dir
    return getattr(restored.state, generator), {'kimg': restored.step / 1000, 'resolution': restored.loop['stage'],
                                                'lod': restored.loop['lod']}
  if not os.path.exists(path):
    raise errors.UserError(f'network {path!r} not found: give a training workdir, an artifact directory or a .pkl')
  if step is not None:
    raise errors.UsageError('--checkpoint needs a training workdir')
  artifact = export.load_networks(path, (generator,))
  config.model = ml_collections.ConfigDict(artifact.config.to_dict())
  return getattr(artifact, generator), {'kimg': artifact.metadata.get('kimg'),
                                        'resolution': artifact.config.resolution, 'lod': 0.0}


def _table(rows: list[dict]) -> str:
  """Markdown table of rows with the same keys; floats with 4 significant digits."""
  fmt = lambda v: f'{v:.4g}' if isinstance(v, float) else str(v)
  keys = list(rows[0])
  lines = ['| ' + ' | '.join(keys) + ' |', '|' + '---|' * len(keys)]
  lines += ['| ' + ' | '.join(fmt(r[k]) for k in keys) + ' |' for r in rows]
  return '\n'.join(lines)


def cmd_evaluate(args) -> None:
  config = _config(args)
  gs, facts = load_generator(args.network, config, args.data_dir, args.generator, args.checkpoint)
  if (config.model.resolution, config.model.num_channels) != (config.data.resolution, config.data.num_channels):
    raise errors.UsageError(f'the network makes {config.model.resolution}x{config.model.resolution}x'
                            f'{config.model.num_channels} images but the data config has {config.data.resolution}x'
                            f'{config.data.resolution}x{config.data.num_channels}: pass a matching --config')
  names = args.metrics.split(',') if args.metrics else list(config.metrics.names) or ['fd_domain', 'coverage']
  results = registry.evaluate(gs, config, names, resolution=facts['resolution'], lod=facts['lod'])
  print(json.dumps({'network': args.network, 'generator': args.generator, **facts, 'dataset': Reals(config.data).name, 'metrics': names,
                    'results': results}))
  print(_table([{'metric': k, 'value': v} for k, v in results.items()]))


def cmd_train_classifier(args) -> None:
  config = _config(args)
  settings = classifier.TrainSettings(steps=config.metrics.classifier_steps)
  net = classifier.load_or_train(config.data, config.metrics.cache_dir, settings, retrain=args.retrain)
  record = net.record
  print(json.dumps(record))
  print(f'domain classifier for {record["dataset"]}: {record["settings"]["steps"]} steps in '
        f'{record["train_seconds"]} s{" (packaged)" if "packaged" in record else ""}, test accuracy ' +
        ', '.join(f'{a:.4f} at {r}x{r}' for r, a in sorted(record['test_accuracy'].items(), key=lambda x: -int(x[0]))))


def cmd_calibrate(args) -> None:
  if args.num < 1:
    raise errors.UsageError(f'--num {args.num}: calibrate needs at least 1 image per set')
  config = _config(args)
  settings = classifier.TrainSettings(steps=config.metrics.classifier_steps)
  net = classifier.load_or_train(config.data, config.metrics.cache_dir, settings)
  reals = Reals(config.data)
  resolution = args.resolution or reals.resolution
  rows = calibration.calibrate(reals, net, args.num, resolution=resolution, cache_dir=config.metrics.cache_dir)
  print(f'{reals.name} at {resolution}x{resolution}, reference: the first {args.num} images; domain classifier '
        f'test accuracy {net.record["test_accuracy"]}')
  print(_table(rows))


def _parser() -> argparse.ArgumentParser:
  parser = console.ArgumentParser(prog=PROG, description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = parser.add_subparsers(dest='command', required=True, parser_class=console.ArgumentParser)

  def add(name, func, help_text):
    p = sub.add_parser(name, help=help_text)
    p.set_defaults(func=func)
    p.add_argument('--config', default='default', help='shipped config name or config file (data, metrics)')
    p.add_argument('--data_dir', help='where the dataset is prepared (default: the config\'s)')
    p.add_argument('--cache_dir', help='classifiers and real statistics (default ~/.cache/stylegan-jax)')
    p.add_argument('--classifier_steps', type=int, help='domain classifier training steps (default: config)')
    return p

  p = add('evaluate', cmd_evaluate, 'metrics of a workdir, artifact or official pickle')
  p.add_argument('network', help='training workdir, artifact directory or official .pkl')
  p.add_argument('--metrics', help='comma-separated names, e.g. fd_domain10k,coverage10k,fid50k')
  p.add_argument('--num_images', type=int, help='images for names without a count')
  p.add_argument('--inception', dest='inception_path', help='FID Inception-v3 weights (fid/kid/pr)')
  p.add_argument('--seed', type=int, help='latents and noise of the generated images')
  p.add_argument('--generator', choices=('Gs', 'G'), default='Gs',
                 help='the moving average Gs (default) or the trained G (a workdir, or an artifact that has G)')
  p.add_argument('--checkpoint', type=int, help='a workdir\'s checkpoint step (images shown; default the newest)')
  p = add('train-classifier', cmd_train_classifier, 'train (or load) the domain classifier; prints its record')
  p.add_argument('--retrain', action='store_true', help='train again even if cached or packaged')
  p = add('calibrate', cmd_calibrate, 'domain metrics of degraded real images')
  p.add_argument('--num', type=int, default=5000, help='images per set (default 5000)')
  p.add_argument('--resolution', type=int, help='level to compare at (default: full)')
  return parser


def _main(argv: list[str]) -> None:
  args = _parser().parse_args(argv)
  args.func(args)


def main(argv: Optional[Sequence[str]] = None) -> int:
  """`stylegan-jax metrics ...` (argv without the program name); returns the exit code."""
  return console.run(PROG, _main, sys.argv[1:] if argv is None else argv)


if __name__ == '__main__':
  sys.exit(main())
