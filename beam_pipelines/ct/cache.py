"""The step cache of continuous training: a step whose inputs are unchanged is skipped, its outputs
reused.

A step's key is the sha256 of its name and its inputs as canonical JSON: the hashes of its input
data (or the key of the step that made them), the code fingerprint and its parameters. The step
writes its outputs into ``<cache root>/<step>/<key[:24]>/``; the marker ``done.json``, written
last, holds the full key and what the step returned (its typed result as JSON, read back as the
same record type; a marker whose result is not that record is a miss). An entry without its marker is unfinished
(the process died) and the step runs again over it. ``enabled=False`` (``--no_cache``) always runs
the step and refreshes the entry. A step may give ``verify``: a hit whose outputs no longer match
what its marker recorded (e.g. a replaced model file) is reported and the step runs again, so a
cached output is used only as the bytes its own run recorded.

``read_only`` roots are looked up after ``root`` and never written: an experiment reuses the
entries continuous training made (its features of the same window) while everything it runs goes
into its own root, so CT's cache holds only what CT ran.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any, Callable, Iterator, Optional, Sequence, Tuple, Type, TypeVar

from beam_pipelines.store import bucket, layout
from beam_pipelines.store.console import progress
from beam_pipelines.store.typed_json import RecordError, from_json, to_json

MARKER = 'done.json'
RAN, CACHED = 'ran', 'cached'
T = TypeVar('T')
Verifier = Callable[[T, str], Optional[str]]  # (result, directory) -> problem or None


def step_key(step: str, **inputs: Any) -> str:
  """sha256 of the step name and its inputs (data hashes, code fingerprint, parameters)."""
  canonical = json.dumps({'step': step, 'inputs': inputs}, sort_keys=True, default=str)
  return hashlib.sha256(canonical.encode('utf-8')).hexdigest()


class StepCache:
  """Content-addressed step outputs under ``root`` (any bucket URL); hits are also looked up in
  the ``read_only`` roots, after ``root``, and nothing is ever written there."""

  def __init__(self, root: str, enabled: bool = True, read_only: Sequence[str] = ()):
    self.root = root.rstrip('/')
    self.enabled = enabled
    self.read_only = tuple(r.rstrip('/') for r in read_only)

  def entry(self, step: str, key: str, root: Optional[str] = None) -> str:
    return layout.join(root or self.root, step, key[:24])

  def _read(self, directory: str, step: str, key: str, kind: Type[T]) -> Optional[T]:
    marker = layout.join(directory, MARKER)
    if not bucket.exists(marker):
      return None
    done = bucket.read_json(marker, f'cache marker of {step}')
    if done.get('key') != key:
      return None
    try:
      return from_json(kind, done.get('result'), f'cached {step} result')
    except RecordError as error:
      progress(f'cache: {marker} holds no {kind.__name__} ({error}); running the step again')
      return None

  def hits(self, step: str, key: str, kind: Type[T]) -> Iterator[Tuple[T, str]]:
    """(result, directory) of each finished entry with this key: ``root``'s, then the
    read-only roots'."""
    for root in (self.root,) + self.read_only:
      directory = self.entry(step, key, root)
      hit = self._read(directory, step, key, kind)
      if hit is not None:
        yield hit, directory

  def get(self, step: str, key: str, kind: Type[T]) -> Optional[T]:
    """The stored result (a ``kind`` record) of a finished step with this key, else None."""
    return next((hit for hit, _ in self.hits(step, key, kind)), None)

  def run(self, step: str, key: str, fn: Callable[[str], T], kind: Type[T],
          verify: Optional[Verifier[T]] = None) -> Tuple[T, str, str]:
    """(result, 'ran' | 'cached', output directory): ``fn(directory)`` runs only on a miss, or
    when ``verify(result, directory)`` finds the cached outputs are not what the step recorded;
    it always writes into ``root``."""
    if self.enabled:
      for hit, found in self.hits(step, key, kind):
        problem = verify(hit, found) if verify else None
        if problem is None:
          return hit, CACHED, found
        progress(f'cache: the cached {step} outputs in {found} are not what that step '
                 f'recorded ({problem}); running the step again')
    directory = self.entry(step, key)
    started = time.monotonic()
    result = fn(directory)
    bucket.write_json(layout.join(directory, MARKER), {
        'key': key, 'step': step, 'result': to_json(result), 'at': layout.now_utc(),
        'seconds': round(time.monotonic() - started, 3)})
    return result, RAN, directory
