"""``invoke deploy`` and ``invoke rollback``: promote the same bytes that passed test to prod.

Order of a deployment (prod variables.json is the single commit point)::

    lock -> checks (passed record, manifest, sha256 of every test artifact) -> copy artifacts to
    prod/artifacts/<id>/ (verified) -> workflows to prod/workflows/<id>/ (verified) ->
    variables.json (one atomic write: the new build is live) -> history event -> unlock

Everything written before the commit point is immutable per build id, so ``kill -9`` anywhere
leaves prod on the previous build or on the new one, complete. The next run removes the stale
lock (saying whose it was) and records a history event that a killed run could not write.
"""

from __future__ import annotations

import os
import signal
from typing import List, Optional

from beam_pipelines.harness import bucket, layout
from beam_pipelines.harness.errors import HarnessError
from beam_pipelines.harness.integration import deploy_workflows, deployment_variables
from beam_pipelines.harness.lock import DeployLock
from beam_pipelines.ml import gate
from beam_pipelines.runtime import progress

# Named points of a deployment where the test hook $BEAM_PIPELINES_CRASH_AT kills the process.
CRASH_POINTS = ('locked', 'copied-wheel', 'copied-artifacts', 'workflows-deployed', 'committed',
                'recorded')


def crash_point(name: str) -> None:
  """Test hook: SIGKILL this process at ``name`` if $BEAM_PIPELINES_CRASH_AT says so."""
  if os.environ.get(layout.CRASH_ENV_VAR) == name:
    progress(f'crash point {name}: killing this process with SIGKILL (test hook)')
    os.kill(os.getpid(), signal.SIGKILL)


def approval_required(bucket_url: str) -> bool:
  """The approval gate: $BEAM_PIPELINES_REQUIRE_APPROVAL=1 or prod/settings.json says so."""
  if os.environ.get(layout.APPROVAL_ENV_VAR, '') in ('1', 'true', 'yes'):
    return True
  prod = layout.Env(bucket_url, layout.PROD)
  if not bucket.exists(prod.settings):
    return False
  return bool(bucket.read_json(prod.settings, 'prod settings').get('require_approval'))


def set_approval(bucket_url: str, required: bool) -> None:
  prod = layout.Env(bucket_url, layout.PROD)
  settings = bucket.read_json(prod.settings, 'prod settings') if bucket.exists(prod.settings) else {}
  settings['require_approval'] = required
  bucket.write_json(prod.settings, settings)


def passed_builds(bucket_url: str) -> List[str]:
  """Build ids with a "test passed" record, oldest first (build ids sort by time)."""
  test = layout.Env(bucket_url, layout.TEST)
  names = [p.rsplit('/', 1)[-1][:-len('.json')] for p in bucket.list_files(test.passed_dir)
           if p.endswith('.json')]
  return sorted(n for n in names if layout.BUILD_ID_PATTERN.fullmatch(n))


def load_verified_build(env: layout.Env, build_id: str, passed: dict) -> dict:
  """The manifest of ``build_id`` in ``env``, after checking every file's bytes against it."""
  manifest = bucket.read_json(env.manifest(build_id), f'manifest of build {build_id} in {env.name}')
  if manifest.get(layout.M_BUILD_ID) != build_id:
    raise HarnessError(f'manifest {env.manifest(build_id)} names build '
                       f'{manifest.get(layout.M_BUILD_ID)!r}, not {build_id}. Refusing.')
  wheel_sha = manifest[layout.M_FILES][manifest[layout.M_WHEEL]]['sha256']
  if wheel_sha != passed.get('sha256'):
    raise HarnessError(f'build {build_id}: the manifest\'s wheel sha256 {wheel_sha} is not the one '
                       f'that passed test ({passed.get("sha256")}). Refusing.')
  for name, entry in sorted(manifest[layout.M_FILES].items()):
    bucket.verify(env.artifact(build_id, name), entry['sha256'], f'{env.name} artifact {name}')
  return manifest


def read_passed(bucket_url: str, build_id: str) -> dict:
  test = layout.Env(bucket_url, layout.TEST)
  if not bucket.exists(test.passed(build_id)):
    raise HarnessError(f'build {build_id} did not pass test: no record at {test.passed(build_id)}. '
                       f'Run `invoke test` on it first. Nothing was changed.')
  passed = bucket.read_json(test.passed(build_id), f'test-passed record of {build_id}')
  if passed.get('build_id') != build_id or passed.get('status') != layout.STATUS_PASSED:
    raise HarnessError(f'{test.passed(build_id)} is not a passed record of {build_id}. Refusing.')
  return passed


def current(prod: layout.Env) -> Optional[dict]:
  """Prod's variables now, None before the first deploy; invalid JSON is refused."""
  if not bucket.exists(prod.variables):
    return None
  return bucket.read_json(prod.variables, 'prod variables')


def history(bucket_url: str) -> List[dict]:
  """Deployment history events, oldest first."""
  prod = layout.Env(bucket_url, layout.PROD)
  return [bucket.read_json(p, 'history event') for p in bucket.list_files(prod.history)
          if p.endswith('.json')]


def record_missing_event(prod: layout.Env, live: Optional[dict]) -> None:
  """If a killed run committed but could not write its history event, write it now."""
  if not live or not live.get(layout.VAR_EVENT_ID):
    return
  path = layout.join(prod.history, f'{live[layout.VAR_EVENT_ID]}.json')
  if not bucket.exists(path):
    bucket.write_json(path, dict(_event(live), recovered=True))
    progress(f'history: recorded the {live.get(layout.VAR_EVENT)} of {live[layout.VAR_BUILD_ID]} '
             f'that an interrupted run made live but could not record')


def _event(values: dict) -> dict:
  return {k: values.get(k) for k in (
      layout.VAR_EVENT_ID, layout.VAR_EVENT, layout.VAR_BUILD_ID, layout.VAR_PREVIOUS_BUILD_ID,
      layout.VAR_SHA256, layout.VAR_WHEEL_FILE, layout.VAR_DEPLOYED_AT, layout.VAR_DEPLOYED_BY,
      'approved', gate.VAR_OVERRIDE)}


def _promote(bucket_url: str, build_id: str, event: str, approved: bool, copy: bool,
             override: Optional[str] = None) -> dict:
  """Makes ``build_id`` live in prod (caller holds the lock). Returns the new prod variables."""
  test = layout.Env(bucket_url, layout.TEST)
  prod = layout.Env(bucket_url, layout.PROD)
  live = current(prod)
  record_missing_event(prod, live)
  passed = read_passed(bucket_url, build_id)
  if live and live.get(layout.VAR_BUILD_ID) == build_id:
    progress(f'{event}: build {build_id} is already live in prod; nothing to do')
    return live
  crash_point('locked')
  if copy:
    manifest = load_verified_build(test, build_id, passed)
    progress(f'{event}: copying build {build_id} to {prod.artifacts(build_id)} (sha256 checked '
             f'on both sides)')
    wheel = manifest[layout.M_WHEEL]
    names = [wheel] + sorted(n for n in manifest[layout.M_FILES] if n != wheel)
    for name in names:
      bucket.copy_verified(test.artifact(build_id, name), prod.artifact(build_id, name),
                           manifest[layout.M_FILES][name]['sha256'], f'artifact {name}')
      if name == wheel:
        crash_point('copied-wheel')
    bucket.copy_verified(test.manifest(build_id), prod.manifest(build_id),
                         bucket.sha256_of(test.manifest(build_id)), 'manifest')
    crash_point('copied-artifacts')
    deploy_workflows(manifest, prod, prod)
  else:
    manifest = load_verified_build(prod, build_id, passed)
    deploy_workflows(manifest, prod, prod)  # idempotent; verifies the definitions again
  crash_point('workflows-deployed')
  for target, source in sorted(layout.PROD_SEED_INPUTS.items()):
    if not bucket.list_files(prod.path(target.rsplit('/', 1)[0])) and bucket.exists(test.path(source)):
      bucket.write_bytes(prod.path(target), bucket.read_bytes(test.path(source)))
      progress(f'{event}: prod had no inputs: seeded {prod.path(target)} from the test input')
  values = deployment_variables(
      prod, manifest, event=event, event_id=layout.event_id(event, build_id),
      previous_build_id=live.get(layout.VAR_BUILD_ID) if live else None, approved=approved,
      **({gate.VAR_OVERRIDE: override} if override else {}))
  bucket.write_json(prod.variables, values)  # the commit point
  crash_point('committed')
  bucket.write_json(layout.join(prod.history, f'{values[layout.VAR_EVENT_ID]}.json'), _event(values))
  crash_point('recorded')
  return values


def _checked_request(bucket_url: str, build_id: Optional[str], approve: bool,
                     gate_message: str) -> layout.Env:
  """The checks every prod change makes before taking the lock: a well-formed build id (if given)
  and the approval gate. Returns the prod environment."""
  if build_id is not None:
    layout.validate_build_id(build_id)
  if approval_required(bucket_url) and not approve:
    raise HarnessError(f'the approval gate is on: {gate_message}. Nothing was changed.')
  return layout.Env(bucket_url, layout.PROD)


def deploy(bucket_url: str, build_id: Optional[str] = None, approve: bool = False,
           override_blessing: Optional[str] = None) -> dict:
  """Promotes ``build_id`` (default: the newest passed build) to prod; a build whose model is
  NOT_BLESSED against production is refused unless ``override_blessing`` gives a reason."""
  prod = _checked_request(bucket_url, build_id, approve,
                          'prod deploys need `--approve` (a person has reviewed the test results)')
  with DeployLock(prod, layout.EVENT_DEPLOY):
    if build_id is None:
      passed = passed_builds(bucket_url)
      if not passed:
        raise HarnessError('no build has passed test yet: run `invoke build test` first')
      build_id = passed[-1]
    override = gate.refuse_unblessed(read_passed(bucket_url, build_id), build_id,
                                     override_blessing)
    progress(f'deploy: promoting build {build_id} to prod')
    values = _promote(bucket_url, build_id, layout.EVENT_DEPLOY, approve, copy=True,
                      override=override)
  return values


def rollback_target(events: List[dict], live_build: Optional[str]) -> str:
  """The build deployed before the live one was (last) deployed; deploy events only."""
  deployed = [e[layout.VAR_BUILD_ID] for e in events if e.get(layout.VAR_EVENT) == layout.EVENT_DEPLOY]
  if live_build in deployed:
    index = len(deployed) - 1 - deployed[::-1].index(live_build)
    earlier = [b for b in deployed[:index] if b != live_build]
  else:
    earlier = [b for b in deployed if b != live_build]
  if not earlier:
    raise HarnessError(f'nothing to roll back to: no build was deployed before {live_build}')
  return earlier[-1]


def rollback(bucket_url: str, build_id: Optional[str] = None, approve: bool = False) -> dict:
  """Points prod back to the previously deployed build (or ``build_id``), same checks."""
  prod = _checked_request(bucket_url, build_id, approve, 'prod rollbacks need `--approve`')
  with DeployLock(prod, layout.EVENT_ROLLBACK):
    live = current(prod)
    if live is None:
      raise HarnessError('nothing is deployed in prod: nothing to roll back')
    record_missing_event(prod, live)
    target = build_id or rollback_target(history(bucket_url), live.get(layout.VAR_BUILD_ID))
    if not bucket.exists(prod.manifest(target)):
      raise HarnessError(f'build {target} was never deployed to prod ({prod.manifest(target)} '
                         f'missing): use `invoke deploy --build-id {target}`')
    progress(f'rollback: prod {live.get(layout.VAR_BUILD_ID)} -> {target}')
    return _promote(bucket_url, target, layout.EVENT_ROLLBACK, approve, copy=False)
