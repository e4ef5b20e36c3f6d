"""Evaluation during training: the metrics of `config.metrics.names` on Gs every `interval_kimg`, at the end of each
stage when `at_stage_end`, and at the end of the run. With `at_stage_resolution` Gs runs at the stage's resolution
and lod against the dataset's level of that resolution; without it (official), at full resolution against the full
images. Training calls one `TrainingMetrics` per run; it knows nothing about the loop beyond the images shown, the
schedule and whether a stage or the run ended.
"""

import logging
import time
from typing import Optional

import jax
import numpy as np

from stylegan_jax.metrics import registry

logger = logging.getLogger(__name__)


class TrainingMetrics:
  """Built at start-up, so a bad metric name, a missing dataset or missing weights fail before training starts
  (the domain classifier is trained here on first use)."""

  def __init__(self, config, *, feature_nets: Optional[dict] = None):
    self.names = tuple(config.metrics.names)
    self.interval_nimg = round(config.metrics.interval_kimg * 1000)
    self.at_stage_end = config.metrics.at_stage_end
    self.at_stage_resolution = config.metrics.at_stage_resolution
    self.evaluator = registry.Evaluator(config, feature_nets=feature_nets)
    self.evaluator.prepare(self.names)

  def __call__(self, gs_variables, nimg: int, step_images: int, *, lod: float, resolution: int,
               stage_end: bool, run_end: bool) -> Optional[dict]:
    """The metrics record when the step that ended at `nimg` (showing `step_images`) is due for one, else None."""
    crossed = self.interval_nimg > 0 and nimg // self.interval_nimg > (nimg - step_images) // self.interval_nimg
    if not self.names or not (crossed or run_end or (self.at_stage_end and stage_end)):
      return None
    if not self.at_stage_resolution:
      resolution = None
    start = time.time()
    gs = jax.tree_util.tree_map(lambda x: np.asarray(x.addressable_data(0)), gs_variables)
    results = self.evaluator.evaluate(gs, self.names, resolution=resolution, lod=lod)
    results['metrics_sec'] = time.time() - start
    resolution = resolution or self.evaluator.model.resolution
    logger.info('metrics at kimg %.1f (%dx%d, lod %.2f): %s', nimg / 1000, resolution, resolution, lod,
                 ', '.join(f'{k} {v:.4g}' for k, v in results.items()))
    return {'lod': lod, 'resolution': resolution, **results}
