"""An unpickler that resolves only an allowlist of globals, so a foreign file is refused before anything runs."""

import pickle
from typing import Callable


class RestrictedUnpickler(pickle.Unpickler):
  """Subclasses set `allowed` ({(module, name): factory of the object to use}) and `refuse` (the error to raise)."""
  allowed: dict[tuple[str, str], Callable[[], object]] = {}

  def refuse(self, module: str, name: str) -> Exception:
    raise NotImplementedError

  def find_class(self, module, name):
    factory = self.allowed.get((module, name))
    if factory is None:
      raise self.refuse(module, name)
    return factory()
