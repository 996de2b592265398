"""The refusal types: an operation refused with a one-line message for the user.

Every floor raises a subclass of ``Refusal`` named for what it guards; the command lines turn any
``Refusal`` into its message and a documented exit status, never a traceback.
"""


class Refusal(Exception):
  """An operation refused or failed; ``str(error)`` is the user-facing explanation."""


class StorageError(Refusal):
  """Bucket I/O: an object missing, unreadable, not valid JSON, or not the bytes recorded."""


class LockedError(Refusal):
  """A bucket prefix is locked by another run (the message names the holder)."""


class InvalidNameError(Refusal):
  """A build id, environment or artifact name outside the layout's rules (could escape a prefix)."""


class UntrustedPointerError(StorageError):
  """A record points outside where the layout says its object is (another build, another prefix)."""


class NoInputError(Refusal, FileNotFoundError):
  """An input pattern that matches no file."""
