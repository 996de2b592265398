"""Test DAG (the tutorial's test_word_count): run the build under test on the test inputs, compare
every output with its golden reference, and record the run's evidence for the prod deploy to check.

Triggered by Cloud Build (build/cloudbuild.yaml) after `invoke test` has uploaded the build, with
the build id as run conf ({"build_id": "..."}): the run tests that build, from its own
<bucket>/test/variables/<build_id>.json, and records its verdict on it, even when it was queued
behind another build's run. Started by hand without conf, it tests the build test/variables.json
names. Composer variables: see beam_pipelines_support.AIRFLOW_VARIABLES.
"""

from __future__ import annotations

try:  # Airflow 3 (Composer 3)
  from airflow.sdk import DAG
except ImportError:  # Airflow 2
  from airflow import DAG

import beam_pipelines_tasks as tasks

DAG_ID = 'beam_pipelines_test'
# Test workflow definitions (build/workflows/<name>.json) to run: one line per pipeline.
WORKFLOWS = ['wordcount_test']

with DAG(
    dag_id=DAG_ID,
    description=__doc__.split('\n')[0],
    schedule=None,  # triggered per build
    start_date=tasks.START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=tasks.DEFAULT_ARGS,
    render_template_as_native_obj=True,
    tags=['beam-pipelines', 'test'],
) as dag:
  read_variables = tasks.read_variables_task('test', by_conf=True)
  stage_wheel = tasks.stage_wheel_task()
  record_passed = tasks.record_passed_task(WORKFLOWS)
  read_variables >> stage_wheel
  for workflow in WORKFLOWS:
    first, last = tasks.workflow_tasks(workflow, 'test', check=True)
    stage_wheel >> first
    last >> record_passed
