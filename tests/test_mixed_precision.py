"""train.compute_dtype='bfloat16': bf16 convolutions and dense matmuls with float32 params, states and outputs;
train.matmul_precision: how the steps' float32 convolutions and matmuls are computed."""

import collections
import json
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stylegan_jax import checkpoint, config_validation, errors, layers, networks, steps, train
from stylegan_jax.configs import smoke
from stylegan_jax.network_config import NetworkConfig
from test_steps import MODEL, initial_state, run_config


def rel_error(a, b) -> float:
  """max |a - b| over the arrays, relative to max |a|."""
  return float(np.max(np.abs(a - b)) / np.max(np.abs(a)))


def rel_l2(a, b) -> float:
  """|a - b| / |a| of two pytrees as vectors."""
  a, b = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
  return float(np.sqrt(sum(np.sum((x - y) ** 2) for x, y in zip(a, b)) / sum(np.sum(x ** 2) for x in a)))


@pytest.mark.parametrize('fused', [False, True])
def test_bf16_networks_close_to_float32(fused):
  """Same params: bf16 G images and D scores are float32, within 3% of the output scale (max |f32|) of the float32
  ones and not identical; the gradients of sum(D(G(z))) for G's and D's params within 12% (L2 over all params).

  Measured (unfused / fused): images 0.75% / 0.67%, scores 0.28% / 0.70%, gradients G 5.4% / 3.2%, D 3.0% / 1.3%.
  G's gradient is this sensitive in float32 too: z times 1 + 2**-9 N(0, 1) moves it by 4%."""
  model = NetworkConfig(**{**MODEL.to_dict(), 'num_channels': 3, 'fused_scale': fused})
  state = jax.device_get(initial_state(model, steps.make_mesh(jax.devices()[:1])))
  g, d = state.G, state.D
  z = jax.random.normal(jax.random.key(2), (8, model.latent_size))
  out = {}
  for dtype in (jnp.float32, jnp.bfloat16):
    G, D = networks.Generator(model, dtype), networks.Discriminator(model, dtype)

    def score(g_params, d_params):
      images = G.apply({**g, 'params': g_params}, z, None, 0.3, noise_mode='const')
      scores = D.apply({'params': d_params}, images, None, 0.3)
      return jnp.sum(scores), (images, scores)

    grads, outputs = jax.jit(jax.grad(score, argnums=(0, 1), has_aux=True))(g['params'], d['params'])
    out[dtype] = jax.device_get((outputs, grads))
  (f32_outputs, f32_grads), (bf16_outputs, bf16_grads) = out[jnp.float32], out[jnp.bfloat16]
  for f32, bf16 in zip(f32_outputs, bf16_outputs):
    assert bf16.dtype == np.float32
    assert 0 < rel_error(f32, bf16) < 0.03
  for f32, bf16 in zip(f32_grads, bf16_grads):
    assert {x.dtype for x in jax.tree_util.tree_leaves(bf16)} == {np.dtype(np.float32)}
    assert rel_l2(f32, bf16) < 0.12


def test_bf16_gradients_compute_in_bf16():
  """Every conv and matmul of the forward pass, its gradient and the gradient of a gradient norm (R1's double
  backprop) takes bf16 operands: without layers._in_dtype's rule JAX would run the backward ones in float32."""
  def forward(x, w3, w, wd):
    x = layers.conv2d_downscale2d(layers.conv2d(x, w3, dtype=jnp.bfloat16), w, True, jnp.bfloat16)
    x = layers.upscale2d_conv2d(layers.conv2d_downscale2d(x, w, False, jnp.bfloat16), w, True, jnp.bfloat16)
    x = layers.upscale2d_conv2d(x, w, False, jnp.bfloat16)
    return jnp.sum(jnp.sin(layers.dense(x.reshape(2, -1), wd, jnp.bfloat16)))

  def r1(*args):
    return jnp.sum(jnp.square(jax.grad(forward)(*args)))

  args = (jnp.ones((2, 8, 8, 4)), jnp.ones((3, 3, 4, 5)), jnp.ones((3, 3, 5, 5)), jnp.ones((320, 3)))
  text = jax.jit(jax.grad(r1, argnums=(1, 2, 3))).lower(*args).as_text()
  operands = [re.search(r': \((tensor<[^>]*>), (tensor<[^>]*>)\) -> tensor<[^>]*>', line).groups()
              for line in text.splitlines() if 'stablehlo.convolution' in line or 'stablehlo.dot_general' in line]
  assert len(operands) >= 3 * 6  # 6 ops, each with a forward and two transposes, and their derivatives
  assert all(t.endswith('xbf16>') for pair in operands for t in pair), operands


@pytest.mark.slow  # two step pairs to compile: about 95-135 s on 2 busy CPU cores
def test_bf16_step_pair_keeps_float32_states_and_close_gradients():
  """One D and one G step from the same state in float32 and bf16: bf16 keeps every state float32 and finite, and
  its gradients are close. Adam's beta1 is 0, so its first moment after the first step is the (device-averaged)
  gradient: bf16's is within 20% of float32's (L2; measured D 4.1%, G 11.3%); losses and gradient norms within 2%
  (measured at most 0.8%), the R1 penalty within 5% (measured 2.7% since its step runs D's fused convs with the
  phase input gradient on CPU, commit 192b40b; 0.8% with the separate convs, which accelerators run)."""
  mesh = steps.make_mesh(jax.devices()[:2])
  images = steps.shard_batch(np.random.RandomState(0).randint(0, 256, (8, 8, 8, 1)).astype(np.uint8), mesh)
  labels = steps.shard_batch(np.zeros((8, 0), np.float32), mesh)
  states, metrics = {}, {}
  for dtype in ('float32', 'bfloat16'):  # the 8x8 stage (fading in) of the 16x16 MODEL: a smaller graph to compile
    pair = steps.build_stage_steps(MODEL, run_config(compute_dtype=dtype), 8, 8, mesh)
    state, d_metrics = pair.d_step(initial_state(MODEL, mesh), images, labels, jnp.float32(1.5), jnp.float32(0.002))
    state, g_metrics = pair.g_step(state, labels, jnp.float32(1.5), jnp.float32(0.002))
    states[dtype], metrics[dtype] = jax.device_get(state), jax.device_get({**d_metrics, **g_metrics})
  f32, bf16 = states['float32'], states['bfloat16']
  assert_float32_and_finite(bf16)
  assert bf16.skipped.tolist() == [0, 0]
  for opt in ('D_opt', 'G_opt'):
    assert rel_l2(getattr(f32, opt).mu, getattr(bf16, opt).mu) < 0.2
  for name in ('loss_D', 'loss_G', 'grad_norm_D', 'grad_norm_G'):
    assert metrics['bfloat16'][name] == pytest.approx(metrics['float32'][name], rel=0.02), name
  assert metrics['bfloat16']['r1_penalty'] == pytest.approx(metrics['float32']['r1_penalty'], rel=0.05)


def assert_float32_and_finite(state):
  """Every float of a TrainState (G, D, Gs, both Adam states) is float32 and finite."""
  floats = [x for x in jax.tree_util.tree_leaves((state.G, state.D, state.Gs, state.G_opt, state.D_opt))
            if jnp.issubdtype(x.dtype, jnp.floating)]
  assert floats and {x.dtype for x in floats} == {np.dtype(np.float32)}
  assert all(np.isfinite(x).all() for x in floats)


def test_compute_dtype_is_validated():
  config = smoke.get_config()
  config.train.compute_dtype = 'float16'
  with pytest.raises(errors.UsageError) as raised:
    config_validation.validate(config)
  assert "train.compute_dtype='float16': must be 'float32' or 'bfloat16'" in str(raised.value)
  assert '\n' not in str(raised.value)
  with pytest.raises(ValueError, match="train.compute_dtype must be one of float32, bfloat16, got 'float16'"):
    steps.compute_dtype(config.train)
  config.train.compute_dtype = 'bfloat16'
  config_validation.validate(config)
  del config.train['compute_dtype']  # a config saved before the option: float32
  assert steps.compute_dtype(config.train) == jnp.float32


def test_switching_precision_on_resume_needs_the_flag():
  saved = checkpoint.config_dict(smoke.get_config())
  config = smoke.get_config()
  config.train.compute_dtype = 'bfloat16'
  assert checkpoint.check_config(saved, checkpoint.config_dict(config), allow_changes=True) == ['train.compute_dtype']
  with pytest.raises(checkpoint.ConfigChangeError, match=r"train.compute_dtype \('float32' -> 'bfloat16'\)"):
    checkpoint.check_config(saved, checkpoint.config_dict(config), allow_changes=False)


def lowered_precisions(config) -> collections.Counter:
  """Each conv and dot operand's precision in the lowered D (with R1) and G steps of MODEL at 8x8."""
  mesh = steps.make_mesh(jax.devices()[:1])
  pair = steps.build_stage_steps(MODEL, config, 8, 4, mesh)
  state, images, labels, scalar = steps.abstract_inputs(MODEL, mesh, 8, 4)
  text = (pair.d_step.lower(state, images, labels, scalar, scalar).as_text()
          + pair.g_step.lower(state, labels, scalar, scalar).as_text())
  ops = len(re.findall(r'stablehlo\.(?:convolution|dot_general)', text))
  found = collections.Counter(re.findall(r'precision (\w+)>', text))  # convolutions
  for pair_of_precisions in re.findall(r'precision = \[(\w+), (\w+)\]', text):  # dot_general
    found.update(pair_of_precisions)
  assert ops > 50 and sum(found.values()) == 2 * ops, (ops, found)
  return found


def test_matmul_precision_sets_every_conv_and_matmul_of_the_steps():
  """float32 (every config's default): HIGHEST whatever JAX's own setting; tensorfloat32: HIGH; 'default' leaves
  JAX's setting (here its 'bfloat16', DEFAULT) as it is. Configs saved before the option mean 'default'."""
  assert smoke.get_config().train.matmul_precision == 'float32'
  with jax.default_matmul_precision('bfloat16'):
    for name, precision in (('float32', 'HIGHEST'), ('tensorfloat32', 'HIGH'), ('default', 'DEFAULT')):
      assert set(lowered_precisions(run_config(matmul_precision=name))) == {precision}, name
  config = smoke.get_config()
  del config.train['matmul_precision']
  assert steps.matmul_precision(config.train) is None
  config.train.matmul_precision = 'highest'
  with pytest.raises(errors.UsageError, match="train.matmul_precision='highest': must be 'float32', 'tensorfloat32'"):
    config_validation.validate(config)


def test_a_run_saved_before_matmul_precision_resumes_as_default_or_with_the_flag():
  """A checkpoint without the key ran at JAX's setting ('default'): the same value resumes without a change, the
  new default float32 is a safe change that needs --allow_config_change."""
  saved = checkpoint.config_dict(smoke.get_config())
  del saved['train']['matmul_precision']
  config = smoke.get_config()
  config.train.matmul_precision = 'default'
  assert checkpoint.check_config(saved, checkpoint.config_dict(config), allow_changes=False) == []
  config.train.matmul_precision = 'float32'
  assert checkpoint.check_config(saved, checkpoint.config_dict(config), allow_changes=True) == [
      'train.matmul_precision']
  with pytest.raises(checkpoint.ConfigChangeError, match=r"train.matmul_precision \('unset' -> 'float32'\)"):
    checkpoint.check_config(saved, checkpoint.config_dict(config), allow_changes=False)


@pytest.mark.parametrize('kimg, resolutions', [
    (0.064, [8]),  # the 8x8 stage
    pytest.param(0.192, [8, 16], marks=pytest.mark.slow)])  # and 16x16, its fade-in and stable phase
def test_smoke_config_trains_stably_in_bf16(fashion_mnist_data_dir, tmp_path, kimg, resolutions):
  """The smoke config in bf16 to a stage's end: finite losses and penalties, no skipped step."""
  config = smoke.get_config()
  config.data.data_dir = fashion_mnist_data_dir
  config.train.update(compute_dtype='bfloat16', total_kimg=kimg, checkpoint_kimg=1.0)
  state = train.train(config, str(tmp_path))
  records = [json.loads(line) for line in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  assert sorted({r['resolution'] for r in records}) == resolutions
  assert int(jax.device_get(state.nimg)) == kimg * 1000
  assert_float32_and_finite(jax.device_get(state))
  for r in records:
    assert np.isfinite([r['loss_D'], r['loss_G'], r['r1_penalty']]).all()
    assert r['skipped_D_total'] == r['skipped_G_total'] == 0
  assert jax.device_get(state.skipped).tolist() == [0, 0]
