"""xla_options: the training steps' compiler options per mesh, and what this jaxlib does with them."""

import logging
import re

import jax

from stylegan_jax import steps, xla_options
from stylegan_jax.configs import default
from stylegan_jax.network_config import NetworkConfig

MODEL = NetworkConfig(resolution=16, num_channels=1, fmap_base=64, fmap_max=32, latent_size=16, dlatent_size=16,
                      mapping_layers=2, mapping_fmaps=16)


def convolutions(hlo: str) -> tuple[int, int]:
  """(convolutions, those inside YNNPACK fusions) of a compiled module's HLO text."""
  bodies = dict(re.findall(r'\n%?([\w.\-]+) [^\n]*\{\n(.*?)\n\}', hlo, re.S))
  ynn = set(re.findall(r'calls=%?([\w.\-]+)[^\n]*"kind":"__ynn_fusion"', hlo))
  return (len(re.findall(r' convolution\(', hlo)),
          sum(len(re.findall(r' convolution\(', bodies.get(name, ''))) for name in ynn))


def d_step_convolutions(mesh) -> tuple[int, int]:
  """convolutions() of the D step (with R1) of MODEL's 16x16 stage, compiled as training compiles it."""
  pair = steps.build_stage_steps(MODEL, default.get_config(), 16, 8, mesh)
  state, images, labels, scalar = steps.abstract_inputs(MODEL, mesh, 16, 8)
  return convolutions(pair.d_step.lower(state, images, labels, scalar, scalar).compile().as_text())


def test_one_cpu_device_runs_its_convolutions_outside_ynnpack(monkeypatch):
  """This jaxlib accepts every CPU option; with one CPU device the D step's convolutions run in XLA's own kernels,
  where XLA's default (and the options of two devices sharing the cores) put them in YNNPACK fusions."""
  one, two = steps.make_mesh(jax.devices()[:1]), steps.make_mesh(jax.devices()[:2])
  assert xla_options.step_options(one) == {**xla_options.STEP_OPTIONS['cpu'], **xla_options.SOLE_CPU_DEVICE_OPTIONS}
  assert xla_options.step_options(two) == xla_options.STEP_OPTIONS['cpu']
  total, in_ynn = d_step_convolutions(one)
  assert total > 10 and in_ynn == 0
  assert d_step_convolutions(two)[1] > 10
  monkeypatch.setattr(xla_options, 'SOLE_CPU_DEVICE_OPTIONS', {})
  assert d_step_convolutions(one)[1] > 10


def test_options_this_jaxlib_rejects_are_left_out(monkeypatch, caplog):
  monkeypatch.setitem(xla_options.STEP_OPTIONS, 'cpu', {'xla_backend_optimization_level': 1,
                                                        'xla_no_such_option': 1})
  monkeypatch.setattr(xla_options, 'SOLE_CPU_DEVICE_OPTIONS', {'xla_cpu_experimental_ynn_fusion_type': 'FAST'})
  with caplog.at_level(logging.INFO, logger='stylegan_jax.xla_options'):
    options = xla_options.step_options(steps.make_mesh(jax.devices()[:1]))
  assert options == {'xla_backend_optimization_level': 1}
  assert 'xla_no_such_option=1 not used' in caplog.text
  assert "xla_cpu_experimental_ynn_fusion_type='FAST' not used" in caplog.text
