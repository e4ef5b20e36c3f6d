"""The terminal of every command: quiet library logs, log lines that keep clear of progress bars, and errors in
one line.

`--verbosity` (every command accepts it):
  0 (default)  this project's messages as plain lines (INFO and up of the `stylegan_jax` loggers), other
               libraries' warnings and errors, no library INFO (absl, Orbax, TFDS, grain, JAX's backend probe),
               and no tracebacks: a `UserError` prints `error: <message>` and exits with its exit code (1, or 2
               for usage errors), any other exception prints one line naming it and exits 1.
  1            every library's INFO, each line with its time and source, and the traceback of an error.
  2            DEBUG as well.
"""

import argparse
import logging
import os
import re
import sys
import traceback
from typing import Callable, Optional, Sequence

import tqdm

from stylegan_jax import errors

# Library warnings that are expected in this project's normal use and say nothing to its users.
_EXPECTED_WARNINGS = (
    'Using custom data configuration',  # TFDS: every prepared dataset has a custom builder config
    'has no dataset_info.json',         # TFDS: a dataset being prepared for the first time
    'Given directory is read only',     # Orbax: checkpoints are read (export, metrics) read-only on purpose
)
# Levels at verbosity 0 of loggers quieter than the rest: JAX's TPU/GPU backend probes on machines without them,
# and the routine checkpoint saves (their warnings and errors still show).
_QUIET_LEVELS = {'jax._src.xla_bridge': logging.ERROR, 'stylegan_jax.checkpoint': logging.WARNING}


class _BarSafeHandler(logging.Handler):
  """Writes through tqdm.write, which clears any live progress bar first and redraws it after the line."""

  def emit(self, record: logging.LogRecord) -> None:
    try:
      tqdm.tqdm.write(self.format(record), file=sys.stderr)
    except Exception:  # noqa: BLE001 (logging's own convention: report and go on)
      self.handleError(record)


class _PlainFormatter(logging.Formatter):
  """'message' for INFO, 'warning: message' for WARNING and up."""

  def format(self, record: logging.LogRecord) -> str:
    message = super().format(record)
    return message if record.levelno < logging.WARNING else f'{record.levelname.lower()}: {message}'


class _DropExpected(logging.Filter):
  def filter(self, record: logging.LogRecord) -> bool:
    return not any(s in record.getMessage() for s in _EXPECTED_WARNINGS)


def verbosity_from_argv(argv: Sequence[str]) -> int:
  """The value of --verbosity=N / --verbosity N / -v N / -vN in argv (0 when absent or not an integer)."""
  for i, arg in enumerate(argv):
    match = re.fullmatch(r'(?:--verbosity|-v)(?:=?(-?\d+))?', arg)
    if match:
      value = match.group(1) or (argv[i + 1] if i + 1 < len(argv) else '')
      return int(value) if re.fullmatch(r'-?\d+', value) else 0
  return 0


def configure_logging(verbosity: int) -> None:
  """Routes all Python logging (absl's included) through one bar-safe handler on the root logger, at the levels
  of the module docstring. Call it before JAX or TensorFlow are imported: it also sets their C++ log level."""
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '0' if verbosity > 0 else '2')
  root = logging.getLogger()
  for handler in list(root.handlers):
    if isinstance(handler, _BarSafeHandler):
      root.removeHandler(handler)
  handler = _BarSafeHandler()
  if verbosity > 0:
    handler.setFormatter(logging.Formatter('%(asctime)s %(levelname)s %(name)s: %(message)s'))
    level = logging.DEBUG if verbosity > 1 else logging.INFO
    root.setLevel(level)
    logging.getLogger('stylegan_jax').setLevel(level)
    for name in _QUIET_LEVELS:
      logging.getLogger(name).setLevel(logging.NOTSET)
  else:
    handler.setFormatter(_PlainFormatter())
    handler.addFilter(_DropExpected())
    root.setLevel(logging.WARNING)
    logging.getLogger('stylegan_jax').setLevel(logging.INFO)
    for name, quiet_level in _QUIET_LEVELS.items():
      logging.getLogger(name).setLevel(quiet_level)
  root.addHandler(handler)
  logging.getLogger('absl').setLevel(logging.NOTSET)  # absl.logging follows the root level set here


def error_line(error: BaseException, command: str) -> tuple[str, int]:
  """(the one line that reports `error`, the exit code)."""
  message = ' '.join(str(error).split())
  if isinstance(error, errors.UserError):
    return f'error: {message}', error.exit_code
  if isinstance(error, OSError):  # a file or directory the user named or gave us
    if not error.strerror:
      return f'error: {message}', 1
    return f"error: {f'{error.filename}: ' if error.filename else ''}{error.strerror}", 1
  return (f'error: {command} failed: {type(error).__name__}: {message} (--verbosity=1 shows the traceback)', 1)


def run(command: str, fn: Callable[[list[str]], Optional[int]], argv: Sequence[str]) -> int:
  """Runs a command's `fn(argv)` with logging configured from argv's --verbosity; returns the exit code: fn's
  (None = 0), or that of an error, reported in one line (with the traceback when verbosity >= 1)."""
  argv = list(argv)
  verbosity = verbosity_from_argv(argv)
  configure_logging(verbosity)
  try:
    try:
      code = fn(argv) or 0
    except SystemExit as e:  # argparse after --help
      code = e.code if isinstance(e.code, int) else 0
    sys.stdout.flush()  # a reader of stdout that has gone shows here, not as an error at the interpreter's exit
    return code
  except BrokenPipeError:  # `stylegan-jax ... | head`: stop quietly with 128 + SIGPIPE, as Unix tools do
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 141
  except KeyboardInterrupt:
    print('error: interrupted', file=sys.stderr)
    return 130
  except Exception as e:  # noqa: BLE001 (every error ends here, as one line)
    if verbosity > 0:
      traceback.print_exc()
    line, code = error_line(e, command)
    print(line, file=sys.stderr)
    return code


class ArgumentParser(argparse.ArgumentParser):
  """argparse whose mistakes raise `errors.UsageError` (one line, exit code 2) instead of printing the usage."""

  def __init__(self, *args, **kwargs):
    kwargs.setdefault('allow_abbrev', False)
    super().__init__(*args, **kwargs)
    self.add_argument('-v', '--verbosity', type=int, default=0, metavar='N',
                      help='0: quiet (default); 1: library logs and tracebacks; 2: debug logs')

  def error(self, message: str):
    raise errors.UsageError(f'{self.prog}: {message} (see {self.prog} --help)')
