"""Sampling artifacts: trained networks in a versioned, pickle-free directory format, and the official layout.

An artifact is a directory:

  manifest.json   {"format": "stylegan-jax-artifact", "format_version": 1,
                   "network_config": {...NetworkConfig.to_dict()...},
                   "networks": ["Gs", "G", "D"],          # Gs always; G and D optional
                   "class_names": ["cat", "dog", ...],    # optional: conditional models, one per label
                   "metadata": {"created": "2026-...Z", "source": ..., "kimg": ..., ...}}   # free-form JSON
  Gs.npz          one plain `np.savez` archive per network, read with `np.load(..., allow_pickle=False)`;
  G.npz, D.npz    keys are 'collection/module/.../name' paths of our variables, float32 in our layouts:
                    params/synthesis/4x4/Const/const   [1, 4, 4, C]   (NHWC)
                    params/mapping/Dense0/weight       [in, out]      (raw, equalized-lr multipliers not folded in)
                    noise/synthesis/noise{i}           [1, H, W, 1]   (the stored noise buffers)
                    stats/dlatent_avg                  [dlatent_size]
                  D has only params/... ; the names are the official TF variable names (see official.py).

The variable names and shapes are fully determined by the network config; loading checks every one of them.
An artifact is written into a temporary sibling directory and renamed into place, so a crash never leaves a
directory named like the artifact that is incomplete. Reading one needs only `networks` (no training code).
"""

import dataclasses
import datetime
import json
import os
import pathlib
import shutil
import uuid
import zipfile
from typing import Any, Iterable, Optional, Sequence, Union

import jax
import numpy as np
from flax import traverse_util

from stylegan_jax import errors, networks, official
from stylegan_jax.network_config import NetworkConfig

FORMAT = 'stylegan-jax-artifact'
FORMAT_VERSION = 1
MANIFEST = 'manifest.json'
NETWORKS = ('Gs', 'G', 'D')  # Gs: the moving average used for sampling; G, D: the instantaneous networks
PathLike = Union[str, os.PathLike]


class ArtifactError(errors.UserError, ValueError):
  """A directory that is not a valid stylegan-jax artifact, or networks that do not match their config."""


@dataclasses.dataclass
class Artifact:
  """Networks and their config. Variables are nested dicts of numpy arrays ({'params', 'noise', 'stats'}).

  A saved artifact always has Gs; one loaded with `names` holds only those networks.
  """
  config: NetworkConfig
  Gs: Optional[dict] = None
  G: Optional[dict] = None
  D: Optional[dict] = None
  metadata: dict = dataclasses.field(default_factory=dict)
  class_names: Optional[list[str]] = None  # conditional models: the name of each class id, when known

  def network(self, name: str) -> dict:
    """The variables of 'Gs', 'G' or 'D'; a clear error if this artifact does not hold them."""
    if name not in NETWORKS:
      raise ValueError(f'network must be one of {NETWORKS}, got {name!r}')
    variables = getattr(self, name)
    if variables is None:
      raise ArtifactError(f'this artifact has no {name} (it holds {self.names()})')
    return variables

  def names(self) -> list[str]:
    return [n for n in NETWORKS if getattr(self, n) is not None]


# ---- Validation --------------------------------------------------------------------------------------------


def expected_shapes(config: NetworkConfig, name: str) -> dict[str, tuple[int, ...]]:
  """{'collection/path': shape} of every variable of network `name` ('Gs', 'G' or 'D') for `config`."""
  init = networks.init_discriminator if name == 'D' else networks.init_generator
  tree = jax.eval_shape(lambda key: init(config, key), jax.random.key(0))
  return {k: tuple(v.shape) for k, v in traverse_util.flatten_dict(tree, sep='/').items()}


def check_variables(config: NetworkConfig, name: str, flat: dict[str, Any], where: str) -> None:
  """Raises ArtifactError listing every missing, unexpected, mis-shaped, non-float32 or non-finite variable of
  `flat` (values may also be np.lib.format headers' (shape, dtype) stand-ins: see `_npz_headers`)."""
  expected = expected_shapes(config, name)
  problems = [f'missing {k} {list(s)}' for k, s in expected.items() if k not in flat]
  problems += [f'unexpected {k} {list(np.shape(v))}' for k, v in flat.items() if k not in expected]
  for k, v in flat.items():
    if k in expected and tuple(np.shape(v)) != expected[k]:
      problems.append(f'{k} has shape {list(np.shape(v))}, expected {list(expected[k])}')
    elif k in expected and v.dtype != np.float32:
      problems.append(f'{k} has dtype {v.dtype}, expected float32')
    elif k in expected and isinstance(v, np.ndarray) and (bad := v.size - int(np.count_nonzero(np.isfinite(v)))):
      problems.append(f'{k} holds {bad} non-finite values (NaN or Inf)')
  if problems:
    raise ArtifactError(f'{where}: variables do not match the network config '
                        f'(resolution={config.resolution}, label_size={config.label_size}): ' + '; '.join(problems))


def check_class_names(config: NetworkConfig, class_names: Optional[list], where: str) -> None:
  """Raises ArtifactError unless `class_names` is None or label_size distinct non-empty strings."""
  if class_names is None:
    return
  if not config.label_size:
    raise ArtifactError(f'{where}: class_names {class_names!r} given for an unconditional model (label_size=0)')
  if not (isinstance(class_names, list) and len(class_names) == config.label_size
          and all(isinstance(n, str) and n for n in class_names) and len(set(class_names)) == len(class_names)):
    raise ArtifactError(f'{where}: class_names must be {config.label_size} distinct non-empty strings (one per '
                        f'class id), got {class_names!r}')


@dataclasses.dataclass(frozen=True)
class _Header:
  """An npy member's declared shape and dtype, read from its header before any of its data."""
  shape: tuple[int, ...]
  dtype: np.dtype


def _npz_headers(file: pathlib.Path) -> dict[str, _Header]:
  """{member name: its npy header} of an npz archive, reading only the headers."""
  headers = {}
  with zipfile.ZipFile(file) as zf:
    for info in zf.infolist():
      if not info.filename.endswith('.npy'):
        raise ValueError(f'member {info.filename} is not an .npy array')
      with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        read = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}.get(version)
        if read is None:
          raise ValueError(f'member {info.filename} has npy format version {version}, expected 1.0 or 2.0')
        shape, _, dtype = read(f)
      headers[info.filename[:-len('.npy')]] = _Header(tuple(shape), dtype)
  return headers


def _flatten(variables: dict) -> dict[str, np.ndarray]:
  return {k: np.asarray(v) for k, v in traverse_util.flatten_dict(jax.device_get(variables), sep='/').items()}


# ---- Writing -----------------------------------------------------------------------------------------------


def _write_synced(path: pathlib.Path, write) -> None:
  with open(path, 'wb') as f:
    write(f)
    f.flush()
    os.fsync(f.fileno())


def _sibling(path: pathlib.Path, kind: str) -> pathlib.Path:
  """A unique hidden name next to `path`, on the same file system so that renames are atomic."""
  return path.parent / f'.{path.name}.{kind}-{uuid.uuid4().hex[:12]}'


def save_artifact(path: PathLike, config: NetworkConfig, Gs: dict, *, G: Optional[dict] = None,
                  D: Optional[dict] = None, metadata: Optional[dict] = None, overwrite: bool = False,
                  class_names: Optional[Sequence[str]] = None) -> pathlib.Path:
  """Writes an artifact directory at `path` (atomically: temp dir + rename). Returns the path.

  Every network is checked against `config` before anything is written. `metadata` is free-form JSON; 'created'
  (UTC, ISO 8601) is added unless given. `class_names`: one per class id of a conditional model. An existing
  `path` is replaced only with `overwrite`.
  """
  path = pathlib.Path(path)
  nets = {name: _flatten(v) for name, v in (('Gs', Gs), ('G', G), ('D', D)) if v is not None}
  for name, flat in nets.items():
    check_variables(config, name, flat, f'{name} to save')
  class_names = None if class_names is None else list(class_names)
  check_class_names(config, class_names, 'the artifact to save')
  manifest = {'format': FORMAT, 'format_version': FORMAT_VERSION, 'network_config': config.to_dict(),
              'networks': list(nets), **({'class_names': class_names} if class_names is not None else {}),
              'metadata': {'created': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
                           **(metadata or {})}}
  manifest_text = json.dumps(manifest, indent=2, sort_keys=False) + '\n'  # fails early on non-JSON metadata
  if path.exists() and not overwrite:
    raise FileExistsError(f'{path} exists (pass overwrite=True / --overwrite to replace it)')
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = _sibling(path, 'tmp')
  tmp.mkdir()
  try:
    for name, flat in nets.items():
      _write_synced(tmp / f'{name}.npz', lambda f, flat=flat: np.savez(f, **flat))
    _write_synced(tmp / MANIFEST, lambda f: f.write(manifest_text.encode()))
    if path.exists():  # move the old one aside first: a directory cannot be renamed onto a non-empty one
      old = _sibling(path, 'old')
      os.replace(path, old)
      os.replace(tmp, path)
      shutil.rmtree(old)
    else:
      os.replace(tmp, path)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  return path


# ---- Reading -----------------------------------------------------------------------------------------------


def read_manifest(path: PathLike) -> dict:
  """The validated manifest of the artifact directory `path`."""
  path = pathlib.Path(path)
  if not path.is_dir():
    hint = ' (an official network pickle? use official.load_official or load_networks)' if path.is_file() else ''
    raise ArtifactError(f'{path} is not an artifact directory{hint}')
  try:
    manifest = json.loads((path / MANIFEST).read_text())
  except FileNotFoundError:
    raise ArtifactError(f'{path} is not a stylegan-jax artifact: {MANIFEST} is missing') from None
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise ArtifactError(f'{path / MANIFEST} is not valid JSON: {e}') from None
  if not isinstance(manifest, dict) or manifest.get('format') != FORMAT:
    found = manifest.get('format') if isinstance(manifest, dict) else type(manifest).__name__
    raise ArtifactError(f'{path / MANIFEST}: format is {found!r}, expected {FORMAT!r}')
  version = manifest.get('format_version')
  if type(version) is not int or version != FORMAT_VERSION:
    raise ArtifactError(f'{path / MANIFEST}: unsupported format_version {version!r}; this stylegan-jax reads '
                        f'version {FORMAT_VERSION} (a newer artifact needs a newer stylegan-jax)')
  names = manifest.get('networks')
  if not (isinstance(names, list) and 'Gs' in names and set(names) <= set(NETWORKS) and len(set(names)) == len(names)):
    raise ArtifactError(f'{path / MANIFEST}: networks must list Gs and optionally G and D, got {names!r}')
  if not isinstance(manifest.get('network_config'), dict) or not isinstance(manifest.get('metadata', {}), dict):
    raise ArtifactError(f'{path / MANIFEST}: network_config and metadata must be JSON objects')
  return manifest


def load_artifact(path: PathLike, names: Optional[Iterable[str]] = None) -> Artifact:
  """Reads and checks the artifact directory `path`; `names` limits which networks are read (default all)."""
  path = pathlib.Path(path)
  manifest = read_manifest(path)
  try:
    config = NetworkConfig.from_dict(manifest['network_config'])
  except (ValueError, TypeError) as e:
    raise ArtifactError(f'{path / MANIFEST}: bad network_config: {e}') from None
  check_class_names(config, manifest.get('class_names'), str(path / MANIFEST))
  wanted = manifest['networks'] if names is None else list(names)
  variables = {}
  for name in wanted:
    if name not in manifest['networks']:
      raise ArtifactError(f'{path} has no {name} (it holds {manifest["networks"]})')
    file = path / f'{name}.npz'
    if not file.is_file():
      raise ArtifactError(f'{path}: {MANIFEST} lists {name} but {file.name} is missing')
    try:
      # Names, shapes and dtypes are checked from the npy headers first: memory stays bounded by the config.
      check_variables(config, name, _npz_headers(file), str(file))
      with np.load(file, allow_pickle=False) as npz:
        flat = {k: npz[k] for k in npz.files}
    except ArtifactError:
      raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
      raise ArtifactError(f'{file} is not a readable npz archive ({type(e).__name__}: {e})') from None
    check_variables(config, name, flat, str(file))
    variables[name] = traverse_util.unflatten_dict(flat, sep='/')
  return Artifact(config=config, metadata=manifest.get('metadata', {}), class_names=manifest.get('class_names'),
                  **variables)


def is_pickle(path: PathLike) -> bool:
  """Whether `path` is a file that starts like a pickle of protocol 2 or later (official pickles are)."""
  try:
    with open(path, 'rb') as f:
      return f.read(1) == b'\x80'
  except OSError:
    return False


def load_networks(path: PathLike, names: Optional[Iterable[str]] = None) -> Artifact:
  """Networks from an artifact directory, or from an official network pickle (a .pkl, or any file that starts
  like a pickle)."""
  path = pathlib.Path(path)
  if path.is_dir() or not (path.suffix == '.pkl' or is_pickle(path)):
    return load_artifact(path, names)
  names = NETWORKS if names is None else tuple(names)
  if unknown := [n for n in names if n not in NETWORKS]:
    raise ValueError(f'unknown networks {unknown}: choose from {NETWORKS}')
  imported = official.load_official(path)
  return Artifact(config=imported.config, metadata={'source': os.path.abspath(path)},
                  **{n: getattr(imported, n) for n in names})


# ---- The official layout -----------------------------------------------------------------------------------


def export_official(artifact: Union[Artifact, PathLike], path: PathLike) -> None:
  """Writes an artifact as an official `(G, D, Gs)` network pickle.

  The official tuple needs D, so an artifact without D is refused. An artifact without G writes Gs as G too
  (enough for sampling and for the official tools, which use Gs; not for resuming training).
  """
  if not isinstance(artifact, Artifact):
    artifact = load_artifact(artifact)
  if artifact.D is None:
    raise ArtifactError('an official network pickle is a (G, D, Gs) tuple and this artifact has no D: '
                        'export one saved with D (save_artifact(..., D=...), or `export --networks Gs,G,D` '
                        'from a source that has it)')
  G = artifact.Gs if artifact.G is None else artifact.G
  official.write_official_pickle(official.official_networks(artifact.config, G, artifact.D, artifact.Gs), path)


def import_official(pkl: PathLike, path: PathLike, *, names: Iterable[str] = NETWORKS,
                    metadata: Optional[dict] = None, overwrite: bool = False) -> pathlib.Path:
  """Converts an official network pickle into an artifact holding `names` (default Gs, G and D)."""
  source = load_networks(pkl, names)
  return save_artifact(path, source.config, source.Gs, G=source.G, D=source.D, class_names=source.class_names,
                       metadata={**source.metadata, 'imported_from': 'official network pickle', **(metadata or {})},
                       overwrite=overwrite)
