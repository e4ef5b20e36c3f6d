"""`stylegan-jax COMMAND [flags]`: the command line, a table of subcommands.

Each subcommand is a `main(argv) -> int` imported only when it runs, so `stylegan-jax --help` is quick and a
command never imports TensorFlow or JAX it does not need. Errors end as one line (console.py).
"""

import difflib
import importlib
import sys
from typing import Optional, Sequence

from stylegan_jax import console, errors

PROG = 'stylegan-jax'

# name -> ('module:function', one line of help)
COMMANDS = {
    'prepare': ('stylegan_jax.data.prepare:main',
                'prepare a dataset (a folder of images, Fashion-MNIST or a TFDS catalog dataset) for training'),
    'train': ('stylegan_jax.main:main', 'train a progressive StyleGAN in a workdir, or resume it there'),
    'sample': ('stylegan_jax.sample:main',
               'images, the paper figures and synthetic datasets (generate, style-mixing, truncation, noise, '
               'interpolate, dataset)'),
    'export': ('stylegan_jax.sample:export_main',
               'convert between artifacts, official network pickles and training checkpoints'),
    'metrics': ('stylegan_jax.metrics.main:main',
                'quality metrics of a run, artifact or pickle (domain FD/KID/coverage, FID/KID/P&R, separability)'),
    'project': ('stylegan_jax.project:main',
                'find the dlatents that reproduce images (StyleGAN2 projector), for editing and evaluation'),
    'sweep': ('stylegan_jax.sweeps.main:main',
              'hyperparameter sweeps: run trials here, write a SLURM array or a command list, rank the trials'),
}


def usage() -> str:
  width = max(map(len, COMMANDS))
  lines = [f'usage: {PROG} COMMAND [flags]     ({PROG} COMMAND --help lists the flags of COMMAND)', '',
           'StyleGAN v1 in JAX: prepare a dataset, train, sample, export, measure, sweep and project.', '', 'commands:']
  lines += [f'  {name:<{width}}  {help_}' for name, (_, help_) in COMMANDS.items()]
  lines += ['', 'Every command takes --verbosity=1 to show library logs and the traceback of an error.']
  return '\n'.join(lines)


def _command(argv: list[str]) -> int:
  if not argv or argv[0] in ('-h', '--help', 'help'):
    print(usage())
    return 0
  name = argv[0]
  if name not in COMMANDS:
    close = difflib.get_close_matches(name, COMMANDS, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ''
    raise errors.UsageError(f"{PROG}: unknown command {name!r}; {hint}commands: {', '.join(COMMANDS)} "
                            f'(see {PROG} --help)')
  module, function = COMMANDS[name][0].split(':')
  return getattr(importlib.import_module(module), function)(argv[1:])


def main(argv: Optional[Sequence[str]] = None) -> int:
  """The console script; argv without the program name (default sys.argv[1:])."""
  return console.run(PROG, _command, sys.argv[1:] if argv is None else argv)


if __name__ == '__main__':
  sys.exit(main())
