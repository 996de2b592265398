"""The Cloud Build configs (build/cloudbuild*.yaml): well-formed, substitutions consistent and
documented, images pinned, and the same steps as the local `invoke` loop."""

from __future__ import annotations

import functools
import json
import os
import pathlib
import re
import shlex
import shutil
import subprocess

import pytest
import yaml

from conftest import REPO

AIRFLOW_PYTHON = REPO / '.venv-airflow' / 'bin' / 'python'

CONFIGS = {
    'build/cloudbuild.yaml': ['build', 'test', 'dags'],  # `invoke build test`, its test DAG
    'build/cloudbuild-prod.yaml': ['deploy', 'status', 'dags'],  # `invoke deploy`, its prod DAGs
}
# The DAGs each build imports (its own environment's only) and the folder `invoke dags` stages.
IMPORTED = {'build/cloudbuild.yaml': ('test', {'beam_pipelines_test'}),
            'build/cloudbuild-prod.yaml': ('prod', {'beam_pipelines_prod', 'beam_pipelines_ct'})}
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
    if command[0] in ('test', 'deploy', 'status', 'dags'):
      assert command[command.index('--bucket') + 1] == 'gs://${_BUCKET}'
    if command[0] == 'dags':
      env, _ = IMPORTED[path]
      assert command[command.index('--env') + 1] == env
      assert command[command.index('--out') + 1] == f'dags-{env}'


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


def test_the_test_build_validates_imports_and_triggers_only_the_test_dag_for_itself():
  config = _load('build/cloudbuild.yaml')
  steps = {step['id']: step for step in config['steps']}
  assert steps['validate-dags']['args'] == ['scripts/check_dags.py', 'dags-test']
  assert (REPO / 'scripts' / 'check_dags.py').exists()
  assert steps['import-dags']['args'] == ['scripts/composer_dags.sh', 'import', 'dags-test']
  script = steps['trigger-test-dag']['args'][1]
  (triggered,) = re.findall(r'composer_dags.sh trigger (\S+)', script)
  assert triggered == 'beam_pipelines_test'
  assert 'composer_dags.sh ready' not in script  # no other DAG is touched, least of all prod's
  # The run id carries Cloud Build's id; the conf names the harness build it tests.
  assert 'cloudbuild-${BUILD_ID}' in script
  assert '"build_id"' in script and '$${build_id}' in script
  assert 'beam_pipelines_prod' not in (REPO / 'build' / 'cloudbuild.yaml').read_text()


def test_the_prod_build_deploys_a_named_build_with_its_evidence_and_its_own_dags():
  config = _load('build/cloudbuild-prod.yaml')
  steps = {step['id']: step for step in config['steps']}
  script = steps['deploy']['args'][1]
  assert 'exit 2' in script.split('.venv/bin/invoke deploy')[0]  # no build id: nothing deployed
  assert 'BEAM_PIPELINES_REQUIRE_EVIDENCE=1' in script
  assert config['substitutions']['_REQUIRE_COMPOSER_EVIDENCE'] == 'true'
  assert steps['import-dags']['args'] == ['scripts/composer_dags.sh', 'import', 'dags-prod']
  readied = re.findall(r'composer_dags.sh ready (\S+)', steps['unpause-prod-dags']['args'][1])
  assert set(readied) == IMPORTED['build/cloudbuild-prod.yaml'][1]


@pytest.mark.parametrize('path', sorted(CONFIGS))
def test_the_signing_key_comes_from_secret_manager(path):
  config = _load(path)
  (secret,) = config['availableSecrets']['secretManager']
  assert secret['env'] == 'BEAM_PIPELINES_SIGNING_KEY'
  assert secret['versionName'] == (
      'projects/${PROJECT_ID}/secrets/${_SIGNING_SECRET}/versions/latest')
  users = [s['id'] for s in config['steps'] if 'BEAM_PIPELINES_SIGNING_KEY' in s.get('secretEnv', [])]
  assert users == (['test'] if path == 'build/cloudbuild.yaml' else ['deploy'])


@pytest.mark.parametrize('path', sorted(CONFIGS))
def test_builds_install_only_what_they_use(path):
  (install,) = [s for s in _load(path)['steps'] if s['id'] == 'install']
  assert install['env'] == ['BEAM_PIPELINES_INSTALL=core']  # no Chromium, no Airflow venv


def _dag_folder_after_import(config_path: str, destination, staged_root) -> list:
  """The Composer DAG folder as the import step leaves it, by `gcloud composer environments storage
  dags import`'s rule: a file --source lands at the root, a folder --source as that folder. The
  staged folder is what `invoke dags` writes (``harness.dags.stage`` of the build's files)."""
  from beam_pipelines.harness import dags
  (step,) = [s for s in _load(config_path)['steps'] if s['id'] == 'import-dags']
  env, _ = IMPORTED[config_path]
  folder = staged_root / step['args'][2]
  folder.mkdir(parents=True)
  source = {p.name: p.read_bytes() for p in (REPO / 'build' / 'dags').glob('*.py')}
  for name, data in dags.stage(source, env).items():
    (folder / name).write_bytes(data)
  listed = subprocess.run(['bash', 'scripts/composer_dags.sh', 'sources', str(folder)], cwd=REPO,
                          check=True, capture_output=True, text=True).stdout.split()
  for path in listed:
    shutil.copy2(path, destination / pathlib.Path(path).name)
  return listed


@pytest.mark.integration
@pytest.mark.parametrize('path', sorted(CONFIGS))
def test_dag_files_land_at_the_dag_folder_root_and_import(path, tmp_path):
  """Composer puts only the DAG folder's root on sys.path: dags/dags/ breaks the helper imports."""
  destination = tmp_path / 'dags'
  destination.mkdir()
  listed = _dag_folder_after_import(path, destination, tmp_path / 'staged')
  assert sorted(p.name for p in destination.iterdir()) == sorted(
      pathlib.Path(p).name for p in listed)
  done = subprocess.run([str(AIRFLOW_PYTHON), str(REPO / 'scripts' / 'check_dags.py'),
                         str(destination)], capture_output=True, text=True, timeout=300, cwd=REPO)
  report = json.loads(done.stdout)
  assert report['import_errors'] == {} and set(report['dags']) == IMPORTED[path][1]


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
  done = run(['bash', 'scripts/composer_dags.sh', 'trigger', 'beam_pipelines_test', 'cb-1',
              '{"build_id": "20261126T153000Z-5bea069-3f9a1c"}'])
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
