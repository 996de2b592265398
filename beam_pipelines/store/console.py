"""Progress lines a user follows (what step, how many records), on stderr like logging."""

from __future__ import annotations

import sys

PREFIX = '[beam-pipelines]'


def progress(message: str) -> None:
  """Prints one progress line; goes to stderr, flushed, so relayed runs show it at once."""
  print(f'{PREFIX} {message}', file=sys.stderr, flush=True)
