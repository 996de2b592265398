"""Test hook: ``$BEAM_PIPELINES_CRASH_AT=<point>`` SIGKILLs the process at that named point.

Deploy, the registry and continuous training call ``crash_point`` between their writes, so the
test suite can prove that a ``kill -9`` anywhere leaves every commit point consistent.
"""

from __future__ import annotations

import os
import signal

from beam_pipelines.store import layout
from beam_pipelines.store.console import progress


def crash_point(name: str) -> None:
  """SIGKILL this process at ``name`` if $BEAM_PIPELINES_CRASH_AT says so."""
  if os.environ.get(layout.CRASH_ENV_VAR) == name:
    progress(f'crash point {name}: killing this process with SIGKILL (test hook)')
    os.kill(os.getpid(), signal.SIGKILL)
