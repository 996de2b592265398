"""A bucket lock: one object, created exclusively, that serialises the writers of one prefix.

Prod's deploy/rollback, each model registry and continuous training each hold their own (an
experiment holds continuous training's lock of its pipeline).

The lock object holds who took it (user, host, pid, the process's start time), since when, and for
what. A second writer finds it and refuses with that explanation. A lock whose holder is provably
gone (same host, that pid no longer runs the same process, e.g. after ``kill -9``) is stale: it is
removed *with a message saying whose it was*, then taken. A lock held from another host cannot be
checked from here: the writer refuses and says how to remove it once nobody is writing.

On GCS the exclusive create is an upload with ``if_generation_match=0``, and a stale lock is
taken over by one upload with ``if_generation_match=<generation read>``: if another writer took
it meanwhile (a new generation), the upload is refused and that writer keeps it. Locally, the
stale lock is re-read just before removal; the remaining race window is microseconds.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import sys
from typing import TYPE_CHECKING, Optional

from beam_pipelines.store import bucket, layout
from beam_pipelines.store.console import progress
from beam_pipelines.store.errors import LockedError, StorageError

if TYPE_CHECKING:
  from typing import TypeGuard  # Python 3.10+; only for the type checker (3.9 is supported)


def process_start_time(pid: int) -> Optional[str]:
  """The kernel's start time of ``pid`` (field 22 of /proc/<pid>/stat), None if unknown/absent."""
  try:
    with open(f'/proc/{pid}/stat', encoding='ascii', errors='replace') as handle:
      stat = handle.read()
  except OSError:
    return None
  return stat.rsplit(')', 1)[-1].split()[19]


MAX_PID = 1 << 22  # Linux's pid_max ceiling: a lock naming a pid outside 1..MAX_PID is garbled


def checkable_pid(pid: object) -> TypeGuard[int]:
  """True for a pid that can name a process (not a bool, not <= 0: kill(0 or -1) is a group)."""
  return isinstance(pid, int) and not isinstance(pid, bool) and 0 < pid <= MAX_PID


def process_alive(pid: object, start_time: Optional[str]) -> bool:
  """True if ``pid`` (any value read from a lock) runs on this host and (when known) is the same
  process that took the lock."""
  if not checkable_pid(pid):
    return False
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  if start_time is None or not os.path.exists('/proc'):
    return True
  return process_start_time(pid) == start_time


def describe(holder: dict) -> str:
  return (f'{holder.get("user", "?")}@{holder.get("host", "?")} (pid {holder.get("pid", "?")}, '
          f'{holder.get("operation", "?")}) since {holder.get("since", "?")}')


class BucketLock:
  """Context manager: ``with BucketLock(prod.lock, 'deploy', guards='prod'): ...``.

  ``guards`` names what the lock protects (in messages); ``unlock_hint`` says how a person removes
  a lock whose holder cannot be checked from here (default: delete the object).
  """

  def __init__(self, path: str, operation: str, guards: str, unlock_hint: Optional[str] = None):
    self.path = path
    self.operation = operation
    self.guards = guards
    self.unlock_hint = unlock_hint or 'delete that object'
    pid = os.getpid()
    self.content = json.dumps({
        'user': getpass.getuser(),
        'host': socket.gethostname(),
        'pid': pid,
        'pid_start': process_start_time(pid),
        'since': layout.now_utc(),
        'operation': operation,
        'command': ' '.join(sys.argv),
    }, indent=2, sort_keys=True).encode('utf-8')

  def __enter__(self):
    if bucket.create_exclusive(self.path, self.content):
      return self
    raw, generation = bucket.read_versioned(self.path)
    holder = _parse_holder(raw)
    if holder is not None and self._is_stale(holder):
      progress(f'lock: removing a stale lock left by {describe(holder)}: that process no longer '
               f'exists on this host (killed or crashed mid-{holder.get("operation", "?")}); '
               f'{self.guards} is still consistent: its commit point is written last')
      if bucket.replace_if_unchanged(self.path, generation, raw, self.content):
        return self
      holder = self._read_holder()
    who = describe(holder) if holder else 'an unreadable lock object'
    running = (holder or {}).get('operation') or self.operation  # what holds it, not what waits
    raise LockedError(
        f'{self.guards} is locked: {self.path} is held by {who}. Another {running} is '
        f'running, or one died on another machine. Wait for it; if you are sure nobody is running '
        f'one, {self.unlock_hint} and retry. Nothing was changed.')

  def __exit__(self, *exc_info):
    try:
      raw, generation = bucket.read_versioned(self.path)
      if raw == self.content:  # ours: released only if it is still that very object
        bucket.delete_if_unchanged(self.path, generation, raw)
    except StorageError:
      pass
    return False

  def _read_holder(self) -> Optional[dict]:
    holder = holder_of(self.path)
    return None if holder is None or holder.get('unreadable') else holder

  @staticmethod
  def _is_stale(holder: dict) -> bool:
    if holder.get('host') != socket.gethostname() or not checkable_pid(holder.get('pid')):
      return False
    return not process_alive(holder['pid'], holder.get('pid_start'))


def holder_of(path: str) -> Optional[dict]:
  """Who holds the lock at ``path`` now: None if free, ``{'unreadable': True, ...}`` if garbled."""
  if not bucket.exists(path):
    return None
  try:
    holder = json.loads(bucket.read_bytes(path, 'lock').decode('utf-8'))
  except StorageError:
    return None  # removed between the two calls: free
  except ValueError:
    holder = None
  if not isinstance(holder, dict):
    return {'host': '?', 'operation': 'unreadable lock', 'unreadable': True}
  return holder


def is_stale(holder: dict) -> bool:
  """True when ``holder`` names a process of this host that is gone (the next writer removes it)."""
  return BucketLock._is_stale(holder)


def _parse_holder(raw: Optional[bytes]) -> Optional[dict]:
  """A lock object's holder, None when absent or unreadable."""
  try:
    holder = json.loads(raw.decode('utf-8')) if raw is not None else None
  except ValueError:
    return None
  return holder if isinstance(holder, dict) else None


def unlock(path: str, force: bool = False) -> Optional[dict]:
  """Removes the lock (an explicit, human decision); returns who held it, None if unlocked.

  Refuses while its holder is a live process on this machine, unless ``force``; a holder on
  another machine cannot be checked from here, so that is the human's call.
  """
  holder = holder_of(path)
  if holder is None:
    return None
  running = (holder.get('host') == socket.gethostname()
             and process_alive(holder.get('pid'), holder.get('pid_start')))
  if running and not force:
    raise LockedError(
        f'the lock {path} is held by a running process ({describe(holder)}): '
        f'wait for it to finish; `invoke unlock --force` removes it anyway. Nothing was changed.')
  bucket.delete(path)
  return holder
