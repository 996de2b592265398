"""The records of a build's tests: a check's result and the test report of a build.

The report is written to ``test/results/<build_id>/report.json``; while every check passed, the
same record is written to ``test/passed/<build_id>.json``, which is what ``deploy`` consumes. Its
``ml`` part holds the level-2 ML check's verdict (metrics, blessing, baseline).

``record_results`` is the one writer of both, for ``invoke test``: each call adds evidence (word
count against its golden reference, the ML verdict) and never removes any; a failed result ends
the build's "test passed" record. The Composer test DAG never writes them: its runs add their own
records (``evidence``), which deploy checks beside the passed record.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, Dict, List, Mapping, Optional, TypedDict, Union, cast

from beam_pipelines.harness.errors import HarnessError
from beam_pipelines.ml.artifacts import NOT_BLESSED
from beam_pipelines.ml.results import Number
from beam_pipelines.store import bucket, layout, signing
from beam_pipelines.store.lock import BucketLock

ML_KEY = 'ml'  # key of the ML check's details in the report / "test passed" record
LEGACY_PIPELINE = 'taxi'  # the one pipeline of records written before pipelines had folders


class _ResultKeys(TypedDict):
  check: str
  passed: bool
  message: str
  details: Mapping[str, object]  # the check's own evidence, kept as it gave it


class ResultEntry(_ResultKeys, total=False):
  """One check's result in a test report's ``results``."""
  workflow: str  # the test workflow whose check it is
  tested_by: str


@dataclasses.dataclass(frozen=True)
class CheckResult:
  """What one check of a test workflow found."""
  check: str
  passed: bool
  message: str
  details: Mapping[str, object]

  def to_dict(self) -> ResultEntry:
    return ResultEntry(check=self.check, passed=self.passed, message=self.message,
                       details=copy.deepcopy(dict(self.details)))


class MlVerdict(TypedDict, total=False):
  """The ML check's verdict on one pipeline's model (``ct.outcomes.PipelineCheck`` and the
  baseline it was judged against), as the report's "ml" section keeps it."""
  status: str  # BLESSED | NOT_BLESSED | ANOMALOUS
  message: str
  metrics: Optional[Dict[str, Number]]
  baseline_metrics: Optional[Dict[str, Number]]
  baseline: Optional[str]
  model_dir: Optional[str]
  model_sha256: Optional[str]
  data_sha256: str
  baseline_source: str


MlSection = Dict[str, MlVerdict]  # pipeline -> verdict
# The "ml" part of a report: by pipeline, or (records written before pipelines were declared per
# folder) one verdict at the top level.
RecordedMl = Union[MlSection, MlVerdict]


def ml_by_pipeline(ml: Optional[RecordedMl]) -> MlSection:
  """An "ml" section as {pipeline: verdict}. Records written before pipelines were declared per
  folder hold one verdict at the top level: that was the bundled taxi pipeline."""
  if not ml:
    return {}
  if 'status' in ml:
    return {LEGACY_PIPELINE: cast(MlVerdict, ml)}
  return dict(cast(MlSection, ml))


class _ReportKeys(TypedDict):
  build_id: str
  sha256: str
  wheel_file: str
  status: str
  tested_at: str
  tested_by: str
  manifest_sha256: Optional[str]
  module_origins: Dict[str, str]
  results: List[ResultEntry]
  ml: Optional[RecordedMl]


class ReportDocument(_ReportKeys, total=False):
  """``report.json`` and the "test passed" record (a ``TestReport``)."""
  signature: Optional[str]


@dataclasses.dataclass(frozen=True)
class TestReport:
  """A build's test report; ``status == 'passed'`` makes it the "test passed" record."""
  __test__ = False  # not a pytest test class

  build_id: str
  sha256: str  # of the wheel
  wheel_file: str
  status: str
  tested_at: str
  tested_by: str
  manifest_sha256: Optional[str] = None  # of the build's manifest: ties wheel and workflows to it
  module_origins: Dict[str, str] = dataclasses.field(default_factory=dict)
  results: List[ResultEntry] = dataclasses.field(default_factory=list)
  ml: Optional[RecordedMl] = None
  signature: Optional[str] = None  # HMAC with $BEAM_PIPELINES_SIGNING_KEY, when one is set

  @property
  def passed(self) -> bool:
    return self.status == layout.STATUS_PASSED

  @property
  def ml_by_pipeline(self) -> MlSection:
    """The ML check's verdict per declared pipeline. Records written before pipelines were
    declared per folder hold one verdict at the top level: that was the bundled taxi pipeline."""
    return ml_by_pipeline(self.ml)

  @property
  def ml_status(self) -> Optional[str]:
    """The build's ML verdict over its pipelines: NOT_BLESSED if any model is, else the common
    status (BLESSED), None before any ML check."""
    statuses = {ml.get('status') for ml in self.ml_by_pipeline.values()}
    if not statuses:
      return None
    if NOT_BLESSED in statuses:
      return NOT_BLESSED
    return statuses.pop() if len(statuses) == 1 else ', '.join(sorted(map(str, statuses)))

  def failures(self) -> List[str]:
    return [f'{r["check"]}: {r["message"]}' for r in self.results if not r['passed']]

  def to_dict(self) -> ReportDocument:
    return cast(ReportDocument, dataclasses.asdict(self))

  @classmethod
  def from_dict(cls, raw: Mapping[str, Any], source: str) -> 'TestReport':
    try:
      return cls(**{f.name: raw[f.name] for f in dataclasses.fields(cls) if f.name in raw})
    except TypeError as error:
      raise HarnessError(f'{source} is not a test report ({error}). Refusing.') from None


def read_report(path: str, what: str = 'test report') -> TestReport:
  """The one reader of a test report or "test passed" record."""
  return TestReport.from_dict(bucket.read_json(path, what), path)


def read_passed(bucket_url: str, build_id: str) -> TestReport:
  """The "test passed" record of ``build_id``; refused when absent or not a pass of that build."""
  test = layout.Env(bucket_url, layout.TEST)
  path = test.passed(build_id)
  if not bucket.exists(path):
    raise HarnessError(f'build {build_id} did not pass test: no record at {path}. '
                       f'Run `invoke test` on it first. Nothing was changed.')
  raw = bucket.read_json(path, f'test-passed record of {build_id}')
  signing.check(raw, f'the test-passed record {path}')
  record = TestReport.from_dict(raw, path)
  if record.build_id != build_id or not record.passed:
    raise HarnessError(f'{path} is not a passed record of {build_id}. Refusing.')
  return record


def passed_builds(bucket_url: str) -> List[str]:
  """Build ids with a "test passed" record, oldest first (build ids sort by time)."""
  test = layout.Env(bucket_url, layout.TEST)
  names = [p.rsplit('/', 1)[-1][:-len('.json')] for p in bucket.list_files(test.passed_dir)
           if p.endswith('.json')]
  return sorted(n for n in names if layout.BUILD_ID_PATTERN.fullmatch(n))


def _worse_ml(previous: Optional[RecordedMl],
              new: Optional[RecordedMl]) -> Optional[RecordedMl]:
  """The ML section to keep, pipeline by pipeline: the recorded verdict, unless absent or a new
  NOT_BLESSED outweighs it. A verdict is never dropped."""
  if not previous:
    return new
  if not new:
    return previous
  kept = ml_by_pipeline(previous)
  for name, verdict in ml_by_pipeline(new).items():
    old = kept.get(name)
    if not old or (verdict.get('status') == NOT_BLESSED and old.get('status') != NOT_BLESSED):
      kept[name] = verdict
  return kept


def _failures_only(report: TestReport) -> TestReport:
  """``report`` reduced to what may be kept from an unverified record: its failed results."""
  failed = [r for r in report.results if isinstance(r, dict) and r.get('passed') is False
            and isinstance(r.get('check'), str) and isinstance(r.get('message'), str)]
  return dataclasses.replace(report, results=failed, ml=None, module_origins={},
                             manifest_sha256=None)


def record_results(bucket_url: str, build_id: str, sha256: str, wheel_file: str,
                   results: List[ResultEntry], tested_by: str,
                   ml: Optional[MlSection] = None,
                   module_origins: Optional[Dict[str, str]] = None,
                   manifest_sha256: Optional[str] = None, fresh: bool = False) -> TestReport:
  """Adds ``results`` (and the ML verdict) to the build's report; returns the merged report.

  Under the build's record lock: the recorded report is read, the new results are appended (a
  verdict is never dropped or replaced; a NOT_BLESSED model verdict is never replaced by a
  better one), the status is ``passed`` only while every result passed, and the report is written.
  The "test passed" record is then written, or removed when a result failed. Evidence for other
  bytes than the recorded ones is refused.

  ``fresh`` (``invoke test``): the report holds this run's results only. Of a recorded report,
  which anyone with write access to ``test/`` may have written, only failed results are kept
  (they can only block the build); its passing results, ML verdicts and origins never are, so
  nothing this run did not produce is signed.
  """
  test = layout.Env(bucket_url, layout.TEST)
  if not results:
    raise HarnessError(f'no test results to record for build {build_id}')
  with BucketLock(test.record_lock(build_id), 'record test results',
                  guards=f'the test report of {build_id}'):
    previous = (read_report(test.report(build_id)) if bucket.exists(test.report(build_id))
                else None)
    if previous and fresh:
      previous = _failures_only(previous)
    if previous and (previous.build_id, previous.sha256) != (build_id, sha256):
      raise HarnessError(f'{test.report(build_id)} records wheel {previous.sha256}, not '
                         f'{sha256}: refusing to mix evidence of other bytes')
    recorded = list(previous.results) if previous else []
    merged = recorded + [ResultEntry({**r, 'tested_by': r.get('tested_by', tested_by)})
                         for r in results if r not in recorded]
    passed = all(r['passed'] for r in merged)
    report = TestReport(
        build_id=build_id, sha256=sha256, wheel_file=wheel_file,
        manifest_sha256=manifest_sha256 or (previous.manifest_sha256 if previous else None),
        status=layout.STATUS_PASSED if passed else layout.STATUS_FAILED,
        tested_at=layout.now_utc(), tested_by=tested_by,
        module_origins={**(module_origins or {}), **(previous.module_origins if previous else {})},
        results=merged, ml=_worse_ml(previous.ml if previous else None, ml))
    bucket.write_json(test.report(build_id), report.to_dict())
    if passed:
      bucket.write_json(test.passed(build_id), signing.sign(report.to_dict()))
    else:
      bucket.delete(test.passed(build_id))
  return report
