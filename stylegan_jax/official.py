"""NVIDIA's official StyleGAN v1 network pickles: a restricted reader and the mapping to our variables.

An official pickle is a tuple `(G, D, Gs)` of `dnnlib.tflib.network.Network` objects whose state holds
`static_kwargs` (build arguments), `components` (sub-networks 'synthesis' and 'mapping' of G/Gs) and `variables`
(a list of (name, numpy array) in TF layouts, spec §8). We read it with an unpickler that resolves only the
handful of globals such a pickle names (the Network class and numpy's array reconstructors); any other global
is refused before anything runs. TensorFlow is never needed.

Layout differences between an official variable and ours (everything else is identical, names included):
  synthesis/4x4/Const/const  [1, C, 4, 4]  <->  params synthesis/4x4/Const/const  [1, 4, 4, C]
  synthesis/noise{i}         [1, 1, H, W]  <->  noise  synthesis/noise{i}          [1, H, W, 1]
  dlatent_avg                [D]           <->  stats  dlatent_avg                 [D]
  lod, synthesis/lod         scalars       -- not stored: lod is a call argument in stylegan-jax
"""

import dataclasses
import importlib
import io
import os
import pickle
from typing import Any, BinaryIO, Union

import jax
import numpy as np
from flax import traverse_util

from stylegan_jax import errors, networks, restricted_pickle
from stylegan_jax.network_config import NetworkConfig

# ---- Restricted unpickling ---------------------------------------------------------------------------------


class NetworkState:
  """Stand-in for `dnnlib.tflib.network.Network`: pickle's BUILD puts the state dict into `__dict__`."""


class EasyDictStub(dict):
  """Stand-in for dnnlib's EasyDict (a dict with attribute access), which kwargs may contain."""


def _numpy_global(name: str):
  try:
    return getattr(importlib.import_module('numpy._core.multiarray'), name)
  except ImportError:  # numpy 1.x
    return getattr(importlib.import_module('numpy.core.multiarray'), name)


def _empty_reconstruct(subtype, shape, dtype):
  """numpy's `_reconstruct`, which allocates `shape` before the array's state (its real shape and bytes) is set:
  numpy's own pickles always pass (0,), so any other shape is refused before it can allocate."""
  if not (isinstance(shape, tuple) and all(isinstance(n, int) for n in shape) and 0 in shape):
    raise OfficialPickleError(f'numpy _reconstruct of shape {shape!r:.60}: an array pickle starts empty, so this '
                              'file is not a network pickle (nothing was allocated)')
  return _numpy_global('_reconstruct')(subtype, shape, dtype)


_ALLOWED_GLOBALS = {
    ('dnnlib.tflib.network', 'Network'): lambda: NetworkState,
    ('dnnlib', 'EasyDict'): lambda: EasyDictStub,
    ('dnnlib.util', 'EasyDict'): lambda: EasyDictStub,
    ('numpy.core.multiarray', '_reconstruct'): lambda: _empty_reconstruct,
    ('numpy._core.multiarray', '_reconstruct'): lambda: _empty_reconstruct,
    ('numpy.core.multiarray', 'scalar'): lambda: _numpy_global('scalar'),
    ('numpy._core.multiarray', 'scalar'): lambda: _numpy_global('scalar'),
    ('numpy', 'ndarray'): lambda: np.ndarray,
    ('numpy', 'dtype'): lambda: np.dtype,
    ('collections', 'OrderedDict'): lambda: dict,
}


class OfficialPickleError(errors.UserError, ValueError):
  """The file is not a StyleGAN v1 network pickle we can read, or does not match its own build arguments."""


class _RestrictedUnpickler(restricted_pickle.RestrictedUnpickler):
  allowed = _ALLOWED_GLOBALS

  def refuse(self, module, name):
    return OfficialPickleError(
        f'refusing to unpickle global {module}.{name}: a StyleGAN network pickle only references '
        'dnnlib.tflib.network.Network and numpy array reconstructors, so this file is not one '
        '(nothing from it was executed)')


@dataclasses.dataclass
class OfficialNetwork:
  """One network of an official pickle, flattened: `variables` maps 'synthesis/4x4/Conv/weight' -> array."""
  name: str
  build_func_name: str
  version: int
  static_kwargs: dict
  component_kwargs: dict  # component key -> its static_kwargs
  variables: dict


_STATE_TYPES = {'static_kwargs': dict, 'components': dict, 'variables': (list, tuple), 'name': str,
                'build_func_name': str}


def _flatten_network(obj, where: str, parents: tuple = ()) -> tuple[dict, dict, dict]:
  """Returns (own + components' variables, with component-key prefixes; component kwargs; state)."""
  if not isinstance(obj, NetworkState):
    raise OfficialPickleError(f'{where}: expected a dnnlib.tflib.network.Network, got {type(obj).__name__}')
  if any(obj is p for p in parents):
    raise OfficialPickleError(f'{where}: a component refers back to {where.split("/")[0]} (a cycle)')
  state = vars(obj)
  missing = [k for k in ('version', 'name', 'static_kwargs', 'components', 'build_func_name', 'variables')
             if k not in state]
  if missing:
    raise OfficialPickleError(f'{where}: network state lacks {missing}')
  if type(state['version']) is not int:
    raise OfficialPickleError(f"{where}: version must be an integer, got {state['version']!r:.40}")
  if not 2 <= state['version'] <= 4:
    raise OfficialPickleError(f"{where}: unsupported network pickle version {state['version']} (expected 2-4)")
  for key, types in _STATE_TYPES.items():
    if not isinstance(state[key], types):
      kind = 'a list of (name, array)' if key == 'variables' else f'a {types.__name__}'
      raise OfficialPickleError(f'{where}: {key} must be {kind}, got {type(state[key]).__name__}')
  if not all(isinstance(k, str) for k in (*state['static_kwargs'], *state['components'])):
    raise OfficialPickleError(f'{where}: static_kwargs and components must have string keys')
  variables, component_kwargs = {}, {}
  for item in state['variables']:
    if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
      raise OfficialPickleError(f'{where}: malformed variables entry {item!r:.80}')
    name, value = item
    value = np.asarray(value)
    if value.dtype != np.float32:
      raise OfficialPickleError(f'{where}: variable {name} has dtype {value.dtype}, expected float32')
    variables[name] = value
  for key, component in dict(state['components']).items():
    sub, _, sub_state = _flatten_network(component, f'{where}/{key}', parents + (obj,))
    component_kwargs[key] = dict(sub_state['static_kwargs'])
    variables.update({f'{key}/{n}': v for n, v in sub.items()})
  return variables, component_kwargs, state


def read_official_pickle(source: Union[str, os.PathLike, BinaryIO]) -> dict[str, OfficialNetwork]:
  """Reads an official `(G, D, Gs)` pickle into {'G', 'D', 'Gs'} -> OfficialNetwork, without executing it."""
  if isinstance(source, (str, os.PathLike)):
    with open(source, 'rb') as f:
      data = f.read()
  else:
    data = source.read()
  try:
    obj = _RestrictedUnpickler(io.BytesIO(data), encoding='latin1').load()
  except OfficialPickleError:
    raise
  except Exception as e:  # truncated or corrupt stream
    raise OfficialPickleError(f'cannot read the network pickle ({type(e).__name__}: {e})') from e
  if not (isinstance(obj, tuple) and len(obj) == 3):
    raise OfficialPickleError(f'expected a (G, D, Gs) tuple, got {type(obj).__name__}')
  result = {}
  for key, net in zip(('G', 'D', 'Gs'), obj):
    variables, component_kwargs, state = _flatten_network(net, key)
    result[key] = OfficialNetwork(
        name=state['name'], build_func_name=state['build_func_name'], version=int(state['version']),
        static_kwargs=dict(state['static_kwargs']), component_kwargs=component_kwargs, variables=variables)
  expected = {'G': 'G_style', 'D': 'D_basic', 'Gs': 'G_style'}
  for key, func in expected.items():
    if result[key].build_func_name != func:
      raise OfficialPickleError(f'{key} was built by {result[key].build_func_name!r}, expected {func!r}: '
                                'this is not a StyleGAN v1 network pickle')
  return result


# ---- Build arguments -> NetworkConfig ----------------------------------------------------------------------

# Official kwargs that are NetworkConfig fields under the same name.
_CONFIG_KWARGS = {f.name for f in dataclasses.fields(NetworkConfig)} - {'blur'}
# Official kwargs we support only at their default value (the networks here implement no alternative).
_FIXED_KWARGS = {'nonlinearity': 'lrelu', 'mapping_nonlinearity': 'lrelu', 'use_styles': True,
                 'const_input_layer': True, 'dtype': 'float32'}
# Official kwargs that choose run-time or training behaviour, not the architecture.
_RUNTIME_KWARGS = {'structure', 'randomize_noise', 'is_template_graph', 'is_training', 'is_validation',
                   'truncation_psi', 'truncation_cutoff', 'truncation_psi_val', 'truncation_cutoff_val',
                   'dlatent_avg_beta', 'style_mixing_prob', 'force_clean_graph', 'dlatent_broadcast'}


def config_from_kwargs(networks_: dict[str, OfficialNetwork]) -> tuple[NetworkConfig, list[str]]:
  """The NetworkConfig that G's, D's and the components' static_kwargs describe, and notes on ignored kwargs."""
  values, sources, notes, errors = {}, {}, [], []
  kwarg_sets = [('G', networks_['G'].static_kwargs), ('D', networks_['D'].static_kwargs),
                ('Gs', networks_['Gs'].static_kwargs)]
  for net in ('G', 'Gs'):
    kwarg_sets += [(f'{net}/{k}', kw) for k, kw in networks_[net].component_kwargs.items()]
  for where, kwargs in kwarg_sets:
    for key, value in kwargs.items():
      if key == 'blur_filter':
        if value is not None and list(value) != [1, 2, 1]:
          errors.append(f'{where}: blur_filter={value!r} (only [1, 2, 1] or None is supported)')
        key, value = 'blur', value is not None
      elif key in _FIXED_KWARGS:
        if value != _FIXED_KWARGS[key]:
          errors.append(f'{where}: {key}={value!r} (only {_FIXED_KWARGS[key]!r} is supported)')
        continue
      elif key in _RUNTIME_KWARGS:
        notes.append(f'{where}: run-time kwarg {key}={value!r} not part of the architecture')
        continue
      elif key not in _CONFIG_KWARGS:
        errors.append(f'{where}: unknown build argument {key}={value!r}')
        continue
      if key in values and values[key] != value:
        errors.append(f'{key} is {values[key]!r} in {sources[key]} but {value!r} in {where} '
                      '(G and D must share it in stylegan-jax)')
      values.setdefault(key, value)
      sources.setdefault(key, where)
  if errors:
    raise OfficialPickleError('unsupported build arguments: ' + '; '.join(errors))
  try:
    config = NetworkConfig.from_dict(values)
  except (ValueError, TypeError, ArithmeticError) as e:
    raise OfficialPickleError(f'{type(e).__name__}: {e}' if not isinstance(e, ValueError) else str(e)) from e
  broadcast = networks_['Gs'].component_kwargs.get('mapping', {}).get('dlatent_broadcast')
  if broadcast is not None and broadcast != config.num_layers:
    raise OfficialPickleError(f'mapping dlatent_broadcast={broadcast} but the synthesis network has '
                              f'{config.num_layers} layers')
  return config, notes


# ---- Variable mapping --------------------------------------------------------------------------------------

_IGNORED = ('lod', 'synthesis/lod')
_NHWC_TO_NCHW, _NCHW_TO_NHWC = (0, 3, 1, 2), (0, 2, 3, 1)


def _is_nchw(collection: str, path: str) -> bool:
  """Official variables stored NCHW (ours NHWC): the 4x4 const and the noise buffers."""
  return collection == 'noise' or path.endswith('Const/const')


def _template(config: NetworkConfig, kind: str) -> dict:
  init = networks.init_generator if kind == 'generator' else networks.init_discriminator
  return jax.eval_shape(lambda key: init(config, key), jax.random.key(0))


def official_shapes(config: NetworkConfig, kind: str) -> dict[str, tuple[int, ...]]:
  """{official name: TF-layout shape} of every variable of our 'generator' or 'discriminator' (lod excluded)."""
  shapes = {}
  for key, spec in traverse_util.flatten_dict(_template(config, kind), sep='/').items():
    collection, path = key.split('/', 1)
    shapes[path] = tuple(spec.shape[i] for i in _NHWC_TO_NCHW) if _is_nchw(collection, path) else spec.shape
  return shapes


def variables_from_official(net: OfficialNetwork, config: NetworkConfig, kind: str) -> tuple[dict, list[str]]:
  """Maps one official network's variables onto ours (kind 'generator' or 'discriminator').

  Every one of our variables must be present with its exact shape, and every official variable must map
  (except `lod`): otherwise OfficialPickleError lists all the problems. Returns (variables, ignored names).
  """
  problems, result = [], {}
  expected = official_shapes(config, kind)
  for key in traverse_util.flatten_dict(_template(config, kind), sep='/'):
    collection, name = key.split('/', 1)
    shape = expected[name]
    if name not in net.variables:
      problems.append(f'missing variable {name} {list(shape)}')
    elif net.variables[name].shape != shape:
      problems.append(f'variable {name} has shape {list(net.variables[name].shape)}, expected {list(shape)} '
                      'for the config its static_kwargs describe')
    elif (bad := int(np.size(net.variables[name]) - np.count_nonzero(np.isfinite(net.variables[name])))):
      problems.append(f'variable {name} holds {bad} non-finite values (NaN or Inf)')
    else:
      value = net.variables[name]
      result[key] = np.ascontiguousarray(value.transpose(_NCHW_TO_NHWC) if _is_nchw(collection, name) else value)
  ignored = [n for n in net.variables if n in _IGNORED]
  unmapped = [n for n in net.variables if n not in expected and n not in _IGNORED]
  problems += [f'unexpected variable {n} {list(net.variables[n].shape)}' for n in unmapped]
  if problems:
    raise OfficialPickleError(f'{net.name}: ' + '; '.join(problems))
  return traverse_util.unflatten_dict(result, sep='/'), ignored


@dataclasses.dataclass
class ImportedNetworks:
  """An official pickle in our terms: variables for Generator (G, Gs) and Discriminator (D)."""
  config: NetworkConfig
  G: dict
  D: dict
  Gs: dict
  report: list[str]  # what was not mapped (lod scalars, run-time kwargs), for the user to see


def load_official(source: Union[str, os.PathLike, BinaryIO]) -> ImportedNetworks:
  """Reads an official StyleGAN v1 `(G, D, Gs)` pickle into stylegan-jax variables.

  Every variable is checked by name, shape, dtype and finiteness; anything malformed is an OfficialPickleError.
  """
  try:
    nets = read_official_pickle(source)
    config, report = config_from_kwargs(nets)
    out = {}
    for key, kind in (('G', 'generator'), ('D', 'discriminator'), ('Gs', 'generator')):
      out[key], ignored = variables_from_official(nets[key], config, kind)
      report += [f'{key}: ignored {n} (lod is a call argument here)' for n in ignored]
  except (TypeError, AttributeError, KeyError, ArithmeticError, RecursionError, MemoryError) as e:
    # Values of unexpected types deep in the build arguments: still a malformed file, not a crash.
    raise OfficialPickleError(f'malformed network pickle ({type(e).__name__}: {e})') from e
  return ImportedNetworks(config=config, report=report, **out)


def official_variables(variables: dict) -> dict[str, np.ndarray]:
  """Our variables of one network -> {official name: float32 array in TF layout} (the inverse of the import)."""
  result = {}
  for key, value in traverse_util.flatten_dict(jax.device_get(variables), sep='/').items():
    collection, name = key.split('/', 1)
    value = np.asarray(value, np.float32)
    result[name] = np.ascontiguousarray(value.transpose(_NHWC_TO_NCHW)) if _is_nchw(collection, name) else value
  return result


# ---- Writing the official layout ---------------------------------------------------------------------------


def _kwargs_from_config(config: NetworkConfig, discriminator: bool) -> dict:
  """static_kwargs for an official build: the dataset shape plus every non-default architecture value."""
  defaults = NetworkConfig()
  d_keys = {'fmap_base', 'fmap_decay', 'fmap_max', 'use_wscale', 'mbstd_group_size', 'mbstd_num_features',
            'fused_scale', 'blur'}
  kwargs = {'num_channels': config.num_channels, 'resolution': config.resolution, 'label_size': config.label_size}
  for key, value in config.to_dict().items():
    if key in kwargs or value == getattr(defaults, key) or (discriminator and key not in d_keys):
      continue
    if key == 'blur':
      kwargs['blur_filter'] = [1, 2, 1] if value else None
    elif not (discriminator and key in ('use_noise', 'use_instance_norm')):
      kwargs[key] = value
  return kwargs


def _network_state(name, func, kwargs, variables, components=None):
  net = NetworkState()
  net.__dict__.update(version=3, name=name, static_kwargs=kwargs, components=components or {},
                      build_module_src='# written by stylegan-jax; no source included',
                      build_func_name=func, variables=list(variables.items()))
  return net


def official_networks(config: NetworkConfig, G: dict, D: dict, Gs: dict) -> tuple:
  """Our variables -> the official `(G, D, Gs)` tuple of Network states (lod variables written as 0)."""
  lod = np.float32(0.0)

  def generator(name, variables):
    flat = official_variables(variables)
    kwargs = _kwargs_from_config(config, discriminator=False)
    parts = {k: {n.split('/', 1)[1]: v for n, v in flat.items() if n.startswith(k + '/')}
             for k in ('synthesis', 'mapping')}
    synthesis = _network_state('G_synthesis', 'G_synthesis', dict(kwargs), {'lod': lod, **parts['synthesis']})
    mapping = _network_state('G_mapping', 'G_mapping', dict(kwargs, dlatent_broadcast=config.num_layers),
                             parts['mapping'])
    return _network_state(name, 'G_style', kwargs, {'lod': lod, 'dlatent_avg': flat['dlatent_avg']},
                          {'synthesis': synthesis, 'mapping': mapping})

  d = _network_state('D', 'D_basic', _kwargs_from_config(config, discriminator=True),
                     {'lod': lod, **official_variables(D)})
  return generator('G', G), d, generator('Gs', Gs)


class _OfficialPickler(pickle._Pickler):  # the pure-Python pickler lets us name globals as the official code
  """Writes NetworkState as dnnlib.tflib.network.Network and numpy globals under their numpy 1.x names."""

  def save_global(self, obj, name=None):
    if obj is NetworkState:
      module, name = 'dnnlib.tflib.network', 'Network'
    else:
      name = name or obj.__qualname__
      module = pickle.whichmodule(obj, name).replace('numpy._core', 'numpy.core')
    self.save(module)
    self.save(name)
    self.write(pickle.STACK_GLOBAL)
    self.memoize(obj)


def write_official_pickle(networks_: tuple, target: Union[str, os.PathLike, BinaryIO]) -> None:
  """Writes a `(G, D, Gs)` tuple of NetworkState objects as an official network pickle (protocol 4)."""
  buffer = io.BytesIO()
  _OfficialPickler(buffer, protocol=4).dump(tuple(networks_))
  if isinstance(target, (str, os.PathLike)):
    tmp = f'{os.fspath(target)}.tmp'
    with open(tmp, 'wb') as f:
      f.write(buffer.getvalue())
    os.replace(tmp, target)
  else:
    target.write(buffer.getvalue())
