"""The records of ``invoke test``: a check's result and the test report of a build.

The report is written to ``test/results/<build_id>/report.json``; when every check passed, the same
record is written to ``test/passed/<build_id>.json``, which is what ``deploy`` consumes. Its
``ml`` part holds the level-2 ML check's verdict (metrics, blessing, baseline).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional

from beam_pipelines.harness.errors import HarnessError
from beam_pipelines.store import bucket, layout, signing

ML_KEY = 'ml'  # key of the ML check's details in the report / "test passed" record
LEGACY_PIPELINE = 'taxi'  # the one pipeline of records written before pipelines had folders


@dataclasses.dataclass(frozen=True)
class CheckResult:
  """What one check of a test workflow found."""
  check: str
  passed: bool
  message: str
  details: Dict[str, Any]

  def to_dict(self) -> Dict[str, Any]:
    return dataclasses.asdict(self)


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
  results: List[Dict[str, Any]] = dataclasses.field(default_factory=list)  # + workflow's name
  ml: Optional[Dict[str, Any]] = None
  signature: Optional[str] = None  # HMAC with $BEAM_PIPELINES_SIGNING_KEY, when one is set

  @property
  def passed(self) -> bool:
    return self.status == layout.STATUS_PASSED

  @property
  def ml_by_pipeline(self) -> Dict[str, Dict[str, Any]]:
    """The ML check's verdict per declared pipeline. Records written before pipelines were
    declared per folder hold one verdict at the top level: that was the bundled taxi pipeline."""
    if not self.ml:
      return {}
    if 'status' in self.ml:
      return {LEGACY_PIPELINE: self.ml}
    return dict(self.ml)

  def failures(self) -> List[str]:
    return [f'{r["check"]}: {r["message"]}' for r in self.results if not r['passed']]

  def to_dict(self) -> Dict[str, Any]:
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, raw: Dict[str, Any], source: str) -> 'TestReport':
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
