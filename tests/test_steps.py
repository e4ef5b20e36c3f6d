"""The per-stage step functions: data-parallel equivalence, one compile per stage (ahead of time, also in the
background), EMA, mixing, skipped steps."""

import re
import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stylegan_jax.configs import default
from stylegan_jax import networks, steps, train_state
from stylegan_jax.network_config import NetworkConfig

MODEL = NetworkConfig(resolution=16, num_channels=1, fmap_base=64, fmap_max=32, latent_size=16, dlatent_size=16,
                      mapping_layers=2, mapping_fmaps=16)


def run_config(**train):
  """The default config with the official R1 every step and Gs half-life without ramp-up, updated by `train`."""
  config = default.get_config()
  config.loss.penalty_interval = 1
  config.train.G_smoothing_rampup = 0.0
  config.train.update(**train)
  return config


def initial_state(model, mesh, seed=0):
  """A fresh state with noise strengths near 1 and a small random const.

  At the official init (const 1, noise strength 0) the 4x4 const layer is the same at every pixel, so instance
  norm cancels its bias exactly: a zero gradient that Adam's first step turns into +-lr from rounding noise.
  """
  state = train_state.create_train_state(model, seed)
  keys = iter(jax.random.split(jax.random.key(seed + 1), 64))

  def perturb(path, x):
    names = [getattr(p, 'key', None) for p in path]
    if 'Noise' in names:
      return 1.0 + 0.1 * jax.random.normal(next(keys), x.shape)
    return 0.1 * jax.random.normal(next(keys), x.shape) if names[-1] == 'const' else x

  g = {**state.G, 'params': jax.tree_util.tree_map_with_path(perturb, state.G['params'])}
  return steps.replicate(state.replace(G=g, Gs=jax.tree_util.tree_map(jnp.copy, g)), mesh)


def batches(model, n, global_batch, resolution=16, seed=0):
  rs = np.random.RandomState(seed)
  return [rs.randint(0, 256, (global_batch, resolution, resolution, model.num_channels)).astype(np.uint8)
          for _ in range(n)]


def train_steps(model, config, mesh, images, lods):
  """Trains the stage of the images' resolution one D and one G step per batch."""
  pair = steps.build_stage_steps(model, config, images[0].shape[1], images[0].shape[0], mesh)
  state = initial_state(model, mesh)
  labels = steps.shard_batch(np.zeros((images[0].shape[0], 0), np.float32), mesh)
  for batch, lod in zip(images, lods):
    state, _ = pair.d_step(state, steps.shard_batch(batch, mesh), labels, jnp.float32(lod), jnp.float32(0.002))
    state, _ = pair.g_step(state, labels, jnp.float32(lod), jnp.float32(0.002))
  return jax.device_get(state), pair


def test_one_and_eight_devices_train_identically():
  """Same global batch and seeds on 1 and 8 devices -> the same G, D, Gs, dlatent_avg and Adam state.

  Minibatch stddev and style mixing are off: the official code defines both per device (groups within, and one
  crossover per, device minibatch), so they legitimately depend on the device count.
  """
  assert jax.device_count() >= 8, 'tests run with XLA_FLAGS=--xla_force_host_platform_device_count=8 (conftest)'
  model = NetworkConfig(**{**MODEL.to_dict(), 'mbstd_group_size': 0})
  config = run_config(style_mixing_prob=0.0)
  images = batches(model, 3, 16, resolution=8)  # the 8x8 stage fading in (lod 1-2): the cheapest to compile
  lods = [1.9, 1.6, 1.3]
  one, _ = train_steps(model, config, steps.make_mesh(jax.devices()[:1]), images, lods)
  eight, _ = train_steps(model, config, steps.make_mesh(jax.devices()[:8]), images, lods)
  for a, b in zip(jax.tree_util.tree_leaves_with_path(one), jax.tree_util.tree_leaves_with_path(eight)):
    np.testing.assert_allclose(a[1], b[1], rtol=1e-4, atol=2e-5, err_msg=jax.tree_util.keystr(a[0]))
  assert int(one.nimg) == int(eight.nimg) == 48


def test_stage_compiles_once_while_lod_moves_and_ahead_of_time_as_at_its_first_call():
  """StepCache compiles a stage's steps ahead of time, once; they train bit-identically to the jitted steps,
  which compile once at their first call (lod moves and the optimizer resets keep the compiled shapes)."""
  mesh = steps.make_mesh(jax.devices()[:2])
  cache = steps.StepCache(MODEL, run_config(), mesh)
  compiled, jitted = cache(8, 8), steps.build_stage_steps(MODEL, run_config(), 8, 8, mesh)
  assert compiled.traces == {'d_step': 1, 'g_step': 1} and compiled.compile_sec > 0
  assert isinstance(compiled.d_step, jax.stages.Compiled) and compiled.d_step_plain is compiled.d_step
  reset = jax.jit(train_state.reset_optimizers, out_shardings=steps.replicated(mesh), donate_argnums=0)
  labels = steps.shard_batch(np.zeros((8, 0), np.float32), mesh)
  rs = np.random.RandomState(0)
  images = [steps.shard_batch(rs.randint(0, 256, (8, 8, 8, 1)).astype(np.uint8), mesh) for _ in range(5)]
  finals = []
  for pair in (compiled, jitted):
    state = initial_state(MODEL, mesh)
    for i, (batch, lod) in enumerate(zip(images, [1.0, 0.8, 0.5, 0.2, 0.0])):
      if i in (1, 4):  # the official Adam resets at the fade start and at the stable start
        state = reset(state)
      state, _ = pair.d_step(state, batch, labels, jnp.float32(lod), jnp.float32(0.001))
      state, _ = pair.g_step(state, labels, jnp.float32(lod), jnp.float32(0.001))
    finals.append(jax.device_get(state))
  jax.tree_util.tree_map(np.testing.assert_array_equal, *finals)
  assert compiled.traces == jitted.traces == {'d_step': 1, 'g_step': 1}
  assert jitted.d_step._cache_size() == 1 and jitted.g_step._cache_size() == 1
  assert cache(8, 8) is compiled and len(cache.stages) == 1


def test_prefetch_compiles_in_a_daemon_thread_and_raises_its_error_to_the_caller(monkeypatch):
  """A failed background compile is not lost: the stage's caller gets the very exception; no thread is left."""
  error = RuntimeError('out of compiler memory')
  threads = []

  def failing(*args, **kwargs):
    threads.append(threading.current_thread())
    raise error

  monkeypatch.setattr(steps, 'build_stage_steps', failing)
  cache = steps.StepCache(MODEL, run_config(), steps.make_mesh(jax.devices()[:2]))
  cache.prefetch(16, 8)
  cache.prefetch(16, 8)  # already on its way: no second thread
  with pytest.raises(RuntimeError) as raised:
    cache(16, 8)
  assert raised.value is error and cache.ahead == {} and cache.stages == {}
  assert len(threads) == 1 and threads[0].daemon and threads[0] is not threading.main_thread()
  threads[0].join(timeout=10)
  assert not threads[0].is_alive()


def test_close_waits_for_a_compile_in_flight(monkeypatch, caplog):
  """Python exiting while XLA compiles in a daemon thread aborts the process, so `close` (train's finally) waits
  for an unfinished compile ahead and drops its outcome."""
  release, finished = threading.Event(), []

  def slow(*args):
    release.wait()
    finished.append(True)
    raise RuntimeError('dropped by close')

  monkeypatch.setattr(steps, 'build_stage_steps', slow)
  cache = steps.StepCache(MODEL, run_config(), steps.make_mesh(jax.devices()[:2]))
  cache.prefetch(16, 8)
  threading.Timer(0.5, release.set).start()
  with caplog.at_level('INFO', logger='stylegan_jax.steps'):
    cache.close()
  assert finished == [True] and cache.ahead == {}
  assert 'waiting for the 16x16 steps to finish compiling ahead' in caplog.text


def test_gs_moving_average_and_copied_buffers():
  mesh = steps.make_mesh(jax.devices()[:1])
  pair = steps.build_stage_steps(MODEL, run_config(G_smoothing_kimg=10.0), 16, 32, mesh)
  state = jax.device_get(initial_state(MODEL, mesh))
  gs = jax.tree_util.tree_map(lambda x: x + 1.0, state.G)  # Gs != G, noise buffers and stats included
  state = state.replace(Gs=gs)
  labels = steps.shard_batch(np.zeros((32, 0), np.float32), mesh)
  new, _ = pair.d_step(steps.replicate(state, mesh), steps.shard_batch(batches(MODEL, 1, 32)[0], mesh), labels,
                       jnp.float32(0.0), jnp.float32(0.001))
  new = jax.device_get(new)
  beta = 0.5 ** (32 / 10000)
  assert beta == pytest.approx(0.997784, abs=1e-6)
  for g, s, out in zip(*(jax.tree_util.tree_leaves(t['params']) for t in (state.G, gs, new.Gs))):
    np.testing.assert_allclose(out, g + (s - g) * beta, rtol=1e-6, atol=1e-6)  # G unchanged by the D step
  jax.tree_util.tree_map(np.testing.assert_array_equal, new.Gs['noise'], state.G['noise'])
  np.testing.assert_array_equal(new.Gs['stats']['dlatent_avg'], new.G['stats']['dlatent_avg'])
  assert np.any(new.G['stats']['dlatent_avg'] != 0)  # updated with beta 0.995 by G's pass


def test_steps_use_the_configured_adam_betas():
  """train.adam_betas reaches the steps' Adam (one optimizer serves D and G): after the first D step mu = (1 - beta1) g
  and nu = (1 - beta2) g^2 of the same gradient, so (0.5, 0.999) against the official (0, 0.99) halves mu and
  divides nu by 10."""
  mesh = steps.make_mesh(jax.devices()[:1])
  images = batches(MODEL, 1, 8)
  official, _ = train_steps(MODEL, run_config(), mesh, images, [0.0])
  other, _ = train_steps(MODEL, run_config(adam_betas=(0.5, 0.999)), mesh, images, [0.0])
  mu, other_mu = (jax.tree_util.tree_leaves(state.D_opt.mu) for state in (official, other))
  nu, other_nu = (jax.tree_util.tree_leaves(state.D_opt.nu) for state in (official, other))
  assert any(np.any(a != 0) for a in mu)
  for a, b in zip(mu, other_mu):
    np.testing.assert_allclose(b, 0.5 * a, rtol=1e-5, atol=1e-12)
  for a, b in zip(nu, other_nu):
    np.testing.assert_allclose(b, 0.1 * a, rtol=1e-5, atol=1e-20)


@pytest.mark.parametrize('lod,cur_layers', [(0.0, 8), (0.5, 8), (1.0, 6), (2.7, 4)])
def test_style_mixing_crossover_bounds(lod, cur_layers):
  model = NetworkConfig(**{**MODEL.to_dict(), 'resolution': 32})
  g = networks.init_generator(model, jax.random.key(0))
  marker = jnp.full((1, model.num_layers, model.dlatent_size), 1e4)
  mix = jax.jit(lambda key: networks.Generator(model).apply(
      g, marker, None, lod, 0.9, method=networks.Generator.random_style_mix, rngs={'mixing': key}))
  crossovers = [int(np.sum(np.all(np.asarray(mix(jax.random.key(i)))[0] == 1e4, axis=-1))) for i in range(300)]
  assert set(crossovers) == set(range(1, cur_layers + 1))
  # P(no mixing) = 0.1 + 0.9 * 0 (randint excludes cur_layers): about 30 of 300.
  assert 12 <= crossovers.count(cur_layers) <= 55


def test_non_finite_steps_are_skipped_and_counted():
  mesh = steps.make_mesh(jax.devices()[:2])
  pair = steps.build_stage_steps(MODEL, run_config(), 16, 8, mesh)
  state = jax.device_get(initial_state(MODEL, mesh))
  d = jax.tree_util.tree_map(np.array, state.D)
  d['params']['4x4']['Dense1']['bias'][:] = np.nan
  state = state.replace(D=d)
  labels = steps.shard_batch(np.zeros((8, 0), np.float32), mesh)
  new, metrics = pair.d_step(steps.replicate(state, mesh), steps.shard_batch(batches(MODEL, 1, 8)[0], mesh), labels,
                             jnp.float32(0.0), jnp.float32(0.001))
  new = jax.device_get(new)
  assert float(metrics['skipped_D']) == 1.0 and new.skipped.tolist() == [1, 0]
  jax.tree_util.tree_map(lambda a, b: np.testing.assert_array_equal(a, b), new.D, state.D)
  jax.tree_util.tree_map(lambda a, b: np.testing.assert_array_equal(a, b), new.D_opt, state.D_opt)
  new, metrics = pair.g_step(steps.replicate(new, mesh), labels, jnp.float32(0.0), jnp.float32(0.001))
  new = jax.device_get(new)
  assert new.skipped.tolist() == [1, 1]
  jax.tree_util.tree_map(lambda a, b: np.testing.assert_array_equal(a, b), new.G['params'], state.G['params'])


def test_indivisible_minibatch_is_an_error():
  with pytest.raises(ValueError, match='minibatch 12 at 16x16 does not divide across 8 devices'):
    steps.build_stage_steps(MODEL, run_config(), 16, 12, steps.make_mesh(jax.devices()[:8]))


def test_process_reals_fade():
  images = np.arange(16, dtype=np.uint8).reshape(1, 4, 4, 1) * 16
  x = np.asarray(images, np.float32) * 2 / 255 - 1
  np.testing.assert_allclose(steps.process_reals(images, 3.0), x, rtol=1e-6)
  lower = x.reshape(1, 2, 2, 2, 2, 1).mean(axis=(2, 4)).repeat(2, 1).repeat(2, 2)
  np.testing.assert_allclose(steps.process_reals(images, 2.25), x + (lower - x) * 0.25, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('nimg, rampup, expected_half_life', [
    (0, 0.0, 10000.0), (64, 0.0, 10000.0),   # official: the configured half-life from the start
    (1000, 0.05, 50.0), (100000, 0.05, 5000.0), (400000, 0.05, 10000.0),  # min(half-life, rampup * nimg)
    (0, 0.05, 1e-8)])                           # no images yet: Gs = G
def test_gs_decay_rampup(nimg, rampup, expected_half_life):
  train = run_config(G_smoothing_kimg=10.0, G_smoothing_rampup=rampup).train
  assert float(steps.gs_decay(train, jnp.int32(nimg), 32)) == pytest.approx(0.5 ** (32 / expected_half_life),
                                                                             rel=1e-6)


def test_gs_rampup_in_the_d_step():
  """With the ramp-up, a D step at nimg 640 and rampup 0.05 averages with half-life 32 images: beta = 0.5."""
  mesh = steps.make_mesh(jax.devices()[:1])
  pair = steps.build_stage_steps(MODEL, run_config(G_smoothing_kimg=10.0, G_smoothing_rampup=0.05), 16, 32, mesh)
  state = jax.device_get(initial_state(MODEL, mesh))
  gs = jax.tree_util.tree_map(lambda x: x + 1.0, state.G)
  state = state.replace(Gs=gs, nimg=jnp.int32(640))
  labels = steps.shard_batch(np.zeros((32, 0), np.float32), mesh)
  new, _ = pair.d_step(steps.replicate(state, mesh), steps.shard_batch(batches(MODEL, 1, 32)[0], mesh), labels,
                       jnp.float32(0.0), jnp.float32(0.001))
  for g, s, out in zip(*(jax.tree_util.tree_leaves(t['params']) for t in (state.G, gs, jax.device_get(new).Gs))):
    np.testing.assert_allclose(out, g + (s - g) * 0.5, rtol=1e-6, atol=1e-6)


def test_fused_downscale_in_every_step_trains_the_same():
  """train.D_fused_downscale='always': the G step and both D steps (with and without R1) run D's fused stride-2 conv
  ('auto' is 'always' on CPU), the R1 step with phase_grad's input gradient on CPU (no lhs-dilated conv). Along a
  run of 'never', each step of 'always' from the same state gives the same losses, scores and gradient norms up to
  float rounding; G's within 1%: from one state the same G step gave 0.292819 compiled at XLA's optimisation level 2
  with either D form and 0.292575 at level 1 with the fused one, so at rounding level it is not a function of the
  step alone. Whole runs are not compared: Adam turns such differences into full-size updates (after three step
  pairs, weights of magnitude 4 differed by 2.4e-3)."""
  mesh = steps.make_mesh(jax.devices()[:1])
  model = NetworkConfig(**{**MODEL.to_dict(), 'mbstd_group_size': 0})
  images = batches(model, 3, 8)
  state = initial_state(model, mesh)
  labels = steps.shard_batch(np.zeros((8, 0), np.float32), mesh)
  args = (labels, jnp.float32(0.5), jnp.float32(0.002))

  def build(mode):
    config = run_config(style_mixing_prob=0.0, D_fused_downscale=mode)
    config.loss.penalty_interval = 2
    pair = steps.build_stage_steps(model, config, 16, 8, mesh)
    reals = steps.shard_batch(images[0], mesh)
    hlo = {name: step.lower(state, *((reals,) if name != 'g_step' else ()), *args).as_text()
           for name, step in (('d_step', pair.d_step), ('d_step_plain', pair.d_step_plain), ('g_step', pair.g_step))}
    return pair, {name: 'stride = [2, 2]' in text for name, text in hlo.items()}, hlo

  fused, fused_strided, fused_hlo = build('always')
  separate, separate_strided, _ = build('never')
  assert fused_strided == {'d_step': True, 'd_step_plain': True, 'g_step': True}
  assert ('lhs_dilate = [2, 2]' in fused_hlo['d_step']) == (jax.default_backend() != 'cpu')
  assert 'lhs_dilate = [2, 2]' in fused_hlo['d_step_plain']
  assert separate_strided == {'d_step': False, 'd_step_plain': False, 'g_step': False}
  assert steps.fused_downscale(run_config(D_fused_downscale='auto').train, 'cpu')
  assert not steps.fused_downscale(run_config(D_fused_downscale='auto').train, 'gpu')
  copy = lambda tree: jax.tree_util.tree_map(jnp.copy, tree)  # the steps donate their state
  for d_count, batch in enumerate(images):
    reals = steps.shard_batch(batch, mesh)
    for step_of, inputs in ((lambda pair: pair.d_step_for(d_count), (reals, *args)), (lambda pair: pair.g_step, args)):
      _, fused_metrics = step_of(fused)(copy(state), *inputs)
      state, metrics = step_of(separate)(state, *inputs)
      assert metrics.keys() == fused_metrics.keys()
      for key in metrics:
        np.testing.assert_allclose(fused_metrics[key], metrics[key], rtol=1e-2 if key == 'grad_norm_G' else 1e-5,
                                   atol=1e-7, err_msg=key)


def test_forms_platform_builds_another_platforms_program():
  """forms_platform='gpu' on a CPU mesh lowers the steps a GPU runs: D's separate conv + box downsampling (no
  stride-2 conv with train.D_fused_downscale='auto') and G's official upsampling conv (a 3x3 conv after nearest
  upsampling, no 2x2 phase conv); 'cpu' the CPU's forms; None the mesh's platform's. Shapes of G's 16x16 stage:
  the phase conv is the only 2x2 kernel in the G step."""
  mesh = steps.make_mesh(jax.devices()[:1])
  state = initial_state(MODEL, mesh)
  labels = jax.ShapeDtypeStruct((8, 0), jnp.float32)
  reals = jax.ShapeDtypeStruct((8, 16, 16, MODEL.num_channels), jnp.uint8)
  scalar = jnp.float32(0.5)

  def lowered(forms_platform):
    pair = steps.build_stage_steps(MODEL, run_config(D_fused_downscale='auto'), 16, 8, mesh,
                                   forms_platform=forms_platform)
    return pair.d_step.lower(state, reals, labels, scalar, scalar).as_text(), \
        pair.g_step.lower(state, labels, scalar, scalar).as_text()

  def forms(texts):
    d_step, g_step = texts
    return dict(fused_down='stride = [2, 2]' in d_step, phase_up=bool(re.search(r'tensor<2x2x\d+x\d+xf32>', g_step)))

  assert forms(lowered('gpu')) == dict(fused_down=False, phase_up=False)
  assert forms(lowered('cpu')) == dict(fused_down=True, phase_up=True)
  assert lowered(None) == lowered(jax.default_backend())


@pytest.mark.parametrize('loss_type', ['logistic_r1', pytest.param('wgan_gp', marks=pytest.mark.slow)])  # CI budget
def test_lazy_penalty_every_kth_step_k_times_as_strong(loss_type):
  """penalty_interval=3: D steps 0 and 3 after an optimizer reset use the penalty x3, steps 1 and 2 none; the run
  equals one whose penalty weight is switched by hand (x3, x0, x0, x3), and differs from the plain run."""
  mesh = steps.make_mesh(jax.devices()[:1])
  model = NetworkConfig(**{**MODEL.to_dict(), 'mbstd_group_size': 0})
  images = [steps.shard_batch(batch, mesh) for batch in batches(model, 4, 8)]
  labels = steps.shard_batch(np.zeros((8, 0), np.float32), mesh)

  def stage_steps(weight=1.0, interval=1):
    config = run_config(style_mixing_prob=0.0)
    config.loss.update(type=loss_type, r1_gamma=5.0 * weight, wgan_lambda=10.0 * weight, penalty_interval=interval)
    return steps.build_stage_steps(model, config, 16, 8, mesh)

  def run(pairs):
    state, penalties = initial_state(model, mesh), []
    for d_count, (pair, batch) in enumerate(zip(pairs, images)):
      state, metrics = pair.d_step_for(d_count)(state, batch, labels, jnp.float32(0.3), jnp.float32(0.002))
      penalties.append(float(metrics['r1_penalty' if loss_type == 'logistic_r1' else 'gradient_penalty']))
    return jax.device_get(state.D['params']), penalties

  lazy_steps, x3, x0, plain = stage_steps(interval=3), stage_steps(3.0), stage_steps(0.0), stage_steps()
  lazy, lazy_penalties = run([lazy_steps] * 4)
  assert lazy_steps.traces == {'d_step': 1, 'd_step_plain': 1, 'g_step': 0}
  by_hand, _ = run([x3, x0, x0, x3])
  every_step, _ = run([plain] * 4)
  jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), lazy, by_hand)
  assert [p > 0 for p in lazy_penalties] == [True, False, False, True]
  assert max(jax.tree_util.tree_leaves(jax.tree_util.tree_map(lambda a, b: np.abs(a - b).max(), lazy,
                                                               every_step))) > 1e-5
