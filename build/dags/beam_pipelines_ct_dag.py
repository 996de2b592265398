"""CT DAG: continuous training of the deployed prod build on the spans that land in the bucket.

Daily: reads <bucket>/prod/variables.json (the build `invoke deploy` promoted), stages its wheel
(sha256-checked), then for each declared pipeline runs that build's `python -m beam_pipelines.ct`:
each new span under <bucket>/prod/inputs/ct/<pipeline>/ is validated, trained on, evaluated
against production and pushed only when blessed, as `invoke ct` does, with its lineage and the
model registry in the bucket. Its Beam steps run on Dataflow in the build's SDK container
(Composer variable beam_pipelines_ct_runner, default DataflowRunner); training runs in the task.
"""

from __future__ import annotations

try:  # Airflow 3 (Composer 3)
  from airflow.sdk import DAG
except ImportError:  # Airflow 2
  from airflow import DAG

import beam_pipelines_tasks as tasks

DAG_ID = 'beam_pipelines_ct'
# Declared pipelines (beam_pipelines/pipelines/<name>/ of the build) to train: one line each.
PIPELINES = ['taxi']

with DAG(
    dag_id=DAG_ID,
    description=__doc__.split('\n')[0],
    schedule='@daily',
    start_date=tasks.START_DATE,
    catchup=False,
    max_active_runs=1,  # one ct run per pipeline at a time (ct also locks the pipeline)
    default_args=tasks.DEFAULT_ARGS,
    render_template_as_native_obj=True,
    tags=['beam-pipelines', 'prod', 'ct'],
) as dag:
  read_variables = tasks.read_variables_task('prod')
  stage_wheel = tasks.stage_wheel_task()
  read_variables >> stage_wheel
  for pipeline in PIPELINES:
    first, _ = tasks.ct_tasks(pipeline)
    stage_wheel >> first
