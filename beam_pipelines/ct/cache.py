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
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any, Callable, Optional, Tuple, Type, TypeVar

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
  """Content-addressed step outputs under ``root`` (any bucket URL)."""

  def __init__(self, root: str, enabled: bool = True):
    self.root = root.rstrip('/')
    self.enabled = enabled

  def entry(self, step: str, key: str) -> str:
    return layout.join(self.root, step, key[:24])

  def get(self, step: str, key: str, kind: Type[T]) -> Optional[T]:
    """The stored result (a ``kind`` record) of a finished step with this key, else None."""
    marker = layout.join(self.entry(step, key), MARKER)
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

  def run(self, step: str, key: str, fn: Callable[[str], T], kind: Type[T],
          verify: Optional[Verifier[T]] = None) -> Tuple[T, str, str]:
    """(result, 'ran' | 'cached', output directory): ``fn(directory)`` runs only on a miss, or
    when ``verify(result, directory)`` finds the cached outputs are not what the step recorded."""
    directory = self.entry(step, key)
    if self.enabled:
      hit = self.get(step, key, kind)
      problem = verify(hit, directory) if hit is not None and verify else None
      if hit is not None and problem is None:
        return hit, CACHED, directory
      if problem:
        progress(f'cache: the cached {step} outputs in {directory} are not what that step '
                 f'recorded ({problem}); running the step again')
    started = time.monotonic()
    result = fn(directory)
    bucket.write_json(layout.join(directory, MARKER), {
        'key': key, 'step': step, 'result': to_json(result), 'at': layout.now_utc(),
        'seconds': round(time.monotonic() - started, 3)})
    return result, RAN, directory
