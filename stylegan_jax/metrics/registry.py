"""Named metrics and the one evaluation entry point, `evaluate`.

A metric name is KIND[COUNT], COUNT a number of generated images with an optional 'k' (x1000); without it, the
config's `metrics.num_images`. Kinds (feature network: what is reported, keys prefixed by the name as given):

  fid        inception  NAME: Fréchet distance (FID); fid50k is the official metric: 50k fakes against the first
                        50k reals (all of a smaller dataset), full resolution
  kid        inception  NAME: kernel distance (KID)
  pr         inception  NAME_precision, NAME_recall (improved precision/recall, k = 3)
  fd_domain  domain     NAME: Fréchet distance in the domain classifier's features
  kid_domain domain     NAME: kernel distance in the domain classifier's features
  pr_domain  domain     NAME_precision, NAME_recall
  coverage   domain     NAME_classes, NAME_min_share, NAME_mean_confidence (coverage.py; fakes only)
  ls_domain  domain     NAME_z, NAME_w: linear separability of the classifier's classes (separability.py; fakes
                        only; the paper used 200k: ls_domain200k)

Reals are the first COUNT records (file order) of the dataset's level at the evaluated resolution; their features
are cached (real_stats.py). Fakes come from Gs (fakes.py) at that resolution and lod, one set per evaluation
shared by all the metrics (each uses its first COUNT), from `metrics.seed`.

Feature networks: 'domain' is the project's classifier (classifier.py, trained on first use), 'inception' the
FID Inception-v3 from the weights file `metrics.inception_path` (stylegan_jax.metrics.inception, 2048-d pool3).
Anything with a `name`, a `checksum` and `__call__(uint8 NHWC) -> float32 [N, D]` can be passed in instead.
"""

import dataclasses
import os
import re
from typing import Optional

import numpy as np

from stylegan_jax import errors
from stylegan_jax.metrics import classifier, coverage, fakes, frechet, kid, precision_recall, real_stats, separability
from stylegan_jax.metrics.reals import Reals
from stylegan_jax.network_config import NetworkConfig

KINDS = {  # kind -> feature network
    'fid': 'inception', 'kid': 'inception', 'pr': 'inception', 'fd_domain': 'domain', 'kid_domain': 'domain',
    'pr_domain': 'domain', 'coverage': 'domain', 'ls_domain': 'domain'}
_NAME = re.compile(r'^(' + '|'.join(sorted(KINDS, key=len, reverse=True)) + r')(?:(\d+)(k?))?$')
USES_REALS = ('fid', 'kid', 'pr', 'fd_domain', 'kid_domain', 'pr_domain')
_FEATURE_CHUNK = 1024  # generated images held at a time before their features are computed


@dataclasses.dataclass(frozen=True)
class Metric:
  name: str
  kind: str
  num_images: int

  @property
  def feature_net(self) -> str:
    return KINDS[self.kind]


def parse(name: str, default_num_images: int) -> Metric:
  """'fd_domain10k' -> Metric('fd_domain10k', 'fd_domain', 10000); raises UsageError for an unknown name."""
  match = _NAME.match(name)
  if not match:
    raise errors.UsageError(f'unknown metric {name!r}: use KIND[COUNT[k]] with KIND one of {", ".join(KINDS)} '
                            '(e.g. fid50k, fd_domain10k, coverage)')
  kind, count, thousands = match.groups()
  num = default_num_images if count is None else int(count) * (1000 if thousands else 1)
  minimum = 2 if kind in ('coverage',) else 4
  if num < minimum:
    raise errors.UsageError(f'metric {name!r}: needs at least {minimum} images, got {num}')
  return Metric(name, kind, num)


def _inception(path: str):
  if not path:
    raise errors.UsageError('the metrics fid/kid/pr need the FID Inception-v3 weights: set metrics.inception_path '
                            '(--config.metrics.inception_path=FILE, or --inception FILE for the metrics command)')
  if not os.path.isfile(path):
    raise errors.UserError(f'Inception weights not found: {path}')
  from stylegan_jax.metrics import inception  # pylint: disable=g-import-not-at-top  (loaded only when used)
  return inception.load(path)


class Evaluator:
  """Evaluates named metrics of Gs variables for a config (model, data, metrics); keeps its feature networks."""

  def __init__(self, config, *, feature_nets: Optional[dict] = None):
    self.model = NetworkConfig.from_dict(config.model)
    self.data = config.data
    self.settings = config.metrics
    self._feature_nets = dict(feature_nets or {})
    self._reals = None

  @property
  def reals(self) -> Reals:
    if self._reals is None:
      self._reals = Reals(self.data)
    return self._reals

  def metrics(self, names) -> list[Metric]:
    metrics = [parse(n, self.settings.num_images) for n in names]
    duplicates = sorted({m.name for m in metrics if [x.name for x in metrics].count(m.name) > 1})
    if duplicates:
      raise errors.UsageError(f'metric(s) listed twice: {", ".join(duplicates)}')
    return metrics

  def feature_net(self, kind: str):
    """'domain' or 'inception', loaded (or trained) on first use."""
    if kind not in self._feature_nets:
      if kind == 'domain':
        settings = classifier.TrainSettings(steps=self.settings.classifier_steps)
        self._feature_nets[kind] = classifier.load_or_train(self.data, self.settings.cache_dir, settings)
      else:
        self._feature_nets[kind] = _inception(self.settings.inception_path)
    return self._feature_nets[kind]

  def prepare(self, names) -> list[Metric]:
    """Checks the names, the dataset and the feature networks now (an error here, not hours later)."""
    metrics = self.metrics(names)
    if metrics:
      _ = self.reals  # raises now if the dataset is not prepared
    for net in sorted({m.feature_net for m in metrics}):
      self.feature_net(net)
    return metrics

  def evaluate(self, gs_variables, names, *, resolution: Optional[int] = None, lod: float = 0.0) -> dict:
    """{key: float} for the named metrics of Gs at `resolution` (default full) and `lod` (see module doc)."""
    metrics = self.prepare(names)
    if not metrics:
      return {}
    resolution = resolution or self.model.resolution
    nets = {kind: self.feature_net(kind) for kind in sorted({m.feature_net for m in metrics})}
    outputs = {kind: ([], []) for kind in nets}  # features and class probabilities (None: not a classifier)
    zs, ws, pending = [], [], []

    def featurize():
      images = np.concatenate(pending)
      pending.clear()
      for kind, net in nets.items():
        f, p = (net.features_and_probabilities(images) if hasattr(net, 'features_and_probabilities')
                else (np.asarray(net(images), np.float32), None))
        outputs[kind][0].append(f)
        outputs[kind][1].append(p)

    for images, z, w in fakes.batches(self.model, gs_variables, max(m.num_images for m in metrics),
                                      seed=self.settings.seed, lod=lod, resolution=resolution):
      pending.append(images)
      zs.append(z)
      ws.append(w)
      if sum(map(len, pending)) >= _FEATURE_CHUNK:
        featurize()
    if pending:
      featurize()
    outputs = {kind: (np.concatenate(f), None if p[0] is None else np.concatenate(p))
               for kind, (f, p) in outputs.items()}
    z, w = np.concatenate(zs), np.concatenate(ws)
    results = {}
    for m in metrics:
      net = self.feature_net(m.feature_net)
      features, probabilities = (None if x is None else x[:m.num_images] for x in outputs[m.feature_net])
      if m.kind in USES_REALS:
        reals = real_stats.real_stats(self.reals, resolution, m.num_images, net, self.settings.cache_dir)
      if m.kind in ('fid', 'fd_domain'):
        results[m.name] = frechet.frechet_distance(*frechet.statistics(features), reals.mu, reals.sigma)
      elif m.kind in ('kid', 'kid_domain'):
        results[m.name] = kid.kernel_distance(features, reals.features)
      elif m.kind in ('pr', 'pr_domain'):
        precision, recall = precision_recall.precision_recall(reals.features, features)
        results.update({f'{m.name}_precision': precision, f'{m.name}_recall': recall})
      elif m.kind == 'coverage':
        c = coverage.class_coverage(probabilities)
        results.update({f'{m.name}_{k}': float(c[k]) for k in ('classes', 'min_share', 'mean_confidence')})
      else:  # ls_domain
        scores = separability.linear_separability(probabilities, {'z': z[:m.num_images], 'w': w[:m.num_images]})
        results.update({f'{m.name}_{space}': score for space, score in scores.items()})
    return results


def evaluate(gs_variables, config, names, *, resolution: Optional[int] = None, lod: float = 0.0,
             feature_nets: Optional[dict] = None) -> dict:
  """The named metrics of Gs variables for `config` (model, data, metrics) at a resolution and lod."""
  return Evaluator(config, feature_nets=feature_nets).evaluate(gs_variables, names, resolution=resolution, lod=lod)
