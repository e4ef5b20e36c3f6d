"""Per-stage training steps: a D step (with its penalty and the Gs update) and a G step.

Each is `jit(shard_map(...))` over a 1-D device mesh with axis 'batch': the state is replicated, the minibatch
is split across devices, and gradients are averaged with `lax.pmean`. One set is built per stage resolution
(static shapes), compiled ahead of time for the inputs training passes (`compile_stage_steps`, all of a stage's
steps at once; StepCache can do it in a background thread while the previous stage trains) and cached; `lod` and
the learning rates are traced arguments, so a stage never recompiles while its fade-in progresses.

Randomness: z, the per-layer noise and the WGAN-GP mixing factors are drawn per sample from keys indexed by the
sample's position in the global minibatch, so they do not depend on the device count. Style mixing (one draw per
device minibatch) and minibatch stddev (groups within a device's minibatch) are per device, as in the official
multi-GPU code; with gradient accumulation (accumulation.py) per micro-batch.

Precision: `train.compute_dtype` ('float32' or 'bfloat16') is the compute dtype of G's and D's convolutions and
dense matmuls (networks.py); params, Adam states, Gs, losses and penalties stay float32. `train.matmul_precision`
is how the steps' float32 convolutions and matmuls are computed: 'float32' (every config's default: true float32,
the official code's arithmetic) or 'tensorfloat32' (TF32 tensor cores on NVIDIA GPUs, a deviation), or 'default'
(JAX's setting as it is: by default TF32 on recent NVIDIA GPUs and one bfloat16 pass on TPUs). CPUs compute float32
whatever the setting.

D's downsampling: with `train.D_fused_downscale` ('auto': on CPU) every step runs D with each conv + box
downsampling as one stride-2 4x4 conv (networks.Discriminator's fused_downscale: the same function, 2.25x fewer
FLOPs). In the steps with a penalty, on CPU, the fused convs' input gradients are phase convs
(Discriminator.phase_grad), which keeps the penalty's second derivative fast there: with XLA's own rule it was
over 2x slower than the separate form's (docs/performance.md).
"""

import dataclasses
import functools
import logging
import threading
import time
from concurrent import futures
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from stylegan_jax import accumulation, layers, losses, networks, stage_params, xla_options
from stylegan_jax.network_config import NetworkConfig
from stylegan_jax.train_state import OFFICIAL_ADAM_BETAS, TrainState, adam, create_train_state

logger = logging.getLogger(__name__)
AXIS = 'batch'
_Z, _GP_MIX, _NOISE = 0, 1, 2  # fold_in tags of the per-sample streams (noise layer i uses _NOISE + i)
COMPUTE_DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}  # train.compute_dtype -> the networks' dtype
FUSED_DOWNSCALE = ('auto', 'always', 'never')  # train.D_fused_downscale
MATMUL_PRECISIONS = ('float32', 'tensorfloat32', 'default')  # train.matmul_precision


def make_mesh(devices=None) -> Mesh:
  """A 1-D data-parallel mesh over all (global) devices."""
  return Mesh(np.asarray(devices if devices is not None else jax.devices()), (AXIS,))


def process_reals(images, lod):
  """uint8 [N, H, W, C] at the stage resolution -> float [-1, 1], faded towards the next lower level.

  The fade is the official FadeLOD: lerp(x, nearest_up(box_down(x)), lod - floor(lod)). Mirroring is done by
  the input pipeline.
  """
  x = images.astype(jnp.float32) * (2.0 / 255.0) - 1.0
  lower = layers.upscale2d(layers.downscale2d(x))
  return layers.lerp(x, lower, lod - jnp.floor(lod))


def _sample_keys(step_key, local_batch: int):
  """Keys for this device's samples: rows [i*n, (i+1)*n) of split(step_key, global batch)."""
  global_batch = local_batch * lax.axis_size(AXIS)
  keys = jax.random.split(step_key, global_batch)
  return lax.dynamic_slice_in_dim(keys, lax.axis_index(AXIS) * local_batch, local_batch)


def _per_sample(keys, tag: int, shape):
  return jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, tag), shape))(keys)


def _select(pred, new, old):
  return jax.tree_util.tree_map(lambda n, o: jnp.where(pred, n, o), new, old)


def _adam_update(optimizer, params, opt_state, grads, lr, mask):
  """One Adam step of the `mask`ed leaves of `params` (stage_params: `grads` is the list of their gradients),
  or no change at all when any gradient is not finite. Returns (params, opt, finite)."""
  used = lambda tree: stage_params.take(tree, mask)
  updates, new_opt = optimizer.update(grads, opt_state._replace(mu=used(opt_state.mu), nu=used(opt_state.nu)))
  finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(g)) for g in grads]))
  new_params = _select(finite, [p - lr * u for p, u in zip(used(params), updates)], used(params))
  new_opt = _select(finite, new_opt, opt_state._replace(mu=used(opt_state.mu), nu=used(opt_state.nu)))
  return (stage_params.put(params, mask, new_params),
          opt_state._replace(count=new_opt.count, mu=stage_params.put(opt_state.mu, mask, new_opt.mu),
                             nu=stage_params.put(opt_state.nu, mask, new_opt.nu)), finite)


def compute_dtype(train):
  """The networks' compute dtype for train.compute_dtype (absent in configs older than the option: float32)."""
  name = train.get('compute_dtype', 'float32')
  if name not in COMPUTE_DTYPES:
    raise ValueError(f"train.compute_dtype must be one of {', '.join(COMPUTE_DTYPES)}, got {name!r}")
  return COMPUTE_DTYPES[name]


def matmul_precision(train) -> Optional[str]:
  """jax_default_matmul_precision for the steps from train.matmul_precision (absent in configs older than the
  option: 'default'); None for 'default' (JAX's setting as it is)."""
  name = train.get('matmul_precision', 'default')
  if name not in MATMUL_PRECISIONS:
    raise ValueError(f"train.matmul_precision must be one of {', '.join(MATMUL_PRECISIONS)}, got {name!r}")
  return None if name == 'default' else name


def _at_precision(body: Callable, precision: Optional[str]) -> Callable:
  """`body`, traced with jax_default_matmul_precision `precision` (None: as it is)."""
  if precision is None:
    return body

  @functools.wraps(body)
  def traced(*args, **kwargs):
    with jax.default_matmul_precision(precision):
      return body(*args, **kwargs)
  return traced


def fused_downscale(train, platform: str) -> bool:
  """Whether train.D_fused_downscale ('auto': on CPU, 'always', 'never'; absent in older configs: 'never') fuses
  D's downsampling (in every step) of steps run with `platform`'s forms ('cpu', 'gpu', 'tpu')."""
  name = train.get('D_fused_downscale', 'never')
  if name not in FUSED_DOWNSCALE:
    raise ValueError(f"train.D_fused_downscale must be one of {', '.join(FUSED_DOWNSCALE)}, got {name!r}")
  return name == 'always' or (name == 'auto' and platform == 'cpu')


def gs_decay(train, nimg, global_batch: int):
  """The Gs moving-average factor of one step: 0.5 ** (global_batch / half-life in images).

  The half-life is train.G_smoothing_kimg (official); with train.G_smoothing_rampup = r > 0 (a deviation, as
  StyleGAN2-ADA's ema_rampup) it is at most r * nimg, so early Gs follows G closely.
  """
  half_life = jnp.float32(train.G_smoothing_kimg * 1000.0)
  rampup = train.get('G_smoothing_rampup', 0.0)
  if rampup:
    half_life = jnp.minimum(half_life, jnp.asarray(nimg, jnp.float32) * rampup)
  return 0.5 ** (global_batch / jnp.maximum(half_life, 1e-8))


@dataclasses.dataclass
class StageSteps:
  """The steps of one stage: jitted (build_stage_steps; compiled at their first call) or compiled ahead of time
  (compile_stage_steps). `traces` counts how often each was traced (1 = compiled once)."""
  resolution: int
  global_batch: int
  d_step: Callable  # (state, images uint8 [B,H,W,C], labels [B,L], lod, lr) -> (state, metrics)
  g_step: Callable  # (state, labels [B,L], lod, lr) -> (state, metrics)
  traces: dict
  penalty_interval: int = 1
  d_step_plain: Optional[Callable] = None  # lazy regularisation: the D step without the penalty
  accumulation_steps: int = 1  # micro-batches per device and step
  compile_sec: float = 0.0  # seconds StepCache took to compile them (the accumulation choice included)

  def d_step_for(self, d_count: int) -> Callable:
    """The D step to run after `d_count` D steps since the last optimizer reset: with lazy regularisation
    (loss.penalty_interval = k > 1) `d_step` (penalty x k) when d_count % k == 0, else `d_step_plain`."""
    if self.penalty_interval > 1 and d_count % self.penalty_interval:
      return self.d_step_plain
    return self.d_step


def build_stage_steps(model: NetworkConfig, config, resolution: int, global_batch: int, mesh: Mesh,
                      accumulation_steps: int = 1, forms_platform: Optional[str] = None) -> StageSteps:
  """The D and G steps for one stage. `config` is the run config (uses .loss and .train); each device's
  minibatch is trained as `accumulation_steps` micro-batches (accumulation.py). Jitted with the mesh's
  `xla_options.step_options`.

  The networks compute their convolutions in the forms measured fastest on `forms_platform` (None: the mesh's
  platform): on 'cpu' G's phase upsampling, D's fused downsampling (train.D_fused_downscale 'auto') with phase
  input gradients in the penalty's step, and Winograd 3x3 convs where they pay (networks.py); elsewhere the
  official forms. The same functions either way; a CPU mesh with forms_platform='gpu' builds the program a GPU
  would run (to count its FLOPs or estimate its memory here).
  """
  train, loss_config = config.train, config.loss
  dtype, precision = compute_dtype(train), matmul_precision(train)
  forms_platform = forms_platform or mesh.devices.flat[0].platform
  cpu_forms = forms_platform == 'cpu'
  G = networks.Generator(model, dtype, phase_upscale=cpu_forms, winograd=cpu_forms)
  D = D_fused = D_penalty = networks.Discriminator(model, dtype, phase_grad=cpu_forms, winograd=cpu_forms)
  if fused_downscale(train, forms_platform):
    # First derivatives: XLA's rule for the strided conv (as fast, 5% faster D steps on two CPU devices); a
    # penalty's second derivative: phase_grad's on CPU, where XLA's rule made the D step with R1 1.9x slower.
    D_fused = networks.Discriminator(model, dtype, fused_downscale=True, phase_grad=False, winograd=cpu_forms)
    D_penalty = networks.Discriminator(model, dtype, fused_downscale=True, phase_grad=cpu_forms,
                                       winograd=cpu_forms)
  num_devices = mesh.devices.size
  if global_batch % (num_devices * accumulation_steps):
    raise ValueError(f'minibatch {global_batch} at {resolution}x{resolution} does not divide across '
                     f'{num_devices} devices' + (f' x {accumulation_steps} micro-batches' if accumulation_steps > 1
                                                 else ''))
  optimizer = adam(train.adam_epsilon_form, tuple(train.get('adam_betas', OFFICIAL_ADAM_BETAS)))
  penalty_interval = int(loss_config.get('penalty_interval', 1))
  if penalty_interval < 1:
    raise ValueError(f'loss.penalty_interval must be a positive integer, got {penalty_interval}')
  mixing_prob = train.style_mixing_prob or None
  stage_layers = 2 * int(np.log2(resolution)) - 2
  traces = {'d_step': 0, 'g_step': 0}
  if penalty_interval > 1:
    traces['d_step_plain'] = 0

  def labels_or_none(labels):
    return labels if model.label_size else None

  # The parameters this stage reads (stage_params): only those are differentiated, all-reduced and updated.
  local_batch = global_batch // num_devices // accumulation_steps
  abstract = jax.eval_shape(lambda: create_train_state(model, 0))
  abstract_labels = jax.ShapeDtypeStruct((local_batch, model.label_size), jnp.float32)
  noise_shapes = [(local_batch,) + (2 ** (i // 2 + 2),) * 2 + (1,) for i in range(stage_layers)]
  g_mask = stage_params.used_leaves(
      lambda params, g_vars, z, labels, lod, key: G.apply(
          {**g_vars, 'params': params}, z, labels_or_none(labels), lod, resolution=resolution,
          noise=[jnp.zeros(shape) for shape in noise_shapes], dlatent_avg_beta=train.dlatent_avg_beta,
          style_mixing_prob=mixing_prob, mutable=['stats'], rngs={'mixing': key}),
      abstract.G['params'], abstract.G, jax.ShapeDtypeStruct((local_batch, model.latent_size), jnp.float32),
      abstract_labels,
      jnp.float32(0.5), jax.random.key(0))
  d_mask = stage_params.used_leaves(
      lambda params, images, labels, lod: D.apply({'params': params}, images, labels_or_none(labels), lod),
      abstract.D['params'], jax.ShapeDtypeStruct((local_batch, resolution, resolution, model.num_channels),
                                                 jnp.float32), abstract_labels, jnp.float32(0.5))

  def generate(g_vars, keys, labels, lod, mixing_key):
    """Fakes at the stage resolution and G's updated stats (dlatent_avg)."""
    z = _per_sample(keys, _Z, (model.latent_size,))
    noise = [_per_sample(keys, _NOISE + i, (2 ** (i // 2 + 2),) * 2 + (1,)) for i in range(stage_layers)]
    fakes, updates = G.apply(g_vars, z, labels_or_none(labels), lod, resolution=resolution, noise=noise,
                             dlatent_avg_beta=train.dlatent_avg_beta, style_mixing_prob=mixing_prob,
                             mutable=['stats'], rngs={'mixing': mixing_key})
    return fakes, lax.pmean(updates['stats'], AXIS)

  def step_keys(state, local_batch):
    """(next rng, this device's per-sample keys, style-mixing keys of its micro-batches: those of the virtual
    devices axis_index * accumulation_steps + i)."""
    rng, step_key = jax.random.split(state.rng)
    virtual = lax.axis_index(AXIS) * accumulation_steps + jnp.arange(accumulation_steps)
    mixing_keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.fold_in(step_key, 1), i))(virtual)
    return rng, _sample_keys(step_key, local_batch), mixing_keys

  def d_body(state: TrainState, images, labels, lod, lr, *, penalty_weight: float, name: str):
    traces[name] += 1
    rng, keys, mixing_keys = step_keys(state, images.shape[0])

    def micro_batch(batch, mixing_key):
      keys, images, labels = batch
      fakes, g_stats = generate(state.G, keys, labels, lod, mixing_key)
      reals = process_reals(images, lod)
      mix_factors = jax.vmap(lambda k: jax.random.uniform(jax.random.fold_in(k, _GP_MIX)))(keys)

      def loss_fn(d_used):
        d_params = stage_params.put(state.D['params'], d_mask, d_used)
        d_net = D_penalty if penalty_weight else D_fused
        d_fn = lambda x: d_net.apply({'params': d_params}, x, labels_or_none(labels), lod)
        loss, aux = losses.discriminator_loss(loss_config, d_fn, reals, lax.stop_gradient(fakes), lod,
                                              mix_factors, penalty_weight=penalty_weight)
        return jnp.mean(loss), aux

      (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(stage_params.take(state.D['params'], d_mask))
      return (loss, aux, g_stats), grads

    (loss, aux, g_stats), grads = accumulation.accumulate(micro_batch, accumulation_steps, (keys, images, labels),
                                                          mixing_keys)
    grads = lax.pmean(grads, AXIS)
    d_params, d_opt, finite = _adam_update(optimizer, state.D['params'], state.D_opt, grads, lr, d_mask)
    g_vars = {**state.G, 'stats': g_stats}
    gs_beta = gs_decay(train, state.nimg, global_batch)
    gs_params = jax.tree_util.tree_map(lambda g, s: layers.lerp(g, s, gs_beta), g_vars['params'],
                                       state.Gs['params'])
    new_state = state.replace(D={'params': d_params}, D_opt=d_opt, G=g_vars, rng=rng,
                              Gs={**g_vars, 'params': gs_params}, nimg=state.nimg + global_batch,
                              skipped=state.skipped.at[0].add(1 - finite.astype(jnp.int32)))
    metrics = {'loss_D': loss, 'grad_norm_D': optax.tree.norm(grads), 'D_real': jnp.mean(aux['real_scores']),
               'D_fake': jnp.mean(aux['fake_scores']), 'skipped_D': 1.0 - finite.astype(jnp.float32)}
    for name in ('r1_penalty', 'gradient_penalty'):
      if name in aux:
        metrics[name] = jnp.mean(aux[name])
    return new_state, lax.pmean(metrics, AXIS)

  def g_body(state: TrainState, labels, lod, lr):
    traces['g_step'] += 1
    rng, keys, mixing_keys = step_keys(state, labels.shape[0])

    def micro_batch(batch, mixing_key):
      keys, labels = batch

      def loss_fn(g_used):
        g_params = stage_params.put(state.G['params'], g_mask, g_used)
        fakes, g_stats = generate({**state.G, 'params': g_params}, keys, labels, lod, mixing_key)
        scores = D_fused.apply(state.D, fakes, labels_or_none(labels), lod)
        return jnp.mean(losses.generator_loss(loss_config, scores)), g_stats

      return jax.value_and_grad(loss_fn, has_aux=True)(stage_params.take(state.G['params'], g_mask))

    (loss, g_stats), grads = accumulation.accumulate(micro_batch, accumulation_steps, (keys, labels), mixing_keys)
    grads = lax.pmean(grads, AXIS)
    g_params, g_opt, finite = _adam_update(optimizer, state.G['params'], state.G_opt, grads, lr, g_mask)
    new_state = state.replace(G={**state.G, 'params': g_params, 'stats': g_stats}, G_opt=g_opt, rng=rng,
                              skipped=state.skipped.at[1].add(1 - finite.astype(jnp.int32)))
    metrics = {'loss_G': loss, 'grad_norm_G': optax.tree.norm(grads),
               'skipped_G': 1.0 - finite.astype(jnp.float32)}
    return new_state, lax.pmean(metrics, AXIS)

  # check_vma=False gives pmap semantics: gradients of the replicated params stay per device until the
  # explicit pmean (with vma checking, shard_map would psum them implicitly).
  batch = P(AXIS)
  options = xla_options.step_options(mesh)

  def compile_d_step(penalty_weight: float, name: str):
    body = _at_precision(functools.partial(d_body, penalty_weight=penalty_weight, name=name), precision)
    return jax.jit(jax.shard_map(body, mesh=mesh, in_specs=(P(), batch, batch, P(), P()), out_specs=(P(), P()),
                                 check_vma=False), donate_argnums=0, compiler_options=options)

  d_step = compile_d_step(float(penalty_interval), 'd_step')
  d_step_plain = compile_d_step(0.0, 'd_step_plain') if penalty_interval > 1 else d_step
  g_step = jax.jit(jax.shard_map(_at_precision(g_body, precision), mesh=mesh, in_specs=(P(), batch, P(), P()), out_specs=(P(), P()),
                                 check_vma=False), donate_argnums=0, compiler_options=options)
  return StageSteps(resolution, global_batch, d_step, g_step, traces, penalty_interval, d_step_plain,
                    accumulation_steps)


def abstract_inputs(model: NetworkConfig, mesh: Mesh, resolution: int, global_batch: int):
  """(state, images, labels, scalar): jax.ShapeDtypeStructs of the steps' arguments as training passes them (a
  replicated state, the minibatch split along 'batch'; the scalar is lod or a learning rate)."""
  state = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated(mesh)),
                                 jax.eval_shape(lambda: create_train_state(model, 0)))
  batch = NamedSharding(mesh, P(AXIS))
  images = jax.ShapeDtypeStruct((global_batch, resolution, resolution, model.num_channels), jnp.uint8,
                                sharding=batch)
  labels = jax.ShapeDtypeStruct((global_batch, model.label_size), jnp.float32, sharding=batch)
  return state, images, labels, jax.ShapeDtypeStruct((), jnp.float32)


def compile_stage_steps(stage: StageSteps, model: NetworkConfig, mesh: Mesh) -> StageSteps:
  """`stage` with each of its steps (d_step, with lazy regularisation d_step_plain, g_step) compiled now, ahead of
  time, for `abstract_inputs`: the programs their first calls would compile, as jax.stages.Compiled executables
  (which refuse inputs of other shapes, dtypes or shardings instead of recompiling). Traces and compiles only: no
  device computation, no collectives."""
  state, images, labels, scalar = abstract_inputs(model, mesh, stage.resolution, stage.global_batch)
  d_step = stage.d_step.lower(state, images, labels, scalar, scalar).compile()
  d_step_plain = stage.d_step_plain.lower(state, images, labels, scalar, scalar).compile() \
      if stage.penalty_interval > 1 else d_step
  g_step = stage.g_step.lower(state, labels, scalar, scalar).compile()
  return dataclasses.replace(stage, d_step=d_step, d_step_plain=d_step_plain, g_step=g_step)


class StepCache:
  """Each stage's steps, compiled ahead of time (compile_stage_steps) when the stage is first asked for, or in a
  background thread started by `prefetch` (while the previous stage trains), and kept.

  Each device's minibatch is trained as `accumulation_steps` micro-batches; with `memory_budget` (bytes per
  device) instead as the fewest whose compiled steps fit, chosen per stage (accumulation.choose_steps: one
  compile per candidate).
  """

  def __init__(self, model: NetworkConfig, config, mesh: Mesh, accumulation_steps: int = 1,
               memory_budget: int | None = None):
    self.model, self.config, self.mesh = model, config, mesh
    self.accumulation_steps, self.memory_budget = accumulation_steps, memory_budget
    self.stages: dict[int, StageSteps] = {}
    self.ahead: dict[tuple[int, int], futures.Future] = {}  # (resolution, global batch) -> prefetched steps

  def __call__(self, resolution: int, global_batch: int) -> StageSteps:
    """The stage's compiled steps: kept ones, those `prefetch` compiles (waiting for them; an exception raised
    there is raised here), or compiled now."""
    steps = self.stages.get(resolution)
    if steps is None or steps.global_batch != global_batch:
      ahead = self.ahead.pop((resolution, global_batch), None)
      steps = self.stages[resolution] = ahead.result() if ahead else self._compile(resolution, global_batch)
    return steps

  def prefetch(self, resolution: int, global_batch: int) -> None:
    """Starts compiling the stage's steps in a daemon thread, unless they are kept or on their way; `__call__`
    collects them, `close` waits for them."""
    steps = self.stages.get(resolution)
    if (resolution, global_batch) in self.ahead or steps is not None and steps.global_batch == global_batch:
      return
    future = self.ahead[resolution, global_batch] = futures.Future()

    def run():
      try:
        future.set_result(self._compile(resolution, global_batch))
      except BaseException as e:  # noqa: BLE001 (re-raised by __call__ in the caller's thread)
        future.set_exception(e)

    threading.Thread(target=run, name=f'compile-{resolution}x{resolution}', daemon=True).start()

  def close(self) -> None:
    """Waits for the compiles `prefetch` started (dropping their steps and errors): Python exiting while XLA still
    compiles in a daemon thread aborts the process."""
    for (resolution, _), ahead in self.ahead.items():
      if not ahead.done():
        logger.info('waiting for the %dx%d steps to finish compiling ahead', resolution, resolution)
      futures.wait([ahead])
    self.ahead.clear()

  def _compile(self, resolution: int, global_batch: int) -> StageSteps:
    start = time.perf_counter()
    k = self.accumulation_steps if self.memory_budget is None else accumulation.choose_steps(
        global_batch // self.mesh.devices.size, lambda k: self.step_bytes(resolution, global_batch, k),
        self.memory_budget, f'{resolution}x{resolution}')
    steps = compile_stage_steps(build_stage_steps(self.model, self.config, resolution, global_batch, self.mesh, k),
                                self.model, self.mesh)
    return dataclasses.replace(steps, compile_sec=time.perf_counter() - start)

  def step_bytes(self, resolution: int, global_batch: int, accumulation_steps: int) -> int:
    """Peak bytes per device of the stage's D or G step (the larger), compiled for abstract inputs."""
    pair = build_stage_steps(self.model, self.config, resolution, global_batch, self.mesh, accumulation_steps)
    state, images, labels, scalar = abstract_inputs(self.model, self.mesh, resolution, global_batch)
    return max(accumulation.step_bytes(pair.d_step.lower(state, images, labels, scalar, scalar).compile()),
               accumulation.step_bytes(pair.g_step.lower(state, labels, scalar, scalar).compile()))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def replicate(tree, mesh: Mesh):
  """Places a pytree on every device of `mesh` (replicated), with an explicit sharding."""
  return jax.device_put(tree, replicated(mesh))


def shard_batch(array, mesh: Mesh):
  """A global [B, ...] array from this process's [B / process_count, ...] rows, split along 'batch'."""
  return jax.make_array_from_process_local_data(NamedSharding(mesh, P(AXIS)), np.asarray(array))
