"""The build-test-deploy harness, as ``invoke`` tasks (Cloud Build's steps, run locally).

    invoke build test deploy      # the whole loop: gates + wheel, test env, promotion to prod
    invoke rollback               # prod back to the previously deployed build
    invoke run wordcount -- --direct_num_workers 2   # run the prod workflow of the deployed build
    invoke status                 # what is deployed where, last test, history

Every task that touches the bucket takes ``--bucket URL`` (default: $BEAM_PIPELINES_BUCKET, else
``bucket/`` here). The tasks only compose ``beam_pipelines.harness``; see docs/harness.md.
"""

from __future__ import annotations

import contextlib
import pathlib
import re
import shlex

from invoke import Exit
from invoke import task as invoke_task

from beam_pipelines.harness import layout
from beam_pipelines.harness.errors import HarnessError

REPO = pathlib.Path(__file__).resolve().parent


def task(*args, **kwargs):
  """invoke's ``@task``, with each ``:param x:`` docstring line as the ``--help`` of ``--x``."""
  def decorate(fn):
    help_lines = dict(re.findall(r':param (\w+): (.+)', fn.__doc__ or ''))
    return invoke_task(help=help_lines, **kwargs)(fn)
  return decorate(args[0]) if args and callable(args[0]) else decorate


@contextlib.contextmanager
def refusals():
  """Turns a HarnessError into a clear message and exit status 1."""
  try:
    yield
  except HarnessError as error:
    raise Exit(f'[beam-pipelines] REFUSED: {error}', code=1) from None


def _bucket(url):
  from beam_pipelines.harness.bucket import resolve_bucket
  return resolve_bucket(url, REPO)


def _say(line: str) -> None:
  from beam_pipelines.runtime import progress
  progress(line)


@task
def build(c, checks=True):
  """Lint, unit tests, then a reproducible wheel + sdist and the build manifest in dist/.

  :param checks: run ruff and the unit tests first (`--no-checks` only re-packages; CI never skips).
  """
  from beam_pipelines.harness.build import build as run_build
  with refusals():
    run_build(REPO, checks=checks)


@task
def test(c, bucket=None):
  """Upload the last build to the test env, run the test workflows from the uploaded wheel, check.

  :param bucket: bucket URL (local dir or gs://); default $BEAM_PIPELINES_BUCKET or ./bucket.
  """
  from beam_pipelines.harness.integration import run_test
  with refusals():
    run_test(REPO, _bucket(bucket))


@task
def deploy(c, build_id=None, approve=False, bucket=None):
  """Promote a build that passed test to prod: same bytes, sha256 checked, variables, workflows.

  :param build_id: the build to deploy (default: the newest build that passed test).
  :param approve: confirm the deploy when the approval gate is on.
  :param bucket: bucket URL (local dir or gs://); default $BEAM_PIPELINES_BUCKET or ./bucket.
  """
  from beam_pipelines.harness.deploy import deploy as run_deploy
  with refusals():
    url = _bucket(bucket)
    run_deploy(url, build_id, approve)
    _summary(url)


@task
def rollback(c, build_id=None, approve=False, bucket=None):
  """Point prod back to the build deployed before the live one (or --build-id); recorded.

  :param build_id: roll back to this build (it must have been deployed to prod before).
  :param approve: confirm the rollback when the approval gate is on.
  :param bucket: bucket URL (local dir or gs://); default $BEAM_PIPELINES_BUCKET or ./bucket.
  """
  from beam_pipelines.harness.deploy import rollback as run_rollback
  with refusals():
    url = _bucket(bucket)
    run_rollback(url, build_id, approve)
    _summary(url)


@task(name='run', positional=['pipeline'])
def run_pipeline(c, pipeline, env=layout.PROD, bucket=None):
  """Run a pipeline of the deployed build (the env's workflow). Beam options go after `--`.

  Example: invoke run wordcount -- --direct_num_workers 2 --direct_running_mode multi_processing

  :param pipeline: the pipeline to run (its deployed workflow definition), e.g. wordcount.
  :param env: the environment whose deployment runs: prod (default) or test.
  :param bucket: bucket URL (local dir or gs://); default $BEAM_PIPELINES_BUCKET or ./bucket.
  """
  from beam_pipelines.harness.run import run_pipeline as run_deployed
  with refusals():
    done = run_deployed(REPO, _bucket(bucket), pipeline, env, shlex.split(c.remainder or ''))
    _say(f'run: done: {done["workflow"]} of build {done["build_id"]}; outputs: {done["output"]}-*')


@task
def status(c, bucket=None):
  """Show what is deployed where, the last test result, the approval gate, the lock, the history.

  :param bucket: bucket URL (local dir or gs://); default $BEAM_PIPELINES_BUCKET or ./bucket.
  """
  from beam_pipelines.harness.status import status_lines
  with refusals():
    print('\n'.join(status_lines(_bucket(bucket))))


@task
def approval(c, on=False, off=False, bucket=None):
  """Turn the approval gate on or off (stored in <bucket>/prod/settings.json, shared by a team).

  :param on: require `--approve` on every prod deploy and rollback.
  :param off: no approval needed (the local default).
  :param bucket: bucket URL (local dir or gs://); default $BEAM_PIPELINES_BUCKET or ./bucket.
  """
  from beam_pipelines.harness.deploy import approval_required, set_approval
  with refusals():
    url = _bucket(bucket)
    if on == off:
      raise HarnessError('say --on or --off')
    set_approval(url, on)
    _say(f'approval gate: {"ON" if approval_required(url) else "off"} for {url}')


@task
def unlock(c, bucket=None):
  """Remove the prod deploy lock after checking that nobody is deploying (says whose it was).

  :param bucket: bucket URL (local dir or gs://); default $BEAM_PIPELINES_BUCKET or ./bucket.
  """
  from beam_pipelines.harness import lock
  with refusals():
    holder = lock.unlock(layout.Env(_bucket(bucket), layout.PROD))
    _say(f'unlock: removed the lock held by {lock.describe(holder)}' if holder is not None
         else 'unlock: prod was not locked')


def _summary(url: str) -> None:
  """Final lines of deploy/rollback: what is deployed where."""
  from beam_pipelines.harness.status import status_lines
  lines = status_lines(url, limit=3)
  _say('deployed: ' + lines[2])
  for line in lines[:2] + lines[3:]:
    print(line)
  _say(f'next: `invoke run wordcount` runs the prod workflow; outputs land under '
       f'{layout.Env(url, layout.PROD).path(layout.RESULTS, layout.RUNS)}/')
