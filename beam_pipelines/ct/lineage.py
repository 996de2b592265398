"""Lineage of continuous-training runs: which code, data and parameters made which outputs.

One JSON record per run (``<bucket>/prod/ct/runs/<run_id>/lineage.json``), rewritten atomically
after every step so a killed run still says how far it got::

    {"run_id", "started_at", "finished_at", "status": running | trained | stopped | failed | ...,
     "trigger": ["new_span", "drift", "force"],
     "code": {"source": "deployed-wheel", "build_id", "wheel_sha256", "version", "fingerprint"}
          or {"source": "source-tree", "version", "git_commit", "git_dirty", "fingerprint"},
     "data": {"span", "files": [{"path", "sha256", "size"}], "sha256"},
     "parameters": {...},
     "steps": {"features": {"status", "outputs", "summary", "result", "started_at",
                            "finished_at", "peak_rss_bytes"}, ...,
               "forward_evaluation": {..., "model_version"}, "holdout_evaluation": {..., "judged"}},
     "model": {"version", "sha256", "blessing"}}
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import json
import pathlib
import urllib.parse
from typing import Dict, List, Optional, Protocol, Sequence, cast

import beam_pipelines
from beam_pipelines.ct.records import (
  CodeIdentity,
  FileEntry,
  LineageDocument,
  ModelEntry,
  RunData,
  StepEntry,
)
from beam_pipelines.ml.tabular import data_fingerprint
from beam_pipelines.store import bucket, layout
from beam_pipelines.store.console import fields, progress
from beam_pipelines.store.errors import Refusal
from beam_pipelines.store.identity import INSTALLED_MARKER, git_info


class LineageError(Refusal):
  """A lineage record that would be wrong (e.g. code not from the wheel it claims)."""

CODE_SUFFIXES = ('.py', '.yaml', '.json', '.csv', '.txt', '.pbtxt')
STEP_ORDER = ('features', 'validation', 'forward_evaluation', 'training', 'evaluation',
              'holdout_evaluation', 'push', 'predict')


def step_time() -> str:
  """ISO-8601 UTC time to the millisecond: a step's ``started_at`` / ``finished_at`` (steps of
  one run often start within the same second)."""
  return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='milliseconds')


def file_entries(paths: Sequence[str]) -> List[FileEntry]:
  """[{"path", "sha256", "size"}] of data files, sorted by path."""
  return [FileEntry(path=p, sha256=bucket.sha256_of(p), size=bucket.size(p))
          for p in sorted(paths)]


def data_sha256(entries: Sequence[FileEntry]) -> str:
  """One hash of a span: over (file name, sha256) pairs, wherever the span sits."""
  return data_fingerprint([{'path': e['path'], 'sha256': e['sha256']} for e in entries])


def _package_dir() -> pathlib.Path:
  return pathlib.Path(beam_pipelines.__file__).resolve().parent


def code_fingerprint(package: Optional[pathlib.Path] = None) -> str:
  """sha256 over the package's source and data files: the code version of the cache keys."""
  package = package or _package_dir()
  digest = hashlib.sha256()
  for path in sorted(p for p in package.rglob('*') if p.suffix in CODE_SUFFIXES and p.is_file()
                     and '__pycache__' not in p.parts):
    digest.update(f'{path.relative_to(package).as_posix()}\0'.encode())
    digest.update(hashlib.sha256(path.read_bytes()).digest())
  return digest.hexdigest()


def installed_wheel_sha256() -> Optional[str]:
  """The sha256 of the wheel file this package was installed from, when pip or uv installed it
  from a local wheel (its ``direct_url.json``, PEP 610, names the file, as a Composer task's venv
  does): None for a source tree, an editable install, or a wheel file no longer there."""
  try:
    direct = importlib.metadata.distribution('beam-pipelines').read_text('direct_url.json')
  except importlib.metadata.PackageNotFoundError:
    return None
  url = (json.loads(direct) or {}).get('url', '') if direct else ''
  if not url.startswith('file://') or not url.endswith('.whl'):
    return None
  path = pathlib.Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path))
  return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def code_identity(build_id: Optional[str] = None,
                  wheel_sha256: Optional[str] = None) -> CodeIdentity:
  """Which code runs: the deployed wheel (build id + wheel sha256) or the source tree (git commit).

  A process started from an installed deployed wheel (``harness.install``) finds the wheel's
  sha256 in the install directory's marker, one installed by pip or uv from a wheel file (a
  Composer task's venv) in that file; a ``wheel_sha256`` given that disagrees is refused.
  """
  package = _package_dir()
  version, fingerprint = beam_pipelines.__version__, code_fingerprint(package)
  marker = package.parent / INSTALLED_MARKER
  if marker.is_file():
    installed = marker.read_text().strip()
    if wheel_sha256 and wheel_sha256 != installed:
      raise LineageError(f'this code was installed from wheel {installed}, not {wheel_sha256}: '
                         f'refusing to record a wrong lineage')
    return CodeIdentity(version=version, fingerprint=fingerprint, source='deployed-wheel',
                        build_id=build_id, wheel_sha256=installed)
  from_wheel = installed_wheel_sha256()
  if from_wheel:
    if wheel_sha256 and wheel_sha256 != from_wheel:
      raise LineageError(f'this code was installed from wheel {from_wheel}, not {wheel_sha256}: '
                         f'refusing to record a wrong lineage')
    return CodeIdentity(version=version, fingerprint=fingerprint, source='deployed-wheel',
                        build_id=build_id, wheel_sha256=from_wheel)
  repo = package.parent
  commit, dirty, _ = git_info(repo)
  return CodeIdentity(version=version, fingerprint=fingerprint, source='source-tree',
                      build_id=build_id, wheel_sha256=wheel_sha256, git_commit=commit,
                      git_dirty=dirty)


class RunListener(Protocol):
  """Told of a run as its record changes (``beam_pipelines.tracking``: OpenLineage events); a
  listener that raises is said in one line and never stops the run."""

  def run_started(self, run: 'RunRecord') -> None:
    """The record was created."""

  def step_started(self, run: 'RunRecord', name: str) -> None:
    """Step ``name`` starts (before its cache lookup)."""

  def step_recorded(self, run: 'RunRecord', name: str) -> None:
    """Step ``name`` was recorded in ``run.record['steps']``."""

  def run_finished(self, run: 'RunRecord') -> None:
    """The record has its final status."""


class RunRecord:
  """A run's lineage record, saved after every change; ``listeners`` are told of each change."""

  def __init__(self, path: str, run_id: str, trigger: List[str], code: CodeIdentity,
               data: RunData, parameters: Dict[str, object],
               listeners: Sequence[RunListener] = ()):
    self.path = path
    self.listeners = list(listeners)
    self.record = LineageDocument(
        run_id=run_id, started_at=layout.now_utc(), status='running', steps={},
        trigger=trigger, code=code, data=data, parameters=parameters)
    self.save()
    self._tell('run_started')

  def started(self, name: str) -> None:
    """Step ``name`` starts: only the listeners are told (the record has finished steps)."""
    self._tell('step_started', name)

  def step(self, name: str, status: str, **info: object) -> None:
    """Records a step (``finished_at``: now); the JSON sorts keys, so the steps' order is in
    their ``started_at`` / ``finished_at``."""
    self.record['steps'][name] = cast(StepEntry, dict(info, status=status,
                                                      finished_at=step_time()))
    self.save()
    self._tell('step_recorded', name)

  def _tell(self, event: str, *args: str) -> None:
    for listener in self.listeners:
      try:
        getattr(listener, event)(self, *args)
      except Exception as error:  # noqa: BLE001 - a listener is best effort; the record is the truth
        progress(f'lineage: {type(listener).__name__} failed on {event} '
                 f'({type(error).__name__}: {error}); the run goes on')

  def finish(self, status: str, model: Optional[ModelEntry] = None, report: Optional[str] = None,
             reason: Optional[str] = None, error: Optional[str] = None) -> LineageDocument:
    self.record['status'], self.record['finished_at'] = status, layout.now_utc()
    if model is not None:
      self.record['model'] = model
    if report is not None:
      self.record['report'] = report
    if reason is not None:
      self.record['reason'] = reason
    if error is not None:
      self.record['error'] = error
    self.save()
    self._tell('run_finished')
    return self.record

  def save(self) -> None:
    bucket.write_json(self.path, self.record)


def render(record: LineageDocument) -> List[str]:
  """A lineage record as the lines of ``invoke lineage``."""
  code, data = record.get('code', {}), record.get('data', {})
  if code.get('source') == 'deployed-wheel':
    made_by = f'deployed build {code.get("build_id")} (wheel sha256 {code.get("wheel_sha256")})'
  else:
    made_by = (f'source tree, version {code.get("version")}, git commit {code.get("git_commit")}'
               + (' (uncommitted changes)' if code.get('git_dirty') else '')
               + (f', build {code["build_id"]}' if code.get('build_id') else ''))
  lines = [f'run {record.get("run_id")}: {record.get("status")} '
           f'({record.get("started_at")} -> {record.get("finished_at", "?")})',
           f'  trigger:    {", ".join(record.get("trigger", [])) or "none"}',
           f'  code:       {made_by}; code fingerprint {str(code.get("fingerprint"))[:16]}',
           f'  data:       span {data.get("span")} sha256 {data.get("sha256")}']
  lines += [f'              {f["path"]}  sha256 {f["sha256"]}' for f in data.get('files', [])]
  params = fields(record.get('parameters') or {})
  lines += [f'  {"parameters:" if i == 0 else "":11s} {key} {value}'
            for i, (key, value) in enumerate(params)]
  steps = record.get('steps', {})
  order = [s for s in STEP_ORDER if s in steps] + sorted(set(steps) - set(STEP_ORDER))
  for name, step in ((n, steps[n]) for n in order):
    outputs = step.get('outputs')
    lines.append(f'  step {name:18s} {step.get("status"):8s} {step.get("summary", "")}'
                 + (f'  -> {outputs}' if outputs else ''))
  return lines
