"""An unpickler that resolves only an allowlist of globals, so a foreign file is refused before anything runs."""

import pickle
from typing import Callable


class RestrictedUnpickler(pickle.Unpickler):
  """Resolves only the globals in `allowed` ({(module, name): factory of the object to use}); any other global
  raises `refuse(module, name)`, which subclasses override to name their file format."""
  allowed: dict[tuple[str, str], Callable[[], object]] = {}

  def refuse(self, module: str, name: str) -> Exception:
    return pickle.UnpicklingError(f'refusing to unpickle global {module}.{name}')

  def find_class(self, module, name):
    factory = self.allowed.get((module, name))
    if factory is None:
      raise self.refuse(module, name)
    return factory()
