"""Composer DAG validation (build/dags/) in a real Airflow DagBag, and the DAG tasks' logic.

Airflow cannot share this environment with TFDV, so it has its own, ``.venv-airflow``
(``scripts/install-airflow.sh``, pinned by ``requirements/airflow-lock.txt``). The DagBag is loaded
there by ``scripts/check_dags.py``, which prints JSON this suite asserts on, in the style of the
Composer CI repositories: no import errors, every expected DAG id, owner and retries on every task,
each file parsed well within Airflow's import timeout.

The task callables (``build/dags/beam_pipelines_support.py``) import no Airflow; they are tested
here on a real local bucket, down to running the deployed workflow as the DAG's Beam task does.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

from beam_pipelines.harness import compare, evidence, ml_check, results, status
from beam_pipelines.harness.errors import HarnessError
from beam_pipelines.store import layout

from conftest import REPO, SUPPORT_FILES, read_shards

DAGS = REPO / 'build' / 'dags'
AIRFLOW_PYTHON = REPO / '.venv-airflow' / 'bin' / 'python'
WORKFLOW_DAGS = {  # DAGs that run deployed workflow definitions, and their environment
    'beam_pipelines_test': 'test',
    'beam_pipelines_prod': 'prod',
}
EXPECTED_DAGS = {**WORKFLOW_DAGS, 'beam_pipelines_ct': 'prod'}
BEAM_OPERATOR = 'BeamRunPythonPipelineOperator'


@pytest.fixture(scope='module')
def dag_report() -> dict:
  """scripts/check_dags.py's JSON report of build/dags in .venv-airflow's real DagBag."""
  if not AIRFLOW_PYTHON.exists():
    pytest.fail(f'{AIRFLOW_PYTHON} is missing: run scripts/install.sh (it runs '
                f'scripts/install-airflow.sh, which creates the pinned Airflow environment)')
  completed = subprocess.run(
      [str(AIRFLOW_PYTHON), str(REPO / 'scripts' / 'check_dags.py'), str(DAGS)],
      capture_output=True, text=True, timeout=300, cwd=REPO)
  assert completed.stdout, f'check_dags.py printed nothing: {completed.stderr[-3000:]}'
  return json.loads(completed.stdout)


@pytest.mark.integration
def test_every_dag_file_imports_without_errors(dag_report):
  assert dag_report['import_errors'] == {}


@pytest.mark.integration
def test_expected_dag_ids_are_present(dag_report):
  assert set(dag_report['dags']) == set(EXPECTED_DAGS)


@pytest.mark.integration
def test_airflow_is_the_locked_version(dag_report):
  lock = (REPO / 'requirements' / 'airflow-lock.txt').read_text()
  assert f'apache-airflow=={dag_report["airflow_version"]}\n' in lock


@pytest.mark.integration
def test_every_task_has_an_owner_and_retries(dag_report):
  for dag_id, dag in dag_report['dags'].items():
    assert dag['default_args'].get('owner') not in (None, '', 'airflow'), dag_id
    for task_id, task in dag['tasks'].items():
      assert task['owner'] not in ('', 'airflow'), f'{dag_id}.{task_id}: owner not set'
      if task_id.startswith('ct_'):  # a second ct run would skip the spans the first recorded
        assert task['retries'] == 0, f'{dag_id}.{task_id}: a CT run is not retried'
      else:
        assert task['retries'] >= 1, f'{dag_id}.{task_id}: retries not set'


@pytest.mark.integration
def test_dag_files_parse_well_within_the_import_timeout(dag_report):
  """Composer kills a DAG file whose import exceeds dagbag_import_timeout: stay far below it."""
  limit = dag_report['import_timeout_seconds'] / 3
  slow = {f: s for f, s in dag_report['file_parse_seconds'].items() if s > limit}
  assert not slow, f'DAG files parsing slower than {limit:.0f} s: {slow}'
  assert {'beam_pipelines_test_dag.py', 'beam_pipelines_prod_dag.py',
          'beam_pipelines_ct_dag.py'} <= set(dag_report['file_parse_seconds'])


@pytest.mark.integration
@pytest.mark.parametrize('dag_id', sorted(WORKFLOW_DAGS))
def test_beam_tasks_run_the_submission_module_from_the_staged_wheel(dag_report, dag_id):
  beam_tasks = {t: task for t, task in dag_report['dags'][dag_id]['tasks'].items()
                if BEAM_OPERATOR in task['bases']}
  assert beam_tasks, f'{dag_id} has no {BEAM_OPERATOR}'
  for task_id, task in beam_tasks.items():
    assert task['py_file'] == 'beam_pipelines.submission' and task['py_options'] == ['-m'], task_id
    workflow = task_id[len('run_'):]
    assert task['py_requirements'] == (
        "{{ ti.xcom_pull(task_ids='prepare_%s')['requirements'] }}" % workflow), task_id
    assert 'py_requirements' in task['template_fields'], task_id
    assert 'stage_wheel' in _ancestors(dag_report['dags'][dag_id]['tasks'], task_id)


@pytest.mark.integration
@pytest.mark.parametrize('dag_id', sorted(WORKFLOW_DAGS))
def test_dags_run_deployed_workflows_of_their_environment(dag_report, dag_id):
  env = EXPECTED_DAGS[dag_id]
  tasks = dag_report['dags'][dag_id]['tasks']
  workflows = [t[len('run_'):] for t in tasks if t.startswith('run_')]
  assert workflows
  for workflow in workflows:
    definition = json.loads((REPO / 'build' / 'workflows' / f'{workflow}.json').read_text())
    assert definition['env'] == env, f'{dag_id} runs {workflow}, a {definition["env"]} workflow'


@pytest.mark.integration
def test_test_dag_records_passed_only_after_every_check(dag_report):
  tasks = dag_report['dags']['beam_pipelines_test']['tasks']
  runs = [t for t in tasks if t.startswith('run_')]
  ancestors = _ancestors(tasks, 'record_passed')
  for run in runs:
    assert run in ancestors and f'check_{run[len("run_"):]}' in ancestors


@pytest.mark.integration
@pytest.mark.parametrize('dag_id', sorted(WORKFLOW_DAGS))
def test_templates_render_to_what_the_operators_need(dag_report, dag_id):
  """Rendered with stub XComs/variables (native Jinja): dicts stay dicts, lists stay lists."""
  stub, rendered = dag_report['stub'], dag_report['rendered'][dag_id]
  env = EXPECTED_DAGS[dag_id]
  # The test DAG reads the build its run conf names (none here: ''), the prod DAG what prod runs.
  assert rendered['read_variables']['op_kwargs'] == {
      'bucket': stub['variables']['beam_pipelines_bucket'], 'env': env,
      'build_id': '' if env == 'test' else None}
  assert rendered['stage_wheel']['op_kwargs']['variables'] == stub['xcoms']['read_variables']
  for task_id, fields in rendered.items():
    if not task_id.startswith('run_'):
      continue
    assert fields['pipeline_options'] == stub['xcoms']['prepare_']['options'], task_id
    assert fields['py_requirements'] == stub['xcoms']['prepare_']['requirements'], task_id
    assert fields['runner'] == 'DataflowRunner', task_id
    assert fields['dataflow_config']['job_name'] == stub['xcoms']['prepare_']['job_name']
    assert fields['dataflow_config']['project_id'] == stub['variables']['gcp_project']
    prepare = rendered['prepare_' + task_id[len('run_'):]]['op_kwargs']
    assert prepare['variables'] == stub['xcoms']['read_variables']
    assert prepare['wheel'] == stub['xcoms']['stage_wheel'] and prepare['env'] == env
    assert set(prepare['settings']) == {
        'dataflow_service_account', 'dataflow_subnetwork', 'dataflow_worker_zone',
        'dataflow_max_workers', 'beam_pipelines_container_repo'}
  if env == 'test':
    record = rendered['record_passed']['op_kwargs']
    checks = [t for t in rendered if t.startswith('check_')]
    assert record['results'] == [stub['xcoms']['check_']] * len(checks)
    assert record['workflows'] == [c[len('check_'):] for c in checks]
    assert record['code'] == stub['xcoms']['stage_wheel']
    assert record['tested_by'] == f'composer:{dag_id}/{stub["run_id"]}'


@pytest.mark.integration
def test_the_ct_dag_runs_the_deployed_builds_ct_for_each_declared_pipeline(dag_report):
  from beam_pipelines.ct.definition import declared_pipelines
  dag = dag_report['dags']['beam_pipelines_ct']
  runs = {t: task for t, task in dag['tasks'].items() if t.startswith('ct_')}
  assert set(runs) == {f'ct_{name}' for name in declared_pipelines()}
  for task_id, task in runs.items():
    assert task['py_file'] == 'beam_pipelines.ct' and task['py_options'] == ['-m']
    assert task['runner'] == 'DirectRunner'  # the launcher; the steps' runner is ct's own flag
    assert {'read_variables', 'stage_wheel', f'prepare_{task_id}'} <= _ancestors(
        dag['tasks'], task_id)
  rendered = dag_report['rendered']['beam_pipelines_ct']
  assert rendered['read_variables']['op_kwargs']['env'] == 'prod'
  prepare = rendered['prepare_ct_taxi']['op_kwargs']
  assert prepare['runner'] == 'DataflowRunner' and prepare['pipeline'] == 'taxi'
  assert 'beam_pipelines_container_repo' in prepare['settings']


def _ancestors(tasks: dict, task_id: str) -> set:
  seen, todo = set(), list(tasks[task_id]['upstream'])
  while todo:
    current = todo.pop()
    if current not in seen:
      seen.add(current)
      todo.extend(tasks[current]['upstream'])
  return seen


def test_build_is_not_a_python_package():
  assert not list((REPO / 'build').rglob('__init__.py'))


# ---------------------------------------------------------------------------------------------
# The DAG tasks' logic (no Airflow), on a real local bucket laid out as the harness does.


@pytest.fixture(scope='module')
def support():
  sys.path.insert(0, str(DAGS))
  try:
    yield importlib.import_module('beam_pipelines_support')
  finally:
    sys.path.remove(str(DAGS))


def test_support_mirrors_the_harness_contract(support):
  # The DAGs require nothing the harness does not guarantee to write.
  assert set(support.REQUIRED_VARIABLES) <= set(layout.REQUIRED_VARIABLES)
  assert (support.TEST, support.PROD, support.VARIABLES_FILE, support.PASSED,
          support.STATUS_PASSED, support.BUILD_VARIABLES) == (
              layout.TEST, layout.PROD, layout.VARIABLES_FILE, layout.PASSED,
              layout.STATUS_PASSED, layout.BUILD_VARIABLES)


@pytest.mark.parametrize('expected, actual', [
    ({'a': '1', 'b': '2'}, {'a': '1', 'b': '2'}),
    ({'a': '1', 'b': '2'}, {'a': '1'}),
    ({'a': '1'}, {'a': '2', 'c': '3'}),
])
def test_golden_comparison_agrees_with_the_harness(support, expected, actual):
  equal, message = support.compare_maps(expected, actual)
  theirs = compare.compare_maps(expected, actual)
  assert equal == theirs.equal
  for key in theirs.missing + theirs.unexpected + [w[0] for w in theirs.wrong]:
    assert key in message


def test_args_to_options(support):
  assert support.args_to_options(
      ['--input', 'a b', '--flag', '--k=v=w', '--runner', 'DirectRunner', '--n', '2']) == {
          'input': 'a b', 'flag': True, 'k': 'v=w', 'n': '2'}
  with pytest.raises(ValueError, match='positional'):
    support.args_to_options(['stray'])


BUILD_ID = '20261126T153000Z-5bea069-3f9a1c'


@pytest.fixture
def test_bucket(tmp_path, support):
  """A test environment as `invoke test` leaves it: wheel, workflows, inputs, variables."""
  bucket = tmp_path / 'bucket'
  env = layout.Env(str(bucket), layout.TEST)
  wheel = pathlib.Path(env.artifact(BUILD_ID, 'beam_pipelines-0.1.0-py3-none-any.whl'))
  wheel.parent.mkdir(parents=True)
  wheel.write_bytes(b'the wheel under test')
  lock = pathlib.Path(env.artifact(BUILD_ID, layout.LOCK_FILE))
  lock.write_bytes(b'apache-beam==2.72.0\n')
  workflows_dir = pathlib.Path(env.workflows(BUILD_ID))
  shutil.copytree(REPO / 'build' / 'workflows', workflows_dir)
  for target, source in layout.TEST_FIXTURES.items():
    pathlib.Path(env.path(target)).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO / source, env.path(target))
  variables = {
      'build_id': BUILD_ID, 'wheel_file': str(wheel),
      'sha256': hashlib.sha256(b'the wheel under test').hexdigest(),
      'manifest_file': env.manifest(BUILD_ID), 'workflows_dir': str(workflows_dir),
      'lock_file': str(lock), 'lock_sha256': hashlib.sha256(b'apache-beam==2.72.0\n').hexdigest(),
      **env.location_variables()}
  pathlib.Path(env.variables).write_text(json.dumps(variables))
  return bucket


def test_read_variables_refuses_bad_files(support, tmp_path):
  with pytest.raises(ValueError, match='beam_pipelines_bucket is not set'):
    support.read_variables('', 'test')
  (tmp_path / 'test').mkdir()
  (tmp_path / 'test' / 'variables.json').write_text('{"build_id": ')
  with pytest.raises(ValueError, match='not valid JSON'):
    support.read_variables(str(tmp_path), 'test')
  (tmp_path / 'test' / 'variables.json').write_text('{"build_id": "x"}')
  with pytest.raises(ValueError, match='lacks wheel_file'):
    support.read_variables(str(tmp_path), 'test')


def test_the_contract_mirror_holds_the_layout_names(support):
  env = layout.Env('gs://b', layout.TEST)
  assert (support.ARTIFACTS, support.WORKFLOWS, support.MANIFEST_FILE) == (
      layout.ARTIFACTS, layout.WORKFLOWS, layout.MANIFEST_FILE)
  assert {k: f'gs://b/test/{v}' for k, v in support.LOCATION_DIRS.items()} == (
      env.location_variables())
  assert support.BUILD_ID_PATTERN.pattern == layout.BUILD_ID_PATTERN.pattern


@pytest.mark.parametrize('key, value', [
    ('lock_file', '/etc/passwd'), ('lock_file', 'gs://other/prod/artifacts/x/lock.txt'),
    ('wheel_file', 'OTHER/beam_pipelines-0.1.0-py3-none-any.whl'),
    ('manifest_file', 'OTHER/manifest.json'), ('workflows_dir', '/tmp/workflows'),
    ('output_location', 'gs://elsewhere/results'), ('build_id', '../x'),
    ('lock_sha256', None)])
def test_read_variables_refuses_a_pointer_outside_the_build(support, test_bucket, key, value):
  env = layout.Env(str(test_bucket), layout.TEST)
  variables = json.loads(pathlib.Path(env.variables).read_text())
  if value is None:
    del variables[key]
  else:
    variables[key] = value.replace('OTHER', env.artifacts('20260101T000000Z-0000000-000000'))
  pathlib.Path(env.variables).write_text(json.dumps(variables))
  with pytest.raises(ValueError, match='build id|points outside build'):
    support.read_variables(str(test_bucket), 'test')


def test_stage_wheel_checks_sha256_and_reuses_a_good_copy(support, test_bucket, tmp_path):
  variables = support.read_variables(str(test_bucket), 'test')
  staged = support.stage_wheel(variables, str(tmp_path / 'wheels'))
  assert staged == str(tmp_path / 'wheels' / BUILD_ID / 'beam_pipelines-0.1.0-py3-none-any.whl')
  assert support.stage_wheel(variables, str(tmp_path / 'wheels')) == staged
  with open(staged, 'wb') as handle:  # a corrupted local copy is replaced, not used
    handle.write(b'corrupted')
  assert open(support.stage_wheel(variables, str(tmp_path / 'wheels')), 'rb').read() == (
      b'the wheel under test')
  with open(variables['wheel_file'], 'wb') as handle:  # tampered in the bucket: refused
    handle.write(b'tampered')
  with pytest.raises(ValueError, match='refusing to run it'):
    support.stage_wheel(variables, str(tmp_path / 'other'))


def test_job_options_render_the_deployed_workflow(support, test_bucket):
  variables = support.read_variables(str(test_bucket), 'test')
  options = support.job_options(variables, 'wordcount_test', '/w/beam_pipelines.whl', 'r1',
                                project='my-project', region='us-central1')
  test_env = layout.Env(str(test_bucket), layout.TEST)
  assert options == {
      'input': f'{test_env.inputs}/wordcount/input.txt',
      'output': f'{test_env.results}/{BUILD_ID}/wordcount/counts',
      'pipeline': 'wordcount', 'wheel': '/w/beam_pipelines.whl', 'build_id': BUILD_ID,
      'temp_location': test_env.temp, 'staging_location': test_env.staging,
      'project': 'my-project', 'region': 'us-central1', 'max_num_workers': '10'}


def test_the_beam_venv_installs_the_wheel_constrained_by_its_lock(support, test_bucket, tmp_path):
  variables = support.read_variables(str(test_bucket), 'test')
  wheel = support.stage_wheel(variables, str(tmp_path / 'wheels'))
  lock = str(tmp_path / 'wheels' / BUILD_ID / 'lock.txt')
  assert support.requirements(wheel) == ['-c', lock, wheel]
  assert open(lock, 'rb').read() == b'apache-beam==2.72.0\n'
  with open(variables['lock_file'], 'ab') as handle:  # tampered in the bucket: refused
    handle.write(b'numpy==2.4\n')
  with pytest.raises(ValueError, match='refusing to install with it'):
    support.stage_wheel(variables, str(tmp_path / 'other'))


def test_dataflow_settings_become_the_jobs_options(support, test_bucket):
  """Service account, private subnetwork, zone, worker cap and the build's SDK container, as Beam
  parses the options the Beam provider passes (``--key=value``)."""
  from apache_beam.options.pipeline_options import (
    GoogleCloudOptions,
    PipelineOptions,
    WorkerOptions,
  )
  variables = support.read_variables(str(test_bucket), 'test')
  settings = {'dataflow_service_account': 'dataflow-worker@p.iam.gserviceaccount.com',
              'dataflow_subnetwork': 'regions/us-central1/subnetworks/dataflow',
              'dataflow_worker_zone': 'us-central1-b', 'dataflow_max_workers': '4',
              'beam_pipelines_container_repo': 'us-central1-docker.pkg.dev/p/r/sdk'}
  options = support.job_options(variables, 'wordcount_test', '/w/b.whl', 'r1', 'p', 'us-central1',
                                settings)
  parsed = PipelineOptions([f'--{k}' if v is True else f'--{k}={v}' for k, v in options.items()])
  cloud, workers = parsed.view_as(GoogleCloudOptions), parsed.view_as(WorkerOptions)
  assert cloud.service_account_email == settings['dataflow_service_account']
  assert workers.subnetwork == settings['dataflow_subnetwork'] and workers.use_public_ips is False
  assert workers.worker_zone == 'us-central1-b' and workers.max_num_workers == 4
  assert workers.sdk_container_image == f'us-central1-docker.pkg.dev/p/r/sdk:{BUILD_ID}'


def test_ct_runs_the_deployed_build_with_its_ml_extra_and_dataflow_in_its_container(
    support, test_bucket, tmp_path):
  from apache_beam.options.pipeline_options import (
    GoogleCloudOptions,
    PipelineOptions,
    StandardOptions,
    WorkerOptions,
  )
  variables = support.read_variables(str(test_bucket), 'test')
  wheel = support.stage_wheel(variables, str(tmp_path / 'wheels'))
  lock = str(tmp_path / 'wheels' / BUILD_ID / 'lock.txt')
  assert support.ct_requirements(wheel) == ['-c', lock, f'beam-pipelines[ml] @ file://{wheel}']
  settings = {'dataflow_service_account': 'dataflow-worker@p.iam.gserviceaccount.com',
              'beam_pipelines_container_repo': 'us-central1-docker.pkg.dev/p/r/sdk'}
  options = support.ct_options(variables, 'taxi', 'gs://b', 'DataflowRunner', 'p', 'us-central1',
                               settings)
  assert {k: options[k] for k in ('bucket', 'env', 'pipeline', 'build_id', 'wheel_sha256')} == {
      'bucket': 'gs://b', 'env': 'prod', 'pipeline': 'taxi', 'build_id': BUILD_ID,
      'wheel_sha256': variables['sha256']}
  # What ct's steps get, after the provider's own --runner (the launcher's, DirectRunner).
  argv = ['--runner=DirectRunner'] + [f'--{k}={v}' for k, v in options.items()
                                      if k not in ('bucket', 'env', 'pipeline', 'build_id',
                                                   'wheel_sha256')]
  parsed = PipelineOptions(argv)
  assert parsed.view_as(StandardOptions).runner == 'DataflowRunner'
  assert parsed.view_as(GoogleCloudOptions).service_account_email == settings[
      'dataflow_service_account']
  assert parsed.view_as(WorkerOptions).sdk_container_image == (
      f'us-central1-docker.pkg.dev/p/r/sdk:{BUILD_ID}')
  with pytest.raises(ValueError, match='beam_pipelines_container_repo'):
    support.ct_options(variables, 'taxi', 'gs://b', 'DataflowRunner', 'p', 'us-central1', {})
  local = support.ct_options(variables, 'taxi', 'gs://b', 'DirectRunner')
  assert local['runner'] == 'DirectRunner' and 'sdk_container_image' not in local


@pytest.mark.integration
def test_test_dag_logic_end_to_end_on_the_direct_runner(support, test_bucket, tmp_path):
  """read_variables -> stage_wheel -> prepare -> run (as the Beam provider's hook builds the
  command) -> golden check -> record_passed: the run's evidence, bound to the build it ran."""
  variables = support.read_variables(str(test_bucket), 'test')
  wheel = support.stage_wheel(variables, str(tmp_path / 'wheels'))
  options = support.job_options(variables, 'wordcount_test', wheel, 'manual-1')
  # BeamHook: [python] + py_options + [py_file] + ['--key=value' | '--key' for True].
  command = [sys.executable, '-m', support.SUBMISSION_MODULE, '--runner=DirectRunner'] + [
      f'--{key}' if value is True else f'--{key}={value}' for key, value in options.items()]
  completed = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
  assert completed.returncode == 0, completed.stderr[-3000:]
  (check,) = support.workflow_checks(variables, 'wordcount_test', 'manual-1')
  assert read_shards(check['output'])
  message = support.golden_counts(check['output'], check['reference'])
  assert re.match(r'\d+ shard\(s\) equal', message)
  assert support.record_results(
      str(test_bucket), variables, [support.check_results([check])], ['wordcount_test'],
      'DirectRunner', 'composer:test', code=str(REPO)) == 'passed'
  (run,) = evidence.read_evidence(str(test_bucket), BUILD_ID)
  assert run.passed and (run.build_id, run.sha256) == (BUILD_ID, variables['sha256'])


def _record_invoke_test(bucket, variables, ml_status):
  """What `invoke test` records: the golden check passed, the ML check with its verdict."""
  ml = {'status': ml_status, 'message': 'auc 0.61 < production 0.74', 'baseline': 'production'}
  return results.record_results(
      str(bucket), BUILD_ID, variables['sha256'], variables['wheel_file'],
      [{'workflow': 'wordcount_test', 'check': 'golden_counts', 'passed': True, 'message': 'ok',
        'details': {}},
       {'workflow': 'ml_test', 'check': 'ml_model', 'passed': True, 'message': ml_status,
        'details': ml}], 'user@host', ml=ml)


GOLDEN_OK = [{'check': 'golden_counts', 'passed': True, 'message': '1 shard(s) equal'}]


def _evidence(bucket):
  return evidence.read_evidence(str(bucket), BUILD_ID)


def test_a_dag_run_adds_its_evidence_and_leaves_the_passed_record_alone(support, test_bucket):
  """The run's verdict is its own record; the passed record (the ML verdict with it) is unchanged,
  so a NOT_BLESSED build stays refused by deploy."""
  variables = support.read_variables(str(test_bucket), 'test')
  _record_invoke_test(test_bucket, variables, 'NOT_BLESSED')
  passed_file = pathlib.Path(layout.Env(str(test_bucket), layout.TEST).passed(BUILD_ID))
  before = passed_file.read_bytes()
  assert support.record_results(str(test_bucket), variables, [GOLDEN_OK], ['wordcount_test'],
                                'DataflowRunner', 'composer:test/run-1', code=str(REPO)) == 'passed'
  assert passed_file.read_bytes() == before
  (run,) = _evidence(test_bucket)
  assert (run.build_id, run.sha256, run.tested_by, run.status) == (
      BUILD_ID, variables['sha256'], 'composer:test/run-1', 'passed')
  assert [(r['check'], r['runner']) for r in run.results] == [('golden_counts', 'DataflowRunner')]
  record = results.read_passed(str(test_bucket), BUILD_ID)
  evidence.check_evidence(str(test_bucket), record)
  with pytest.raises(HarnessError, match='NOT_BLESSED'):
    ml_check.refuse_unblessed(record, BUILD_ID, None)


def test_a_wrong_count_on_dataflow_refuses_the_build(support, test_bucket):
  variables = support.read_variables(str(test_bucket), 'test')
  _record_invoke_test(test_bucket, variables, 'BLESSED')
  wrong = [{'check': 'golden_counts', 'passed': False, 'message': 'wrong 1: b (expected 2, got 3)'}]
  with pytest.raises(ValueError, match='FAILED its tests: golden_counts: wrong 1'):
    support.record_results(str(test_bucket), variables, [wrong], ['wordcount_test'],
                           'DataflowRunner', 'composer:test/run-2', code=str(REPO))
  record = results.read_passed(str(test_bucket), BUILD_ID)  # the verdict of `invoke test` stays
  with pytest.raises(HarnessError, match='did not pass test: the run composer:test/run-2 failed '
                                         r'\(golden_counts: wrong 1'):
    evidence.check_evidence(str(test_bucket), record)
  # a later passing run adds evidence; it cannot bring the pass back
  assert support.record_results(str(test_bucket), variables, [GOLDEN_OK], ['wordcount_test'],
                                'DataflowRunner', 'composer:test/run-3', code=str(REPO)) == 'passed'
  assert [r.status for r in _evidence(test_bucket)] == ['failed', 'passed']
  with pytest.raises(HarnessError, match='run-2 failed'):
    evidence.check_evidence(str(test_bucket), record)
  runs = status.status_report(str(test_bucket))['last_test']['runs']
  assert (runs['passed'], runs['failed']) == (1, 1)
  assert runs['failures'] == ['composer:test/run-2: golden_counts: wrong 1: b (expected 2, got 3)']
  assert '  test DAG runs  1 passed, 1 failed (FAILED: composer:test/run-2: golden_counts' in (
      '\n'.join(status.status_lines(str(test_bucket))))


def test_a_failed_beam_job_is_recorded_as_a_failure(support, test_bucket):
  variables = support.read_variables(str(test_bucket), 'test')
  _record_invoke_test(test_bucket, variables, 'BLESSED')
  with pytest.raises(ValueError, match='run_wordcount_test did not succeed'):
    support.record_results(str(test_bucket), variables, [None], ['wordcount_test'],
                           'DataflowRunner', 'composer:test/run-4', code=str(REPO))
  assert [r.status for r in _evidence(test_bucket)] == ['failed']


def test_a_retried_recording_adds_a_record_never_overwrites_one(support, test_bucket):
  variables = support.read_variables(str(test_bucket), 'test')
  wrong = [{'check': 'golden_counts', 'passed': False, 'message': 'wrong'}]
  with pytest.raises(ValueError, match='FAILED'):
    support.record_results(str(test_bucket), variables, [wrong], ['wordcount_test'],
                           'DataflowRunner', 'composer:test/run-5', code=str(REPO))
  support.record_results(str(test_bucket), variables, [GOLDEN_OK], ['wordcount_test'],
                         'DataflowRunner', 'composer:test/run-5', code=str(REPO))
  names = sorted(p.name for p in pathlib.Path(evidence.evidence_dir(str(test_bucket), BUILD_ID))
                 .iterdir())
  assert names == ['composer-test-run-5-2.json', 'composer-test-run-5.json']
  assert sorted(r.status for r in _evidence(test_bucket)) == ['failed', 'passed']


def test_evidence_for_other_bytes_is_refused(support, test_bucket):
  variables = support.read_variables(str(test_bucket), 'test')
  _record_invoke_test(test_bucket, variables, 'BLESSED')
  with pytest.raises(RuntimeError, match='refusing to record evidence of other bytes'):
    support.record_results(str(test_bucket), dict(variables, sha256='0' * 64), [GOLDEN_OK],
                           ['wordcount_test'], 'DataflowRunner', 'composer:x', code=str(REPO))
  assert _evidence(test_bucket) == []


def test_deploys_can_require_a_passing_run(support, test_bucket, monkeypatch):
  variables = support.read_variables(str(test_bucket), 'test')
  record = _record_invoke_test(test_bucket, variables, 'BLESSED')
  evidence.check_evidence(str(test_bucket), record)  # not required: the passed record is enough
  monkeypatch.setenv(evidence.REQUIRE_ENV_VAR, '1')
  with pytest.raises(HarnessError, match='no passing test run on Dataflow/Composer'):
    evidence.check_evidence(str(test_bucket), record)
  support.record_results(str(test_bucket), variables, [GOLDEN_OK], ['wordcount_test'],
                         'DataflowRunner', 'composer:test/run-6', code=str(REPO))
  evidence.check_evidence(str(test_bucket), record)
  monkeypatch.setenv(evidence.REQUIRE_ENV_VAR, 'on')
  with pytest.raises(HarnessError, match="BEAM_PIPELINES_REQUIRE_EVIDENCE is 'on': expected 1 or 0"):
    evidence.required(str(test_bucket))
  monkeypatch.delenv(evidence.REQUIRE_ENV_VAR)
  prod_settings = pathlib.Path(layout.Env(str(test_bucket), layout.PROD).settings)
  prod_settings.parent.mkdir(parents=True)
  prod_settings.write_text(json.dumps({evidence.REQUIRE_SETTING: True}))
  assert evidence.required(str(test_bucket))


def test_unreadable_or_foreign_evidence_refuses_the_build(support, test_bucket):
  variables = support.read_variables(str(test_bucket), 'test')
  record = _record_invoke_test(test_bucket, variables, 'BLESSED')
  where = pathlib.Path(evidence.evidence_dir(str(test_bucket), BUILD_ID))
  where.mkdir(parents=True)
  (where / 'garbage.json').write_text('{"status": "passed"}')
  with pytest.raises(HarnessError, match='cannot be read: .*not a test-run evidence record'):
    evidence.check_evidence(str(test_bucket), record)
  (where / 'garbage.json').write_text(json.dumps(
      {'build_id': BUILD_ID, 'sha256': '0' * 64, 'wheel_file': 'w', 'tested_by': 'x',
       'recorded_at': 'now', 'status': 'passed', 'results': []}))
  with pytest.raises(HarnessError, match='not the tested'):
    evidence.check_evidence(str(test_bucket), record)


def test_golden_check_names_differences(support, tmp_path):
  (tmp_path / 'out-00000-of-00001').write_text('a: 1\nb: 3\nz: 1\n')
  (tmp_path / 'ref.txt').write_text('a: 1\nb: 2\nc: 5\n')
  with pytest.raises(ValueError) as error:
    support.golden_counts(str(tmp_path / 'out'), str(tmp_path / 'ref.txt'))
  assert 'missing 1: c' in str(error.value)
  assert 'wrong 1: b (expected 2, got 3)' in str(error.value)
  assert 'unexpected 1: z' in str(error.value)
  with pytest.raises(ValueError, match='no output shards'):
    support.golden_counts(str(tmp_path / 'none'), str(SUPPORT_FILES / 'reference.txt'))
