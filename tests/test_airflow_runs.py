"""The Composer DAGs run for real: `airflow dags test` in .venv-airflow (Airflow 3.3, the Apache Beam
provider), on a local bucket that `invoke build test` filled, on the DirectRunner.

The Beam task builds its own virtualenv and installs the staged wheel constrained by the build's
lock (as on Composer, where pip does it; here uv, which Airflow uses when it is on PATH). The test DAG adds its verdict to the build's test report through the
harness's writer; the prod DAG runs the deployed build; a wrong word count fails the test DAG and
ends the build's "test passed" record, so deploy refuses it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import types

import pytest

from beam_pipelines.harness import results
from beam_pipelines.store import layout

from conftest import REPO
from harness.support import invoke, make_project

pytestmark = [pytest.mark.integration, pytest.mark.slow]

AIRFLOW = REPO / '.venv-airflow' / 'bin' / 'airflow'
FINISHED = re.compile(r'DagRun Finished: dag_id=(\w+).*?state=(\w+)')


@pytest.fixture(scope='module')
def composer(tmp_path_factory):
  """A project copy, its build tested by `invoke test` on a local bucket, and a local Airflow."""
  if not AIRFLOW.exists():
    pytest.fail(f'{AIRFLOW} is missing: run scripts/install.sh')
  root = tmp_path_factory.mktemp('composer')
  project = make_project(root / 'project')
  bucket = root / 'bucket'
  tested = invoke(project, bucket, 'build', '--no-checks', 'test')
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
  env.pop('PYTHONPATH', None)
  migrated = subprocess.run([str(AIRFLOW), 'db', 'migrate'], env=env, capture_output=True,
                            text=True, timeout=300)
  assert migrated.returncode == 0, migrated.stderr[-3000:]
  return types.SimpleNamespace(project=project, bucket=bucket, build_id=build_id, env=env)


def dags_test(composer, dag_id: str) -> str:
  """`airflow dags test DAG_ID`; returns the run's final state."""
  done = subprocess.run([str(AIRFLOW), 'dags', 'test', dag_id], env=composer.env,
                        capture_output=True, text=True, timeout=1500)
  finished = FINISHED.findall(done.stdout + done.stderr)
  assert finished, (done.stdout + done.stderr)[-4000:]
  assert finished[-1][0] == dag_id
  return finished[-1][1]


def test_the_test_dag_adds_its_verdict_and_keeps_invoke_tests(composer):
  assert dags_test(composer, 'beam_pipelines_test') == 'success'
  record = results.read_passed(str(composer.bucket), composer.build_id)
  sources = [(r['check'], r['tested_by'].split('/')[0], r.get('runner')) for r in record.results]
  assert ('golden_counts', 'composer:beam_pipelines_test', 'DirectRunner') in sources
  assert {'ml_model', 'golden_counts'} <= {c for c, s, _ in sources if not s.startswith('composer')}
  assert record.ml_status == 'BLESSED'


def test_the_prod_dag_runs_the_deployed_build(composer):
  deployed = invoke(composer.project, composer.bucket, 'deploy')
  assert deployed.returncode == 0, deployed.stderr[-3000:]
  assert dags_test(composer, 'beam_pipelines_prod') == 'success'
  runs = composer.bucket / layout.PROD / layout.RESULTS / layout.RUNS
  shards = list(runs.glob('*/wordcount/*-of-*'))
  assert shards and all(': ' in p.read_text() for p in shards)


def test_a_wrong_word_count_fails_the_test_dag_and_deploy_refuses(composer):
  reference = composer.bucket / layout.TEST / 'references' / 'wordcount' / 'reference.txt'
  lines = reference.read_text().splitlines()
  word, count = lines[0].rsplit(': ', 1)
  reference.write_text('\n'.join([f'{word}: {int(count) + 1}', *lines[1:]]) + '\n')
  assert dags_test(composer, 'beam_pipelines_test') == 'failed'
  report = results.read_report(
      layout.Env(str(composer.bucket), layout.TEST).report(composer.build_id))
  assert report.status == 'failed' and f'{word} (expected {int(count) + 1}' in ' '.join(
      report.failures())
  refused = invoke(composer.project, composer.bucket, 'deploy', '--build-id', composer.build_id)
  assert refused.returncode == 2 and 'did not pass test' in refused.stderr + refused.stdout
