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
from typing import Any, Dict, List, Optional

from beam_pipelines.harness import ml_check, publish
from beam_pipelines.harness.errors import HarnessError
from beam_pipelines.harness.results import TestReport, passed_builds, read_passed
from beam_pipelines.store import bucket, layout, records
from beam_pipelines.store.console import progress
from beam_pipelines.store.crash import crash_point
from beam_pipelines.store.history import previous_target
from beam_pipelines.store.lock import BucketLock

# Named points of a deployment where the test hook $BEAM_PIPELINES_CRASH_AT kills the process.
CRASH_POINTS = ('locked', 'copied-wheel', 'copied-artifacts', 'workflows-deployed', 'committed',
                'recorded')


def prod_lock(prod: layout.Env, operation: str) -> BucketLock:
  """The lock that serialises deploys and rollbacks of prod."""
  return BucketLock(prod.lock, operation, guards='prod',
                    unlock_hint='remove the lock with `invoke unlock` (or delete that object)')


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


def load_verified_build(env: layout.Env, build_id: str, passed: TestReport) -> records.Manifest:
  """The manifest of ``build_id`` in ``env``, after checking every file's bytes against it."""
  manifest = records.read_manifest(env.manifest(build_id),
                                   f'manifest of build {build_id} in {env.name}')
  if manifest.build_id != build_id:
    raise HarnessError(f'manifest {env.manifest(build_id)} names build '
                       f'{manifest.build_id!r}, not {build_id}. Refusing.')
  if manifest.wheel_sha256 != passed.sha256:
    raise HarnessError(f'build {build_id}: the manifest\'s wheel sha256 {manifest.wheel_sha256} is '
                       f'not the one that passed test ({passed.sha256}). Refusing.')
  for name, entry in sorted(manifest.files.items()):
    bucket.verify(env.artifact(build_id, name), entry.sha256, f'{env.name} artifact {name}')
  return manifest


def history(bucket_url: str) -> List[Dict[str, Any]]:
  """Deployment history events, oldest first."""
  prod = layout.Env(bucket_url, layout.PROD)
  return [bucket.read_json(p, 'history event') for p in bucket.list_files(prod.history)
          if p.endswith('.json')]


def record_missing_event(prod: layout.Env, live: Optional[records.DeploymentVariables]) -> None:
  """If a killed run committed but could not write its history event, write it now."""
  if not live or not live.get(layout.VAR_EVENT_ID):
    return
  path = layout.join(prod.history, f'{live.get(layout.VAR_EVENT_ID)}.json')
  if not bucket.exists(path):
    bucket.write_json(path, dict(_event(live.values), recovered=True))
    progress(f'history: recorded the {live.get(layout.VAR_EVENT)} of {live.build_id} '
             f'that an interrupted run made live but could not record')


def _event(values: Dict[str, Any]) -> Dict[str, Any]:
  return {k: values.get(k) for k in (
      layout.VAR_EVENT_ID, layout.VAR_EVENT, layout.VAR_BUILD_ID, layout.VAR_PREVIOUS_BUILD_ID,
      layout.VAR_SHA256, layout.VAR_WHEEL_FILE, layout.VAR_DEPLOYED_AT, layout.VAR_DEPLOYED_BY,
      'approved', ml_check.VAR_OVERRIDE, ml_check.VAR_OVERRIDE_PIPELINES)}


def _promote(bucket_url: str, build_id: str, event: str, approved: bool, copy: bool,
             override: Optional[Dict[str, Any]] = None) -> records.DeploymentVariables:
  """Makes ``build_id`` live in prod (caller holds the lock). Returns the new prod variables."""
  test = layout.Env(bucket_url, layout.TEST)
  prod = layout.Env(bucket_url, layout.PROD)
  live = records.deployed(prod)
  record_missing_event(prod, live)
  passed = read_passed(bucket_url, build_id)
  if live and live.build_id == build_id:
    progress(f'{event}: build {build_id} is already live in prod; nothing to do')
    return live
  crash_point('locked')
  if copy:
    manifest = load_verified_build(test, build_id, passed)
    progress(f'{event}: copying build {build_id} to {prod.artifacts(build_id)} (sha256 checked '
             f'on both sides)')
    names = [manifest.wheel] + sorted(n for n in manifest.files if n != manifest.wheel)
    for name in names:
      bucket.copy_verified(test.artifact(build_id, name), prod.artifact(build_id, name),
                           manifest.files[name].sha256, f'artifact {name}')
      if name == manifest.wheel:
        crash_point('copied-wheel')
    bucket.copy_verified(test.manifest(build_id), prod.manifest(build_id),
                         bucket.sha256_of(test.manifest(build_id)), 'manifest')
    crash_point('copied-artifacts')
  else:
    manifest = load_verified_build(prod, build_id, passed)
  publish.deploy_workflows(manifest, prod, prod)  # idempotent; verifies the definitions again
  crash_point('workflows-deployed')
  for target, source in sorted(layout.PROD_SEED_INPUTS.items()):
    if not bucket.list_files(prod.path(target.rsplit('/', 1)[0])) and bucket.exists(test.path(source)):
      bucket.write_bytes(prod.path(target), bucket.read_bytes(test.path(source)))
      progress(f'{event}: prod had no inputs: seeded {prod.path(target)} from the test input')
  values = publish.deployment_variables(
      prod, manifest, event=event, event_id=layout.event_id(event, build_id),
      previous_build_id=live.build_id if live else None, approved=approved,
      **(override or {}))
  bucket.write_json(prod.variables, values)  # the commit point
  crash_point('committed')
  bucket.write_json(layout.join(prod.history, f'{values[layout.VAR_EVENT_ID]}.json'), _event(values))
  crash_point('recorded')
  return records.DeploymentVariables.from_dict(prod.name, values, prod.variables)


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
           override_blessing: Optional[str] = None) -> records.DeploymentVariables:
  """Promotes ``build_id`` (default: the newest passed build) to prod; a build whose model is
  NOT_BLESSED against production is refused unless ``override_blessing`` gives a reason."""
  prod = _checked_request(bucket_url, build_id, approve,
                          'prod deploys need `--approve` (a person has reviewed the test results)')
  with prod_lock(prod, layout.EVENT_DEPLOY):
    if build_id is None:
      passed = passed_builds(bucket_url)
      if not passed:
        raise HarnessError('no build has passed test yet: run `invoke build test` first')
      build_id = passed[-1]
    override = ml_check.refuse_unblessed(read_passed(bucket_url, build_id), build_id,
                                         override_blessing)
    progress(f'deploy: promoting build {build_id} to prod')
    values = _promote(bucket_url, build_id, layout.EVENT_DEPLOY, approve, copy=True,
                      override=override)
  return values


def rollback_target(events: List[Dict[str, Any]], live_build: Optional[str]) -> str:
  """The build deployed before the live one was (last) deployed; deploy events only."""
  deployed = [e[layout.VAR_BUILD_ID] for e in events if e.get(layout.VAR_EVENT) == layout.EVENT_DEPLOY]
  target = previous_target(deployed, live_build)
  if target is None:
    raise HarnessError(f'nothing to roll back to: no build was deployed before {live_build}')
  return target


def rollback(bucket_url: str, build_id: Optional[str] = None,
             approve: bool = False) -> records.DeploymentVariables:
  """Points prod back to the previously deployed build (or ``build_id``), same checks."""
  prod = _checked_request(bucket_url, build_id, approve, 'prod rollbacks need `--approve`')
  with prod_lock(prod, layout.EVENT_ROLLBACK):
    live = records.deployed(prod)
    if live is None:
      raise HarnessError('nothing is deployed in prod: nothing to roll back')
    record_missing_event(prod, live)
    target = build_id or rollback_target(history(bucket_url), live.build_id)
    if not bucket.exists(prod.manifest(target)):
      raise HarnessError(f'build {target} was never deployed to prod ({prod.manifest(target)} '
                         f'missing): use `invoke deploy --build-id {target}`')
    progress(f'rollback: prod {live.build_id} -> {target}')
    return _promote(bucket_url, target, layout.EVENT_ROLLBACK, approve, copy=False)
