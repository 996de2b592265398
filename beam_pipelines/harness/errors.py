"""The harness's one error type: a refusal with a message for the user (the CLI exits 1 with it)."""


class HarnessError(Exception):
  """A refusal or failure of a harness step; ``str(error)`` is the user-facing explanation."""
