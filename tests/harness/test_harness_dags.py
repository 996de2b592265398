"""`invoke dags`: the Composer DAG files of the build an environment runs, staged per environment.

On the loop's real bucket (build A tested, build B tested and deployed): the test folder holds the
test DAG only, the prod folder the prod and CT DAGs of the deployed build; both folders together
load into Airflow's real DagBag with no import error, each DAG on its own environment's copy of
the helper modules, so importing a test build's DAG never changes the prod DAG's code.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess

import pytest

from beam_pipelines.harness import dags
from beam_pipelines.store import layout

from conftest import REPO
from harness.support import invoke

pytestmark = pytest.mark.integration
AIRFLOW_PYTHON = REPO / '.venv-airflow' / 'bin' / 'python'


@pytest.fixture(scope='module')
def staged(loop, project, tmp_path_factory) -> pathlib.Path:
  root = tmp_path_factory.mktemp('staged-dags')
  for env, extra in (('test', ['--build-id', loop.a]), ('prod', [])):
    done = invoke(project, loop.bucket, 'dags', '--env', env, '--out', str(root / env), *extra)
    assert done.returncode == 0, done.stderr[-2000:]
  return root


def test_each_environment_gets_only_its_dags_and_its_own_helpers(staged):
  assert sorted(p.name for p in (staged / 'test').iterdir()) == [
      'beam_pipelines_test_dag.py', 'beam_pipelines_test_support.py', 'beam_pipelines_test_tasks.py']
  assert sorted(p.name for p in (staged / 'prod').iterdir()) == [
      'beam_pipelines_ct_dag.py', 'beam_pipelines_prod_dag.py', 'beam_pipelines_prod_support.py',
      'beam_pipelines_prod_tasks.py']
  assert 'import beam_pipelines_test_tasks as tasks' in (
      staged / 'test' / 'beam_pipelines_test_dag.py').read_text()
  assert 'import beam_pipelines_prod_support as support' in (
      staged / 'prod' / 'beam_pipelines_prod_tasks.py').read_text()


def test_prod_gets_the_dags_of_the_deployed_build_byte_for_byte(loop, staged):
  """Apart from the renamed imports, the staged files are the deployed build's artifacts."""
  env = layout.Env(str(loop.bucket), layout.PROD)
  shipped = pathlib.Path(env.artifact(loop.b, 'dags/beam_pipelines_prod_dag.py')).read_bytes()
  assert (staged / 'prod' / 'beam_pipelines_prod_dag.py').read_bytes() == dags.rename_imports(
      shipped.decode(), 'prod').encode()
  assert 'dags/beam_pipelines_ct_dag.py' in loop.manifest_b['files']


def test_both_environments_load_together_in_a_real_dagbag(staged, tmp_path):
  folder = tmp_path / 'dags'
  folder.mkdir()
  for env in ('test', 'prod'):
    for path in (staged / env).iterdir():
      shutil.copy2(path, folder / path.name)
  done = subprocess.run([str(AIRFLOW_PYTHON), str(REPO / 'scripts' / 'check_dags.py'),
                         str(folder)], capture_output=True, text=True, timeout=300)
  report = json.loads(done.stdout)
  assert report['import_errors'] == {}
  assert set(report['dags']) == {'beam_pipelines_test', 'beam_pipelines_prod', 'beam_pipelines_ct'}


def test_a_tampered_dag_file_is_refused(loop, project, tmp_path):
  copy = tmp_path / 'bucket'
  shutil.copytree(loop.bucket, copy)
  for record in copy.rglob('*.json'):
    if not {'artifacts', 'workflows'} & set(record.relative_to(copy).parts):
      record.write_text(record.read_text().replace(str(loop.bucket), str(copy)))
  shipped = pathlib.Path(layout.Env(str(copy), layout.PROD).artifact(
      loop.b, 'dags/beam_pipelines_prod_dag.py'))
  shipped.write_text(shipped.read_text() + '\n# changed after the build\n')
  done = invoke(project, copy, 'dags', '--env', 'prod', '--out', str(tmp_path / 'out'))
  assert done.returncode == 2 and 'refusing to import it' in done.stderr
  assert not (tmp_path / 'out').exists()  # nothing staged from a build that fails its check


def test_prod_takes_no_build_id():
  with pytest.raises(Exception, match='prod imports the DAGs of the build it runs'):
    dags.stage_build('/nonexistent', 'prod', pathlib.Path('/tmp/never'),
                     '20261126T153000Z-5bea069-3f9a1c')
