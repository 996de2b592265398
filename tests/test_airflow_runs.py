"""The Composer DAGs run for real: `airflow dags test` in .venv-airflow (Airflow 3.3, the Apache Beam
provider), on a local bucket that `invoke build test` filled, on the DirectRunner.

The Beam task builds its own virtualenv and installs the staged wheel constrained by the build's
lock (as on Composer, where pip does it; here uv, which Airflow uses when it is on PATH). The test
DAG adds its verdict through the harness's writer, as its own evidence beside the build's (signed)
"test passed" record; the prod DAG runs the deployed build; a wrong word count fails the test DAG and its evidence makes deploy refuse.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import types
from typing import Optional

import pytest

from beam_pipelines.harness import evidence, results
from beam_pipelines.store import layout, signing

from conftest import REPO
from harness.support import commit_all, invoke, make_project, prod_variables

pytestmark = [pytest.mark.integration, pytest.mark.slow]

AIRFLOW = REPO / '.venv-airflow' / 'bin' / 'airflow'
FINISHED = re.compile(r'DagRun Finished: dag_id=(\w+).*?state=(\w+)')


def start_composer(root, **invoke_env: str) -> types.SimpleNamespace:
  """A project copy in ``root``, its build tested by `invoke test` (with ``invoke_env``) on a local
  bucket, and a local Airflow whose environment holds no signing key (Composer does not)."""
  if not AIRFLOW.exists():
    pytest.fail(f'{AIRFLOW} is missing: run scripts/install.sh')
  project = make_project(root / 'project')
  bucket = root / 'bucket'
  tested = invoke(project, bucket, 'build', '--no-checks', 'test', **invoke_env)
  assert tested.returncode == 0, tested.stderr[-3000:]
  build_id = json.loads((project / 'dist' / 'manifest.json').read_text())['build_id']
  # uv on PATH: Airflow builds the Beam task's venv with it (Composer uses pip; same constraints).
  path = f'{AIRFLOW.parent}{os.pathsep}{os.environ.get("PATH", "")}'
  env = dict(os.environ, PATH=path, AIRFLOW_HOME=str(root / 'airflow'),
             AIRFLOW__CORE__DAGS_FOLDER=str(project / 'build' / 'dags'),
             AIRFLOW__CORE__LOAD_EXAMPLES='False',
             AIRFLOW_VAR_BEAM_PIPELINES_BUCKET=str(bucket),
             AIRFLOW_VAR_BEAM_PIPELINES_RUNNER='DirectRunner',
             AIRFLOW_VAR_BEAM_PIPELINES_WHEEL_DIR=str(root / 'wheels'))
  for name in ('PYTHONPATH', signing.SIGNING_KEY_ENV_VAR):
    env.pop(name, None)
  migrated = subprocess.run([str(AIRFLOW), 'db', 'migrate'], env=env, capture_output=True,
                            text=True, timeout=300)
  assert migrated.returncode == 0, migrated.stderr[-3000:]
  return types.SimpleNamespace(project=project, bucket=bucket, build_id=build_id, env=env,
                               invoke_env=invoke_env)


@pytest.fixture(scope='module')
def composer(tmp_path_factory):
  """A build tested by `invoke test` without a signing key, and a local Airflow."""
  return start_composer(tmp_path_factory.mktemp('composer'))


@pytest.fixture(scope='module')
def signed(tmp_path_factory):
  """The same with signing on: `invoke` holds the key, Airflow does not."""
  return start_composer(tmp_path_factory.mktemp('signed'),
                        **{signing.SIGNING_KEY_ENV_VAR: 'ci-secret-of-the-test'})


def dags_test(composer, dag_id: str, conf: Optional[dict] = None,
              cwd: Optional[pathlib.Path] = None) -> str:
  """`airflow dags test DAG_ID` (with ``conf`` as the run's conf) in ``cwd``; returns the run's
  final state."""
  extra = ['-c', json.dumps(conf)] if conf else []
  done = subprocess.run([str(AIRFLOW), 'dags', 'test', *extra, dag_id], env=composer.env,
                        capture_output=True, text=True, timeout=1500, cwd=cwd)
  finished = FINISHED.findall(done.stdout + done.stderr)
  assert finished, (done.stdout + done.stderr)[-4000:]
  assert finished[-1][0] == dag_id
  return finished[-1][1]


def test_the_test_dag_adds_its_evidence_and_keeps_invoke_tests(composer):
  passed_file = layout.Env(str(composer.bucket), layout.TEST).passed(composer.build_id)
  before = open(passed_file, 'rb').read()
  assert dags_test(composer, 'beam_pipelines_test') == 'success'
  assert open(passed_file, 'rb').read() == before  # the verdict of `invoke test`, untouched
  record = results.read_passed(str(composer.bucket), composer.build_id)
  assert {'ml_model', 'golden_counts'} <= {r['check'] for r in record.results}
  assert record.ml_status == 'BLESSED'
  (run,) = evidence.read_evidence(str(composer.bucket), composer.build_id)
  assert run.passed and run.sha256 == record.sha256
  assert [(r['check'], r['tested_by'].split('/')[0], r.get('runner')) for r in run.results] == [
      ('golden_counts', 'composer:beam_pipelines_test', 'DirectRunner')]


def test_the_prod_dag_runs_the_deployed_build(composer):
  deployed = invoke(composer.project, composer.bucket, 'deploy')
  assert deployed.returncode == 0, deployed.stderr[-3000:]
  assert dags_test(composer, 'beam_pipelines_prod') == 'success'
  runs = composer.bucket / layout.PROD / layout.RESULTS / layout.RUNS
  shards = list(runs.glob('*/wordcount/*-of-*'))
  assert shards and all(': ' in p.read_text() for p in shards)


def fail_the_golden_reference(bucket) -> str:
  """Makes the test reference's first count one too high; returns the message a run gives."""
  reference = bucket / layout.TEST / 'references' / 'wordcount' / 'reference.txt'
  lines = reference.read_text().splitlines()
  word, count = lines[0].rsplit(': ', 1)
  reference.write_text('\n'.join([f'{word}: {int(count) + 1}', *lines[1:]]) + '\n')
  return f'{word} (expected {int(count) + 1}'


def test_a_wrong_word_count_fails_the_test_dag_and_deploy_refuses(composer):
  expected = fail_the_golden_reference(composer.bucket)
  assert dags_test(composer, 'beam_pipelines_test') == 'failed'
  failed = [r for r in evidence.read_evidence(str(composer.bucket), composer.build_id)
            if not r.passed]
  assert failed and expected in ' '.join(failed[0].failures())
  refused = invoke(composer.project, composer.bucket, 'deploy', '--build-id', composer.build_id)
  assert refused.returncode == 2 and 'did not pass test' in refused.stderr + refused.stdout


def test_with_signing_on_a_passing_dag_run_leaves_the_build_deployable(signed):
  """The test DAG (no key) adds its evidence beside the signed passed record; deploy (with the key)
  checks both, and with evidence required it waits for a passing run."""
  key = signed.invoke_env
  passed_file = layout.Env(str(signed.bucket), layout.TEST).passed(signed.build_id)
  before = json.loads(open(passed_file, 'rb').read())
  assert before[signing.SIGNATURE].startswith('hmac-sha256:')
  required = dict(key, **{evidence.REQUIRE_ENV_VAR: '1'})
  waiting = invoke(signed.project, signed.bucket, 'deploy', **required)
  assert waiting.returncode == 2 and 'no passing test run' in waiting.stderr + waiting.stdout
  assert dags_test(signed, 'beam_pipelines_test') == 'success'
  assert json.loads(open(passed_file, 'rb').read()) == before  # still signed, unchanged
  (run,) = evidence.read_evidence(str(signed.bucket), signed.build_id)
  assert run.passed and run.tested_by.startswith('composer:beam_pipelines_test/')
  deployed = invoke(signed.project, signed.bucket, 'deploy', **required)
  assert deployed.returncode == 0, deployed.stderr[-3000:]
  assert prod_variables(signed.bucket)['build_id'] == signed.build_id


def test_with_signing_on_a_failed_dag_run_still_blocks_the_deploy(signed):
  fail_the_golden_reference(signed.bucket)
  assert dags_test(signed, 'beam_pipelines_test') == 'failed'
  refused = invoke(signed.project, signed.bucket, 'deploy', '--build-id', signed.build_id,
                   **signed.invoke_env)
  said = refused.stderr + refused.stdout
  assert refused.returncode == 2 and 'did not pass test: the run composer:beam_pipelines_test/' in said
  assert 'Nothing was changed' in said


def test_a_queued_run_tests_and_records_on_the_build_that_triggered_it(tmp_path_factory):
  """Build X is tested and triggers the test DAG; build Y (another commit) is tested before X's
  run starts (Composer runs one at a time). The run, given X's id as conf, runs X's wheel and
  records its evidence on X only; with Dataflow evidence required, Y cannot be deployed and X can."""
  composer = start_composer(tmp_path_factory.mktemp('queued'))
  first = composer.build_id
  first_sha = results.read_passed(str(composer.bucket), first).sha256
  package = composer.project / 'beam_pipelines' / '__init__.py'
  package.write_text(package.read_text() + '# a later commit\n')
  commit_all(composer.project, 'a later commit')
  tested = invoke(composer.project, composer.bucket, 'build', '--no-checks', 'test')
  assert tested.returncode == 0, tested.stderr[-3000:]
  second = json.loads((composer.project / 'dist' / 'manifest.json').read_text())['build_id']
  second_sha = results.read_passed(str(composer.bucket), second).sha256
  assert second != first and second_sha != first_sha
  assert json.loads((composer.bucket / 'test' / 'variables.json').read_text())['build_id'] == second

  assert dags_test(composer, 'beam_pipelines_test', conf={'build_id': first}) == 'success'
  (run,) = evidence.read_evidence(str(composer.bucket), first)
  assert run.passed and run.build_id == first and run.sha256 == first_sha
  assert evidence.read_evidence(str(composer.bucket), second) == []

  required = {evidence.REQUIRE_ENV_VAR: '1'}
  refused = invoke(composer.project, composer.bucket, 'deploy', '--build-id', second, **required)
  assert refused.returncode == 2 and 'no passing test run' in refused.stderr + refused.stdout
  deployed = invoke(composer.project, composer.bucket, 'deploy', '--build-id', first, **required)
  assert deployed.returncode == 0, deployed.stderr[-3000:]
  assert prod_variables(composer.bucket)['build_id'] == first


def test_a_run_conf_naming_another_build_than_its_variables_is_refused(composer):
  """The per-build variables must name the build asked for (a renamed copy is refused)."""
  import importlib.util
  spec = importlib.util.spec_from_file_location(
      'support_under_test', composer.project / 'build' / 'dags' / 'beam_pipelines_support.py')
  support = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(support)
  env = layout.Env(str(composer.bucket), layout.TEST)
  other = '20260101T000000Z-0000000-000000'
  copy = pathlib.Path(env.build_variables(other))
  copy.write_bytes(pathlib.Path(env.build_variables(composer.build_id)).read_bytes())
  with pytest.raises(ValueError, match='not ' + other):
    support.read_variables(str(composer.bucket), 'test', other)
  with pytest.raises(ValueError, match='expected a build id'):
    support.read_variables(str(composer.bucket), 'test', '../prod')
  assert support.read_variables(str(composer.bucket), 'test', composer.build_id)['build_id'] == (
      composer.build_id)


def test_the_ct_dag_runs_the_deployed_builds_ct_on_a_span_landed_on_gcs(tmp_path_factory):
  """The prod build's DAG files (`invoke dags --env prod`) in a local Airflow, the bucket on a
  local GCS server: the CT DAG stages the deployed wheel, installs it with its `ml` extra under the
  build's lock in the task's venv, and runs its `ct` on the landed span (steps on the
  DirectRunner here, the Composer variable beam_pipelines_ct_runner): the model is pushed, and its
  lineage names the deployed build."""
  from beam_pipelines.ct import demo, registry
  from beam_pipelines.ct.paths import CtPaths
  from beam_pipelines.store import bucket as bucket_io

  from gcs import EMULATOR_ENV_VAR, storage_emulator
  if not AIRFLOW.exists():
    pytest.fail(f'{AIRFLOW} is missing: run scripts/install.sh')
  root = tmp_path_factory.mktemp('ct-dag')
  project = make_project(root / 'project')
  with storage_emulator() as gcs, pytest.MonkeyPatch.context() as patch:
    patch.setenv(EMULATOR_ENV_VAR, gcs.url)
    url, extra = gcs.path(), {EMULATOR_ENV_VAR: gcs.url}
    deployed = invoke(project, url, 'build', '--no-checks', 'test', 'deploy', **extra)
    assert deployed.returncode == 0, deployed.stderr[-3000:]
    build_id = bucket_io.read_json(layout.Env(url, layout.PROD).variables)['build_id']
    staged = invoke(project, url, 'dags', '--env', 'prod', '--out', str(root / 'dags'), **extra)
    assert staged.returncode == 0, staged.stderr[-3000:]
    span = demo.land(CtPaths(url, 'taxi').landing, demo.DEMO_SPANS[0])
    path = f'{AIRFLOW.parent}{os.pathsep}{os.environ.get("PATH", "")}'
    env = dict(os.environ, PATH=path, AIRFLOW_HOME=str(root / 'airflow'),
               AIRFLOW__CORE__DAGS_FOLDER=str(root / 'dags'),
               AIRFLOW__CORE__LOAD_EXAMPLES='False', AIRFLOW_VAR_BEAM_PIPELINES_BUCKET=url,
               AIRFLOW_VAR_BEAM_PIPELINES_CT_RUNNER='DirectRunner',
               AIRFLOW_VAR_BEAM_PIPELINES_WHEEL_DIR=str(root / 'wheels'), **extra)
    for name in ('PYTHONPATH', signing.SIGNING_KEY_ENV_VAR):
      env.pop(name, None)
    migrated = subprocess.run([str(AIRFLOW), 'db', 'migrate'], env=env, capture_output=True,
                              text=True, timeout=300)
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    composer = types.SimpleNamespace(env=env)
    # In Airflow's own folder, as on a Composer worker: `python -m` puts the working directory
    # first on sys.path, and a source checkout there would shadow the installed wheel.
    assert dags_test(composer, 'beam_pipelines_ct', cwd=root / 'airflow') == 'success'
    reg = registry.Registry(CtPaths(url, 'taxi').registry)
    assert reg.numbers() == [1] and reg.aliases()['production'] == 1
    lineage = bucket_io.read_json(reg.record(1)['lineage'])
    assert lineage['code']['build_id'] == build_id and lineage['code']['source'] == 'deployed-wheel'
    assert lineage['data']['span'].rstrip('/').endswith(span.rstrip('/').rsplit('/', 1)[-1])
