"""Loads a DAG folder into a real Airflow DagBag and prints what a DAG validation test needs, as JSON.

Run with the Airflow environment's Python (it cannot live in .venv with TFDV):

    .venv-airflow/bin/python scripts/check_dags.py build/dags

Prints, alone on stdout (Airflow's own logs go to stderr), ``{"airflow_version", "dag_folder",
"import_errors", "dags": {dag_id: {...}}, "file_parse_seconds": {file: s},
"import_timeout_seconds", "rendered": {dag_id: {task_id: {field: value}}}}``: ``rendered`` is every
templated field rendered with stub XComs and variables, i.e. what the operators would receive.
Exit status 1 when a file failed to import. Sets up a throw-away AIRFLOW_HOME, as Composer CI checks do, and puts the DAG folder on
``sys.path`` as Composer does (DAG files import their helper modules by name).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time


def _environment(dag_folder: str) -> None:
  home = tempfile.mkdtemp(prefix='airflow-home-')
  os.environ['AIRFLOW_HOME'] = home
  os.environ['AIRFLOW__CORE__DAGS_FOLDER'] = dag_folder
  os.environ['AIRFLOW__CORE__LOAD_EXAMPLES'] = 'False'
  os.environ['AIRFLOW__LOGGING__LOGGING_LEVEL'] = 'ERROR'
  os.environ.setdefault('AIRFLOW__DATABASE__SQL_ALCHEMY_CONN', f'sqlite:///{home}/airflow.db')
  sys.path.insert(0, dag_folder)


def _dag_bag(dag_folder: str):
  try:  # Airflow 3
    from airflow.dag_processing.dagbag import DagBag
    return DagBag(dag_folder=dag_folder)
  except ImportError:  # Airflow 2
    from airflow.models.dagbag import DagBag
    return DagBag(dag_folder=dag_folder, include_examples=False)


def describe(dag) -> dict:
  """The facts a DAG validation test asserts on."""
  tasks = {}
  for task in dag.tasks:
    tasks[task.task_id] = {
        'operator': type(task).__name__,
        'bases': [cls.__name__ for cls in type(task).__mro__ if cls.__name__.endswith('Operator')],
        'owner': task.owner,
        'retries': task.retries,
        'upstream': sorted(task.upstream_task_ids),
        'template_fields': list(task.template_fields),
    }
    for attr in ('py_file', 'py_options', 'py_requirements', 'runner', 'pipeline_options',
                 'dataflow_config'):
      if hasattr(task, attr):
        value = getattr(task, attr)
        tasks[task.task_id][attr] = value if isinstance(value, (str, list, dict)) else str(value)
  return {
      'fileloc': dag.fileloc,
      'description': dag.description,
      'schedule': str(getattr(dag, 'schedule', None) or getattr(dag, 'schedule_interval', None)),
      'catchup': dag.catchup,
      'tags': sorted(dag.tags or []),
      'default_args': {k: str(v) for k, v in (dag.default_args or {}).items()},
      'render_template_as_native_obj': dag.render_template_as_native_obj,
      'tasks': tasks,
  }


# Stub run-time values: what each upstream task returns (by task id prefix) and the Composer
# variables. Rendering every templated field with them shows what the operators would receive.
STUB_VARIABLES = {'beam_pipelines_bucket': 'gs://stub-bucket', 'gcp_project': 'stub-project'}
STUB_XCOMS = {
    'read_variables': {'build_id': '20261126T153000Z-5bea069-3f9a1c', 'sha256': '0' * 64},
    'stage_wheel': '/stub/wheels/beam_pipelines-0.1.0-py3-none-any.whl',
    'prepare_': {'options': {'pipeline': 'stub', 'output': 'gs://stub-bucket/out'},
                 'requirements': ['-c', '/stub/wheels/lock.txt',
                                  '/stub/wheels/beam_pipelines-0.1.0-py3-none-any.whl'],
                 'job_name': 'stub-job', 'checks': []},
    'check_': [{'check': 'golden_counts', 'passed': True, 'message': 'stub'}],
}
STUB_RUN_ID = 'manual__2026-11-26T15:30:00+00:00'


class _StubTaskInstance:
  def xcom_pull(self, task_ids=None, key='return_value', **_):
    for prefix, value in STUB_XCOMS.items():
      if str(task_ids).startswith(prefix):
        return value
    raise KeyError(f'no stub XCom for task {task_ids!r}')


class _StubVariables:
  def get(self, key, default=None):
    return STUB_VARIABLES.get(key, default)


def render(dag) -> dict:
  """Every task's templated fields rendered with the stub context, as the DAG's Jinja renders them."""
  env = dag.get_template_env()
  context = {'ti': _StubTaskInstance(), 'var': {'value': _StubVariables()}, 'run_id': STUB_RUN_ID,
             'dag': dag}
  rendered = {}
  for task in dag.tasks:
    rendered[task.task_id] = {
        field: task.render_template(getattr(task, field), context, env)
        for field in task.template_fields}
  return rendered


def main(argv) -> int:
  dag_folder = os.path.abspath(argv[1] if len(argv) > 1 else 'build/dags')
  # Airflow logs (import errors included) to stdout: keep stdout for the JSON report only.
  sys.stdout.flush()
  report_out = os.fdopen(os.dup(1), 'w')
  os.dup2(2, 1)
  _environment(dag_folder)
  import logging
  import warnings
  logging.disable(logging.WARNING)
  warnings.simplefilter('ignore')
  from airflow import __version__ as airflow_version
  from airflow.configuration import conf

  started = time.monotonic()
  bag = _dag_bag(dag_folder)
  report = {
      'airflow_version': airflow_version,
      'dag_folder': dag_folder,
      'load_seconds': round(time.monotonic() - started, 3),
      'import_timeout_seconds': conf.getfloat('core', 'dagbag_import_timeout'),
      'import_errors': {str(k): str(v) for k, v in bag.import_errors.items()},
      'file_parse_seconds': {
          os.path.relpath(str(stat.file), dag_folder) if os.path.isabs(str(stat.file))
          else str(stat.file).lstrip('/'): _seconds(stat.duration)
          for stat in bag.dagbag_stats},
      'dags': {dag_id: describe(dag) for dag_id, dag in sorted(bag.dags.items())},
      'stub': {'variables': STUB_VARIABLES, 'xcoms': STUB_XCOMS, 'run_id': STUB_RUN_ID},
      'rendered': {dag_id: render(dag) for dag_id, dag in sorted(bag.dags.items())},
  }
  report_out.write(json.dumps(report, indent=2, sort_keys=True, default=repr) + '\n')
  report_out.flush()
  return 1 if bag.import_errors else 0


def _seconds(duration) -> float:
  return round(duration.total_seconds() if hasattr(duration, 'total_seconds') else float(duration), 3)


if __name__ == '__main__':
  sys.exit(main(sys.argv))
