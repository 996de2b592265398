"""``invoke test``: the tutorial's test environment, step by step.

Upload the built wheel and manifest under the build id, deploy the build's workflow definitions,
stage the integration input and golden reference, set the test variables, then run every test
workflow from the *uploaded* wheel (in parallel, one process each) and its checks; write the
report, and on success the "test passed" record that ``deploy`` consumes. The ML workflow
(``ml_test``, level 2) gets the model to beat from ``beam_pipelines.ml.gate``; the report keeps its
metrics and blessing under ``"ml"``.
"""

from __future__ import annotations

import concurrent.futures
import getpass
import pathlib
import socket
from typing import Dict

from beam_pipelines.harness import bucket, deployed, layout, workflows
from beam_pipelines.harness.build import load_local_manifest
from beam_pipelines.harness.errors import HarnessError
from beam_pipelines.ml import gate
from beam_pipelines.runtime import progress


def actor() -> str:
  return f'{getpass.getuser()}@{socket.gethostname()}'


def upload(manifest: dict, dist: pathlib.Path, env: layout.Env) -> None:
  """Uploads every file of the build and its manifest; verifies each upload's sha256."""
  build_id = manifest[layout.M_BUILD_ID]
  for name, entry in sorted(manifest[layout.M_FILES].items()):
    target = env.artifact(build_id, name)
    bucket.write_bytes(target, (dist / name).read_bytes())
    bucket.verify(target, entry['sha256'], f'uploaded {name}')
  bucket.write_bytes(env.manifest(build_id), (dist / layout.MANIFEST_FILE).read_bytes())


def deploy_workflows(manifest: dict, source: layout.Env, target: layout.Env) -> str:
  """Copies the build's workflow definitions to ``<target>/workflows/<build_id>/`` (verified)."""
  build_id = manifest[layout.M_BUILD_ID]
  for name, entry in sorted(manifest[layout.M_FILES].items()):
    if name.startswith(layout.WORKFLOWS + '/'):
      bucket.copy_verified(source.artifact(build_id, name),
                           layout.join(target.workflows(build_id), name.split('/', 1)[1]),
                           entry['sha256'], f'workflow definition {name}')
  return target.workflows(build_id)


def deployment_variables(env: layout.Env, manifest: dict, **extra: str) -> Dict[str, str]:
  """The variables of ``env`` for the build of ``manifest`` (what every workflow reads)."""
  build_id = manifest[layout.M_BUILD_ID]
  wheel = manifest[layout.M_WHEEL]
  values = {
      layout.VAR_BUILD_ID: build_id,
      layout.VAR_VERSION: manifest[layout.M_VERSION],
      layout.VAR_WHEEL_FILE: env.artifact(build_id, wheel),
      layout.VAR_SHA256: manifest[layout.M_FILES][wheel]['sha256'],
      layout.VAR_MANIFEST_FILE: env.manifest(build_id),
      layout.VAR_WORKFLOWS_DIR: env.workflows(build_id),
      layout.VAR_DEPLOYED_AT: layout.now_utc(),
      layout.VAR_DEPLOYED_BY: actor(),
  }
  values.update(env.location_variables())
  values.update(extra)
  return values


def read_variables(env: layout.Env) -> Dict[str, str]:
  """An environment's variables; invalid JSON or missing keys are refused with the reason."""
  values = bucket.read_json(env.variables, f'{env.name} variables')
  missing = [k for k in layout.REQUIRED_VARIABLES if not values.get(k)]
  if missing:
    raise HarnessError(f'{env.name} variables at {env.variables} lack {", ".join(missing)}. '
                       f'Nothing was changed.')
  layout.validate_build_id(values[layout.VAR_BUILD_ID])
  return values


def run_test(repo: pathlib.Path, bucket_url: str) -> dict:
  """Runs the test step for the last local build; returns the passed record (raises on failure)."""
  manifest = load_local_manifest(repo)
  build_id = manifest[layout.M_BUILD_ID]
  env = layout.Env(bucket_url, layout.TEST)
  if bucket.exists(env.variables):
    bucket.read_json(env.variables, 'test variables')  # refuse to overwrite what we cannot read
  progress(f'test: uploading build {build_id} to {env.artifacts(build_id)}')
  upload(manifest, repo / layout.DIST_DIR, env)
  workflows_dir = deploy_workflows(manifest, env, env)
  progress(f'test: workflow definitions deployed to {workflows_dir}')
  for target, source in sorted(layout.TEST_FIXTURES.items()):
    bucket.write_bytes(env.path(target), (repo / source).read_bytes())
  progress(f'test: integration input and reference staged under {env.inputs}, {env.references}')
  ml_values = gate.baseline_variables(bucket_url)
  progress(f'test: ML check baseline: {ml_values[gate.VAR_BASELINE_SOURCE]}')
  bucket.write_json(env.variables, deployment_variables(env, manifest, event='test', **ml_values))
  progress(f'test: variables set: {env.variables}')

  values = read_variables(env)  # as the test DAG does: everything from the variables
  if values[layout.VAR_BUILD_ID] != build_id:
    raise HarnessError(f'another `invoke test` replaced {env.variables} (now build '
                       f'{values[layout.VAR_BUILD_ID]}) while this one ran; run `invoke test` again')
  site = deployed.install(values[layout.VAR_WHEEL_FILE], values[layout.VAR_SHA256],
                          deployed.cache_root(repo))
  definitions = [d for d in workflows.load_deployed(values[layout.VAR_WORKFLOWS_DIR])
                 if d['env'] == layout.TEST]
  if not definitions:
    raise HarnessError(f'build {build_id} has no test workflow definition')
  arguments = [workflows.render_args(d, values) for d in definitions]
  with concurrent.futures.ThreadPoolExecutor(max_workers=len(definitions)) as pool:
    launches = []
    for definition, args in zip(definitions, arguments):  # in parallel: one process each
      progress(f'test: running workflow {definition["name"]} on the DirectRunner')
      launches.append(pool.submit(deployed.launch, site, definition['module'], args))
  results, origins = [], {}
  for definition, launched in zip(definitions, launches):
    origins[definition['name']] = launched.result()  # a failed workflow raises here, in order
    for result in workflows.run_checks(definition, values):
      progress(f'test: check {result.check}: {"PASSED" if result.passed else "FAILED"}: '
               f'{result.message}')
      results.append({'workflow': definition['name'], **result._asdict()})
  passed = all(r['passed'] for r in results)
  report = {
      'build_id': build_id,
      'sha256': values[layout.VAR_SHA256],
      'wheel_file': values[layout.VAR_WHEEL_FILE],
      'status': layout.STATUS_PASSED if passed else layout.STATUS_FAILED,
      'tested_at': layout.now_utc(),
      'tested_by': actor(),
      'module_origins': origins,
      'results': results,
      gate.REPORT_KEY: gate.report_section(results),
  }
  bucket.write_json(env.report(build_id), report)
  if not passed:
    failures = '; '.join(f'{r["check"]}: {r["message"]}' for r in results if not r['passed'])
    raise HarnessError(f'test FAILED for build {build_id}: {failures}. '
                       f'Report: {env.report(build_id)}. No "test passed" record was written.')
  bucket.write_json(env.passed(build_id), report)
  progress(f'test: PASSED: build {build_id}; record {env.passed(build_id)}')
  return report
