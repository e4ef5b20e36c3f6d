"""Training configs shipped with the package (ml-collections files with `get_config()`).

`--config` takes a shipped name (`default`, `smoke`, `ffhq1024:4`) or the path of a config file, so the command
works from any directory; `config_path` turns either into the file path that ml-collections' config flags load.
"""

import importlib.util
import os

import ml_collections

from stylegan_jax import errors

DIRECTORY = os.path.dirname(os.path.abspath(__file__))


def names() -> list[str]:
  """The shipped configs a user can name (official.py is a library for the per-dataset files, not a config)."""
  return sorted(f[:-3] for f in os.listdir(DIRECTORY)
                if f.endswith('.py') and f not in ('__init__.py', 'official.py'))


def config_path(spec: str) -> str:
  """'smoke' / 'ffhq1024:4' / 'path/to/my_config.py[:ARG]' -> the file path (with ':ARG' kept)."""
  name, colon, arg = spec.partition(':')
  if name in names() and not os.path.exists(name):
    return os.path.join(DIRECTORY, name + '.py') + colon + arg
  return spec


def load_config(spec: str) -> ml_collections.ConfigDict:
  """The `get_config()` (with ':ARG' passed on) of a shipped config name or config file, as --config loads it."""
  path, _, arg = config_path(spec).partition(':')
  module_spec = importlib.util.spec_from_file_location('_stylegan_jax_config', path)
  if module_spec is None or not os.path.isfile(path):
    raise errors.UsageError(f'--config {spec}: neither a shipped config ({", ".join(names())}) nor a config file')
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(arg) if arg else module.get_config()
