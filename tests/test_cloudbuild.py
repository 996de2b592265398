"""The Cloud Build configs (build/cloudbuild*.yaml): well-formed, substitutions consistent and
documented, images pinned, and the same steps as the local `invoke` loop."""

from __future__ import annotations

import re
import shlex

import pytest
import yaml

from conftest import REPO

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
  assert steps['import-dags']['args'][-1] == 'build/dags/'
  dag_ids = set(re.findall(r"^DAG_ID = '([^']+)'", '\n'.join(
      p.read_text() for p in (REPO / 'build' / 'dags').glob('*_dag.py')), re.M))
  (triggered,) = re.findall(r'dags trigger -- (\S+)', steps['trigger-test-dag']['args'][1])
  assert triggered in dag_ids
  # The build id namespace is the harness's; the DAG run id only carries Cloud Build's.
  assert 'cloudbuild-${BUILD_ID}' in steps['trigger-test-dag']['args'][1]
