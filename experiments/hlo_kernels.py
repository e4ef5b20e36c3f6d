"""The convolutions and matmuls of a compiled XLA program, read from its optimized HLO text, each rebuilt as a
program of its own and timed alone: how long a step's kernels take without everything around them (elementwise
fusions, layout transposes, copies, the optimizer), at the shapes, dimension orders and precision the step runs
them.

FLOP are the kernels' multiply-adds x 2 as they compute them (a convolution's padding taps included): for a
convolution 2 x output elements x kernel elements per output feature, for a dot 2 x output elements x the
contracted size. A loop body's kernels count once.
"""

import dataclasses
import math
import re
import statistics
import time

import jax
import jax.numpy as jnp
from jax import lax

_INSTRUCTION = re.compile(r'%(?P<name>[\w.\-]+) = (?P<dtype>[a-z]\w*)\[(?P<shape>[\d,]*)\]\S*'
                          r' (?P<op>[\w\-]+)\((?P<operands>[^)]*)\)(?P<attributes>.*)')
_DTYPES = {'f32': jnp.float32, 'bf16': jnp.bfloat16, 'f16': jnp.float16, 'f64': jnp.float64}
_PRECISIONS = {'default': lax.Precision.DEFAULT, 'high': lax.Precision.HIGH, 'highest': lax.Precision.HIGHEST}


@dataclasses.dataclass(frozen=True)
class Kernel:
  """One convolution or dot: its operands' and output's shapes and dtype, and the attributes that rebuild it."""
  op: str                          # 'convolution' or 'dot'
  dtype: str                       # HLO element type of the output, e.g. 'f32'
  lhs: tuple[int, ...]
  rhs: tuple[int, ...]
  lhs_dtype: str
  rhs_dtype: str
  out: tuple[int, ...]
  attributes: tuple[tuple[str, str], ...]  # e.g. (('dim_labels', 'b01f_01io->b01f'), ('window', 'size=3x3 ...'))

  @property
  def flop(self) -> int:
    attrs = dict(self.attributes)
    if self.op == 'dot':
      return 2 * math.prod(self.out) * math.prod(self.lhs[i] for i in _dims(attrs.get('lhs_contracting_dims', '')))
    out_features = self.rhs[attrs['dim_labels'].split('_')[1].split('->')[0].index('o')]
    return 2 * math.prod(self.out) * math.prod(self.rhs) // out_features

  def function(self):
    """A function of (lhs, rhs) computing this kernel with lax's ops."""
    attrs = dict(self.attributes)
    precision = _precision(attrs.get('operand_precision'))
    out_dtype = _DTYPES[self.dtype]
    if self.op == 'dot':
      dimensions = ((_dims(attrs.get('lhs_contracting_dims', '')), _dims(attrs.get('rhs_contracting_dims', ''))),
                    (_dims(attrs.get('lhs_batch_dims', '')), _dims(attrs.get('rhs_batch_dims', ''))))
      return lambda lhs, rhs: lax.dot_general(lhs, rhs, dimensions, precision=precision,
                                              preferred_element_type=out_dtype)
    window = dict(item.split('=') for item in attrs.get('window', '').split())
    if 'rhs_reversal' in window:
      raise ValueError('reversed window')
    spatial = len(self.lhs) - 2
    sizes = lambda key: tuple(int(v) for v in window[key].split('x')) if key in window else (1,) * spatial
    padding = [tuple(int(v) for v in pad.split('_')) for pad in window['pad'].split('x')] if 'pad' in window \
        else [(0, 0)] * spatial
    lhs_labels, rest = attrs['dim_labels'].split('_')
    rhs_labels, out_labels = rest.split('->')
    letters = {'b': 'N', 'f': 'C', 'i': 'I', 'o': 'O'}
    spec = lambda labels: ''.join(letters.get(c) or 'HWDXYZ'[int(c)] for c in labels)
    numbers = (spec(lhs_labels), spec(rhs_labels), spec(out_labels))
    return lambda lhs, rhs: lax.conv_general_dilated(
        lhs, rhs, sizes('stride'), padding, sizes('lhs_dilate'), sizes('rhs_dilate'), numbers,
        int(attrs.get('feature_group_count', 1)), int(attrs.get('batch_group_count', 1)), precision=precision,
        preferred_element_type=out_dtype)


def _dims(text: str) -> tuple[int, ...]:
  return tuple(int(v) for v in text.strip('{}').split(',') if v)


def _precision(text):
  if not text:
    return None
  return tuple(_PRECISIONS[v] for v in text.strip('{}').split(','))


def _attributes(text: str) -> dict[str, str]:
  """`, key=value, key={a, b}, ...` -> {key: value}; values in braces kept whole (without the braces' commas
  splitting them), metadata and backend config dropped."""
  attributes, depth, current = {}, 0, ''
  for c in text + ',':
    if c == ',' and depth == 0:
      if '=' in current:
        key, value = current.strip().split('=', 1)
        attributes[key] = value.strip('{}') if key in ('window', 'operand_precision') else value
      current = ''
      continue
    depth += (c in '{[') - (c in '}]')
    current += c
  return {k: v for k, v in attributes.items() if k not in ('metadata', 'backend_config', 'frontend_attributes')}


def kernels(hlo_text: str) -> list[Kernel]:
  """Every convolution and dot of an optimized HLO module's text (fused computations' included), in order."""
  shapes = {}
  found = []
  for line in hlo_text.splitlines():
    match = _INSTRUCTION.search(line)
    if not match:
      continue
    shape = tuple(int(v) for v in match['shape'].split(',') if v)
    shapes[match['name']] = (match['dtype'], shape)
    if match['op'] in ('convolution', 'dot'):
      lhs, rhs = re.findall(r'%([\w.\-]+)', match['operands'])[:2]
      attributes = _attributes(match['attributes'])
      keep = ('dim_labels', 'window', 'feature_group_count', 'batch_group_count', 'operand_precision',
              'lhs_contracting_dims', 'rhs_contracting_dims', 'lhs_batch_dims', 'rhs_batch_dims')
      found.append(Kernel(match['op'], match['dtype'], shapes[lhs][1], shapes[rhs][1], shapes[lhs][0],
                          shapes[rhs][0], shape, tuple((k, attributes[k]) for k in keep if k in attributes)))
  return found


def time_alone(kernel: Kernel, device, compiler_options: dict, copies: int = 5, seconds: float = 0.3) -> float:
  """Seconds of one `kernel` run, compiled (with `compiler_options`) and run on `device` with random inputs: the
  difference of the median times of a program that runs it on `copies` left operands (independent: XLA may run
  them side by side, as a step may) and one that runs it once, over `copies` - 1. The difference holds the
  kernels alone, without the cost of a call or of waking threads, which a step does not pay per kernel. Each
  program runs 3-9 times, as many as fit in about `seconds`."""
  key_lhs, key_rhs = jax.random.split(jax.random.key(0))
  lhs = jax.device_put(jax.random.normal(key_lhs, kernel.lhs, _DTYPES[kernel.lhs_dtype]), device)
  rhs = jax.device_put(jax.random.normal(key_rhs, kernel.rhs, _DTYPES[kernel.rhs_dtype]), device)
  function = kernel.function()

  def median_seconds(count):
    operands = [lhs + i for i in range(count)]  # distinct buffers, so that XLA cannot merge the copies
    compiled = jax.jit(lambda operands, rhs: [function(x, rhs) for x in operands]).lower(operands, rhs).compile(
        compiler_options=compiler_options)
    start = time.perf_counter()
    jax.block_until_ready(compiled(operands, rhs))
    walls = []
    for _ in range(min(9, max(3, int(seconds / (time.perf_counter() - start))))):
      start = time.perf_counter()
      jax.block_until_ready(compiled(operands, rhs))
      walls.append(time.perf_counter() - start)
    return statistics.median(walls)

  return max(median_seconds(copies) - median_seconds(1), 0.0) / (copies - 1)


def time_kernels(hlo_text: str, device, compiler_options: dict) -> tuple[float, int, int, int]:
  """(seconds, FLOP, number of kernels, of them not rebuilt) of a program's kernels, each timed alone
  (`time_alone`): the sum over its convolutions and dots, identical ones timed once. A kernel lax cannot express
  is left out."""
  seconds, flop, skipped, timed = 0.0, 0, 0, {}
  found = kernels(hlo_text)
  for kernel in found:
    if kernel not in timed:
      try:
        timed[kernel] = time_alone(kernel, device, compiler_options)
      except (ValueError, TypeError, KeyError):
        timed[kernel] = None
    if timed[kernel] is None:
      skipped += 1
      continue
    seconds += timed[kernel]
    flop += kernel.flop
  return seconds, flop, len(found), skipped
