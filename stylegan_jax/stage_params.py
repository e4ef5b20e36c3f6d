"""The parameters a progressive stage uses, so that the step differentiates and updates only those.

At stage R the networks run at R x R (networks.py): the blocks above R and the ToRGB/FromRGB layers of the
lower levels that the stage's lod no longer blends are not in the computation, and their gradients are exactly
zero. The official code still passes every parameter through the gradient all-reduce, the finite check and Adam
at every step. Restricting those to the used leaves changes no number: a zero gradient leaves a parameter where
it is and its Adam moments at zero (with beta1 = 0), every stage starts with an Adam reset, and the Gs average
still runs over the whole tree. It saves that work, which grows with the full resolution (the 1024² networks at
a 16x16 stage carry ~50M parameters of which a few million are used).

Which leaves are used is read from the traced computation itself (its jaxpr), not from layer names.
"""

from typing import Callable, Sequence

import jax
import jax.extend.core as jex


def used_leaves(fn: Callable, tree, *args) -> list[bool]:
  """For each leaf of `tree` (in tree_leaves order): whether fn(tree, *args) reads it on a path to its outputs.

  `tree` and `args` may be arrays or jax.ShapeDtypeStruct. Conservative: an equation with a nested computation
  counts as reading all of its inputs when any of its outputs is needed.
  """
  leaves, treedef = jax.tree_util.tree_flatten(tree)
  closed = jax.make_jaxpr(lambda leaves, *args: fn(jax.tree_util.tree_unflatten(treedef, leaves), *args))(
      leaves, *args)
  jaxpr = closed.jaxpr
  needed = {v for v in jaxpr.outvars if isinstance(v, jex.Var)}
  for eqn in reversed(jaxpr.eqns):
    if any(v in needed for v in eqn.outvars) or eqn.effects:
      needed.update(v for v in eqn.invars if isinstance(v, jex.Var))
  return [v in needed for v in jaxpr.invars[:len(leaves)]]


def take(tree, mask: Sequence[bool]) -> list:
  """The leaves of `tree` where `mask` is True, as a list."""
  return [leaf for leaf, used in zip(jax.tree_util.tree_leaves(tree), mask, strict=True) if used]


def put(tree, mask: Sequence[bool], values: Sequence) -> object:
  """`tree` with its masked leaves replaced by `values` (in order)."""
  leaves, treedef = jax.tree_util.tree_flatten(tree)
  values = iter(values)
  return jax.tree_util.tree_unflatten(treedef, [next(values) if used else leaf
                                                for leaf, used in zip(leaves, mask, strict=True)])
