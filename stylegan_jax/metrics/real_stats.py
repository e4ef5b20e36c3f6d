"""Features of the reals, computed once per (dataset + fingerprint, level, count, feature network) and cached.

An entry holds the features of the first `count` records of a level (in file order, at that level's resolution,
as the official metrics read reals) and their Fréchet statistics (mu, sigma). It is stored as
`<cache_dir>/real_stats/<key>.npz`, written to a temporary file and renamed, so a crash never leaves a partial
entry. The key hashes the dataset's name and fingerprint (reals.Reals.fingerprint: preparing the dataset again
changes it, so the entry is recomputed), the level, the count and the feature network's name and checksum.
"""

import dataclasses
import hashlib
import json
import logging
import os
import uuid
from typing import Callable, Optional

import numpy as np

from stylegan_jax.metrics import cache as cache_lib
from stylegan_jax.metrics import frechet
from stylegan_jax.metrics.reals import Reals

logger = logging.getLogger(__name__)
_CHUNK = 1024  # reals held in memory at a time


@dataclasses.dataclass
class RealStats:
  features: np.ndarray  # float32 [N, D]
  mu: np.ndarray        # [D]
  sigma: np.ndarray     # [D, D]


def cache_key(reals: Reals, resolution: int, count: int, feature_net) -> dict:
  """What identifies an entry (count: the number of reals actually used)."""
  return dict(dataset=reals.name, fingerprint=reals.fingerprint(), resolution=resolution, count=count,
              feature_net=feature_net.name, feature_net_checksum=feature_net.checksum)


def real_stats(reals: Reals, resolution: int, count: Optional[int], feature_net: Callable,
               cache_dir: Optional[str] = None) -> RealStats:
  """The cached entry for the first `count` reals (None: all) of level `resolution`, computed if missing."""
  count = reals.count(count)
  key = cache_key(reals, resolution, count, feature_net)
  digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
  path = os.path.join(cache_lib.resolve(cache_dir), 'real_stats', f'{digest}.npz')
  if os.path.exists(path):
    try:
      with np.load(path, allow_pickle=False) as data:
        if json.loads(str(data['key'])) == key:
          return RealStats(data['features'], data['mu'], data['sigma'])
    except (OSError, ValueError, KeyError) as e:
      logger.warning('recomputing the unreadable real statistics %s: %s', path, e)
  logger.info('computing real statistics: %d images of %s at %dx%d with %s', count, reals.name, resolution,
              resolution, feature_net.name)
  features = np.concatenate([np.asarray(feature_net(reals.read(resolution, start, min(_CHUNK, count - start))),
                                        np.float32) for start in range(0, count, _CHUNK)])
  stats = RealStats(features, *frechet.statistics(features))
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tmp = f'{path}.{uuid.uuid4().hex}.tmp.npz'
  try:
    np.savez(tmp, key=json.dumps(key, sort_keys=True), features=stats.features, mu=stats.mu, sigma=stats.sigma)
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)
  return stats
