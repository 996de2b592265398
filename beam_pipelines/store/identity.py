"""Who acts and which code acts: the user@host of every record, git facts, the installed wheel.

The source commit comes from git when the checkout has ``.git``; otherwise (``gcloud builds
submit`` uploads no ``.git``) from ``$COMMIT_SHA`` (Cloud Build's substitution, passed to the step)
or from the ``SOURCE_VERSION`` file (``<commit> <commit time as epoch seconds>``, written by
``scripts/submit_build.sh`` before the upload).
``INSTALLED_MARKER`` is the file the harness writes beside an installed deployed wheel (its
sha256); a process started from that install finds it next to the package (lineage reads it).
"""

from __future__ import annotations

import getpass
import os
import pathlib
import re
import socket
import subprocess
from typing import Optional, Tuple

INSTALLED_MARKER = '.installed-sha256'
# Used when there is no git: the zip format's earliest time (1980-01-01).
FALLBACK_EPOCH = 315532800
# The time stamped on every file of a wheel (``SOURCE_DATE_EPOCH`` of ``python -m build``): fixed,
# so one commit gives the same wheel bytes whether its tree has ``.git`` (a checkout, a trigger
# with a clone) or not (``gcloud builds submit``, a trigger's source archive), where the commit
# time cannot be known. ``$SOURCE_DATE_EPOCH``, when set, is used instead (reproducible-builds).
WHEEL_EPOCH = FALLBACK_EPOCH
SOURCE_VERSION_FILE = 'SOURCE_VERSION'
COMMIT_ENV_VARS = ('COMMIT_SHA', 'SHORT_SHA')  # Cloud Build's substitutions, as step env
_COMMIT = re.compile(r'[0-9a-f]{7,40}')


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
  """(commit, dirty, commit time as epoch seconds); without git, ``uploaded_source_version``."""
  commit = git(repo, 'rev-parse', 'HEAD') if (repo / '.git').exists() else None
  if not commit:
    return uploaded_source_version(repo)
  status = git(repo, 'status', '--porcelain', '--untracked-files=normal') or ''
  epoch = int((git(repo, 'log', '-1', '--format=%ct') or str(FALLBACK_EPOCH)).strip())
  return commit.strip(), bool(status.strip()), max(epoch, FALLBACK_EPOCH)


def wheel_epoch() -> int:
  """The ``SOURCE_DATE_EPOCH`` of a build: ``$SOURCE_DATE_EPOCH`` when set, else ``WHEEL_EPOCH``."""
  value = os.environ.get('SOURCE_DATE_EPOCH', '').strip()
  if value and not value.isdigit():
    raise ValueError(f'SOURCE_DATE_EPOCH must be epoch seconds, got {value!r}')
  return max(int(value), FALLBACK_EPOCH) if value else WHEEL_EPOCH


def uploaded_source_version(repo: pathlib.Path) -> Tuple[Optional[str], bool, int]:
  """(commit, dirty, epoch) of a source tree without ``.git``: ``SOURCE_VERSION``, else $COMMIT_SHA.

  Such a tree cannot tell whether it was modified, so ``dirty`` is False only when the
  ``SOURCE_VERSION`` file vouches for it (it is written from a clean checkout); the epoch is
  ``$SOURCE_DATE_EPOCH`` or the file's, else 1980-01-01. (None, True, 1980) when nothing says.
  """
  epoch = int(os.environ.get('SOURCE_DATE_EPOCH') or FALLBACK_EPOCH)
  path = repo / SOURCE_VERSION_FILE
  if path.is_file():
    words = path.read_text(encoding='utf-8').split()
    if not words or not _COMMIT.fullmatch(words[0].lower()):
      raise ValueError(f'{path}: expected "<commit sha> [<epoch seconds>]", got {words[:2]}')
    if len(words) > 1 and words[1].isdigit():
      epoch = int(os.environ.get('SOURCE_DATE_EPOCH') or words[1])
    dirty = len(words) > 2 and words[2] == 'dirty'
    return words[0].lower(), dirty, max(epoch, FALLBACK_EPOCH)
  for name in COMMIT_ENV_VARS:
    value = os.environ.get(name, '').strip().lower()
    if _COMMIT.fullmatch(value):
      return value, False, max(epoch, FALLBACK_EPOCH)
  return None, True, FALLBACK_EPOCH
