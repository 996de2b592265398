"""Task callables shared by the Composer DAGs: read the harness's contract, stage the wheel, check.

No Airflow import here (the DAG files do that), only the standard library and Beam's FileSystems,
so the same code is unit-tested in the project's environment and runs on Composer workers, where
the Apache Beam provider brings ``apache_beam``. The contract is the harness's
(``beam_pipelines/store/layout.py``)::

    <bucket>/<env>/variables.json                     build_id, wheel_file, sha256, workflows_dir,
                                                      input/output/reference/staging/temp locations
    <bucket>/test/variables/<build_id>.json           the same, of one tested build: a test DAG
                                                      run triggered with {"build_id": ...} reads it
    <workflows_dir>/<workflow>.json                   the deployed workflow definition: module, args
    <bucket>/test/passed/<build_id>.json              "test passed" record (what prod deploy consumes)
    <bucket>/test/evidence/<build_id>/<run>.json      a test DAG run's own evidence (deploy reads it)

The DAGs run the same deployed workflow definitions as the local harness (``invoke test``/``run``),
with the runner and the GCP project chosen by Composer's variables instead of the DirectRunner.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from typing import Dict, List, Optional, Tuple

# Mirrors of beam_pipelines.store.layout (checked equal by tests/test_dags.py).
TEST, PROD = 'test', 'prod'
VARIABLES_FILE = 'variables.json'
BUILD_VARIABLES = 'variables'  # <env>/variables/<build_id>.json
PASSED = 'passed'
STATUS_PASSED = 'passed'
REQUIRED_VARIABLES = ('build_id', 'wheel_file', 'sha256', 'manifest_file', 'workflows_dir')
LOCK_VARIABLES = ('lock_file', 'lock_sha256')  # the build's requirements lock
ARTIFACTS, WORKFLOWS, MANIFEST_FILE = 'artifacts', 'workflows', 'manifest.json'
LOCATION_DIRS = {'input_location': 'inputs', 'output_location': 'results',
                 'reference_location': 'references', 'staging_location': 'staging',
                 'temp_location': 'temp'}
BUILD_ID_PATTERN = re.compile(r'[0-9]{8}T[0-9]{6}Z-[0-9a-f]{7}-[0-9a-f]{6}')
FILE_NAME_PATTERN = re.compile(r'[A-Za-z0-9_+-][A-Za-z0-9_.+-]*')  # a plain name, no directory

# Composer (Airflow) variables: where the bucket is and how jobs run. Everything about the build
# comes from the bucket's variables.json, written by `invoke test` / `invoke deploy`.
AIRFLOW_VARIABLES = {
    'beam_pipelines_bucket': 'gs://BUCKET (the harness bucket: test/ and prod/ prefixes)',
    'beam_pipelines_runner': 'DataflowRunner (DirectRunner runs inside the Composer worker)',
    'gcp_project': 'the GCP project of the Dataflow jobs',
    'gcp_region': 'the Dataflow region, e.g. us-central1',
    'beam_pipelines_wheel_dir': 'a folder every worker sees; default: the Composer bucket mount',
    'beam_pipelines_container_repo': "the project's SDK container repository (REGION-docker.pkg."
                                     'dev/PROJECT/REPO/IMAGE); jobs run in <repo>:<build id>',
    'dataflow_service_account': "the Dataflow workers' service account (e-mail)",
    'dataflow_subnetwork': 'regions/REGION/subnetworks/NAME: workers get no public IPs there',
    'dataflow_worker_zone': 'the workers\' zone, e.g. us-central1-b (default: Dataflow picks)',
    'dataflow_max_workers': 'the autoscaling cap of each job (default 10)',
    'beam_pipelines_ct_runner': "the runner of continuous training's Beam steps (default "
                                'DataflowRunner, in the build\'s SDK container)',
}
# Composer variable -> Dataflow pipeline option. A subnetwork also turns public IPs off.
DATAFLOW_VARIABLES = {
    'dataflow_service_account': 'service_account_email',
    'dataflow_subnetwork': 'subnetwork',
    'dataflow_worker_zone': 'worker_zone',
    'dataflow_max_workers': 'max_num_workers',
}
DEFAULT_MAX_WORKERS = '10'
LOCK_NAME = 'lock.txt'  # staged beside the wheel: pip's constraints in the Beam task's venv
DEFAULT_WHEEL_DIR = '/home/airflow/gcs/data/beam-pipelines/wheels'  # gcsfuse, shared by workers
SUBMISSION_MODULE = 'beam_pipelines.submission'  # run with `python -m`, from the staged wheel


def _join(base: str, *parts: str) -> str:
  out = base.rstrip('/')
  for part in parts:
    out = f'{out}/{part.strip("/")}'
  return out


def _read_bytes(path: str) -> bytes:
  from apache_beam.io.filesystems import FileSystems
  if not FileSystems.exists(path):
    raise FileNotFoundError(f'{path} does not exist')
  with FileSystems.open(path) as handle:
    return handle.read()


def _write_bytes(path: str, data: bytes) -> None:
  """One object put on GCS; write-then-rename locally: never half-written."""
  from apache_beam.io.filesystems import FileSystems
  if '://' in path:
    with FileSystems.create(path) as handle:
      handle.write(data)
    return
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path + '.tmp', 'wb') as handle:
    handle.write(data)
  os.replace(path + '.tmp', path)


def read_variables(bucket: str, env: str, build_id: str = '') -> Dict[str, str]:
  """``<bucket>/<env>/variables.json``, validated: the deployed build of an environment.

  With ``build_id`` (a test DAG run's conf, as Cloud Build triggers it), that build's own
  variables, ``<bucket>/test/variables/<build_id>.json``: the run tests the build that asked for
  it, even when a later build has replaced ``variables.json`` since (a queued run).
  """
  if not bucket:
    raise ValueError('Airflow variable beam_pipelines_bucket is not set (gs://BUCKET)')
  if env not in (TEST, PROD):
    raise ValueError(f'unknown environment {env!r}')
  path = _join(bucket, env, VARIABLES_FILE)
  if build_id:
    if env != TEST or not BUILD_ID_PATTERN.fullmatch(build_id):
      raise ValueError(f'run conf build_id {build_id!r}: expected a build id, in the test DAG only')
    path = _join(bucket, env, BUILD_VARIABLES, f'{build_id}.json')
  try:
    variables = json.loads(_read_bytes(path).decode('utf-8'))
  except ValueError as error:
    raise ValueError(f'{path} is not valid JSON: {error}') from None
  if not isinstance(variables, dict):
    raise ValueError(f'{path} is not a JSON object')
  missing = [key for key in REQUIRED_VARIABLES if not variables.get(key)]
  if missing:
    raise ValueError(f'{path} lacks {", ".join(missing)}')
  if build_id and variables['build_id'] != build_id:
    raise ValueError(f'{path} names build {variables["build_id"]}, not {build_id}: refusing it')
  return check_pointers(bucket, env, variables, path)


def check_pointers(bucket: str, env: str, variables: Dict[str, str], path: str) -> Dict[str, str]:
  """Refuses variables that point anywhere but the named build's objects in ``env`` (the
  harness's ``records.check_pointers``): its wheel, manifest, workflows and lock, and the env's
  own locations. A lock file needs its sha256."""
  build_id = variables['build_id']
  if not isinstance(build_id, str) or not BUILD_ID_PATTERN.fullmatch(build_id):
    raise ValueError(f'{path}: build_id {build_id!r} is not a build id: refusing it')
  artifacts = _join(bucket, env, ARTIFACTS, build_id)
  expected = {'manifest_file': _join(artifacts, MANIFEST_FILE),
              'workflows_dir': _join(bucket, env, WORKFLOWS, build_id)}
  expected.update({key: _join(bucket, env, name) for key, name in LOCATION_DIRS.items()})
  for key in ('wheel_file', 'lock_file'):
    value = variables.get(key)
    name = value.rsplit('/', 1)[-1] if isinstance(value, str) else ''
    if value is not None:
      expected[key] = _join(artifacts, name if FILE_NAME_PATTERN.fullmatch(name) else '<name>')
  wrong = [f'{k} is {variables[k]!r}, expected {v!r}' for k, v in expected.items()
           if k in variables and variables[k] != v]
  if variables.get('lock_file') and not variables.get('lock_sha256'):
    wrong.append('lock_file has no lock_sha256')
  if wrong:
    raise ValueError(f'{path} points outside build {build_id} in {_join(bucket, env)}: '
                     f'{"; ".join(wrong)}. Refusing to use it.')
  return variables


def stage_wheel(variables: Dict[str, str], wheel_dir: str) -> str:
  """Copies the deployed wheel to ``wheel_dir/<build_id>/`` after checking its sha256.

  Returns the local path, which the Beam task pip-installs and stages on Dataflow workers. An
  existing copy with the right sha256 is reused; a wrong one is replaced; the bucket's bytes
  must match ``sha256`` or nothing is staged.
  """
  wheel_file, expected = variables['wheel_file'], variables['sha256']
  target = os.path.join(wheel_dir, variables['build_id'], wheel_file.rsplit('/', 1)[-1])
  if os.path.isfile(target) and _sha256_file(target) == expected:
    _stage_lock(variables, os.path.dirname(target))
    return target
  data = _read_bytes(wheel_file)
  actual = hashlib.sha256(data).hexdigest()
  if actual != expected:
    raise ValueError(f'wheel {wheel_file} has sha256 {actual}, variables say {expected}: '
                     f'refusing to run it')
  _stage_lock(variables, os.path.dirname(target))
  _write_bytes(target, data)
  return target


def _stage_lock(variables: Dict[str, str], directory: str) -> None:
  """The build's lock beside its wheel (sha256-checked): the Beam venv's pip constraints."""
  if not variables.get('lock_file'):
    return  # a build from before the lock was shipped
  if not variables.get('lock_sha256'):
    raise ValueError(f'{variables["lock_file"]} has no lock_sha256 to check it by: refusing it')
  data = _read_bytes(variables['lock_file'])
  if hashlib.sha256(data).hexdigest() != variables['lock_sha256']:
    raise ValueError(f'{variables["lock_file"]} does not have the sha256 the variables record: '
                     f'refusing to install with it')
  _write_bytes(os.path.join(directory, LOCK_NAME), data)


def requirements(wheel: str) -> List[str]:
  """``pip install`` arguments of the Beam task's venv: the wheel, constrained by its lock.

  Unconstrained, pip resolves the loose ranges afresh (once 10 minutes without an end); with the
  lock it installs the tested versions.
  """
  lock = os.path.join(os.path.dirname(wheel), LOCK_NAME)
  return ['-c', lock, wheel] if os.path.isfile(lock) else [wheel]


def ct_requirements(wheel: str) -> List[str]:
  """``pip install`` arguments of the CT task's venv: the wheel with its ``ml`` extra (TFDV,
  scikit-learn: training and the schema run in the task), constrained by the build's lock."""
  requirement = f'beam-pipelines[ml] @ file://{os.path.abspath(wheel)}'
  lock = os.path.join(os.path.dirname(wheel), LOCK_NAME)
  return ['-c', lock, requirement] if os.path.isfile(lock) else [requirement]


def ct_options(variables: Dict[str, str], pipeline: str, bucket: str, runner: str,
               project: str = '', region: str = '',
               settings: Optional[Dict[str, str]] = None) -> Dict[str, object]:
  """Flags of ``python -m beam_pipelines.ct`` for one declared pipeline of the deployed build.

  ``--build_id``/``--wheel_sha256`` name the code in lineage; the Beam options go to its steps:
  on Dataflow (``runner``) they run in the build's SDK container (``beam_pipelines_container_repo``
  is required: the ML steps need TFDV and scikit-learn on the workers), named and labelled by the
  build id, with the prod temp/staging locations and the workers' service account and network.
  """
  settings = settings or {}
  options: Dict[str, object] = {
      'bucket': bucket, 'env': PROD, 'pipeline': pipeline, 'build_id': variables['build_id'],
      'wheel_sha256': variables['sha256'], 'runner': runner or 'DataflowRunner'}
  if options['runner'] == 'DataflowRunner':
    repository = settings.get('beam_pipelines_container_repo')
    if not repository:
      raise ValueError('continuous training on Dataflow needs beam_pipelines_container_repo: its '
                       'steps run in the build\'s SDK container (TFDV, scikit-learn)')
    extra = {'project': project, 'region': region,
             'temp_location': variables.get('temp_location'),
             'staging_location': variables.get('staging_location'),
             'sdk_container_image': container_image(repository, variables['build_id'])}
    for variable, option in DATAFLOW_VARIABLES.items():
      extra[option] = settings.get(variable)
    extra['max_num_workers'] = extra['max_num_workers'] or DEFAULT_MAX_WORKERS
    options.update({key: value for key, value in extra.items() if value})
    if settings.get('dataflow_subnetwork'):
      options['no_use_public_ips'] = True
  return options


def container_image(repository: str, build_id: str) -> str:
  """``<repository>:<build id>``: the SDK container Cloud Build built from the build."""
  return f'{repository}:{build_id}'


def _sha256_file(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, 'rb') as handle:
    for chunk in iter(lambda: handle.read(1 << 20), b''):
      digest.update(chunk)
  return digest.hexdigest()


def read_workflow(variables: Dict[str, str], workflow: str) -> dict:
  """The deployed definition ``<workflows_dir>/<workflow>.json`` (as the harness runs it)."""
  path = _join(variables['workflows_dir'], f'{workflow}.json')
  definition = json.loads(_read_bytes(path).decode('utf-8'))
  for key in ('pipeline', 'module', 'args'):
    if key not in definition:
      raise ValueError(f'workflow definition {path} lacks {key}')
  return definition


def render(template: str, values: Dict[str, str]) -> str:
  """Fills ``{name}`` placeholders, as the harness does; an unknown name is an error."""
  try:
    return template.format_map(values)
  except KeyError as error:
    raise ValueError(f'workflow placeholder {error} has no variable') from None


def args_to_options(args: List[str]) -> Dict[str, object]:
  """``['--k', 'v', '--flag', '--k2=v2']`` -> ``{'k': 'v', 'flag': True, 'k2': 'v2'}``.

  The Beam provider turns the dict back into ``--k=v`` args (True: a bare flag; it drops None).
  ``--runner`` is dropped: the operator's ``runner`` decides.
  """
  options: Dict[str, object] = {}
  i = 0
  while i < len(args):
    arg = args[i]
    if not arg.startswith('--'):
      raise ValueError(f'unexpected positional argument {arg!r} in workflow args')
    key, sep, value = arg[2:].partition('=')
    if not sep:
      if i + 1 < len(args) and not args[i + 1].startswith('--'):
        value, i = args[i + 1], i + 1
      else:
        value = True
    options[key] = value
    i += 1
  options.pop('runner', None)
  return options


def job_options(variables: Dict[str, str], workflow: str, wheel: str, run_id: str,
                project: str = '', region: str = '',
                settings: Optional[Dict[str, str]] = None) -> Dict[str, object]:
  """Options of the Beam task: the workflow's rendered args + what Dataflow needs.

  The task runs ``python -m beam_pipelines.submission`` from the staged wheel: ``pipeline``,
  ``wheel`` and ``build_id`` are its flags (it stages the wheel with ``--extra_package`` and labels
  the job with the build id); the rest goes to the pipeline. ``settings`` are Composer
  variables: ``DATAFLOW_VARIABLES`` (service account, subnetwork, zone, worker cap) and
  ``beam_pipelines_container_repo``.
  """
  settings = settings or {}
  definition = read_workflow(variables, workflow)
  values = dict(variables, run_id=run_id)
  options: Dict[str, object] = args_to_options([render(a, values) for a in definition['args']])
  extra = {
      'pipeline': definition['pipeline'],
      'wheel': wheel,
      'build_id': variables['build_id'],
      'temp_location': variables.get('temp_location'),
      'staging_location': variables.get('staging_location'),
      'project': project,
      'region': region,
  }
  for variable, option in DATAFLOW_VARIABLES.items():
    extra[option] = settings.get(variable)
  extra['max_num_workers'] = extra['max_num_workers'] or DEFAULT_MAX_WORKERS
  if settings.get('beam_pipelines_container_repo'):
    extra['sdk_container_image'] = container_image(settings['beam_pipelines_container_repo'],
                                                   variables['build_id'])
  options.update({key: value for key, value in extra.items() if value})
  if settings.get('dataflow_subnetwork'):
    options['no_use_public_ips'] = True  # a bare flag
  return options


def workflow_checks(variables: Dict[str, str], workflow: str, run_id: str) -> List[dict]:
  """The definition's checks with their placeholders filled (e.g. golden_counts output/reference)."""
  definition = read_workflow(variables, workflow)
  values = dict(variables, run_id=run_id)
  return [{k: render(v, values) if isinstance(v, str) else v for k, v in check.items()}
          for check in definition.get('checks', [])]


# ---------------------------------------------------------------------------------------------
# The golden check, as the tutorial's CompareXComMapsOperator (same rules as harness/compare.py).


def parse_counts(text: str, source: str) -> Dict[str, str]:
  """``key: value`` lines -> map; a malformed line or a repeated key is an error."""
  result: Dict[str, str] = {}
  for number, line in enumerate(text.splitlines(), 1):
    if not line.strip():
      continue
    key, sep, value = line.rpartition(': ')
    if not sep:
      raise ValueError(f'{source}:{number}: not a "key: value" line: {line!r}')
    if key in result:
      raise ValueError(f'{source}:{number}: key {key!r} appears twice')
    result[key] = value.strip()
  return result


def compare_maps(expected: Dict[str, str], actual: Dict[str, str]) -> Tuple[bool, str]:
  """(equal, message naming every missing, wrong and unexpected key)."""
  missing = sorted(set(expected) - set(actual))
  unexpected = sorted(set(actual) - set(expected))
  wrong = sorted(k for k in set(expected) & set(actual) if expected[k] != actual[k])
  if not (missing or unexpected or wrong):
    return True, f'all {len(expected)} keys match'
  parts = []
  if missing:
    parts.append(f'missing {len(missing)}: {", ".join(missing)}')
  if wrong:
    parts.append(f'wrong {len(wrong)}: ' + ', '.join(
        f'{k} (expected {expected[k]}, got {actual[k]})' for k in wrong))
  if unexpected:
    parts.append(f'unexpected {len(unexpected)}: {", ".join(unexpected)}')
  return False, '; '.join(parts)


def golden_counts(output: str, reference: str) -> str:
  """Every output shard ``<output>-*`` together equals the reference; raises ValueError if not."""
  from apache_beam.io.filesystems import FileSystems
  shards = sorted(m.path for m in FileSystems.match([f'{output}-*'])[0].metadata_list)
  if not shards:
    raise ValueError(f'no output shards match {output}-*')
  actual: Dict[str, str] = {}
  for shard in shards:
    for key, value in parse_counts(_read_bytes(shard).decode('utf-8'), shard).items():
      if key in actual:
        raise ValueError(f'key {key!r} appears in two shards')
      actual[key] = value
  expected = parse_counts(_read_bytes(reference).decode('utf-8'), reference)
  equal, message = compare_maps(expected, actual)
  if not equal:
    raise ValueError(f'output {output} differs from {reference}: {message}')
  return f'{len(shards)} shard(s) equal {reference}: {message}'


RECORD_MODULE = 'beam_pipelines.harness.record'  # the harness's writer of a run's evidence


def check_results(checks: List[dict]) -> List[dict]:
  """Runs each golden check; a failure is a result with ``passed: False`` (recorded, not lost)."""
  results = []
  for check in checks:
    if check.get('check') != 'golden_counts':
      raise ValueError(f'check {check.get("check")!r} is not implemented in the Composer DAGs')
    try:
      passed, message = True, golden_counts(check['output'], check['reference'])
    except (ValueError, OSError) as error:
      passed, message = False, str(error)
    results.append({'check': check['check'], 'passed': passed, 'message': message})
  return results


def record_results(bucket: str, variables: Dict[str, str], results: List[Optional[List[dict]]],
                   workflows: List[str], runner: str, tested_by: str, code: str) -> str:
  """Records this DAG run's verdicts as its own evidence on the build, through the harness's writer.

  ``results`` holds each workflow's check results (None: its Beam job failed, so its checks did
  not run: recorded as a failure). ``code`` is the build's wheel (or source tree) put on
  ``PYTHONPATH`` to run ``python -m beam_pipelines.harness.record``, which adds
  ``test/evidence/<build_id>/<run>.json`` and never rewrites the build's (signed) "test passed"
  record; deploy refuses a build with a failed run. Raises when any verdict failed.
  """
  if not variables or not code:
    raise ValueError('nothing to record: read_variables or stage_wheel did not succeed')
  evidence = []
  for workflow, found in zip(workflows, results):
    if found is None:
      found = [{'check': 'beam_job', 'passed': False,
                'message': f'run_{workflow} did not succeed: no output to check'}]
    evidence += [dict(r, workflow=workflow, runner=runner) for r in found]
  command = [sys.executable, '-m', RECORD_MODULE, '--bucket', bucket,
             '--build_id', variables['build_id'], '--sha256', variables['sha256'],
             '--wheel_file', variables['wheel_file'], '--tested_by', tested_by,
             '--results', json.dumps(evidence)]
  done = subprocess.run(command, capture_output=True, text=True,
                        env=dict(os.environ, PYTHONPATH=code))
  if done.returncode == 2 or not done.stdout.strip():
    raise RuntimeError(f'recording the test results failed: {done.stderr.strip()[-2000:]}')
  summary = json.loads(done.stdout.strip().splitlines()[-1])
  if summary['status'] != STATUS_PASSED:
    raise ValueError(f'build {variables["build_id"]} FAILED its tests: '
                     f'{"; ".join(summary["failures"])}')
  return summary['status']
