"""Airflow tasks of the beam-pipelines DAGs (Cloud Composer): read variables, stage, run, check.

A DAG here runs the workflow definitions deployed by the harness (``invoke test``/``deploy``):

    read_variables -> stage_wheel -> prepare_<workflow> -> run_<workflow> [-> check_<workflow>]

``run_<workflow>`` is the Apache Beam provider's ``BeamRunPythonPipelineOperator``: it pip-installs
the staged wheel into a fresh virtualenv and runs ``python -m beam_pipelines.submission`` from it,
which stages the same wheel on the Dataflow workers (``--extra_package``), names and labels the job
with the build id and runs the pipeline. The task callables live in ``beam_pipelines_support``.
"""

from __future__ import annotations

import datetime
import re
from typing import Dict, List

from airflow.providers.apache.beam.operators.beam import BeamRunPythonPipelineOperator

try:  # Airflow 3 (Composer 3)
  from airflow.providers.standard.operators.python import PythonOperator
except ImportError:  # Airflow 2
  from airflow.operators.python import PythonOperator

try:  # Airflow 3 (Composer 3)
  from airflow.sdk.exceptions import AirflowFailException
  from airflow.task.trigger_rule import TriggerRule
except ImportError:  # Airflow 2
  from airflow.exceptions import AirflowFailException
  from airflow.utils.trigger_rule import TriggerRule

import beam_pipelines_support as support

OWNER = 'beam-pipelines'
DEFAULT_ARGS = {
    'owner': OWNER,
    'retries': 1,
    'retry_delay': datetime.timedelta(minutes=5),
}
START_DATE = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)

BUCKET = "{{ var.value.get('beam_pipelines_bucket', '') }}"
RUNNER = "{{ var.value.get('beam_pipelines_runner', 'DataflowRunner') }}"
PROJECT = "{{ var.value.get('gcp_project', '') }}"
REGION = "{{ var.value.get('gcp_region', 'us-central1') }}"
WHEEL_DIR = "{{ var.value.get('beam_pipelines_wheel_dir', '%s') }}" % support.DEFAULT_WHEEL_DIR
# The optional Composer variables of the Dataflow jobs (service account, network, zone, cap, image).
SETTINGS = {name: "{{ var.value.get('%s', '') }}" % name
            for name in [*support.DATAFLOW_VARIABLES, 'beam_pipelines_container_repo']}
CT_RUNNER = "{{ var.value.get('beam_pipelines_ct_runner', 'DataflowRunner') }}"


class BeamRunWheelOperator(BeamRunPythonPipelineOperator):
  """``BeamRunPythonPipelineOperator`` whose ``py_requirements`` (the staged wheel) is templated."""

  template_fields = (*BeamRunPythonPipelineOperator.template_fields, 'py_requirements')


def safe_run_id(run_id: str) -> str:
  """An Airflow run id as a path segment (``manual__2026-...+00:00`` -> ``manual__2026-...-00-00``)."""
  return re.sub(r'[^A-Za-z0-9_.-]+', '-', run_id).strip('-') or 'run'


def dataflow_job_name(pipeline: str, env: str, build_id: str) -> str:
  """``<pipeline>-<env>-<build id>`` under Dataflow's rule (the provider appends a unique suffix)."""
  name = re.sub(r'[^a-z0-9]+', '-', f'{pipeline}-{env}-{build_id}'.lower()).strip('-')
  return name[:80].rstrip('-')


def _prepare(variables: Dict[str, str], workflow: str, wheel: str, run_id: str, project: str,
             region: str, env: str, settings: Dict[str, str]) -> Dict[str, object]:
  run_id = safe_run_id(run_id)
  options = support.job_options(variables, workflow, wheel, run_id, project, region, settings)
  return {
      'options': options,
      'requirements': support.requirements(wheel),
      'job_name': dataflow_job_name(str(options['pipeline']), env, variables['build_id']),
      'checks': support.workflow_checks(variables, workflow, run_id),
  }


def _check(prepared: Dict[str, object]) -> List[dict]:
  return support.check_results(prepared['checks'])  # type: ignore[arg-type]


def _record(bucket: str, variables: Dict[str, str], results: list, workflows: List[str],
            runner: str, tested_by: str, code: str) -> str:
  """A failed verdict fails the run at once: retrying cannot change a recorded verdict."""
  try:
    return support.record_results(bucket, variables, results, workflows, runner, tested_by, code)
  except ValueError as error:
    raise AirflowFailException(str(error)) from None


# The build a test DAG run was triggered for (``--conf '{"build_id": "..."}'``); empty: the build
# variables.json names (a run started by hand).
CONF_BUILD_ID = ("{{ dag_run.conf.get('build_id', '') if dag_run is defined and dag_run.conf "
                 "else '' }}")


def read_variables_task(env: str, *, by_conf: bool = False) -> PythonOperator:
  """The environment's variables; with ``by_conf``, those of the build the run's conf names."""
  return PythonOperator(
      task_id='read_variables', python_callable=support.read_variables,
      op_kwargs={'bucket': BUCKET, 'env': env, 'build_id': CONF_BUILD_ID if by_conf else ''})


def stage_wheel_task() -> PythonOperator:
  return PythonOperator(
      task_id='stage_wheel', python_callable=support.stage_wheel,
      op_kwargs={'variables': "{{ ti.xcom_pull(task_ids='read_variables') }}",
                 'wheel_dir': WHEEL_DIR})


def workflow_tasks(workflow: str, env: str, *, check: bool):
  """prepare -> run (-> check) for one deployed workflow; returns (first task, last task)."""
  prepare = PythonOperator(
      task_id=f'prepare_{workflow}', python_callable=_prepare,
      op_kwargs={'variables': "{{ ti.xcom_pull(task_ids='read_variables') }}",
                 'workflow': workflow, 'wheel': "{{ ti.xcom_pull(task_ids='stage_wheel') }}",
                 'run_id': '{{ run_id }}', 'project': PROJECT, 'region': REGION, 'env': env,
                 'settings': SETTINGS})
  pulled = "{{ ti.xcom_pull(task_ids='prepare_%s')" % workflow
  run = BeamRunWheelOperator(
      task_id=f'run_{workflow}',
      py_file=support.SUBMISSION_MODULE,
      py_options=['-m'],
      py_requirements=pulled + "['requirements'] }}",  # the wheel, constrained by its lock
      py_system_site_packages=False,
      runner=RUNNER,
      pipeline_options=pulled + "['options'] }}",
      dataflow_config={'job_name': pulled + "['job_name'] }}", 'project_id': PROJECT,
                       'location': REGION, 'wait_until_finished': True},
      execution_timeout=datetime.timedelta(hours=2))
  prepare >> run
  if not check:
    return prepare, run
  verify = PythonOperator(
      task_id=f'check_{workflow}', python_callable=_check,
      op_kwargs={'prepared': pulled + ' }}'})
  run >> verify
  return prepare, verify


def record_passed_task(workflows: List[str]) -> PythonOperator:
  """Records the run's verdicts as its evidence on the build; runs even when a Beam job failed."""
  results = '{{ [%s] }}' % ', '.join(f"ti.xcom_pull(task_ids='check_{w}')" for w in workflows)
  return PythonOperator(
      task_id='record_passed', python_callable=_record,
      trigger_rule=TriggerRule.ALL_DONE,
      op_kwargs={'bucket': BUCKET, 'variables': "{{ ti.xcom_pull(task_ids='read_variables') }}",
                 'results': results, 'workflows': list(workflows), 'runner': RUNNER,
                 'tested_by': 'composer:{{ dag.dag_id }}/{{ run_id }}',
                 'code': "{{ ti.xcom_pull(task_ids='stage_wheel') }}"})


def _prepare_ct(variables: Dict[str, str], pipeline: str, wheel: str, bucket: str, runner: str,
                project: str, region: str, settings: Dict[str, str]) -> Dict[str, object]:
  return {'options': support.ct_options(variables, pipeline, bucket, runner, project, region,
                                        settings),
          'requirements': support.ct_requirements(wheel)}


def ct_tasks(pipeline: str):
  """prepare -> run continuous training of one declared pipeline; returns (first, last) task.

  The run is the deployed build's ``python -m beam_pipelines.ct`` in a fresh venv (the provider's
  operator is only its launcher: ``runner`` DirectRunner means "a local process" to it; the
  steps' runner is ct's own ``--runner``, given last). Exit statuses as `invoke ct`: 1 (a span
  stopped at validation) and 3 (NOT_BLESSED) fail the task for a person to look at; no retry:
  a second run would skip the spans the first recorded.
  """
  prepare = PythonOperator(
      task_id=f'prepare_ct_{pipeline}', python_callable=_prepare_ct,
      op_kwargs={'variables': "{{ ti.xcom_pull(task_ids='read_variables') }}",
                 'pipeline': pipeline, 'wheel': "{{ ti.xcom_pull(task_ids='stage_wheel') }}",
                 'bucket': BUCKET, 'runner': CT_RUNNER, 'project': PROJECT, 'region': REGION,
                 'settings': SETTINGS})
  pulled = "{{ ti.xcom_pull(task_ids='prepare_ct_%s')" % pipeline
  run = BeamRunWheelOperator(
      task_id=f'ct_{pipeline}',
      py_file='beam_pipelines.ct',
      py_options=['-m'],
      py_requirements=pulled + "['requirements'] }}",
      py_system_site_packages=False,
      runner='DirectRunner',  # the launcher of ct's process; its steps' runner is in the options
      pipeline_options=pulled + "['options'] }}",
      retries=0,
      execution_timeout=datetime.timedelta(hours=6))
  prepare >> run
  return prepare, run
