"""Who acts and which code acts: the user@host of every record, git facts, the installed wheel.

``INSTALLED_MARKER`` is the file the harness writes beside an installed deployed wheel (its
sha256); a process started from that install finds it next to the package (lineage reads it).
"""

from __future__ import annotations

import getpass
import pathlib
import socket
import subprocess
from typing import Optional, Tuple

INSTALLED_MARKER = '.installed-sha256'
# Used when there is no git: the zip format's earliest time (1980-01-01).
FALLBACK_EPOCH = 315532800


def actor() -> str:
  """``user@host`` of this process, as every record names who acted."""
  return f'{getpass.getuser()}@{socket.gethostname()}'


def git(repo: pathlib.Path, *args: str) -> Optional[str]:
  """``git <args>`` in ``repo``: its stdout, or None when git or the repository is missing."""
  try:
    done = subprocess.run(['git', *args], cwd=repo, capture_output=True, text=True, check=True)
  except (OSError, subprocess.CalledProcessError):
    return None
  return done.stdout


def git_info(repo: pathlib.Path) -> Tuple[Optional[str], bool, int]:
  """(commit, dirty, commit time as epoch seconds); (None, True, 1980) outside git."""
  commit = git(repo, 'rev-parse', 'HEAD')
  if not commit:
    return None, True, FALLBACK_EPOCH
  status = git(repo, 'status', '--porcelain', '--untracked-files=normal') or ''
  epoch = int((git(repo, 'log', '-1', '--format=%ct') or str(FALLBACK_EPOCH)).strip())
  return commit.strip(), bool(status.strip()), max(epoch, FALLBACK_EPOCH)
