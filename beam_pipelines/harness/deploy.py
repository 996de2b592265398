"""``invoke deploy`` and ``invoke rollback``: promote the same bytes that passed test to prod.

Order of a deployment (prod variables.json is the single commit point)::

    lock -> checks (passed record, test-run evidence, manifest, sha256 of every test artifact)
    -> copy artifacts to prod/artifacts/<id>/ (verified) -> workflows to prod/workflows/<id>/
    (verified) -> variables.json (one atomic write: the new build is live) -> history event -> unlock

Everything written before the commit point is immutable per build id, so ``kill -9`` anywhere
leaves prod on the previous build or on the new one, complete. The next run removes the stale
lock (saying whose it was) and records a history event that a killed run could not write. A
failure after the commit point is reported as such (``CommittedError``: the new build IS live),
never as "nothing was changed".

The chain deploy checks: the "test passed" record names the sha256 of the build's manifest, the
manifest names the sha256 of the wheel and of each workflow definition, and prod's variables pin
the manifest again, so ``run`` checks the same chain from prod's side.
"""

from __future__ import annotations

import os
from typing import List, Mapping, Optional, Tuple

from beam_pipelines.harness import checks, evidence, ml_check, publish, workflows
from beam_pipelines.harness.errors import HarnessError
from beam_pipelines.harness.results import TestReport, passed_builds, read_passed, read_report
from beam_pipelines.store import bucket, layout, records
from beam_pipelines.store.console import progress
from beam_pipelines.store.crash import crash_point
from beam_pipelines.store.errors import Refusal, UntrustedPointerError
from beam_pipelines.store.history import previous_target
from beam_pipelines.store.lock import BucketLock

HistoryEvent = records.Variables  # a deployment's variables that say what went live, and when

# Named points of a deployment where the test hook $BEAM_PIPELINES_CRASH_AT kills the process.
CRASH_POINTS = ('locked', 'copied-wheel', 'copied-artifacts', 'workflows-deployed', 'committed',
                'recorded')


class CommittedError(HarnessError):
  """A failure after the commit point: the new build is live; the message says what is missing."""
  committed = True


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


def pinned_manifest_sha256(build_id: str, passed: TestReport) -> str:
  """The sha256 of the build's manifest that its "test passed" record names; refuses without one."""
  if not passed.manifest_sha256:
    raise HarnessError(f'the test-passed record of {build_id} does not name its manifest\'s '
                       f'sha256 (written before manifests were pinned): run `invoke test` on '
                       f'that build again. Nothing was changed.')
  return passed.manifest_sha256


def load_verified_build(env: layout.Env, build_id: str, passed: TestReport) -> records.Manifest:
  """The manifest of ``build_id`` in ``env``, after checking every file's bytes against it and
  its own bytes against the sha256 the "test passed" record names."""
  manifest = records.read_manifest(env.manifest(build_id),
                                   f'manifest of build {build_id} in {env.name}',
                                   pinned_manifest_sha256(build_id, passed))
  if manifest.build_id != build_id:
    raise HarnessError(f'manifest {env.manifest(build_id)} names build '
                       f'{manifest.build_id!r}, not {build_id}. Refusing.')
  if manifest.wheel_sha256 != passed.sha256:
    raise HarnessError(f'build {build_id}: the manifest\'s wheel sha256 {manifest.wheel_sha256} is '
                       f'not the one that passed test ({passed.sha256}). Refusing.')
  for name, entry in sorted(manifest.files.items()):
    bucket.verify(env.artifact(build_id, name), entry.sha256, f'{env.name} artifact {name}')
  return manifest


def history_with_skipped(bucket_url: str) -> Tuple[List[HistoryEvent], List[str]]:
  """(deployment history events oldest first, refusals of the entries that could not be read).

  An unreadable entry (not JSON, not an object) is skipped and reported, never blocks a reader.
  """
  prod = layout.Env(bucket_url, layout.PROD)
  events, skipped = [], []
  for path in bucket.list_files(prod.history):
    if not path.endswith('.json'):
      continue
    try:
      event = bucket.read_json(path, 'history event')
    except Refusal as error:
      skipped.append(str(error))
      continue
    build_id = event.get(layout.VAR_BUILD_ID)
    if not isinstance(event.get(layout.VAR_EVENT), str) or not isinstance(build_id, str) or not (
        layout.BUILD_ID_PATTERN.fullmatch(build_id)):
      skipped.append(f'history event at {path} lacks a valid "event" or "build_id". '
                     f'Nothing was changed.')
      continue
    events.append(event)
  return events, skipped


def history(bucket_url: str) -> List[HistoryEvent]:
  """Deployment history events, oldest first (unreadable entries skipped, with a message)."""
  events, skipped = history_with_skipped(bucket_url)
  for message in skipped:
    progress(f'history: skipped an unreadable entry: {message}')
  return events


def live_deployment_ok(prod: layout.Env) -> Optional[str]:
  """None if prod's live deployment verifies end to end (variables, manifest, definitions, wheel
  bytes), else why not."""
  try:
    deployment = workflows.verified_deployment(prod, checks.CHECKS)
    bucket.verify(deployment.variables.wheel_file, deployment.variables.sha256, 'prod wheel')
  except Refusal as error:
    return str(error)
  return None


def _live(prod: layout.Env) -> Optional[records.DeploymentVariables]:
  """Prod's variables; ones pointing outside their build are reported and treated as no build."""
  try:
    return records.deployed(prod)
  except UntrustedPointerError as error:
    progress(f'prod: {error} They will be replaced.')
    return None


def record_missing_event(prod: layout.Env, live: Optional[records.DeploymentVariables]) -> None:
  """If a killed run committed but could not write its history event, write it now."""
  if not live or not live.get(layout.VAR_EVENT_ID):
    return
  path = layout.join(prod.history, f'{live.get(layout.VAR_EVENT_ID)}.json')
  if not bucket.exists(path):
    bucket.write_json(path, dict(_event(live.values), recovered=True))
    progress(f'history: recorded the {live.get(layout.VAR_EVENT)} of {live.build_id} '
             f'that an interrupted run made live but could not record')


def _event(values: Mapping[str, records.VariableValue]) -> HistoryEvent:
  return {k: values.get(k) for k in (
      layout.VAR_EVENT_ID, layout.VAR_EVENT, layout.VAR_BUILD_ID, layout.VAR_PREVIOUS_BUILD_ID,
      layout.VAR_SHA256, layout.VAR_WHEEL_FILE, layout.VAR_DEPLOYED_AT, layout.VAR_DEPLOYED_BY,
      'approved', ml_check.VAR_OVERRIDE, ml_check.VAR_OVERRIDE_PIPELINES)}


def _promote(bucket_url: str, build_id: str, event: str, approved: bool, copy: bool,
             override: Optional[ml_check.BlessingOverride] = None) -> records.DeploymentVariables:
  """Makes ``build_id`` live in prod (caller holds the lock). Returns the new prod variables."""
  test = layout.Env(bucket_url, layout.TEST)
  prod = layout.Env(bucket_url, layout.PROD)
  live = _live(prod)
  record_missing_event(prod, live)
  passed = read_passed(bucket_url, build_id)
  if live and live.build_id == build_id:
    problem = live_deployment_ok(prod)
    if problem is None:
      progress(f'{event}: build {build_id} is already live in prod (verified); nothing to do')
      return live
    progress(f'{event}: build {build_id} is named live in prod but does not verify ({problem}); '
             f'deploying it again')
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
                         pinned_manifest_sha256(build_id, passed), 'manifest')
    crash_point('copied-artifacts')
  else:
    manifest = load_verified_build(prod, build_id, passed)
  publish.deploy_workflows(manifest, prod, prod)  # idempotent; verifies the definitions again
  crash_point('workflows-deployed')
  for target, source in sorted(layout.PROD_SEED_INPUTS.items()):
    if not bucket.list_files(prod.path(target.rsplit('/', 1)[0])) and bucket.exists(test.path(source)):
      bucket.write_bytes(prod.path(target), bucket.read_bytes(test.path(source)))
      progress(f'{event}: prod had no inputs: seeded {prod.path(target)} from the test input')
  recorded: records.Variables = {} if override is None else {
      ml_check.VAR_OVERRIDE: override[ml_check.VAR_OVERRIDE],
      ml_check.VAR_OVERRIDE_PIPELINES: override[ml_check.VAR_OVERRIDE_PIPELINES]}
  values = publish.deployment_variables(
      prod, manifest, event=event, event_id=layout.event_id(event, build_id),
      previous_build_id=live.build_id if live else None, approved=approved, **recorded)
  bucket.write_json(prod.variables, values)  # the commit point
  try:
    crash_point('committed')
    bucket.write_json(layout.join(prod.history, f'{values[layout.VAR_EVENT_ID]}.json'),
                      _event(values))
    crash_point('recorded')
  except (Refusal, OSError) as error:
    raise CommittedError(f'build {build_id} IS LIVE in prod ({prod.variables} was written), but '
                         f'its history event could not be written: {error}. The next deploy or '
                         f'rollback records it.') from None
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
    bucket.remove_stale_temps(prod.root, layout.EVENT_DEPLOY)
    if build_id is None:
      build_id = newest_deployable(bucket_url)
    passed = read_passed(bucket_url, build_id)
    evidence.check_evidence(bucket_url, passed)  # a failed test run refuses; a passing one if required
    override = ml_check.refuse_unblessed(passed, build_id, override_blessing)
    progress(f'deploy: promoting build {build_id} to prod')
    values = _promote(bucket_url, build_id, layout.EVENT_DEPLOY, approve, copy=True,
                      override=override)
  return values


def newest_deployable(bucket_url: str) -> str:
  """The newest passed build, refused when a newer build failed its test (deploying an older
  build must then be asked for by its id)."""
  passed = passed_builds(bucket_url)
  if not passed:
    raise HarnessError('no build has passed test yet: run `invoke build test` first')
  test = layout.Env(bucket_url, layout.TEST)
  tested = sorted(p.rsplit('/', 2)[-2] for p in bucket.list_tree(test.results)
                  if p.endswith('/' + layout.REPORT_FILE)
                  and layout.BUILD_ID_PATTERN.fullmatch(p.rsplit('/', 2)[-2]))
  newer = [b for b in tested if b > passed[-1]]
  if newer:
    try:
      status = read_report(test.report(newer[-1])).status
    except Refusal as error:
      status = f'unreadable ({error})'
    raise HarnessError(f'the newest tested build {newer[-1]} did not pass (test {status}); the '
                       f'newest passed build is the older {passed[-1]}. Fix and test again, or '
                       f'deploy the older one explicitly: invoke deploy --build-id {passed[-1]}. '
                       f'Nothing was changed.')
  return passed[-1]


def rollback_target(events: List[HistoryEvent], live_build: Optional[str]) -> str:
  """The build deployed before the live one was (last) deployed; deploy events only."""
  deployed = [build for e in events if e.get(layout.VAR_EVENT) == layout.EVENT_DEPLOY
              for build in [e.get(layout.VAR_BUILD_ID)] if isinstance(build, str)]
  target = previous_target(deployed, live_build)
  if target is None:
    raise HarnessError(f'nothing to roll back to: no build was deployed before {live_build}')
  return target


def rollback(bucket_url: str, build_id: Optional[str] = None, approve: bool = False,
             override_blessing: Optional[str] = None) -> records.DeploymentVariables:
  """Points prod back to the previously deployed build (or ``build_id``), same checks; a target
  whose model was NOT_BLESSED needs ``override_blessing`` (recorded), as a deploy does."""
  prod = _checked_request(bucket_url, build_id, approve, 'prod rollbacks need `--approve`')
  with prod_lock(prod, layout.EVENT_ROLLBACK):
    bucket.remove_stale_temps(prod.root, layout.EVENT_ROLLBACK)
    live = _live(prod)
    if live is None:
      raise HarnessError('nothing is deployed in prod: nothing to roll back')
    record_missing_event(prod, live)
    target = build_id or rollback_target(history(bucket_url), live.build_id)
    if not bucket.exists(prod.manifest(target)):
      raise HarnessError(f'build {target} was never deployed to prod ({prod.manifest(target)} '
                         f'missing): use `invoke deploy --build-id {target}`')
    passed = read_passed(bucket_url, target)
    evidence.check_evidence(bucket_url, passed, layout.EVENT_ROLLBACK)
    override = ml_check.refuse_unblessed(passed, target, override_blessing,
                                         event=layout.EVENT_ROLLBACK)
    progress(f'rollback: prod {live.build_id} -> {target}')
    return _promote(bucket_url, target, layout.EVENT_ROLLBACK, approve, copy=False,
                    override=override)
