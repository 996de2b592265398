"""The Cloud Build configs (build/cloudbuild*.yaml): well-formed, substitutions consistent and
documented, images pinned, and the same steps as the local `invoke` loop."""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
import shutil
import subprocess

import pytest
import yaml

from conftest import REPO

AIRFLOW_PYTHON = REPO / '.venv-airflow' / 'bin' / 'python'

CONFIGS = {
    'build/cloudbuild.yaml': ['build', 'test'],  # `invoke build test`
    'build/cloudbuild-prod.yaml': ['deploy', 'status'],  # `invoke deploy` (+ what it left)
}
TOP_LEVEL_KEYS = {'steps', 'substitutions', 'options', 'timeout', 'images', 'artifacts', 'tags',
                  'availableSecrets', 'logsBucket', 'serviceAccount', 'queueTtl'}
STEP_KEYS = {'id', 'name', 'args', 'entrypoint', 'env', 'dir', 'waitFor', 'secretEnv', 'timeout',
             'volumes', 'script', 'allowFailure', 'allowExitCodes'}
BUILT_INS = {'PROJECT_ID', 'PROJECT_NUMBER', 'BUILD_ID', 'LOCATION', 'TRIGGER_NAME', 'COMMIT_SHA',
             'SHORT_SHA', 'REVISION_ID', 'REPO_NAME', 'REPO_FULL_NAME', 'BRANCH_NAME', 'TAG_NAME',
             'REF_NAME', 'TRIGGER_BUILD_CONFIG_PATH', 'SERVICE_ACCOUNT_EMAIL', 'SERVICE_ACCOUNT'}
# Cloud Build substitutes $NAME and ${NAME}; $$ is a literal $ (left to bash).
SUBSTITUTION = re.compile(r'(?<!\$)\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))')


def _load(path):
  return yaml.safe_load((REPO / path).read_text())


def _references(value) -> set:
  text = yaml.safe_dump(value).replace('$$', '')
  return {a or b for a, b in SUBSTITUTION.findall(text)}


def _resolve(text: str, substitutions: dict) -> str:
  return SUBSTITUTION.sub(lambda m: str(substitutions.get(m.group(1) or m.group(2), m.group(0))),
                          text)


def _invoke_commands(config) -> list:
  """Every `invoke <task> ...` the steps run, as argument lists (entrypoint or bash script)."""
  commands = []
  for step in config['steps']:
    if step.get('entrypoint', '').endswith('/invoke'):
      commands.append(list(step['args']))
    elif step.get('entrypoint') == 'bash' and step['args'][0] == '-c':
      for line in step['args'][1].replace('\\\n', ' ').splitlines():
        words = shlex.split(line.replace('$$', '$'), comments=True)
        if words and words[0].endswith('/invoke'):
          commands.append(words[1:])
  return commands


@pytest.mark.parametrize('path', sorted(CONFIGS))
def test_structure(path):
  config = _load(path)
  assert set(config) <= TOP_LEVEL_KEYS, set(config) - TOP_LEVEL_KEYS
  ids = [step['id'] for step in config['steps']]
  assert len(ids) == len(set(ids)), f'duplicate step ids in {path}'
  for index, step in enumerate(config['steps']):
    assert set(step) <= STEP_KEYS, (step['id'], set(step) - STEP_KEYS)
    assert step.get('name') and isinstance(step.get('args'), list), step
    assert all(isinstance(arg, str) for arg in step['args']), step['id']
    for needed in step.get('waitFor', []):
      assert needed in ids[:index], f'{step["id"]} waits for {needed}, not an earlier step'
  assert re.fullmatch(r'\d+s', config['timeout'])


@pytest.mark.parametrize('path', sorted(CONFIGS))
def test_substitutions_are_defined_used_and_documented(path):
  config = _load(path)
  defined = set(config['substitutions'])
  referenced = _references({k: v for k, v in config.items() if k != 'substitutions'})
  assert all(name.startswith('_') for name in defined)
  assert referenced - defined - BUILT_INS == set(), 'referenced but not defined'
  assert defined - referenced == set(), 'defined but never used (Cloud Build rejects those)'
  header = (REPO / path).read_text().split('\nsubstitutions:')[0]
  undocumented = [name for name in defined if not re.search(rf'^#\s+{name}\s', header, re.M)]
  assert not undocumented, f'substitutions without a comment in the header: {undocumented}'


@pytest.mark.parametrize('path', sorted(CONFIGS))
def test_images_are_pinned(path):
  config = _load(path)
  for step in config['steps']:
    image = _resolve(step['name'], config['substitutions'])
    assert '$' not in image, f'{step["id"]}: image {image} is not resolved'
    assert re.search(r'(:[^:/]*\d[^:/]*|@sha256:[0-9a-f]{64})$', image), (
        f'{step["id"]}: image {image} is not pinned to a version')
    assert not image.endswith(':latest'), image


def test_python_image_is_the_locks_interpreter():
  for path in CONFIGS:
    image = _load(path)['substitutions']['_PYTHON_IMAGE']
    assert re.match(r'python:3\.11\.\d+-', image), (path, image)


def _invoke_collection():
  """tasks.py's tasks, loaded by path (the repository root need not be on sys.path)."""
  import importlib.util

  from invoke import Collection
  spec = importlib.util.spec_from_file_location('beam_pipelines_tasks_py', REPO / 'tasks.py')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return Collection.from_module(module)


@pytest.mark.parametrize('path', sorted(CONFIGS))
def test_steps_mirror_the_invoke_tasks(path):
  known = set(_invoke_collection().task_names)
  commands = _invoke_commands(_load(path))
  assert [command[0] for command in commands] == CONFIGS[path]
  for command in commands:
    assert command[0] in known, f'invoke {command[0]} is not a task of tasks.py'
    if command[0] in ('test', 'deploy', 'status'):
      assert command[command.index('--bucket') + 1] == 'gs://${_BUCKET}'


@pytest.mark.parametrize('path', sorted(CONFIGS))
def test_install_step_comes_first_and_uses_the_repos_script(path):
  first = _load(path)['steps'][0]
  assert first['id'] == 'install' and first['args'] == ['scripts/install.sh']
  assert (REPO / 'scripts' / 'install.sh').exists()


def test_prod_deploy_is_explicitly_approved_and_the_gate_is_documented():
  text = (REPO / 'build' / 'cloudbuild-prod.yaml').read_text()
  (deploy,) = [c for c in _invoke_commands(_load('build/cloudbuild-prod.yaml')) if c[0] == 'deploy']
  assert '--approve' in deploy
  assert '--require-approval' in text and 'APPROVAL GATE' in text


def test_dag_steps_validate_import_and_trigger_the_dags_that_exist():
  config = _load('build/cloudbuild.yaml')
  steps = {step['id']: step for step in config['steps']}
  assert steps['validate-dags']['args'] == ['scripts/check_dags.py', 'build/dags']
  assert (REPO / 'scripts' / 'check_dags.py').exists()
  assert steps['import-dags']['args'] == ['scripts/composer_dags.sh', 'import']
  dag_ids = set(re.findall(r"^DAG_ID = '([^']+)'", '\n'.join(
      p.read_text() for p in (REPO / 'build' / 'dags').glob('*_dag.py')), re.M))
  script = steps['trigger-test-dag']['args'][1]
  (triggered,) = re.findall(r'composer_dags.sh trigger (\S+)', script)
  assert triggered in dag_ids
  assert set(re.findall(r'composer_dags.sh ready (\S+)', script)) == dag_ids - {triggered}
  # The build id namespace is the harness's; the DAG run id only carries Cloud Build's.
  assert 'cloudbuild-${BUILD_ID}' in script


def _dag_folder_after_import(config_path: str, destination) -> list:
  """The Composer DAG folder as the import step leaves it, by `gcloud composer environments storage
  dags import`'s rule: a file --source lands at the root, a folder --source as that folder."""
  (step,) = [s for s in _load(config_path)['steps'] if s['id'] == 'import-dags']
  if step['args'] == ['scripts/composer_dags.sh', 'import']:
    listed = subprocess.run(['bash', 'scripts/composer_dags.sh', 'sources'], cwd=REPO, check=True,
                            capture_output=True, text=True).stdout.split()
  else:
    listed = [step['args'][step['args'].index('--source') + 1]]
  for source in listed:
    source = REPO / source
    if source.is_dir():
      shutil.copytree(source, destination / source.name)
    else:
      shutil.copy2(source, destination / source.name)
  return listed


@pytest.mark.integration
@pytest.mark.parametrize('path', sorted(CONFIGS))
def test_dag_files_land_at_the_dag_folder_root_and_import(path, tmp_path):
  """Composer puts only the DAG folder's root on sys.path: dags/dags/ breaks the helper imports."""
  listed = _dag_folder_after_import(path, tmp_path)
  assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
      p.name for p in (REPO / 'build' / 'dags').glob('*.py')), listed
  done = subprocess.run([str(AIRFLOW_PYTHON), str(REPO / 'scripts' / 'check_dags.py'),
                         str(tmp_path)], capture_output=True, text=True, timeout=300, cwd=REPO)
  report = json.loads(done.stdout)
  assert report['import_errors'] == {} and set(report['dags']) == {
      'beam_pipelines_test', 'beam_pipelines_prod'}


@pytest.mark.integration
def test_a_dag_is_triggered_only_once_parsed_and_unpaused(tmp_path):
  """scripts/composer_dags.sh against a real (local) Airflow: refuses before the DAG is parsed,
  then unpauses and triggers it."""
  airflow = str(AIRFLOW_PYTHON.parent / 'airflow')
  env = dict(os.environ, AIRFLOW_HOME=str(tmp_path), AIRFLOW_CLI=airflow, DAG_WAIT_SECONDS='0',
             AIRFLOW__CORE__DAGS_FOLDER=str(REPO / 'build' / 'dags'),
             AIRFLOW__CORE__LOAD_EXAMPLES='False')
  run = functools.partial(subprocess.run, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
  assert run([airflow, 'db', 'migrate']).returncode == 0
  early = run(['bash', 'scripts/composer_dags.sh', 'trigger', 'beam_pipelines_test', 'cb-1'])
  assert early.returncode == 1 and 'not parsed' in early.stderr
  assert run([airflow, 'dags', 'reserialize']).returncode == 0  # what Composer's processor does
  done = run(['bash', 'scripts/composer_dags.sh', 'trigger', 'beam_pipelines_test', 'cb-1'])
  assert done.returncode == 0, done.stderr[-2000:]
  listed = json.loads(run([airflow, 'dags', 'list', '-o', 'json']).stdout.strip().splitlines()[-1])
  paused = {d['dag_id']: str(d['is_paused']) for d in listed}
  assert paused['beam_pipelines_test'] == 'False'
  runs = run([airflow, 'dags', 'list-runs', 'beam_pipelines_test', '-o', 'json'])
  assert '"cb-1"' in runs.stdout


GCLOUD_IMAGE_FLOOR = (528, 0, 0)  # the newest google-cloud-cli release seen here; raise it yearly


@pytest.mark.parametrize('path', sorted(CONFIGS))
def test_gcloud_image_is_a_current_release(path):
  """Cloud Build's gcloud images are kept about a year: the pin must not be older than the floor."""
  image = _load(path)['substitutions']['_GCLOUD_IMAGE']
  version = re.search(r':(\d+)\.(\d+)\.(\d+)-slim$', image)
  assert version and tuple(map(int, version.groups())) >= GCLOUD_IMAGE_FLOOR, image
