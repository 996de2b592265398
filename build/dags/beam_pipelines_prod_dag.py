"""Prod DAG (the tutorial's prod_word_count): run the deployed prod build on the prod inputs.

Reads <bucket>/prod/variables.json, set by `invoke deploy` (or `invoke rollback`), so it always
runs the build that passed test and was promoted, byte for byte. Composer variables: see
beam_pipelines_support.AIRFLOW_VARIABLES.
"""

from __future__ import annotations

try:  # Airflow 3 (Composer 3)
  from airflow.sdk import DAG
except ImportError:  # Airflow 2
  from airflow import DAG

import beam_pipelines_tasks as tasks

DAG_ID = 'beam_pipelines_prod'
# Prod workflow definitions (build/workflows/<name>.json) to run: one line per pipeline.
WORKFLOWS = ['wordcount']

with DAG(
    dag_id=DAG_ID,
    description=__doc__.split('\n')[0],
    schedule='@daily',
    start_date=tasks.START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=tasks.DEFAULT_ARGS,
    render_template_as_native_obj=True,
    tags=['beam-pipelines', 'prod'],
) as dag:
  read_variables = tasks.read_variables_task('prod')
  stage_wheel = tasks.stage_wheel_task()
  read_variables >> stage_wheel
  for workflow in WORKFLOWS:
    first, _ = tasks.workflow_tasks(workflow, 'prod', check=False)
    stage_wheel >> first
