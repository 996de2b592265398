"""The deploy lock: one object in the bucket, created exclusively, that serialises deploy/rollback.

The lock object holds who took it (user, host, pid, the process's start time), since when, and for
what. A second deploy finds it and refuses with that explanation. A lock whose holder is provably
gone (same host, that pid no longer runs the same process, e.g. after ``kill -9``) is stale: it is
removed *with a message saying whose it was*, then taken. A lock held from another host cannot be
checked from here: the deploy refuses and says how to remove it (``invoke unlock``) once nobody is
deploying.

On GCS the exclusive create is an upload with ``if_generation_match=0``; a careful stale-lock
removal would delete with ``if_generation_match=<generation read>`` (not exercised offline).
Locally, the stale lock is re-read just before removal; the remaining race window is microseconds.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import sys
from typing import Optional

from beam_pipelines.harness import bucket, layout
from beam_pipelines.harness.errors import HarnessError
from beam_pipelines.runtime import progress


def process_start_time(pid: int) -> Optional[str]:
  """The kernel's start time of ``pid`` (field 22 of /proc/<pid>/stat), None if unknown/absent."""
  try:
    with open(f'/proc/{pid}/stat', encoding='ascii', errors='replace') as handle:
      stat = handle.read()
  except OSError:
    return None
  return stat.rsplit(')', 1)[-1].split()[19]


def process_alive(pid: int, start_time: Optional[str]) -> bool:
  """True if ``pid`` runs on this host and (when known) is the same process that took the lock."""
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


class DeployLock:
  """Context manager: ``with DeployLock(env, 'deploy'): ...``."""

  def __init__(self, env: layout.Env, operation: str, what: str = 'prod'):
    self.path = env.lock  # any object with a ``lock`` path (the registry and ct use their own)
    self.operation = operation
    self.what = what
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
    holder = self._read_holder()
    if holder is not None and self._is_stale(holder):
      progress(f'lock: removing a stale lock left by {describe(holder)}: that process no longer '
               f'exists on this host (killed or crashed mid-{holder.get("operation", "?")}); '
               + ('prod is still consistent because variables.json is the commit point'
                  if self.what == 'prod' else
                  f'{self.what} is still consistent: its commit point is written last'))
      raw = bucket.read_bytes(self.path, 'deploy lock') if bucket.exists(self.path) else None
      if raw is not None and json.loads(raw.decode('utf-8')) == holder:
        bucket.delete(self.path)
      if bucket.create_exclusive(self.path, self.content):
        return self
      holder = self._read_holder()
    who = describe(holder) if holder else 'an unreadable lock object'
    if self.what != 'prod':
      raise HarnessError(
          f'{self.what} is locked: {self.path} is held by {who}. Another run is going on, or one '
          f'died on another machine. Wait for it; if you are sure nobody is running one, delete '
          f'that object and retry. Nothing was changed.')
    raise HarnessError(
        f'prod is locked: {self.path} is held by {who}. Another deploy or rollback is running, or '
        f'one died on another machine. Wait for it; if you are sure nobody is deploying, remove '
        f'the lock with `invoke unlock` (or delete that object) and retry. Nothing was changed.')

  def __exit__(self, *exc_info):
    try:
      if bucket.read_bytes(self.path, 'deploy lock') == self.content:
        bucket.delete(self.path)
    except HarnessError:
      pass
    return False

  def _read_holder(self) -> Optional[dict]:
    try:
      return json.loads(bucket.read_bytes(self.path, 'deploy lock').decode('utf-8'))
    except (HarnessError, ValueError):
      return None

  @staticmethod
  def _is_stale(holder: dict) -> bool:
    if holder.get('host') != socket.gethostname() or not isinstance(holder.get('pid'), int):
      return False
    return not process_alive(holder['pid'], holder.get('pid_start'))


def unlock(env: layout.Env, force: bool = False) -> Optional[dict]:
  """Removes the lock (an explicit, human decision); returns who held it, None if unlocked.

  Refuses while its holder is a live process on this machine (a deploy is running), unless
  ``force``; a holder on another machine cannot be checked from here, so that is the human's call.
  """
  if not bucket.exists(env.lock):
    return None
  try:
    holder = json.loads(bucket.read_bytes(env.lock, 'deploy lock').decode('utf-8'))
  except ValueError:
    holder = {}
  running = (holder.get('host') == socket.gethostname() and isinstance(holder.get('pid'), int)
             and process_alive(holder['pid'], holder.get('pid_start')))
  if running and not force:
    raise HarnessError(
        f'the lock {env.lock} is held by a running process ({describe(holder)}): '
        f'wait for it to finish; `invoke unlock --force` removes it anyway. Nothing was changed.')
  bucket.delete(env.lock)
  return holder


def holder_of(env: layout.Env) -> Optional[dict]:
  """Who holds the lock now (None if free)."""
  if not bucket.exists(env.lock):
    return None
  try:
    return json.loads(bucket.read_bytes(env.lock, 'deploy lock').decode('utf-8'))
  except ValueError:
    return {'host': '?', 'operation': 'unreadable lock'}
