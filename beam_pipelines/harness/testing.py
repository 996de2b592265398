"""``invoke test``: the tutorial's test environment, step by step.

Upload the built wheel and manifest under the build id, deploy the build's workflow definitions,
stage the integration input and golden reference, set the test variables, then run every test
workflow from the *uploaded* wheel (in parallel, one process each) and its checks; write the
report, and on success the "test passed" record that ``deploy`` consumes. The ML workflow
(``ml_test``, level 2) gets the model to beat from ``harness.ml_check``, resolved in memory, and
runs in a private local directory of this run; the report keeps its metrics and blessing under
``"ml"``. The report holds this run's results only (``record_results(fresh=True)``).
"""

from __future__ import annotations

import concurrent.futures
import pathlib
import shutil
import tempfile
from typing import Dict, List, Mapping, Tuple

from beam_pipelines.harness import checks, install, ml_check, publish, workflows
from beam_pipelines.harness import results as results_io
from beam_pipelines.harness.build import load_local_manifest
from beam_pipelines.harness.errors import HarnessError
from beam_pipelines.harness.results import ResultEntry, TestReport
from beam_pipelines.ml.artifacts import NOT_BLESSED
from beam_pipelines.store import bucket, layout
from beam_pipelines.store.console import progress
from beam_pipelines.store.identity import actor


def run_test(repo: pathlib.Path, bucket_url: str) -> TestReport:
  """Runs the test step for the last local build; returns the passed record (raises on failure)."""
  manifest = load_local_manifest(repo)
  build_id = manifest.build_id
  env = layout.Env(bucket_url, layout.TEST)
  if bucket.exists(env.variables):
    bucket.read_json(env.variables, 'test variables')  # refuse to overwrite what we cannot read
  bucket.remove_stale_temps(env.root, 'test')
  progress(f'test: uploading build {build_id} to {env.artifacts(build_id)}')
  publish.upload(manifest, repo / layout.DIST_DIR, env)
  workflows_dir = publish.deploy_workflows(manifest, env, env)
  progress(f'test: workflow definitions deployed to {workflows_dir}')
  for target, source in sorted(layout.TEST_FIXTURES.items()):
    bucket.write_bytes(env.path(target), (repo / source).read_bytes())
  progress(f'test: integration input and reference staged under {env.inputs}, {env.references}')
  baselines, sources = ml_check.resolve_baselines(bucket_url)
  progress(f'test: ML check baseline: {sources}')
  values = publish.deployment_variables(
      env, manifest, event='test', **{ml_check.VAR_BASELINE_SOURCE: sources})
  bucket.write_json(env.build_variables(build_id), values)  # a DAG run for this build reads them
  bucket.write_json(env.variables, values)
  progress(f'test: variables set: {env.variables} (and {env.build_variables(build_id)})')

  deployment = workflows.verified_deployment(env, checks.CHECKS)  # as the test DAG reads them
  variables = deployment.variables
  manifest_sha256 = bucket.sha256_bytes((repo / layout.DIST_DIR / layout.MANIFEST_FILE).read_bytes())
  if variables.build_id != build_id or variables.manifest_sha256 != manifest_sha256:
    raise HarnessError(f'another `invoke test` replaced {env.variables} (now build '
                       f'{variables.build_id}) or the uploaded manifest while this one ran; run '
                       f'`invoke test` again')
  site = install.install(variables.wheel_file, variables.sha256, install.cache_root(repo))
  definitions = [d for d in deployment.definitions if d.env == layout.TEST]
  if not definitions:
    raise HarnessError(f'build {build_id} has no test workflow definition')
  workdir = pathlib.Path(tempfile.mkdtemp(prefix='beam-pipelines-test-'))  # mode 0700
  try:
    values = {**variables.values, **ml_check.private_values(workdir, baselines)}
    results, origins = _run_workflows(site, definitions, values)
    ml_check.publish_evidence(results, workdir,
                              layout.join(env.build_results(build_id), ml_check.EVIDENCE_DIR))
  finally:
    shutil.rmtree(workdir, ignore_errors=True)
  report = results_io.record_results(
      bucket_url, build_id, variables.sha256, variables.wheel_file, results, actor(),
      ml=ml_check.report_section(results), module_origins=origins,
      manifest_sha256=manifest_sha256, fresh=True)
  if not report.passed:
    raise HarnessError(f'test FAILED for build {build_id}: {"; ".join(report.failures())}. '
                       f'Report: {env.report(build_id)}. No "test passed" record stands.')
  unblessed = sorted(name for name, ml in report.ml_by_pipeline.items()
                     if ml.get('status') == NOT_BLESSED)
  if unblessed:
    progress(f'test: PASSED, but model(s) of {", ".join(unblessed)} NOT_BLESSED: deploy refuses '
             f'build {build_id} unless --override-blessing gives a reason; record '
             f'{env.passed(build_id)}')
  else:
    progress(f'test: PASSED: build {build_id}; record {env.passed(build_id)}')
  return report


def _run_workflows(site: pathlib.Path, definitions: List[workflows.WorkflowDefinition],
                   values: Mapping[str, object]) -> Tuple[List[ResultEntry], Dict[str, str]]:
  """Runs each test workflow from the installed wheel (in parallel, one process each), then its
  checks; returns the checks' results and where each workflow's package came from."""
  arguments = [workflows.render_args(d, values) for d in definitions]
  with concurrent.futures.ThreadPoolExecutor(max_workers=len(definitions)) as pool:
    launches = []
    for definition, args in zip(definitions, arguments):  # in parallel: one process each
      progress(f'test: running workflow {definition.name} on the DirectRunner')
      launches.append(pool.submit(install.launch, site, definition.module, args))
  results: List[ResultEntry] = []
  origins: Dict[str, str] = {}
  for definition, launched in zip(definitions, launches):
    origins[definition.name] = launched.result().origin  # a failed one raises here, in order
    for result in checks.run_checks(definition, values):
      progress(f'test: check {result.check}: {"passed" if result.passed else "FAILED"}: '
               f'{result.message}')
      results.append(ResultEntry({'workflow': definition.name, **result.to_dict()}))
  return results, origins
