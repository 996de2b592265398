"""The GCP files, checked offline: Cloud Build configs against their schema, shell scripts with
shellcheck, the infrastructure script's grants (least privilege), the SDK container's pins, the
Flex Template spec, and the wiring between Cloud Build, the container and the DAGs."""

from __future__ import annotations

import collections
import os
import pathlib
import re
import shlex
import subprocess
import sys

import pytest
import yaml

from beam_pipelines.store import identity

from conftest import REPO
from harness.support import make_project

BIN = pathlib.Path(sys.executable).parent
CLOUD_BUILD = ['build/cloudbuild.yaml', 'build/cloudbuild-prod.yaml']
SCRIPTS = ['infra/gcp.sh', 'scripts/composer_dags.sh', 'scripts/submit_build.sh',
           'scripts/install-mlflow.sh', 'scripts/lib/pinned-venv.sh',
           'scripts/install.sh', 'scripts/install-airflow.sh', '.ci/run']
INFRA_ENV = {'PROJECT_ID': 'my-project', 'BUCKET': 'my-project-beam', 'GITHUB_OWNER': 'me',
             'GITHUB_REPO': 'beam-pipelines', 'DRY_RUN': '1'}


def _config(path: str) -> dict:
  return yaml.safe_load((REPO / path).read_text())


def _steps(path: str) -> dict:
  return {step['id']: step for step in _config(path)['steps']}


@pytest.mark.integration
def test_cloud_build_files_match_the_cloudbuild_schema():
  done = subprocess.run([str(BIN / 'check-jsonschema'), '--builtin-schema', 'vendor.cloudbuild',
                         *CLOUD_BUILD], cwd=REPO, capture_output=True, text=True, timeout=120)
  assert done.returncode == 0, done.stdout + done.stderr


def test_shell_scripts_pass_shellcheck():
  done = subprocess.run([str(BIN / 'shellcheck'), *SCRIPTS], cwd=REPO, capture_output=True,
                        text=True, timeout=120)
  assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize('path', CLOUD_BUILD)
def test_builds_run_as_their_own_service_account(path):
  config = _config(path)
  assert config['serviceAccount'] == (
      'projects/${PROJECT_ID}/serviceAccounts/${_BUILD_SERVICE_ACCOUNT}')
  assert config['options']['logging'] == 'CLOUD_LOGGING_ONLY'  # required with a custom account


# ---------------------------------------------------------------------------------------------
# infra/gcp.sh


@pytest.fixture(scope='module')
def infra_commands() -> list:
  done = subprocess.run(['bash', 'infra/gcp.sh'], cwd=REPO, capture_output=True, text=True,
                        env=dict(os.environ, **INFRA_ENV), timeout=60)
  assert done.returncode == 0, done.stderr
  return [shlex.split(line[2:]) for line in done.stdout.splitlines() if line.startswith('+ ')]


def _flag(command: list, name: str) -> str:
  return command[command.index(name) + 1]


def _grants(commands: list) -> dict:
  """{service account: {(scope, role[, condition title])}} of every IAM binding the script adds."""
  grants = collections.defaultdict(set)
  for command in commands:
    if 'add-iam-policy-binding' not in command:
      continue
    member = _flag(command, '--member').split(':', 1)[1]
    scope = command[1] if command[1] != 'iam' else 'service-account'
    grant = (scope, _flag(command, '--role'))
    if '--condition' in command and _flag(command, '--condition') != 'None':
      grant += (_flag(command, '--condition').rsplit(',title=', 1)[1],)
    grants[member.split('@')[0]].add(grant)
  return grants


def _writable_prefixes(commands: list, bucket: str = 'my-project-beam') -> dict:
  """{service account: [object-name prefixes it may write in ``bucket``]}, from the conditions."""
  prefixes = collections.defaultdict(list)
  for command in commands:
    if 'add-iam-policy-binding' in command and command[4] == f'gs://{bucket}' and (
        _flag(command, '--role') == 'roles/storage.objectUser'):
      member = _flag(command, '--member').split(':', 1)[1].split('@')[0]
      expression = _flag(command, '--condition').split('expression=', 1)[1]
      prefixes[member] += re.findall(rf'startsWith\("projects/_/buckets/{bucket}/objects/([^"]*)"\)',
                                     expression)
  return prefixes


def test_each_actor_gets_only_its_roles(infra_commands):
  assert _grants(infra_commands) == {
      'beam-pipelines-build': {('storage', 'roles/storage.objectViewer'),
                               ('storage', 'roles/storage.objectUser', 'test-area'),
                               ('storage', 'roles/storage.objectUser', 'test-dags'),
                               ('artifacts', 'roles/artifactregistry.writer'),
                               ('projects', 'roles/composer.user'),
                               ('projects', 'roles/logging.logWriter'),
                               ('secrets', 'roles/secretmanager.secretAccessor')},
      'beam-pipelines-deploy': {('storage', 'roles/storage.objectViewer'),
                                ('storage', 'roles/storage.objectUser', 'prod-area'),
                                ('storage', 'roles/storage.objectUser', 'prod-dags'),
                                ('projects', 'roles/composer.user'),
                                ('projects', 'roles/logging.logWriter'),
                                ('secrets', 'roles/secretmanager.secretAccessor')},
      'beam-pipelines-composer': {('projects', 'roles/composer.worker'),
                                  ('projects', 'roles/dataflow.developer'),
                                  ('service-account', 'roles/iam.serviceAccountUser'),
                                  ('storage', 'roles/storage.objectViewer'),
                                  ('storage', 'roles/storage.objectUser', 'dag-outputs')},
      'beam-pipelines-dataflow': {('projects', 'roles/dataflow.worker'),
                                  ('storage', 'roles/storage.objectViewer'),
                                  ('storage', 'roles/storage.objectUser', 'job-outputs'),
                                  ('artifacts', 'roles/artifactregistry.reader')},
  }
  for command in infra_commands:
    if command[1] == 'storage' and 'add-iam-policy-binding' in command:
      assert command[4] == 'gs://my-project-beam' or command[4].startswith('gs://COMPOSER')
    if 'add-iam-policy-binding' in command and _flag(command, '--role') in (
        'roles/storage.objectAdmin', 'roles/storage.admin'):
      pytest.fail(f'a bucket-wide write role: {command}')


@pytest.mark.parametrize('name, writers', [
    ('prod/variables.json', {'beam-pipelines-deploy'}),
    ('prod/artifacts/B/beam_pipelines-0.1.0-py3-none-any.whl', {'beam-pipelines-deploy'}),
    ('prod/history/e.json', {'beam-pipelines-deploy'}),
    ('test/passed/B.json', {'beam-pipelines-build'}),
    ('test/variables.json', {'beam-pipelines-build'}),
    ('test/evidence/B/run.json', {'beam-pipelines-build', 'beam-pipelines-composer'}),
    ('prod/registry/taxi/aliases.json', {'beam-pipelines-deploy', 'beam-pipelines-composer'}),
    ('prod/temp/x', {'beam-pipelines-deploy', 'beam-pipelines-composer',
                     'beam-pipelines-dataflow'}),
])
def test_only_the_owner_of_a_prefix_can_write_it(infra_commands, name, writers):
  """The test build, the DAGs and Dataflow workers cannot write what prod runs or a verdict."""
  prefixes = _writable_prefixes(infra_commands)
  assert {sa for sa, owned in prefixes.items() if any(name.startswith(p) for p in owned)} == writers


def test_each_build_imports_only_its_own_dag_files(infra_commands):
  dag_files = _writable_prefixes(infra_commands, 'COMPOSER_BUCKET')
  assert dag_files == {'beam-pipelines-build': ['dags/beam_pipelines_test_'],
                       'beam-pipelines-deploy': ['dags/beam_pipelines_prod_',
                                                 'dags/beam_pipelines_ct_']}


def test_the_bucket_is_private_and_versioned(infra_commands):
  (create,) = [c for c in infra_commands if c[1:4] == ['storage', 'buckets', 'create']]
  assert '--uniform-bucket-level-access' in create and '--public-access-prevention' in create
  (update,) = [c for c in infra_commands if c[1:4] == ['storage', 'buckets', 'update']]
  assert '--versioning' in update and _flag(update, '--lifecycle-file') == 'infra/lifecycle.json'


def test_lifecycle_rules_clean_temp_files_and_old_versions():
  import json
  rules = json.loads((REPO / 'infra' / 'lifecycle.json').read_text())['rule']
  temp = [r for r in rules if 'matchesPrefix' in r['condition']]
  assert temp and set(temp[0]['condition']['matchesPrefix']) == {
      'test/temp/', 'test/staging/', 'prod/temp/', 'prod/staging/'}
  assert any(r['condition'].get('daysSinceNoncurrentTime') and r['condition'].get('isLive') is False
             for r in rules)
  assert all(r['action'] == {'type': 'Delete'} for r in rules)


def test_composer_runs_the_airflow_major_ci_tests_the_dags_on(infra_commands):
  (create,) = [c for c in infra_commands if c[1:4] == ['composer', 'environments', 'create']]
  airflow = re.search(r'^apache-airflow==(\d+)\.', (REPO / 'requirements' / 'airflow-lock.txt')
                      .read_text(), re.M).group(1)
  assert _flag(create, '--image-version') == f'composer-3-airflow-{airflow}'


def test_check_mode_describes_each_resource_it_compares():
  done = subprocess.run(['bash', 'infra/gcp.sh', 'check'], cwd=REPO, capture_output=True,
                        text=True, env=dict(os.environ, **INFRA_ENV), timeout=60)
  assert done.returncode == 0, done.stderr
  described = [shlex.split(line[2:]) for line in done.stdout.splitlines() if line.startswith('+ ')]
  assert not [c for c in described if 'create' in c or 'add-iam-policy-binding' in c]
  formats = {_flag(c, '--format') for c in described if '--format' in c}
  assert {'value(config.softwareConfig.imageVersion)', 'value(approvalConfig.approvalRequired)',
          'value(github.push.branch)', 'value(serviceAccount)'} <= formats


def test_dataflow_gets_a_private_subnetwork(infra_commands):
  (subnet,) = [c for c in infra_commands if c[1:5] == ['compute', 'networks', 'subnets', 'create']]
  assert '--enable-private-ip-google-access' in subnet
  (firewall,) = [c for c in infra_commands if c[1:4] == ['compute', 'firewall-rules', 'create']]
  assert _flag(firewall, '--rules') == 'tcp:12345-12346'


def test_prod_is_deployed_only_after_an_approval_of_a_named_build(infra_commands):
  triggers = {_flag(c, '--name'): c for c in infra_commands if c[1:3] == ['builds', 'triggers']
              and 'create' in c}
  prod, test = triggers['beam-pipelines-prod'], triggers['beam-pipelines-test']
  assert prod[4] == 'manual' and test[4] == 'github'  # prod runs by hand, never on a push
  assert '--branch-pattern' not in prod
  assert '--require-approval' in prod and '--require-approval' not in test
  assert _flag(prod, '--build-config') == 'build/cloudbuild-prod.yaml'
  assert _flag(test, '--build-config') == 'build/cloudbuild.yaml'
  assert 'beam-pipelines-deploy@' in _flag(prod, '--service-account')
  assert 'beam-pipelines-build@' in _flag(test, '--service-account')
  assert '_DEPLOY_BUILD_ID=' in _flag(prod, '--substitutions').split(',')
  # Every substitution a trigger passes is one its config declares.
  for trigger, path in ((prod, CLOUD_BUILD[1]), (test, CLOUD_BUILD[0])):
    given = {pair.split('=', 1)[0] for pair in _flag(trigger, '--substitutions').split(',')}
    assert given <= set(_config(path)['substitutions']), given - set(_config(path)['substitutions'])


def test_composer_runs_as_its_own_account(infra_commands):
  (create,) = [c for c in infra_commands if c[1:4] == ['composer', 'environments', 'create']]
  assert _flag(create, '--service-account').startswith('beam-pipelines-composer@')


# ---------------------------------------------------------------------------------------------
# The SDK container and the Flex Template


def _lock_version(package: str) -> str:
  match = re.search(rf'^{package}==(\S+)$', (REPO / 'requirements' / 'lock.txt').read_text(), re.M)
  assert match, package
  return match.group(1)


def _stages(dockerfile: str) -> dict:
  """{stage name: its instructions} of a multi-stage Dockerfile (the last, unnamed, as '')."""
  stages, name = {}, None
  for line in dockerfile.replace('\\\n', ' ').splitlines():
    if line.startswith('FROM '):
      words = line.split()
      name = words[3] if len(words) > 3 and words[2].upper() == 'AS' else ''
      stages[name] = [line]
    elif name is not None and line.strip() and not line.startswith('#'):
      stages[name].append(line)
  return stages


DOCKERFILE = (REPO / 'build' / 'container' / 'Dockerfile').read_text()


def test_the_container_has_beams_boot_of_the_locked_version_and_only_the_locks_packages():
  assert re.search(r'^ARG BEAM_SDK_IMAGE=apache/beam_python3\.11_sdk:(\S+)$', DOCKERFILE,
                   re.M).group(1) == _lock_version('apache-beam')
  python = re.search(r'^ARG PYTHON_IMAGE=python:(3\.11\.\d+)-slim', DOCKERFILE, re.M)
  assert python, 'a plain Python 3.11 base: nothing installed but the lock\'s packages'
  sdk = _stages(DOCKERFILE)['sdk']
  assert 'COPY --from=beam /opt/apache/beam /opt/apache/beam' in sdk


def test_the_lock_layer_comes_before_the_wheel_so_builds_reuse_it():
  sdk = _stages(DOCKERFILE)['sdk']
  lock_install = next(i for i, line in enumerate(sdk) if '-r runtime.txt -c lock.txt' in line)
  wheel_copy = sdk.index('COPY dist/*.whl ./')
  assert lock_install < wheel_copy
  assert 'pip check' in sdk[lock_install]  # the lock's resolution, checked on its own
  wheel_install = sdk[wheel_copy + 1]
  assert '--no-deps' in wheel_install and 'pip check' in wheel_install
  # What the lock layer installs is the wheel's own requirements (setup.py, read not run).
  sys.path.insert(0, str(REPO / 'build' / 'container'))
  try:
    import runtime_requirements
  finally:
    sys.path.pop(0)
  from importlib.metadata import requires

  from packaging.requirements import Requirement

  def normal(lines):
    return sorted((r.name.lower(), tuple(sorted(r.extras)), str(r.specifier))
                  for r in map(Requirement, lines))
  # The installed project's metadata (setup.py as setuptools ran it): base and `ml` requirements.
  declared = [line for line in requires('beam-pipelines') or []
              if 'extra ==' not in line or '"ml"' in line]
  listed = runtime_requirements.runtime_requirements((REPO / 'setup.py').read_text())
  assert normal(listed) == normal([line.split(';')[0] for line in declared])


def test_one_image_serves_workers_and_the_flex_template_launcher():
  """Google's contract for one image in both roles: Beam's boot is the ENTRYPOINT of every
  stage that is pushed; the launcher binary and the template's main file are beside it."""
  stages = _stages(DOCKERFILE)
  for name in ('sdk', 'sdk-and-launcher'):
    entrypoints = [line for line in stages[name] if line.startswith('ENTRYPOINT')]
    assert entrypoints == ['ENTRYPOINT ["/opt/apache/beam/boot"]'], name
  launcher = stages['sdk-and-launcher']
  assert stages['sdk-and-launcher'][0] == 'FROM sdk AS sdk-and-launcher'
  assert any('/opt/google/dataflow/python_template_launcher' in line for line in launcher)
  assert 'ENV FLEX_TEMPLATE_PYTHON_PY_FILE=/template/main.py' in launcher
  assert stages[''] == ['FROM sdk']  # the default target is the workers' image


def test_the_container_step_tags_by_the_harness_build_id_before_the_test():
  steps = _steps(CLOUD_BUILD[0])
  order = list(steps)
  assert order.index('build') < order.index('container') < order.index('test')
  script = steps['container']['args'][1]
  assert '-t "$${image}:$${build_id}"' in script and 'image="${_CONTAINER_REPO}/sdk"' in script
  assert 'docker push "$${image}:$${build_id}"' in script
  assert '--cache-from "$${image}:latest"' in script  # the lock layer of the last build
  assert 'target=sdk-and-launcher' in script
  assert 'dist/manifest.json' in script
  # The DAGs' container repository is the one pushed to; the Flex Template uses the same image.
  assert 'beam_pipelines_container_repo=${_CONTAINER_REPO}/sdk' in (
      steps['set-composer-variables']['args'][1])
  assert '--image "${_CONTAINER_REPO}/sdk:$${build_id}"' in steps['flex-template']['args'][1]


def test_cloud_build_sets_every_composer_variable_the_dags_read():
  sys.path.insert(0, str(REPO / 'build' / 'dags'))
  try:
    import beam_pipelines_support as support
  finally:
    sys.path.pop(0)
  script = _steps(CLOUD_BUILD[0])['set-composer-variables']['args'][1]
  set_names = set(re.findall(r'(?:^|\s)([a-z_]+)=', script))
  # Optional, with defaults: the wheel folder (Composer's bucket mount), CT's runner (Dataflow).
  assert set_names == set(support.AIRFLOW_VARIABLES) - {'beam_pipelines_wheel_dir',
                                                        'beam_pipelines_ct_runner'}


def test_the_flex_template_parameters_are_the_word_counts_flags():
  import argparse
  import json

  from beam_pipelines import wordcount
  parser = argparse.ArgumentParser()
  wordcount.add_wordcount_arguments(parser)
  flags = {a.dest for a in parser._actions if a.dest != 'help'}
  spec = json.loads((REPO / 'build' / 'flex-template' / 'wordcount-metadata.json').read_text())
  assert {p['name'] for p in spec['parameters']} == flags
  for parameter in spec['parameters']:
    for regex in parameter.get('regexes', []):
      re.compile(regex)
  main = (REPO / 'build' / 'flex-template' / 'wordcount_main.py').read_text()
  assert 'wordcount.run()' in main
  assert 'FLEX_TEMPLATE_PYTHON_PY_FILE=/template/main.py' in DOCKERFILE
  steps = _steps(CLOUD_BUILD[0])
  assert '--metadata-file build/flex-template/wordcount-metadata.json' in (
      steps['flex-template']['args'][1])


# ---------------------------------------------------------------------------------------------
# The upload without .git


@pytest.mark.integration
def test_submit_build_records_the_commit_for_an_upload_without_git(tmp_path):
  project = make_project(tmp_path / 'project')
  done = subprocess.run(['bash', 'scripts/submit_build.sh', '--substitutions', '_BUCKET=b'],
                        cwd=project, env=dict(os.environ, DRY_RUN='1'), capture_output=True,
                        text=True, timeout=60)
  assert done.returncode == 0, done.stderr
  assert done.stdout.strip() == ('+ gcloud builds submit --config build/cloudbuild.yaml '
                                 '--substitutions _BUCKET=b .')
  head = subprocess.run(['git', 'log', '-1', '--format=%H %ct'], cwd=project, capture_output=True,
                        text=True, check=True).stdout.strip()
  assert (project / identity.SOURCE_VERSION_FILE).read_text().strip() == head
  ignored = (project / '.gcloudignore').read_text().splitlines()
  assert '.git' in ignored and '!SOURCE_VERSION' in ignored
  (project / '.git').rename(tmp_path / 'git-moved-away')  # what the upload holds
  commit, dirty, epoch = identity.git_info(project)
  assert (commit, dirty, str(epoch)) == (*head.split()[:1], False, head.split()[1])


def test_the_locks_resolution_passes_pip_check():
  """Why the container's `pip check` passes: it holds only packages of requirements/lock.txt (on a
  plain Python image), one consistent resolution, which this venv, built from the same lock,
  shows: pip finds every requirement of every installed package satisfied."""
  done = subprocess.run([sys.executable, '-m', 'pip', 'check'], capture_output=True, text=True,
                        timeout=120)
  assert done.returncode == 0, done.stdout + done.stderr
