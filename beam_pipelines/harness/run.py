"""``invoke run <pipeline>``: run the deployed build's workflow of an environment (the prod DAG).

Reads the environment's variables, the deployed workflow definition and the wheel they name,
verifies and installs the wheel, then runs the pipeline from it; extra Beam options are appended
to the workflow's arguments (a later flag wins, so ``--input``/``--output`` can be overridden).
"""

from __future__ import annotations

import datetime
import pathlib
import secrets
from typing import List, Optional, Sequence, TypedDict

from beam_pipelines import submission
from beam_pipelines.harness import checks, install, workflows
from beam_pipelines.harness.errors import HarnessError
from beam_pipelines.store import bucket, layout, records
from beam_pipelines.store.console import progress


class RunSummary(TypedDict):
  """What ``run_pipeline`` ran and where its outputs are."""
  build_id: str
  run_id: str
  workflow: str
  args: List[str]
  output: Optional[str]  # the ``--output`` argument, when there is one
  origin: str  # where the module was imported from (the installed wheel)
  returncode: int
  lines: List[str]  # what the workflow printed on stdout (ct --json: its last line)


def new_run_id() -> str:
  stamp = datetime.datetime.now(datetime.timezone.utc).strftime('%Y%m%dT%H%M%SZ')
  return f'{stamp}-{secrets.token_hex(3)}'


def run_pipeline(repo: pathlib.Path, bucket_url: str, pipeline: str, env_name: str,
                 extra_args: List[str], accept: Sequence[int] = (0,),
                 container_repo: Optional[str] = None) -> RunSummary:
  """Runs ``pipeline`` as deployed in ``env_name``; returns what ran, its exit status (one of
  ``accept``; any other is a HarnessError) and where outputs are.

  On Dataflow, ``container_repo`` names the project's SDK container: the job runs in
  ``<container_repo>:<build id>``, the image Cloud Build built from that build.
  """
  env = layout.Env(bucket_url, env_name)
  if not bucket.exists(env.variables):
    raise HarnessError(f'nothing is deployed in {env_name} ({env.variables} missing): run '
                       f'`invoke build test deploy` first')
  deployment = workflows.verified_deployment(env, checks.CHECKS)
  variables = deployment.variables
  definition = workflows.find(deployment.definitions, pipeline, env_name)
  run_id = new_run_id()
  values = dict(variables.values, run_id=run_id)
  args = workflows.render_args(definition, values) + list(extra_args)
  args = _stage_for_dataflow(definition, variables, args, container_repo)
  progress(f'run: {definition.name} of build {variables.build_id} in {env_name} (run {run_id})')
  site = install.install(variables.wheel_file, variables.sha256, install.cache_root(repo))
  launched = install.launch(site, definition.module, args, accept)
  output = args[len(args) - 1 - args[::-1].index('--output') + 1] if '--output' in args else None
  return RunSummary(build_id=variables.build_id, run_id=run_id, workflow=definition.name,
                    args=args, output=output, origin=launched.origin,
                    returncode=launched.returncode, lines=list(launched.output))


def _stage_for_dataflow(definition: workflows.WorkflowDefinition,
                        variables: records.DeploymentVariables, args: List[str],
                        container_repo: Optional[str] = None) -> List[str]:
  """On DataflowRunner: the deployed wheel (sha256-checked) as the workers' package, job named and
  labelled by the build id (beam_pipelines.submission). Other runners: ``args`` unchanged."""
  if not submission.is_dataflow(args):
    return args
  try:
    wheel = submission.fetch_wheel(variables.wheel_file, variables.sha256)
    image = (submission.container_image(container_repo, variables.build_id) if container_repo
             else None)
    return submission.submission_args(definition.pipeline, args, wheel=wheel,
                                      build_id=variables.build_id, image=image)
  except submission.SubmissionError as error:
    raise HarnessError(str(error)) from None
