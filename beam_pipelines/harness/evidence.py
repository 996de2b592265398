"""Evidence of test runs outside ``invoke test`` (the Composer test DAG, its Dataflow jobs).

A verdict and its evidence are separate records. ``invoke test`` writes the build's "test passed"
record (signed when $BEAM_PIPELINES_SIGNING_KEY is set); a Composer run, which does not hold the
key, never rewrites it: it adds its own record, bound to the build id and wheel sha256 it ran::

    test/evidence/<build_id>/<run>.json   build_id, sha256, wheel_file, tested_by, status, results

Records are created exclusively (never overwritten): a retry or a later run adds another one. Deploy
and rollback check them with the passed record: any failed run of the build refuses it, and when
the deployment requires Dataflow evidence ($BEAM_PIPELINES_REQUIRE_EVIDENCE=1 or
``"require_evidence": true`` in prod/settings.json) a passing run must exist too. Evidence is not
signed: it is as trustworthy as write access to ``test/`` (docs/harness.md, "Trust and threat
model").
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Any, List, Mapping, Tuple

from beam_pipelines.harness.errors import HarnessError
from beam_pipelines.harness.results import ResultEntry, TestReport
from beam_pipelines.store import bucket, layout
from beam_pipelines.store.errors import Refusal

EVIDENCE = 'evidence'  # test/evidence/<build_id>/<run>.json
REQUIRE_ENV_VAR = 'BEAM_PIPELINES_REQUIRE_EVIDENCE'  # "1": deploy needs a passing run's evidence
REQUIRE_SETTING = 'require_evidence'  # the same, in prod/settings.json
_RUN_NAME = re.compile(r'[^A-Za-z0-9_.-]+')
_MAX_COPIES = 100  # <run>.json, <run>-2.json, ...: one record per recording, never overwritten


@dataclasses.dataclass(frozen=True)
class Evidence:
  """One run's evidence on one build: its checks' results and their verdict."""
  build_id: str
  sha256: str  # of the wheel the run installed
  wheel_file: str
  tested_by: str
  recorded_at: str
  status: str  # passed | failed
  results: List[ResultEntry]

  @property
  def passed(self) -> bool:
    return self.status == layout.STATUS_PASSED

  def failures(self) -> List[str]:
    return [f'{r["check"]}: {r["message"]}' for r in self.results if not r['passed']]

  @classmethod
  def from_dict(cls, raw: Mapping[str, Any], source: str) -> 'Evidence':
    try:
      found = cls(**{f.name: raw[f.name] for f in dataclasses.fields(cls)})
      if not isinstance(found.results, list) or not all(
          isinstance(r, dict) and isinstance(r.get('passed'), bool) for r in found.results):
        raise TypeError('results is not a list of check results')
    except (KeyError, TypeError) as error:
      raise HarnessError(f'{source} is not a test-run evidence record (bad or missing field '
                         f'{error}). Inspect it and remove it. Nothing was changed.') from None
    return found


def evidence_dir(bucket_url: str, build_id: str) -> str:
  return layout.Env(bucket_url, layout.TEST).path(EVIDENCE, layout.validate_build_id(build_id))


def run_name(tested_by: str) -> str:
  """``tested_by`` (``composer:<dag>/<run id>``) as a file name."""
  return _RUN_NAME.sub('-', tested_by).strip('-.')[:150] or 'run'


def write_evidence(bucket_url: str, build_id: str, sha256: str, wheel_file: str,
                   results: List[ResultEntry], tested_by: str) -> Tuple[str, Evidence]:
  """Adds a run's evidence as a new record; returns (its path, the record). The build's passed
  record and report are only read: evidence for other bytes than the tested ones is refused."""
  if not results:
    raise HarnessError(f'no test results to record for build {build_id}')
  test = layout.Env(bucket_url, layout.TEST)
  for path, what in ((test.passed(build_id), 'test-passed record'),
                     (test.report(build_id), 'test report')):
    if bucket.exists(path):
      recorded = bucket.read_json(path, f'{what} of {build_id}').get('sha256')
      if recorded != sha256:
        raise HarnessError(f'{path} records wheel {recorded}, not {sha256}: refusing to record '
                           f'evidence of other bytes for build {build_id}')
      break
  entries = [ResultEntry({**r, 'tested_by': r.get('tested_by', tested_by)})
             for r in results]
  record = Evidence(build_id=build_id, sha256=sha256, wheel_file=wheel_file, tested_by=tested_by,
                    recorded_at=layout.now_utc(),
                    status=(layout.STATUS_PASSED if all(r['passed'] for r in entries)
                            else layout.STATUS_FAILED),
                    results=entries)
  data = (json.dumps(dataclasses.asdict(record), indent=2, sort_keys=True) + '\n').encode('utf-8')
  base = layout.join(evidence_dir(bucket_url, build_id), run_name(tested_by))
  for copy in range(1, _MAX_COPIES + 1):
    path = f'{base}.json' if copy == 1 else f'{base}-{copy}.json'
    if bucket.create_exclusive(path, data):
      return path, record
  raise HarnessError(f'{base}.json and {_MAX_COPIES - 1} numbered copies exist: refusing to add '
                     f'more evidence of the run {tested_by}')


def read_evidence(bucket_url: str, build_id: str) -> List[Evidence]:
  """Every run's evidence on ``build_id``, by file name; an unreadable one is refused."""
  found = []
  for path in bucket.list_files(evidence_dir(bucket_url, build_id)):
    if path.endswith('.json'):
      found.append(Evidence.from_dict(bucket.read_json(path, 'test-run evidence'), path))
  return found


def required(bucket_url: str) -> bool:
  """Whether deploys need a passing run's evidence: the environment variable or prod settings.
  A value of the variable other than 1/true/yes or 0/false/no (or empty) is refused."""
  value = os.environ.get(REQUIRE_ENV_VAR, '').strip().lower()
  if value in ('1', 'true', 'yes'):
    return True
  if value not in ('', '0', 'false', 'no'):
    raise HarnessError(f'${REQUIRE_ENV_VAR} is {os.environ[REQUIRE_ENV_VAR]!r}: expected 1 or 0 '
                       f'(true/false, yes/no). Nothing was changed.')
  prod = layout.Env(bucket_url, layout.PROD)
  if not bucket.exists(prod.settings):
    return False
  return bool(bucket.read_json(prod.settings, 'prod settings').get(REQUIRE_SETTING))


def check_evidence(bucket_url: str, passed: TestReport, event: str = layout.EVENT_DEPLOY) -> None:
  """Refuses ``passed``'s build when a run of it failed, when evidence names other bytes, or (when
  required) when no run of it passed."""
  build_id = passed.build_id
  where = evidence_dir(bucket_url, build_id)
  try:
    runs = read_evidence(bucket_url, build_id)
  except Refusal as error:
    raise HarnessError(f'{event}: the evidence of build {build_id} cannot be read: {error}') from None
  for run in runs:
    if (run.build_id, run.sha256) != (build_id, passed.sha256):
      raise HarnessError(f'{event}: evidence in {where} names build {run.build_id} with wheel '
                         f'{run.sha256}, not the tested {passed.sha256}: inspect and remove it. '
                         f'Nothing was changed.')
    if not run.passed:
      raise HarnessError(f'build {build_id} did not pass test: the run {run.tested_by} failed '
                         f'({"; ".join(run.failures()) or run.status}; evidence in {where}). Fix '
                         f'and test a new build. Nothing was changed.')
  if not any(run.passed for run in runs) and required(bucket_url):
    raise HarnessError(f'build {build_id} has no passing test run on Dataflow/Composer (none in '
                       f'{where}) and deploys require one (${REQUIRE_ENV_VAR} or '
                       f'"{REQUIRE_SETTING}" in prod/settings.json): trigger the test DAG on it. '
                       f'Nothing was changed.')
