"""experiments/hlo_kernels.py: a compiled program's convolutions and dots, read from its HLO, rebuilt and timed."""

import dataclasses
import importlib.util
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / 'experiments' / 'hlo_kernels.py'
spec = importlib.util.spec_from_file_location('hlo_kernels', SCRIPT)
hlo_kernels = importlib.util.module_from_spec(spec)
spec.loader.exec_module(hlo_kernels)

NHWC = ('NHWC', 'HWIO', 'NHWC')


def program(x, w3, w4, m):
  """A 3x3 SAME conv, a stride-2 4x4 conv, a transposed conv (input dilation) and a matmul, in one program."""
  y = lax.conv_general_dilated(x, w3, (1, 1), 'SAME', dimension_numbers=NHWC, precision='highest')
  z = lax.conv_general_dilated(jnp.tanh(y), w4, (2, 2), ((1, 1), (1, 1)), dimension_numbers=NHWC,
                               precision='highest')
  t = lax.conv_general_dilated(z, w3[:, :, :, :6], (1, 1), ((1, 2), (1, 2)), lhs_dilation=(2, 2),
                               dimension_numbers=NHWC, precision='highest')
  return z.reshape(z.shape[0], -1) @ m, t


def test_kernels_are_found_counted_and_rebuilt_exactly():
  """Every conv and dot of the compiled program is found with its FLOP (padding taps included), and each rebuilt
  kernel computes what the program's op computes on the same operands (the first conv: the program's output)."""
  rs = np.random.RandomState(0)
  x = rs.randn(2, 8, 8, 6).astype(np.float32)
  w3, w4 = rs.randn(3, 3, 6, 10).astype(np.float32), rs.randn(4, 4, 10, 6).astype(np.float32)
  m = rs.randn(4 * 4 * 6, 5).astype(np.float32)
  compiled = jax.jit(program).lower(x, w3, w4, m).compile()
  found = hlo_kernels.kernels(compiled.as_text())
  assert sorted(k.op for k in found) == ['convolution'] * 3 + ['dot']
  flops = sorted(k.flop for k in found)
  # conv 3x3: 2*N*8*8*10 outputs x 9*6; stride 2: 2*N*4*4*6 x 16*10; transposed: 2*N*8*8*6 x 9*6; dot: 2*N*5 x 96
  assert flops == sorted([2 * 2 * 64 * 10 * 54, 2 * 2 * 16 * 6 * 160, 2 * 2 * 64 * 6 * 54, 2 * 2 * 5 * 96])
  conv3 = next(k for k in found if k.op == 'convolution' and k.out == (2, 8, 8, 10))
  assert conv3.lhs == (2, 8, 8, 6) and conv3.rhs[-2:] == (6, 10)
  kernel_w = w3 if conv3.rhs == w3.shape else np.transpose(w3, [NHWC[1].index(c) for c in 'HWIO'])
  rebuilt = jax.jit(conv3.function())(x, kernel_w)
  expected = lax.conv_general_dilated(x, w3, (1, 1), 'SAME', dimension_numbers=NHWC, precision='highest')
  np.testing.assert_allclose(rebuilt, expected, rtol=1e-6, atol=1e-5)
  for kernel in found:  # every kernel runs with operands of its shapes and gives its output's shape
    operands = [jnp.ones(shape, jnp.float32) for shape in (kernel.lhs, kernel.rhs)]
    assert jax.jit(kernel.function())(*operands).shape == kernel.out


def test_time_kernels_times_identical_kernels_once_and_reports_what_it_cannot_rebuild(monkeypatch):
  """Identical kernels are timed once and counted per use; a kernel lax cannot express is counted as not rebuilt."""
  x = jnp.ones((4, 64, 64), jnp.float32)
  text = jax.jit(lambda x: (x @ x @ x).sum()).lower(x).compile().as_text()
  found = hlo_kernels.kernels(text)
  assert len(found) == 2 and found[0] == found[1] and found[0].flop == 2 * 4 * 64 * 64 * 64
  timed, time_alone = [], hlo_kernels.time_alone
  monkeypatch.setattr(hlo_kernels, 'time_alone',
                      lambda kernel, *args: timed.append(kernel) or time_alone(kernel, *args))
  seconds, flop, count, skipped = hlo_kernels.time_kernels(text, jax.devices()[0], {})
  assert (count, skipped, flop) == (2, 0, 2 * found[0].flop) and seconds > 0
  assert timed == [found[0]]  # once
  reversed_window = dataclasses.replace(found[0], op='convolution', attributes=(
      ('dim_labels', 'b0f_0io->b0f'), ('window', 'size=3 rhs_reversal=1')))
  monkeypatch.setattr(hlo_kernels, 'kernels', lambda text: [found[0], reversed_window])
  assert hlo_kernels.time_kernels(text, jax.devices()[0], {})[1:] == (found[0].flop, 2, 1)
