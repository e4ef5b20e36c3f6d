"""Errors a user can fix. The `stylegan-jax` command prints their message in one line (no traceback unless
--verbosity asks for it) and exits with `exit_code`: 2 for a wrong command line or config value, 1 for bad input
(a file, a folder, a checkpoint) or a failed run.
"""


class UserError(Exception):
  """Bad input or a failed run the user can act on; str(error) names the problem. Exit code 1."""
  exit_code = 1


class UsageError(UserError):
  """A wrong flag, config key or config value; str(error) names it and what is allowed. Exit code 2."""
  exit_code = 2
