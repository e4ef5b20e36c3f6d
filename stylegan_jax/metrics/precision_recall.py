"""Improved precision and recall (Kynkäänniemi et al. 2019) with k-nearest-neighbour manifolds, k = 3.

Each feature vector of a set gets the radius of the ball reaching its k-th nearest neighbour in the same set
(itself excluded). Precision is the share of fakes inside at least one ball of a real; recall is the share of
reals inside at least one ball of a fake. Distances are Euclidean, computed on the default JAX device in blocks of
`batch_size` rows against the whole other set, so 50k x 50k needs [batch_size, 50k] floats at a time, never the
full matrix.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

K = 3


def _squared_distances(a, b):
  """[A, D], [B, D] -> [A, B], clipped at 0."""
  d = jnp.sum(a * a, 1)[:, None] + jnp.sum(b * b, 1)[None, :] - 2 * jnp.dot(a, b.T, precision='highest')
  return jnp.maximum(d, 0)


@functools.partial(jax.jit, static_argnames='k')
def _kth_neighbour(rows, points, *, k):
  """Squared distance of each row to its k-th nearest point, counting the row itself as the 0-th."""
  return -jax.lax.top_k(-_squared_distances(rows, points), k + 1)[0][:, k]


@jax.jit
def _inside_any(rows, points, radii):
  """Whether each row lies inside at least one ball (points, squared radii)."""
  return jnp.any(_squared_distances(rows, points) <= radii[None, :], axis=1)


def _blocks(fn, rows: np.ndarray, batch_size: int, *args) -> np.ndarray:
  """fn over row blocks (the last zero-padded to one shape, so one compilation)."""
  out = []
  for start in range(0, len(rows), batch_size):
    block = rows[start:start + batch_size]
    padded = np.pad(block, [(0, batch_size - len(block)), (0, 0)])
    out.append(np.asarray(fn(padded, *args))[:len(block)])
  return np.concatenate(out)


def manifold_radii(features: np.ndarray, *, k: int = K, batch_size: int = 1024) -> np.ndarray:
  """Squared k-NN radii [N] of features [N, D] within the set (N > k)."""
  features = np.asarray(features, np.float32)
  if len(features) <= k:
    raise ValueError(f'need more than k={k} features, got {len(features)}')
  points = jnp.asarray(features)
  return _blocks(lambda rows: _kth_neighbour(rows, points, k=k), features, min(batch_size, len(features)))


def coverage_of(queries: np.ndarray, points: np.ndarray, radii: np.ndarray, *, batch_size: int = 1024) -> float:
  """The share of queries inside at least one ball (points [M, D], squared radii [M])."""
  queries = np.asarray(queries, np.float32)
  points, radii = jnp.asarray(np.asarray(points, np.float32)), jnp.asarray(radii)
  return float(np.mean(_blocks(lambda rows: _inside_any(rows, points, radii), queries,
                               min(batch_size, len(queries)))))


def precision_recall(real: np.ndarray, fake: np.ndarray, *, k: int = K, batch_size: int = 1024
                     ) -> tuple[float, float]:
  """(precision, recall) of fake [N2, D] against real [N1, D]."""
  real, fake = np.asarray(real, np.float32), np.asarray(fake, np.float32)
  if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
    raise ValueError(f'need features [N1, D] and [N2, D], got {real.shape} and {fake.shape}')
  precision = coverage_of(fake, real, manifold_radii(real, k=k, batch_size=batch_size), batch_size=batch_size)
  recall = coverage_of(real, fake, manifold_radii(fake, k=k, batch_size=batch_size), batch_size=batch_size)
  return precision, recall
