"""The model registry in the bucket: immutable numbered versions, movable aliases, a history.

Layout under a registry root (``<bucket>/prod/registry/<model name>``, see ``beam_pipelines.ct.paths``)::

    versions/<N>/model.joblib, model.json   the model's files, copied and sha256-checked
    versions/<N>/version.json               the commit marker, written LAST: each file's sha256,
                                            metrics, blessing, lineage (run id, record path),
                                            holdout metrics; rewritten (under the lock) only to
                                            add a re-evaluation that changed the blessing, or
                                            its metrics on a holdout it was not scored on yet
    aliases.json                            {"aliases": {"production": N, "candidate": M},
                                             "event": the move that wrote it}
    history/<event_id>.json                 one object per alias move (who, when, why, from/to)
    registry.lock                           serialises pushes and alias moves (the harness lock)

A version exists only once its ``version.json`` does: a push killed half-way leaves files nobody
reads, and the next push (same number, under the lock) overwrites them. ``aliases.json`` is one
object, replaced in one atomic write, so aliases move together or not at all; a move killed
before its history object was written is recorded by the next locked operation (as deploy does).
Aliases are MLflow's: ``production`` is what serving uses, ``candidate`` the latest blessed model.
An alias moves only to a version whose latest blessing is BLESSED (or not evaluated), unless the
move records a ``blessing_override``.
A model is loaded only after every file's sha256 matches ``version.json`` (``model_io`` checks the
pickle's bytes again before unpickling).
"""

from __future__ import annotations

import contextlib
import re
import time
from typing import Dict, List, Optional, Tuple, Union, cast

from beam_pipelines.ct.records import AliasEvent, EvaluationEntry, HoldoutRecord, VersionRecord
from beam_pipelines.ml import artifacts, model_io
from beam_pipelines.store import bucket, layout
from beam_pipelines.store.console import progress
from beam_pipelines.store.crash import crash_point
from beam_pipelines.store.errors import LockedError, Refusal
from beam_pipelines.store.history import previous_target
from beam_pipelines.store.identity import actor
from beam_pipelines.store.lock import BucketLock

PRODUCTION, CANDIDATE = 'production', 'candidate'
ALIASES = (PRODUCTION, CANDIDATE)
MODEL_FILES = (artifacts.MODEL_FILE, artifacts.MODEL_METADATA_FILE)
VERSIONS, VERSION_FILE, ALIASES_FILE, HISTORY = 'versions', 'version.json', 'aliases.json', 'history'
LOCK_FILE = 'registry.lock'
VERSION_NUMBER = re.compile(r'[0-9]{1,9}')  # ASCII digits only: '³' or '٣' is not a version
EVENT_ID = re.compile(r'[0-9A-Za-z][0-9A-Za-z_.-]{0,199}')  # a history object's name: no path
LOCK_WAIT_SECONDS = 120.0  # a push waits this long for another push/move to finish
EVENT_PUSH, EVENT_PROMOTE, EVENT_ROLLBACK = 'push', 'promote', 'rollback'
CRASH_POINTS = ('registry-files-written', 'registry-moved')  # $BEAM_PIPELINES_CRASH_AT points
BLESSING_OVERRIDE = 'blessing_override'  # history field: why a version not BLESSED became production


class RegistryError(Refusal):
  """A registry refusal; the message says what and why. Nothing was changed."""


class Registry:
  """One model's registry at ``root`` (a local directory or a gs:// prefix)."""

  def __init__(self, root: str, lock_wait: float = LOCK_WAIT_SECONDS):
    self.root = root.rstrip('/')
    self.lock = layout.join(self.root, LOCK_FILE)
    self.lock_wait = lock_wait

  @contextlib.contextmanager
  def _locked(self, operation: str):
    """Holds the registry lock; waits up to ``lock_wait`` s while another push/move holds it."""
    deadline, told = time.monotonic() + self.lock_wait, False
    while True:
      lock = BucketLock(self.lock, operation, guards=f'the model registry {self.root}')
      try:
        lock.__enter__()
        break
      except LockedError:
        if time.monotonic() >= deadline:
          raise
        if not told:
          progress(f'registry: {self.lock} is held by another push or move: waiting up to '
                   f'{self.lock_wait:.0f} s')
          told = True
        time.sleep(0.25)
    try:
      bucket.remove_stale_temps(self.root, 'registry')
      yield
    finally:
      lock.__exit__(None, None, None)

  def version_dir(self, number: int) -> str:
    return layout.join(self.root, VERSIONS, str(int(number)))

  def record_path(self, number: int) -> str:
    """The version's commit marker, version.json (its files' sha256, metrics, blessing, lineage)."""
    return layout.join(self.version_dir(number), VERSION_FILE)

  @property
  def _aliases_path(self) -> str:
    return layout.join(self.root, ALIASES_FILE)

  @property
  def _history_dir(self) -> str:
    return layout.join(self.root, HISTORY)

  # Reading ------------------------------------------------------------------------------------

  def numbers(self) -> List[int]:
    """Committed version numbers (those with a version.json), ascending."""
    suffix = '/' + VERSION_FILE
    found = []
    for path in bucket.list_tree(layout.join(self.root, VERSIONS)):
      if path.endswith(suffix) and VERSION_NUMBER.fullmatch(path[:-len(suffix)].rsplit('/', 1)[-1]):
        found.append(int(path[:-len(suffix)].rsplit('/', 1)[-1]))
    return sorted(found)

  def record(self, number: int) -> VersionRecord:
    path = self.record_path(number)
    if not bucket.exists(path):
      raise RegistryError(f'model version {number} does not exist in {self.root} '
                          f'(versions: {", ".join(map(str, self.numbers())) or "none"})')
    return checked_version(bucket.read_json(path, f'model version {number}'), path)

  def versions_and_skipped(self) -> Tuple[List[VersionRecord], List[str]]:
    """(readable version records, one line per unreadable one naming its file)."""
    found, skipped = [], []
    for number in self.numbers():
      try:
        found.append(self.record(number))
      except Refusal as error:
        skipped.append(str(error))
    return found, skipped

  def versions(self) -> List[VersionRecord]:
    """Readable version records; an unreadable one is skipped and said."""
    found, skipped = self.versions_and_skipped()
    for message in skipped:
      progress(f'registry: skipped an unreadable version: {message}')
    return found

  def aliases(self) -> Dict[str, int]:
    if not bucket.exists(self._aliases_path):
      return {}
    raw = bucket.read_json(self._aliases_path, 'registry aliases').get('aliases', {})
    if not isinstance(raw, dict) or not all(
        isinstance(a, str) and isinstance(n, int) and not isinstance(n, bool) for a, n in raw.items()):
      raise RegistryError(f'{self._aliases_path}: "aliases" is not {{alias: version number}}: it '
                          f'was edited by hand or by another tool; restore it. Nothing was changed.')
    return dict(raw)

  def last_event(self) -> Optional[AliasEvent]:
    """The alias move that wrote ``aliases.json`` (None before the first move)."""
    if not bucket.exists(self._aliases_path):
      return None
    return cast(Optional[AliasEvent],
                bucket.read_json(self._aliases_path, 'registry aliases').get('event'))

  def resolve(self, ref: Union[str, int]) -> int:
    """'production' / 'candidate' / a version number -> a committed version number."""
    if isinstance(ref, int) or VERSION_NUMBER.fullmatch(str(ref)):
      number = int(ref)
      self.record(number)
      return number
    if ref not in ALIASES:
      raise RegistryError(f'unknown model reference {ref!r}: use a version number or one of '
                          f'{", ".join(ALIASES)}')
    aliased = self.aliases().get(ref)
    if aliased is None:
      raise RegistryError(f'no model is {ref!r} yet in {self.root}: run `invoke ct` first')
    return aliased

  def history_and_skipped(self) -> Tuple[List[AliasEvent], List[str]]:
    """(alias moves oldest first, one line per unreadable or malformed event naming its file)."""
    events, skipped = [], []
    for path in bucket.list_files(self._history_dir):
      if not path.endswith('.json'):
        continue
      try:
        events.append(checked_event(bucket.read_json(path, 'registry history event'), path))
      except Refusal as error:
        skipped.append(str(error))
    return events, skipped

  def history(self) -> List[AliasEvent]:
    """Alias moves, oldest first; an unreadable or malformed event is skipped and said."""
    events, skipped = self.history_and_skipped()
    for message in skipped:
      progress(f'registry: skipped an unreadable history event: {message}')
    return events

  def verified_dir(self, ref: Union[str, int]) -> Tuple[str, VersionRecord]:
    """(directory, record) of a version after checking every file's sha256 against its record."""
    number = self.resolve(ref)
    record = self.record(number)
    for name, sha256 in sorted(record['files'].items()):
      bucket.verify(layout.join(self.version_dir(number), name), sha256,
                    f'registered model v{number} file {name}')
    return self.version_dir(number), record

  def load(self, ref: Union[str, int]):
    """The fitted model of a version, unpickled only after its sha256 checks (twice)."""
    directory, record = self.verified_dir(ref)
    return model_io.load_model(directory, expected_sha256=record['model_sha256'])

  # Writing (each under the registry lock) ----------------------------------------------------

  def push(self, model_dir: str, expected_sha256: Optional[str] = None,
           **facts: object) -> Tuple[VersionRecord, bool]:
    """Registers the model in ``model_dir`` as the next version; returns (record, created).

    ``expected_sha256`` is the model file's sha256 as the step that trained it recorded it (the
    metadata beside the file could be rewritten with it). ``facts`` (metrics, blessing, lineage,
    run_id ...) go into the record. A model whose sha256 is already registered is not registered
    twice: its record comes back with ``created=False``, updated first when this evaluation's
    blessing differs from the record's (``reevaluate``).
    """
    payload = model_io.read_verified_bytes(model_dir, expected_sha256)  # unfinished or changed: no
    metadata = model_io.read_metadata(model_dir)
    with self._locked('registry push'):
      self._record_missing_event()
      for existing in self.versions():
        if existing['model_sha256'] == metadata['model_sha256']:
          return self._reevaluate(existing, facts), False
      number = (self.numbers() or [0])[-1] + 1
      target = self.version_dir(number)
      files = {}
      for name, data in ((artifacts.MODEL_FILE, payload),
                         (artifacts.MODEL_METADATA_FILE, bucket.read_bytes(
                             layout.join(model_dir, artifacts.MODEL_METADATA_FILE)))):
        files[name] = bucket.sha256_bytes(data)
        bucket.write_bytes(layout.join(target, name), data)
        bucket.verify(layout.join(target, name), files[name], f'registered {name}')
      crash_point('registry-files-written')
      record = cast(VersionRecord, {
          'version': number, 'model_sha256': metadata['model_sha256'], 'files': files,
          'source': model_dir, 'registered_at': layout.now_utc(), **facts})
      bucket.write_json(self.record_path(number), record)  # the commit point
      return record, True

  def _reevaluate(self, record: VersionRecord, facts: Dict[str, object]) -> VersionRecord:
    """A registered model evaluated again to another blessing: the evaluation is appended to its
    record and its blessing becomes the latest (under the registry lock, before any move)."""
    blessing = facts.get('blessing')
    if not isinstance(blessing, dict) or blessing.get('status') == blessing_status(record):
      return record
    first = EvaluationEntry(run_id=record.get('run_id'), lineage=record.get('lineage'),
                            at=record['registered_at'])
    if 'blessing' in record:
      first['blessing'] = record['blessing']
    if 'metrics' in record:
      first['metrics'] = record['metrics']
    latest = cast(EvaluationEntry, {
        'run_id': facts.get('run_id'), 'lineage': facts.get('lineage'), 'at': layout.now_utc(),
        'blessing': blessing, 'metrics': facts.get('metrics') or {}})
    updated = cast(VersionRecord, dict(
        record, blessing=blessing, metrics=facts.get('metrics') or record.get('metrics') or {},
        evaluations=list(record.get('evaluations') or [first]) + [latest]))
    bucket.write_json(self.record_path(record['version']), updated)
    progress(f'registry: v{record["version"]} re-evaluated by run {facts.get("run_id")}: '
             f'{blessing_status(record) or "not evaluated"} -> {blessing.get("status")} '
             f'(recorded in its {VERSION_FILE})')
    return updated

  def record_holdout(self, number: int, holdout: HoldoutRecord) -> bool:
    """Records a version's metrics on its pipeline's fixed holdout in its ``version.json`` (under
    the lock), unless it holds them already for the same holdout (sha256); True when written."""
    with self._locked('registry holdout'):
      record = self.record(number)
      held = record.get('holdout')
      if held and held.get('sha256') == holdout['sha256']:
        return False
      bucket.write_json(self.record_path(number), cast(VersionRecord, dict(record,
                                                                           holdout=holdout)))
      return True

  def move(self, moves: Dict[str, int], event: str, reason: str = '',
           **facts: object) -> Optional[AliasEvent]:
    """Moves aliases together (one atomic write) and records the event; None if nothing moved."""
    with self._locked(f'registry {event}'):
      return self._move(moves, event, reason, **facts)

  def gate(self, number: int, event: str, override: Optional[str] = None) -> Dict[str, str]:
    """What a version must pass to become ``production`` by hand: every file's sha256 against its
    record (the pickle's bytes too) and a BLESSED verdict, unless ``override`` gives a reason.
    Returns the facts to record with the move (the override, if one was needed)."""
    directory, record = self.verified_dir(number)
    model_io.read_verified_bytes(directory, record['model_sha256'])
    status = blessing_status(record)
    if status == artifacts.BLESSED:
      return {}
    if override and override.strip():
      progress(f'registry: v{number} is {status}; {event} anyway, override recorded: '
               f'"{override.strip()}"')
      return {BLESSING_OVERRIDE: override.strip()}
    raise RegistryError(f'model v{number} is {status or "not evaluated"}, not BLESSED: refusing to '
                        f'make it production. To go ahead anyway, give a reason with '
                        f'--override-blessing "<why>" (recorded). Nothing was changed.')

  def promote(self, ref: Union[str, int], reason: str = '',
              override_blessing: Optional[str] = None) -> Optional[AliasEvent]:
    """Points ``production`` at a version (``model-promote --version N``), after ``gate``; the
    version already live is left as it is (None)."""
    number = self.resolve(ref)
    if self.aliases().get(PRODUCTION) == number:
      return None
    facts = self.gate(number, EVENT_PROMOTE, override_blessing)
    return self.move({PRODUCTION: number}, EVENT_PROMOTE, reason or f'promoted to v{number}',
                     **facts)

  def rollback(self, reason: str = '',
               override_blessing: Optional[str] = None) -> Optional[AliasEvent]:
    """Points ``production`` back at the version it held before the live one was pushed/promoted,
    after ``gate``."""
    with self._locked(f'registry {EVENT_ROLLBACK}'):
      live = self.aliases().get(PRODUCTION)
      if live is None:
        raise RegistryError('no production model: nothing to roll back')
      target = rollback_target(self.history(), live)
      facts = self.gate(target, EVENT_ROLLBACK, override_blessing)
      event = self._move({PRODUCTION: target}, EVENT_ROLLBACK,
                         reason or f'rollback from v{live} to v{target}', **facts)
      return event

  def _move(self, moves: Dict[str, int], event: str, reason: str,
            **facts: object) -> Optional[AliasEvent]:
    self._record_missing_event()
    for alias, number in moves.items():
      if alias not in ALIASES:
        raise RegistryError(f'unknown alias {alias!r}: use one of {", ".join(ALIASES)}')
      status = blessing_status(self.record(number))  # must be committed
      if status not in (None, artifacts.BLESSED) and BLESSING_OVERRIDE not in facts:
        raise RegistryError(f'model v{number} is {status} by its latest evaluation: refusing to '
                            f'move {alias} to it without a recorded --override-blessing. '
                            f'Nothing was changed.')
    before = self.aliases()
    after = dict(before, **moves)
    if after == before:
      return None
    stamp = layout.event_id(event, 'registry').rsplit('-registry', 1)[0]
    record = cast(AliasEvent, {
        'event_id': stamp, 'event': event, 'at': layout.now_utc(), 'by': actor(),
        'reason': reason, 'aliases': after,
        'moves': {a: {'from': before.get(a), 'to': n} for a, n in sorted(moves.items())
                  if before.get(a) != n}, **facts})
    bucket.write_json(self._aliases_path, {'aliases': after, 'event': record})  # the commit point
    crash_point('registry-moved')
    bucket.write_json(layout.join(self._history_dir, f'{stamp}.json'), record)
    return record

  def _record_missing_event(self) -> None:
    """A move killed between its commit and its history object is recorded now."""
    if not bucket.exists(self._aliases_path):
      return
    event = bucket.read_json(self._aliases_path, 'registry aliases').get('event')
    if not isinstance(event, dict) or not isinstance(event.get('event_id'), str) or not (
        EVENT_ID.fullmatch(event['event_id'])):
      return
    if not bucket.exists(layout.join(self._history_dir, f'{event["event_id"]}.json')):
      bucket.write_json(layout.join(self._history_dir, f'{event["event_id"]}.json'),
                        dict(event, recovered=True))


def checked_version(raw: dict, path: str) -> VersionRecord:
  """A version record whose fields the readers use are there and typed; else a RegistryError
  naming the file."""
  files = raw.get('files')
  problems = [name for name, ok in (
      ('version', isinstance(raw.get('version'), int)),
      ('model_sha256', isinstance(raw.get('model_sha256'), str)),
      ('files', isinstance(files, dict) and all(
          isinstance(k, str) and isinstance(v, str) for k, v in files.items())),
      ('blessing', raw.get('blessing') is None or (isinstance(raw['blessing'], dict) and isinstance(
          raw['blessing'].get('status'), (str, type(None)))))) if not ok]
  if problems:
    raise RegistryError(f'{path} is not a model version record (bad or missing '
                        f'{", ".join(problems)}): restore or delete it. Nothing was changed.')
  return cast(VersionRecord, raw)


def checked_event(raw: dict, path: str) -> AliasEvent:
  """A history event with its moves ({alias: {"from", "to"}}); else a RegistryError naming it."""
  moves = raw.get('moves')
  if not isinstance(moves, dict) or not all(
      isinstance(m, dict) and isinstance(m.get('to'), int) for m in moves.values()):
    raise RegistryError(f'{path} is not a registry history event (bad or missing "moves"). '
                        f'Nothing was changed.')
  return cast(AliasEvent, raw)


def rollback_target(events: List[AliasEvent], live: int) -> int:
  """The production version before ``live`` was last made production (rollbacks not counted)."""
  made = [e['moves'][PRODUCTION]['to'] for e in events
          if e.get('event') != EVENT_ROLLBACK and PRODUCTION in (e.get('moves') or {})]
  target = previous_target(made, live)
  if target is None:
    raise RegistryError(f'nothing to roll back to: no model was production before v{live}')
  return target


def blessing_status(record: VersionRecord) -> Optional[str]:
  """BLESSED / NOT_BLESSED as the version's evaluation judged it; None when not evaluated."""
  blessing = record.get('blessing')
  return blessing['status'] if blessing else None


def describe(record: VersionRecord, aliases: Dict[str, int]) -> str:
  """One line of ``invoke model-list``."""
  number = record['version']
  names = [a for a in ALIASES if aliases.get(a) == number]
  raw = record.get('metrics')
  metrics = raw if isinstance(raw, dict) else {}
  shown = ', '.join(f'{k} {metrics[k]:.4f}' for k in ('auc', 'accuracy', 'log_loss')
                    if isinstance(metrics.get(k), float))
  blessing = blessing_status(record) or '?'
  return (f'v{number:<3d} {blessing:11s} {shown or "no metrics"}  sha256 {record["model_sha256"][:12]}'
          f'  run {record.get("run_id", "?")}  {record.get("registered_at", "")}'
          + (f'  <- {", ".join(names)}' if names else ''))


def describe_moves(moves: Dict[str, Dict[str, Optional[int]]]) -> str:
  """Alias moves for people: ``production v2 -> v3, candidate - -> v3``."""
  return ', '.join(f'{alias} {"v" + str(m["from"]) if m.get("from") else "-"} -> v{m["to"]}'
                   for alias, m in moves.items()) or 'none'


def describe_aliases(aliases: Dict[str, int]) -> str:
  """Aliases for people: ``production v3, candidate v3`` (or ``none``)."""
  order = [a for a in ALIASES if a in aliases] + sorted(set(aliases) - set(ALIASES))
  return ', '.join(f'{a} v{aliases[a]}' for a in order) or 'none'
