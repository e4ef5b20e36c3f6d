"""Ways to compute the networks' convolutions on this platform, timed side by side in one run.

  python experiments/bench_conv_forms.py [--reps 20] [--no-official]

Each form computes the same function as the network's (checked: max relative difference printed); times are the
best of 3 runs of `--reps` calls of a jitted gradient, in ms, for batch 16 at the quickstart's shapes, and at the
official widths (512 channels) of the 16² and 32² stages at their 1-GPU minibatch (32, 16):
- 3x3 convs (4 layers + lrelu; at official widths 1): XLA's conv in NHWC/HWIO (the networks'), NHWC/OHWI,
  NCHW/OIHW, as im2col (9 shifted copies concatenated, one matmul) and as Winograd F(2x2, 3x3) (winograd.py: the
  networks' form on CPU where `winograd.pays`, i.e. at >= 256 channels from 8² up);
- G's 2x upsampling + 3x3 conv: the separate form (nearest upsampling, then the conv; the official form below
  128²), the fused transposed stride-2 conv (the official form from 128², with the kernel rotated to give the same
  function) and the phase form (one 2x2 conv with 4x the output channels, then depth-to-space), as the networks
  compute it on CPU (a VALID conv of the padded input, its weight gradient one im2col matmul) and with the padding
  in the conv instead; at official widths also with XLA's weight gradient for the 2x2 conv; Winograd (9 matmuls);
- D's 3x3 conv + 2x2 box downsampling: the separate form, the fused stride-2 4x4 conv (official from 128²;
  train.D_fused_downscale) with JAX's gradient rule and with the phase conv as its input gradient (the networks'
  form on CPU: Discriminator.phase_grad), a phase form (space-to-depth, then one 2x2 conv) and Winograd (one
  matmul of 9 transformed inputs).
`grad` differentiates sum(y²) by the weights (a training step's first order), `r1` adds the squared input
gradient (R1's double backward; for the 3x3 convs and D's forms only: R1 differentiates D).
"""

import argparse
import time

import jax
import jax.numpy as jnp
from jax import lax

from stylegan_jax import layers, winograd

_NHWC = ('NHWC', 'HWIO', 'NHWC')


def conv_layout(dimension_numbers, x_layout, w_layout):
  def conv(x, w):
    y = lax.conv_general_dilated(jnp.transpose(x, x_layout), jnp.transpose(w, w_layout), (1, 1), 'SAME',
                                 dimension_numbers=dimension_numbers)
    return jnp.transpose(y, [x_layout.index(i) for i in range(4)])
  return conv


def conv_im2col(x, w):
  n, h, wd, c = x.shape
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  cols = jnp.concatenate([xp[:, i:i + h, j:j + wd] for i in range(3) for j in range(3)], axis=-1)
  return (cols.reshape(-1, 9 * c) @ w.reshape(9 * c, -1)).reshape(n, h, wd, -1)


def up_separate(x, w):
  return layers.upscale2d_conv2d(x, w, fused=False)


def up_fused(x, w):
  return layers.upscale2d_conv2d(x, w[::-1, ::-1], fused=True)  # the fused form of the rotated kernel


def up_phases(x, w):
  return layers.upscale2d_conv2d(x, w, fused=False, phases=True)


def up_phases_conv_padding(x, w):
  """The networks' phase form (layers.phase_kernel, layers.interleave_phases) with the padding in the conv."""
  y = lax.conv_general_dilated(x, layers.phase_kernel(w), (1, 1), ((1, 1), (1, 1)), dimension_numbers=_NHWC)
  return layers.interleave_phases(y)


def up_phases_xla_weight_grad(x, w):
  """The networks' phase form with XLA's own weight gradient for the 2x2 conv (networks: one im2col matmul)."""
  y = lax.conv_general_dilated(jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))), layers.phase_kernel(w), (1, 1), 'VALID',
                               dimension_numbers=_NHWC)
  return layers.interleave_phases(y)


def down_separate(x, w):
  return layers.conv2d_downscale2d(x, w, fused=False)


def down_fused(x, w):
  return layers.conv2d_downscale2d(x, w, fused=True)


def down_fused_phase_grad(x, w):
  return layers.conv2d_downscale2d(x, w, fused=True, phase_grad=True)


def down_phases(x, w):
  """The fused 4x4 kernel over rows 2i-1..2i+2 is a 2x2 kernel over the space-to-depth blocks of x padded by 1."""
  n, h, wd, c = x.shape
  kernel = layers.downscale_kernel(w).reshape(2, 2, 2, 2, c, -1).transpose(0, 2, 1, 3, 4, 5).reshape(2, 2, 4 * c, -1)
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  blocks = xp.reshape(n, h // 2 + 1, 2, wd // 2 + 1, 2, c).transpose(0, 1, 3, 2, 4, 5)
  return lax.conv_general_dilated(blocks.reshape(n, h // 2 + 1, wd // 2 + 1, 4 * c), kernel, (1, 1), 'VALID',
                                  dimension_numbers=_NHWC)


def stack(conv):
  def layers4(x, w):  # w: [4, 3, 3, C, C]
    for i in range(w.shape[0]):
      x = jax.nn.leaky_relu(conv(x, w[i]), 0.2)
    return x
  return layers4


NHWC_HWIO = conv_layout(_NHWC, (0, 1, 2, 3), (0, 1, 2, 3))
CONVS = {'NHWC/HWIO': stack(NHWC_HWIO), 'Winograd': stack(winograd.conv2d)}
UPS = {'phases': up_phases, 'Winograd': winograd.upscale2d_conv2d}
DOWNS = {'fused': down_fused, 'fused, phase input gradient': down_fused_phase_grad,
         'Winograd': winograd.conv2d_downscale2d}
CASES = [
    ('3x3 convs 32² x32', (16, 32, 32, 32), (4, 3, 3, 32, 32), {
        **CONVS, 'NHWC/OHWI': stack(conv_layout(('NHWC', 'OHWI', 'NHWC'), (0, 1, 2, 3), (3, 0, 1, 2))),
        'NCHW/OIHW': stack(conv_layout(('NCHW', 'OIHW', 'NCHW'), (0, 3, 1, 2), (3, 2, 0, 1))),
        'im2col': stack(conv_im2col)}),
    ('3x3 convs 16² x64', (16, 16, 16, 64), (4, 3, 3, 64, 64), {**CONVS, 'im2col': stack(conv_im2col)}),
    ('3x3 convs 8² x128', (16, 8, 8, 128), (4, 3, 3, 128, 128), CONVS),
    ('G up 16²->32² 64->32', (16, 16, 16, 64), (3, 3, 64, 32),
     {'separate': up_separate, 'fused': up_fused, **UPS, 'phases, padding in the conv': up_phases_conv_padding}),
    ('G up 8²->16² 128->64', (16, 8, 8, 128), (3, 3, 128, 64), UPS),
    ('D down 32²->16² 32->64', (16, 32, 32, 32), (3, 3, 32, 64),
     {'separate': down_separate, **DOWNS, 'phases': down_phases}),
    ('D down 16²->8² 64->128', (16, 16, 16, 64), (3, 3, 64, 128),
     {'separate': down_separate, **DOWNS, 'phases': down_phases}),
    ('D down 8²->4² 128->128', (16, 8, 8, 128), (3, 3, 128, 128), DOWNS),
    # Official widths, the 1-GPU minibatch of the 16² stage (32) and the 32² stage (16).
    ('3x3 conv 16² x512 (official, batch 32)', (32, 16, 16, 512), (1, 3, 3, 512, 512), CONVS),
    ('3x3 conv 8² x512 (official, batch 32)', (32, 8, 8, 512), (1, 3, 3, 512, 512), CONVS),
    ('3x3 conv 4² x512 (official, batch 32)', (32, 4, 4, 512), (1, 3, 3, 512, 512), CONVS),
    ('3x3 conv 32² x512 (official, batch 16)', (16, 32, 32, 512), (1, 3, 3, 512, 512), CONVS),
    ('G up 8²->16² 512->512 (official, batch 32)', (32, 8, 8, 512), (3, 3, 512, 512), UPS),
    ('G up 4²->8² 512->512 (official, batch 32)', (32, 4, 4, 512), (3, 3, 512, 512), UPS),
    ('G up 16²->32² 512->512 (official, batch 16)', (16, 16, 16, 512), (3, 3, 512, 512),
     {'separate': up_separate, **UPS, "phases, XLA's weight gradient": up_phases_xla_weight_grad}),
    ('D down 16²->8² 512->512 (official, batch 32)', (32, 16, 16, 512), (3, 3, 512, 512), DOWNS),
    ('D down 8²->4² 512->512 (official, batch 32)', (32, 8, 8, 512), (3, 3, 512, 512), DOWNS),
    ('D down 32²->16² 512->512 (official, batch 16)', (16, 32, 32, 512), (3, 3, 512, 512), DOWNS),
]


def best_ms(fn, args, reps: int) -> float:
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(3):
    start = time.perf_counter()
    for _ in range(reps):
      out = fn(*args)
    jax.block_until_ready(out)
    times.append((time.perf_counter() - start) / reps)
  return 1e3 * min(times)


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--reps', type=int, default=20)
  parser.add_argument('--official', action=argparse.BooleanOptionalAction, default=True,
                      help='the official-width cases too (minutes with --reps 2)')
  args = parser.parse_args()
  print(f'{jax.devices()[0].device_kind}, jax {jax.__version__}\n')
  print('| shapes | form | max rel. difference | grad ms | r1 ms |\n|---|---|---|---|---|')
  for name, x_shape, w_shape, forms in CASES:
    if 'official' in name and not args.official:
      continue
    x = jax.random.normal(jax.random.key(0), x_shape)
    w = 0.1 * jax.random.normal(jax.random.key(1), w_shape)
    reference = None
    for form, f in forms.items():
      y = f(x, w)
      reference = y if reference is None else reference
      difference = float(jnp.abs(y - reference).max() / jnp.abs(reference).max())
      loss = lambda w, x, f=f: jnp.sum(jnp.square(f(x, w)))
      grad = jax.jit(jax.grad(loss))
      r1 = jax.jit(jax.grad(lambda w, x: loss(w, x) + jnp.sum(jnp.square(jax.grad(loss, argnums=1)(w, x)))))
      r1_ms = '-' if name.startswith('G up') else f'{best_ms(r1, (w, x), args.reps):.2f}'
      print(f'| {name} | {form} | {difference:.1e} | {best_ms(grad, (w, x), args.reps):.2f} | {r1_ms} |',
            flush=True)


if __name__ == '__main__':
  main()
