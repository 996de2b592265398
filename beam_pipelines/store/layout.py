"""The harness contract: bucket layout, variable names, manifest fields and build ids, in one place.

A bucket is a URL: a local directory (default ``bucket/`` at the repository root) or ``gs://name``.
Each environment (``test``, ``prod``) is a prefix of it, the tutorial's buckets::

    <bucket>/<env>/artifacts/<build_id>/<wheel>            the deployable artifact (never rebuilt)
    <bucket>/<env>/artifacts/<build_id>/<sdist>
    <bucket>/<env>/artifacts/<build_id>/workflows/<name>.json   workflow definitions of the build
    <bucket>/<env>/artifacts/<build_id>/dags/<file>.py     the build's Composer DAG files
    <bucket>/<env>/artifacts/<build_id>/manifest.json      build manifest (sha256 of each file)
    <bucket>/<env>/workflows/<build_id>/<name>.json        deployed workflow definitions ("DAGs")
    <bucket>/<env>/variables.json                          deployment variables (Composer variables)
    <bucket>/test/variables/<build_id>.json                each tested build's own variables: what
                                                           a test DAG run asked for that build reads
    <bucket>/<env>/inputs/<pipeline>/...                   workflow inputs
    <bucket>/<env>/references/<pipeline>/...               golden references (test)
    <bucket>/<env>/results/<build_id>/<pipeline>/...       test outputs; report.json per build (test)
    <bucket>/<env>/results/runs/<run_id>/<pipeline>/...    outputs of `invoke run`
    <bucket>/<env>/staging/, <bucket>/<env>/temp/          staging and temp locations (Dataflow)
    <bucket>/test/passed/<build_id>.json                   "test passed" records (what prod consumes)
    <bucket>/prod/history/<event_id>.json                  deployment history, one object per event
    <bucket>/prod/deploy.lock                              deploy/rollback lock (exclusive create)
    <bucket>/prod/settings.json                            {"require_approval": bool}
    <bucket>/<env>/inputs/ct/<pipeline>/<span>/*.csv       continuous training: landing area (prod)
    <bucket>/<env>/ct/<pipeline>/{runs,spans,cache}/...    ct lineage, processed spans, step cache
    <bucket>/<env>/registry/<pipeline>/...                 model registry (beam_pipelines.ct.registry)

``variables.json`` is the single commit point of a deployment: everything it names is written (and
verified) before it, and it is replaced in one atomic write. A reader sees the previous deployment
or the new one, never a mix.
"""

from __future__ import annotations

import datetime
import re
import secrets
from typing import Final, Optional

from beam_pipelines.store.errors import InvalidNameError

# Environments
TEST, PROD = 'test', 'prod'
ENVIRONMENTS = (TEST, PROD)

# Environment variables and defaults
BUCKET_ENV_VAR = 'BEAM_PIPELINES_BUCKET'
DEFAULT_BUCKET_DIR = 'bucket'  # relative to the repository root; gitignored
CACHE_DIR = '.harness-cache'  # installed wheels, keyed by sha256; gitignored
CACHE_ENV_VAR = 'BEAM_PIPELINES_CACHE'  # overrides CACHE_DIR
APPROVAL_ENV_VAR = 'BEAM_PIPELINES_REQUIRE_APPROVAL'  # "1" forces the approval gate on
CRASH_ENV_VAR = 'BEAM_PIPELINES_CRASH_AT'  # test hook: SIGKILL self at a named crash point
UNIT_TESTS_ENV_VAR = 'BEAM_PIPELINES_UNIT_TESTS'  # pytest paths of the unit-test gate (default: all)

# Local build outputs (repository-relative)
DIST_DIR = 'dist'
WORKFLOWS_SOURCE_DIR = 'build/workflows'
DAGS_SOURCE_DIR = 'build/dags'  # the Composer DAG files, shipped in each build as dags/<file>
SUPPORT_FILES_DIR = 'build/support-files'
# Files staged into the test environment before the test workflow runs: bucket path <- repo path.
TEST_FIXTURES = {
    'inputs/wordcount/input.txt': f'{SUPPORT_FILES_DIR}/input.txt',
    'references/wordcount/reference.txt': f'{SUPPORT_FILES_DIR}/reference.txt',
}
# Prod inputs seeded from the test environment on deploy when prod has none (first deploy only).
PROD_SEED_INPUTS = {'inputs/wordcount/input.txt': 'inputs/wordcount/input.txt'}

# Object names inside an environment
ARTIFACTS = 'artifacts'
WORKFLOWS = 'workflows'
DAGS = 'dags'  # <env>/artifacts/<build_id>/dags/<file>.py: the build's Composer DAG files
INPUTS = 'inputs'
REFERENCES = 'references'
RESULTS = 'results'
RUNS = 'runs'
STAGING = 'staging'
TEMP = 'temp'
PASSED = 'passed'
HISTORY = 'history'
VARIABLES_FILE = 'variables.json'
BUILD_VARIABLES = 'variables'  # <env>/variables/<build_id>.json
MANIFEST_FILE = 'manifest.json'
LOCK_FILE = 'lock.txt'  # requirements/lock.txt, shipped with each build's artifacts
LOCK_SOURCE = 'requirements/lock.txt'
REPORT_FILE = 'report.json'
RECORD_LOCK_FILE = 'record.lock'  # serialises writers of a build's test report
DEPLOY_LOCK_FILE = 'deploy.lock'  # the prod deploy/rollback lock
SETTINGS_FILE = 'settings.json'
CT = 'ct'  # <env>/ct/ (continuous training) and <env>/inputs/ct/ (its landing area)
REGISTRY = 'registry'  # <env>/registry/<model>/

# Deployment variables (keys of variables.json)
VAR_BUILD_ID = 'build_id'
VAR_VERSION = 'version'
VAR_WHEEL_FILE = 'wheel_file'  # full URL of the wheel in the bucket
VAR_SHA256 = 'sha256'  # sha256 of the wheel
VAR_MANIFEST_FILE = 'manifest_file'
VAR_MANIFEST_SHA256 = 'manifest_sha256'  # sha256 of manifest_file: pins the wheel and workflows
VAR_LOCK_FILE = 'lock_file'  # the build's requirements lock: pip constraints of every install
VAR_LOCK_SHA256 = 'lock_sha256'
VAR_WORKFLOWS_DIR = 'workflows_dir'
VAR_INPUT_LOCATION = 'input_location'
VAR_OUTPUT_LOCATION = 'output_location'
VAR_REFERENCE_LOCATION = 'reference_location'
VAR_STAGING_LOCATION = 'staging_location'
VAR_TEMP_LOCATION = 'temp_location'
VAR_DEPLOYED_AT = 'deployed_at'
VAR_DEPLOYED_BY = 'deployed_by'
VAR_EVENT = 'event'  # deploy | rollback | test
VAR_EVENT_ID = 'event_id'  # name of the history object of this deployment (prod)
VAR_PREVIOUS_BUILD_ID = 'previous_build_id'
REQUIRED_VARIABLES = (VAR_BUILD_ID, VAR_WHEEL_FILE, VAR_SHA256, VAR_MANIFEST_FILE,
                      VAR_WORKFLOWS_DIR)

# Manifest fields
M_NAME: Final = 'name'
M_VERSION: Final = 'version'
M_BUILD_ID: Final = 'build_id'
M_CREATED_AT: Final = 'created_at'
M_GIT_COMMIT: Final = 'git_commit'
M_GIT_DIRTY: Final = 'git_dirty'
M_SOURCE_DATE_EPOCH: Final = 'source_date_epoch'
M_PYTHON: Final = 'python_version'
M_BEAM: Final = 'beam_version'
M_WHEEL: Final = 'wheel'  # relative name of the wheel among files
M_SDIST: Final = 'sdist'
M_FILES: Final = 'files'  # {relative name: {"sha256": hex, "size": bytes}}

# Records
EVENT_DEPLOY, EVENT_ROLLBACK = 'deploy', 'rollback'
STATUS_PASSED, STATUS_FAILED = 'passed', 'failed'
WHEEL_NAME_PATTERN = re.compile(r'[A-Za-z0-9_.+-]+\.whl')  # a plain file name, no directory

# Build ids: UTC time, short commit, random suffix. Sortable by time; unique; path-safe.
BUILD_ID_PATTERN = re.compile(r'[0-9]{8}T[0-9]{6}Z-[0-9a-f]{7}-[0-9a-f]{6}')
NO_COMMIT = '0000000'


def new_build_id(commit: Optional[str], now: Optional[datetime.datetime] = None) -> str:
  """A fresh build id such as ``20261126T153000Z-5bea069-3f9a1c``."""
  now = now or datetime.datetime.now(datetime.timezone.utc)
  short = (commit or NO_COMMIT)[:7].lower()
  return f'{now.strftime("%Y%m%dT%H%M%SZ")}-{short}-{secrets.token_hex(3)}'


def validate_build_id(build_id: str) -> str:
  """Returns ``build_id`` if it has the build-id format; raises InvalidNameError otherwise.

  Rejects anything that could escape its prefix (``../x``, ``a/b``) or is not a build id at all.
  """
  if not isinstance(build_id, str) or not BUILD_ID_PATTERN.fullmatch(build_id):
    raise InvalidNameError(
        f'invalid build id {build_id!r}: expected UTC time, short commit and a random suffix, '
        f'like 20261126T153000Z-5bea069-3f9a1c')
  return build_id


NAME_PATTERN = re.compile(r'[a-z][a-z0-9_-]{0,62}')


def validate_name(name: str, what: str = 'name') -> str:
  """A path-safe name (a pipeline, a model): lower-case letters, digits, ``_`` and ``-``."""
  if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
    raise InvalidNameError(f'invalid {what} {name!r}: use lower-case letters, digits, _ and -, '
                           f'starting with a letter')
  return name


def validate_env(env: str) -> str:
  if env not in ENVIRONMENTS:
    raise InvalidNameError(f'unknown environment {env!r}: choose one of {", ".join(ENVIRONMENTS)}')
  return env


def join(base: str, *parts: str) -> str:
  """Joins URL/path parts with '/' (works for local paths and gs:// alike)."""
  out = base.rstrip('/')
  for part in parts:
    out = f'{out}/{part.strip("/")}'
  return out


def now_utc() -> str:
  """ISO-8601 UTC time with seconds, used in every record."""
  return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


def event_id(event: str, build_id: str) -> str:
  """Name of a history object: sortable by time, unique per event."""
  stamp = datetime.datetime.now(datetime.timezone.utc).strftime('%Y%m%dT%H%M%S%fZ')
  return f'{stamp}-{event}-{build_id}'


class Env:
  """Paths of one environment of a bucket."""

  def __init__(self, bucket: str, env: str):
    self.bucket = bucket.rstrip('/')
    self.name = validate_env(env)
    self.root = join(self.bucket, env)

  def path(self, *parts: str) -> str:
    return join(self.root, *parts)

  def artifacts(self, build_id: str) -> str:
    return self.path(ARTIFACTS, validate_build_id(build_id))

  def artifact(self, build_id: str, name: str) -> str:
    if name.startswith('/') or '..' in name.split('/'):
      raise InvalidNameError(f'invalid artifact name {name!r}')
    return join(self.artifacts(build_id), name)

  def manifest(self, build_id: str) -> str:
    return join(self.artifacts(build_id), MANIFEST_FILE)

  def workflows(self, build_id: str) -> str:
    return self.path(WORKFLOWS, validate_build_id(build_id))

  @property
  def variables(self) -> str:
    return self.path(VARIABLES_FILE)

  def build_variables(self, build_id: str) -> str:
    """The variables one build was tested with, kept after a later build replaced
    ``variables.json``: a test DAG run triggered for that build reads these."""
    return self.path(BUILD_VARIABLES, f'{validate_build_id(build_id)}.json')

  @property
  def inputs(self) -> str:
    return self.path(INPUTS)

  @property
  def references(self) -> str:
    return self.path(REFERENCES)

  @property
  def results(self) -> str:
    return self.path(RESULTS)

  def build_results(self, build_id: str) -> str:
    return self.path(RESULTS, validate_build_id(build_id))

  def report(self, build_id: str) -> str:
    return join(self.build_results(build_id), REPORT_FILE)

  def record_lock(self, build_id: str) -> str:
    return join(self.build_results(build_id), RECORD_LOCK_FILE)

  def run_results(self, run_id: str) -> str:
    return self.path(RESULTS, RUNS, run_id)

  @property
  def staging(self) -> str:
    return self.path(STAGING)

  @property
  def temp(self) -> str:
    return self.path(TEMP)

  @property
  def passed_dir(self) -> str:
    return self.path(PASSED)

  def passed(self, build_id: str) -> str:
    return self.path(PASSED, f'{validate_build_id(build_id)}.json')

  @property
  def history(self) -> str:
    return self.path(HISTORY)

  @property
  def lock(self) -> str:
    return self.path(DEPLOY_LOCK_FILE)

  @property
  def settings(self) -> str:
    return self.path(SETTINGS_FILE)

  def location_variables(self) -> dict:
    """The variables that say where a workflow reads and writes in this environment."""
    return {
        VAR_INPUT_LOCATION: self.inputs,
        VAR_OUTPUT_LOCATION: self.results,
        VAR_REFERENCE_LOCATION: self.references,
        VAR_STAGING_LOCATION: self.staging,
        VAR_TEMP_LOCATION: self.temp,
    }
