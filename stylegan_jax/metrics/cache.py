"""Where the metrics keep what they compute once: trained domain classifiers and real statistics.

The directory is, in order of precedence: the `cache_dir` passed (config `metrics.cache_dir`, `--cache_dir`),
$STYLEGAN_JAX_CACHE, $XDG_CACHE_HOME/stylegan-jax, ~/.cache/stylegan-jax.
"""

import os
from typing import Optional


def resolve(cache_dir: Optional[str] = None) -> str:
  """The cache directory (absolute; not created)."""
  if not cache_dir:
    cache_dir = os.environ.get('STYLEGAN_JAX_CACHE') or os.path.join(
        os.environ.get('XDG_CACHE_HOME') or os.path.join('~', '.cache'), 'stylegan-jax')
  return os.path.abspath(os.path.expanduser(cache_dir))
