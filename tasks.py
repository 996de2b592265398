"""The build-test-deploy harness, as ``invoke`` tasks (Cloud Build's steps, run locally).

    invoke build test deploy      # the whole loop: gates + wheel, test env, promotion to prod
    invoke rollback               # prod back to the previously deployed build
    invoke run wordcount -- --direct_num_workers 2   # run the prod workflow of the deployed build
    invoke status                 # what is deployed where, last test, history
    invoke ct                     # continuous training of the deployed build on new data spans
    invoke model-list             # the model registry; model-promote, model-rollback, lineage
    invoke experiment --pipeline taxi --grid grid.yaml   # variants on the same data, vs production
    invoke runs --pipeline taxi   # every experiment and CT run, ranked; experiment-adopt

Every task that touches the bucket takes ``--bucket URL`` (default: $BEAM_PIPELINES_BUCKET, else
``bucket/`` here). The tasks only compose ``beam_pipelines.harness``; see docs/harness.md.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import pathlib
import re
import shlex
import sys
from typing import Any, Dict, Optional, Sequence

from invoke import Collection, Exit, Program
from invoke import task as invoke_task

from beam_pipelines import runtime
from beam_pipelines.ct import runs as run_records
from beam_pipelines.ct import vertex, views
from beam_pipelines.ct.cli import json_line
from beam_pipelines.ct.cli import read_result as read_ct_result
from beam_pipelines.ct.definition import choose_pipeline, declared_pipelines, load_definition
from beam_pipelines.ct.paths import CtPaths, model_registry
from beam_pipelines.ct.registry import VERSION_NUMBER, describe_moves
from beam_pipelines.harness import build as build_step
from beam_pipelines.harness import dags as dag_files
from beam_pipelines.harness import deploy as deploy_step
from beam_pipelines.harness.errors import HarnessError
from beam_pipelines.harness.run import run_pipeline as run_deployed
from beam_pipelines.harness.site import build_site
from beam_pipelines.harness.status import status_lines, status_report
from beam_pipelines.harness.testing import run_test
from beam_pipelines.store import bucket as bucket_io
from beam_pipelines.store import layout, lock, text_lines
from beam_pipelines.store.bucket import resolve_bucket
from beam_pipelines.store.console import progress
from beam_pipelines.store.errors import Refusal
from beam_pipelines.tracking import mlflow_mirror

REPO = pathlib.Path(__file__).resolve().parent
ANY_STATUS = range(-255, 256)  # a process's exit status, or minus the signal that killed it
CT_RESULTS = {runtime.EXIT_OK: 'done', runtime.EXIT_STOPPED: 'stopped at validation',
              runtime.EXIT_NOT_BLESSED: 'model NOT_BLESSED'}
CONTAINER_REPO_ENV_VAR = 'BEAM_PIPELINES_CONTAINER_REPO'  # the project's SDK container images
HELP_FLAGS = ('--help', '-h')


def task(*args, **kwargs):
  """invoke's ``@task``, with each ``:param x:`` docstring line as the ``--help`` of ``--x``, and
  no automatic short flags: invoke would derive ``-f`` for ``approval --off`` (a gate turned off by
  one letter) and ``-b`` for ``--bucket`` in most tasks but ``--build-id`` in ``deploy``.

  Help never runs a task: invoke hands ``--help`` to a positional argument (``invoke run --help``)
  or to a flag waiting for its value as if it were the value; the task then prints its help."""
  def decorate(fn):
    help_lines = dict(re.findall(r':param (\w+): (.+)', fn.__doc__ or ''))
    name = kwargs.get('name') or fn.__name__.replace('_', '-')

    @functools.wraps(fn)
    def body(c, *values, **options):
      if any(isinstance(v, str) and v in HELP_FLAGS for v in (*values, *options.values())):
        _print_help(name)
        return None
      return fn(c, *values, **options)
    return invoke_task(help=help_lines, auto_shortflags=False, **kwargs)(body)
  return decorate(args[0]) if args and callable(args[0]) else decorate


def _print_help(name: str) -> None:
  """``invoke --help <name>``, from inside a task."""
  program = Program(namespace=Collection.from_module(sys.modules[__name__]), binary='inv[oke]',
                    binary_names=['invoke', 'inv'])
  program.run(['invoke', '--help', name], exit=False)


def _print_json(value: Dict[str, Any]) -> None:
  """One JSON object on stdout, the only thing a ``--json`` task prints there."""
  print(json.dumps(value, indent=2, sort_keys=True), flush=True)


@contextlib.contextmanager
def refusals():
  """Turns any refusal into a clear one-line message and exit status 2, as every command line of
  the project (README, "Exit statuses"); a failure after a commit point says so: INCOMPLETE, not
  REFUSED. Anything else is an unexpected error: one line with its type and the log of its
  traceback (``runtime.failure_status``), status 2."""
  try:
    yield
  except Refusal as error:
    verdict = 'INCOMPLETE' if getattr(error, 'committed', False) else 'REFUSED'
    raise Exit(f'[beam-pipelines] {verdict}: {error}', code=runtime.EXIT_ERROR) from None
  except OSError as error:  # a full disk, a read-only bucket, a path that is a file
    raise Exit(f'[beam-pipelines] FAILED: {error}. A disk, permission or path problem; commit '
               f'points are written last, so what was live still is.',
               code=runtime.EXIT_ERROR) from None
  except Exit:
    raise
  except Exception as error:  # noqa: BLE001 - a bug: its type, and its traceback in a log
    raise Exit(code=runtime.failure_status('invoke', error)) from None


def _bucket(url):
  """The bucket URL of a task; a gs:// bucket that cannot be reached is refused in seconds."""
  resolved = resolve_bucket(url, REPO)
  with refusals():
    bucket_io.check_bucket_name(resolved)
    text_lines.max_record_chars()  # a bad $BEAM_PIPELINES_MAX_RECORD_BYTES: refused before any run
    bucket_io.check_reachable(resolved)
  return resolved


def _say(line: str) -> None:
  progress(line)


@task
def build(c, checks=True):
  """Lint, unit tests, then a reproducible wheel + sdist and the build manifest in dist/.

  :param checks: run ruff, mypy and the unit tests first (`--no-checks` only re-packages; CI never skips).
  """
  with refusals():
    build_step.build(REPO, checks=checks)


@task
def test(c, bucket=None):
  """Upload the last build to the test env, run the test workflows from the uploaded wheel, check.

  :param bucket: bucket URL (local dir or gs://); default $BEAM_PIPELINES_BUCKET or ./bucket.
  """
  with refusals():
    run_test(REPO, _bucket(bucket))


@task
def deploy(c, build_id=None, approve=False, override_blessing=None, bucket=None):
  """Promote a build that passed test to prod: same bytes, sha256 checked, variables, workflows.

  :param build_id: the build to deploy (default: the newest build that passed test).
  :param approve: confirm the deploy when the approval gate is on.
  :param override_blessing: deploy although the build's model is NOT_BLESSED; the reason is recorded.
  :param bucket: bucket URL (local dir or gs://); default $BEAM_PIPELINES_BUCKET or ./bucket.
  """
  with refusals():
    url = _bucket(bucket)
    deploy_step.deploy(url, build_id, approve, override_blessing)
    _summary(url)


@task
def rollback(c, build_id=None, approve=False, override_blessing=None, bucket=None):
  """Point prod back to the build deployed before the live one (or --build-id); recorded.

  :param build_id: roll back to this build (it must have been deployed to prod before).
  :param approve: confirm the rollback when the approval gate is on.
  :param override_blessing: roll back to a build whose model is NOT_BLESSED; the reason is recorded.
  :param bucket: bucket URL (local dir or gs://); default $BEAM_PIPELINES_BUCKET or ./bucket.
  """
  with refusals():
    url = _bucket(bucket)
    deploy_step.rollback(url, build_id, approve, override_blessing)
    _summary(url)


@task(name='run', positional=['pipeline'])
def run_pipeline(c, pipeline, env=layout.PROD, bucket=None, container_repo=None):
  """Run a pipeline of the deployed build (the env's workflow). Beam options go after `--`.

  Example: invoke run wordcount -- --direct_num_workers 2 --direct_running_mode multi_processing

  :param pipeline: the pipeline to run (its deployed workflow definition), e.g. wordcount.
  :param env: the environment whose deployment runs: prod (default) or test.
  :param bucket: bucket URL (local dir or gs://); default $BEAM_PIPELINES_BUCKET or ./bucket.
  :param container_repo: on Dataflow, run in the project's SDK container <repo>:<build id>; default $BEAM_PIPELINES_CONTAINER_REPO.
  """
  repo_url = container_repo or os.environ.get(CONTAINER_REPO_ENV_VAR) or None
  with refusals():
    done = run_deployed(REPO, _bucket(bucket), pipeline, env, shlex.split(c.remainder or ''),
                        container_repo=repo_url)
    _say(f'run: done: {done["workflow"]} of build {done["build_id"]}; outputs: {done["output"]}-*')


@task
def status(c, pipeline=None, bucket=None, json_=False):
  """Show what is deployed where, the last test result, the models in production, the approval
  gate, the lock, the history.

  :param pipeline: show only this pipeline's models (default: every declared pipeline).
  :param bucket: bucket URL (local dir or gs://); default $BEAM_PIPELINES_BUCKET or ./bucket.
  :param json_: print one JSON object instead (fields: docs/harness.md).
  """
  with refusals():
    url, only = _bucket(bucket), [pipeline] if pipeline else None
    if json_:
      _print_json(status_report(url, pipelines=only))
    else:
      print('\n'.join(status_lines(url, pipelines=only)))


@task
def report(c, pipeline=None, bucket=None):
  """Write the bucket's static site (deployments, history, tests, registry, lineage, reports).

  :param pipeline: only this ML pipeline's registry (default: every one).
  :param bucket: bucket URL (local dir or gs://); default $BEAM_PIPELINES_BUCKET or ./bucket.
  """
  with refusals():
    index = build_site(_bucket(bucket), pipeline)
    _say(f'report: site written; open {index}')


@task
def dags(c, env=layout.TEST, out=None, build_id=None, bucket=None):
  """Stage the Composer DAG files of the build an environment runs, for `composer_dags.sh import`.

  :param env: test (the test DAG of the tested build) or prod (the prod and CT DAGs of the deployed build).
  :param out: folder to write them to (default: dags-<env>/ here); its .py files are replaced.
  :param build_id: test only: the DAG files of this tested build, not of the latest one.
  :param bucket: bucket URL (local dir or gs://); default $BEAM_PIPELINES_BUCKET or ./bucket.
  """
  with refusals():
    target = pathlib.Path(out or REPO / f'dags-{env}')
    staged_build, staged = dag_files.stage_build(_bucket(bucket), env, target, build_id)
    _say(f'dags: build {staged_build}: {len(staged)} file(s) for {env} in {target}: '
         f'{", ".join(sorted(staged))}')


@task
def approval(c, on=False, off=False, bucket=None):
  """Turn the approval gate on or off (stored in <bucket>/prod/settings.json, shared by a team).

  :param on: require `--approve` on every prod deploy and rollback.
  :param off: no approval needed (the local default).
  :param bucket: bucket URL (local dir or gs://); default $BEAM_PIPELINES_BUCKET or ./bucket.
  """
  with refusals():
    url = _bucket(bucket)
    if on == off:
      raise HarnessError('say --on or --off')
    deploy_step.set_approval(url, on)
    _say(f'approval gate: {"ON" if deploy_step.approval_required(url) else "off"} for {url}')


@task
def unlock(c, force=False, bucket=None):
  """Remove the prod deploy lock; refused while a deploy on this machine holds it (says whose).

  :param force: remove it even if its holder is still running here.
  :param bucket: bucket URL (local dir or gs://); default $BEAM_PIPELINES_BUCKET or ./bucket.
  """
  with refusals():
    holder = lock.unlock(layout.Env(_bucket(bucket), layout.PROD).lock, force=force)
    _say(f'unlock: removed the lock held by {lock.describe(holder)}' if holder is not None
         else 'unlock: prod was not locked')


def _summary(url: str) -> None:
  """Final lines of deploy/rollback: what is deployed where (the change is done: a status that
  cannot be read is said, never turned into a failure)."""
  try:
    lines = status_lines(url, limit=3)
  except Refusal as error:
    _say(f'done; the status summary could not be read: {error}')
    return
  _say('deployed: ' + lines[2])
  for line in lines[:2] + lines[3:]:
    print(line)
  _say(f'next: `invoke run wordcount` runs the prod workflow; outputs land under '
       f'{layout.Env(url, layout.PROD).path(layout.RESULTS, layout.RUNS)}/')


def _pipeline(pipeline: Optional[str]) -> str:
  """``--pipeline``, else the only declared pipeline; several and none named is a refusal."""
  return choose_pipeline(pipeline, declared_pipelines())


def _registry(url: str, pipeline: Optional[str]):
  return model_registry(url, _pipeline(pipeline))


@task(name='ct')
def continuous_training(c, pipeline=None, span=None, force=False, no_cache=False, no_push=False,
                        predict=False, source=False, bucket=None, json_=False, readmit=None,
                        reason=''):
  """Continuous training of the deployed prod build (its `ct` workflow) on each new landed span of
  a pipeline. Exit status, as `python -m beam_pipelines.ct`: 0 pushed or no trigger, 1 stopped at
  validation, 2 an error, 3 NOT_BLESSED.

  :param pipeline: a declared pipeline (a folder of beam_pipelines/pipelines/); needed when several are declared.

  :param span: a span directory (or CSV glob) to process instead of the new spans of the landing area.
  :param force: retrain even when there is no trigger (cached steps are reused).
  :param no_cache: run every step again (reuse nothing).
  :param no_push: a blessed model becomes `candidate` only; production stays.
  :param predict: then run batch inference of the span with the production model.
  :param source: run the source tree's pipeline instead of the deployed build's.
  :param bucket: bucket URL (local dir or gs://); default $BEAM_PIPELINES_BUCKET or ./bucket.
  :param json_: end with ct's JSON line on stdout (fields: docs/continuous-training.md).
  :param readmit: a span that stopped, failed or was NOT_BLESSED (its directory or name) re-admitted
      into later training windows and drift baselines; nothing retrained; recorded.
  :param reason: with --readmit: why (recorded).

  Beam options after `--` go to the pipeline steps (e.g. `-- --runner DataflowRunner ...`; on
  Dataflow the steps run in the SDK container of $BEAM_PIPELINES_CONTAINER_REPO).
  """
  url = _bucket(bucket)
  with refusals():
    pipeline = _pipeline(pipeline)  # several declared and none named: refused here, in one line
  flags = ['--bucket', url, '--pipeline', pipeline] + (['--span', span] if span else []) + (
      ['--readmit', readmit] + (['--reason', reason] if reason else []) if readmit else []) + [
      f for f, on in (('--force', force), ('--no_cache', no_cache), ('--no_push', no_push),
                      ('--predict', predict)) if on] + shlex.split(c.remainder or '')
  with refusals():
    if source:
      from beam_pipelines.ct import cli as ct_cli  # imports Beam and the pipelines: only when run
      status = ct_cli.main(flags + (['--json'] if json_ else []))
      if status:
        raise Exit(f'[beam-pipelines] ct: exit status {status} ({ct_cli.EXIT_RESULTS[status]})',
                   code=status)
      return
    if not bucket_io.exists(layout.Env(url, layout.PROD).variables):
      raise HarnessError('nothing is deployed in prod: run `invoke build test deploy` first, or '
                         '`invoke ct --source` to run the source tree\'s pipeline')
    # --json always: the deployed ct's JSON line is its status; a process that ends without one
    # (a crash outside its main, a kill) is an error, whatever its exit status
    done = run_deployed(REPO, url, 'ct', layout.PROD, flags + ['--json'],
                        accept=ANY_STATUS,
                        container_repo=os.environ.get(CONTAINER_REPO_ENV_VAR) or None)
  status, error = read_ct_result(done['returncode'], done['lines'])
  if json_:
    print(_json_line(done['lines']) if status == done['returncode']
          else json_line(status, [], {}, error), flush=True)
  if status == runtime.EXIT_ERROR:
    raise Exit(f'[beam-pipelines] ct: error with deployed build {done["build_id"]} (exit status '
               f'{status}): {error}', code=status)
  _say(f'ct: {CT_RESULTS[status]} with deployed build {done["build_id"]} (exit status {status}); '
       f'`invoke model-list --pipeline {pipeline}`, '
       f'`invoke lineage --pipeline {pipeline} --model production`')
  if status:
    raise Exit(code=status)


def _json_line(lines: Sequence[str]) -> str:
  """The JSON line a deployed ct printed last (a build from before --json has none: refused)."""
  for line in reversed(lines):
    if line.startswith('{'):
      try:
        if isinstance(json.loads(line), dict):
          return line
      except ValueError:
        continue
  raise HarnessError('the deployed build printed no JSON line: it predates `ct --json`; '
                     'deploy a newer build, or run without --json')


@task(name='ct-demo')
def ct_demo(c, bucket=None):
  """The CT loop end to end on the bundled sample: land spans 1-4, run ct on each (source tree).

  :param bucket: bucket URL; default: a fresh demo bucket, outputs/ct-demo/bucket (the demo moves
      `production`, so it stays out of the real bucket unless you name one).
  """
  from beam_pipelines.ct import cli as ct_cli  # imports Beam and the pipelines: only when run
  with refusals():
    status = ct_cli.main(['--demo'] + (['--bucket', bucket] if bucket else []))
  if status == 2:
    raise Exit('[beam-pipelines] ct-demo failed', code=2)


@task(name='model-list')
def model_list(c, pipeline=None, bucket=None, json_=False):
  """The model registry: every version (blessing, metrics, sha256, run), aliases, alias history.

  :param pipeline: a declared pipeline (a folder of beam_pipelines/pipelines/); needed when several are declared.
  :param bucket: bucket URL (local dir or gs://); default $BEAM_PIPELINES_BUCKET or ./bucket.
  :param json_: print one JSON object instead (fields: docs/continuous-training.md).
  """
  with refusals():
    url, name = _bucket(bucket), _pipeline(pipeline)
    view = views.model_list(model_registry(url, name), name)
    if json_:
      _print_json(view)
    else:
      print('\n'.join(views.model_list_lines(view)))


@task(name='model-promote')
def model_promote(c, version=None, reason='', override_blessing=None, pipeline=None, bucket=None):
  """Point the `production` alias at a registered version (atomic, recorded in the history).

  :param version: the version number to serve (required).
  :param reason: why (recorded).
  :param override_blessing: promote a version that is not BLESSED; the reason is recorded.
  :param pipeline: a declared pipeline (a folder of beam_pipelines/pipelines/); needed when several are declared.
  :param bucket: bucket URL (local dir or gs://); default $BEAM_PIPELINES_BUCKET or ./bucket.
  """
  with refusals():
    if version is None or not VERSION_NUMBER.fullmatch(str(version)):
      raise HarnessError('--version must be a registered version number (see `invoke '
                         'model-list`), got ' + ('nothing' if version is None else repr(version)))
    url = _bucket(bucket)
    reg = _registry(url, pipeline)
    event = reg.promote(int(version), reason, override_blessing)
    _say(f'model-promote: production is v{reg.aliases()["production"]}'
         + ('' if event else ' (already)'))
    vertex.mirror_after(reg, _pipeline(pipeline))  # opt-in: $BEAM_PIPELINES_VERTEX_REGISTRY
    mlflow_mirror.mirror_after(CtPaths(url, _pipeline(pipeline)))  # opt-in: $MLFLOW_TRACKING_URI


@task(name='model-rollback')
def model_rollback(c, reason='', override_blessing=None, pipeline=None, bucket=None):
  """Point `production` back at the version it held before the live one (recorded).

  :param reason: why (recorded).
  :param override_blessing: roll back to a version that is not BLESSED; the reason is recorded.
  :param pipeline: a declared pipeline (a folder of beam_pipelines/pipelines/); needed when several are declared.
  :param bucket: bucket URL (local dir or gs://); default $BEAM_PIPELINES_BUCKET or ./bucket.
  """
  with refusals():
    url = _bucket(bucket)
    reg = _registry(url, pipeline)
    event = reg.rollback(reason, override_blessing)
    _say(f'model-rollback: {describe_moves(event["moves"])}')
    vertex.mirror_after(reg, _pipeline(pipeline))  # opt-in: $BEAM_PIPELINES_VERTEX_REGISTRY
    mlflow_mirror.mirror_after(CtPaths(url, _pipeline(pipeline)))  # opt-in: $MLFLOW_TRACKING_URI


@task
def lineage(c, model='production', pipeline=None, bucket=None, json_=False):
  """Which data, code and parameters made a registered model (its run's lineage record).

  :param model: production, candidate or a version number.
  :param pipeline: a declared pipeline (a folder of beam_pipelines/pipelines/); needed when several are declared.
  :param bucket: bucket URL (local dir or gs://); default $BEAM_PIPELINES_BUCKET or ./bucket.
  :param json_: print one JSON object instead (fields: docs/continuous-training.md).
  """
  with refusals():
    url, name = _bucket(bucket), _pipeline(pipeline)
    view = views.lineage(model_registry(url, name), name, model)
    if json_:
      _print_json(view)
    else:
      print('\n'.join(views.lineage_lines(view)))


@task(iterable=['param', 'span'])
def experiment(c, pipeline=None, param=None, grid=None, span=None, bucket=None, json_=False):
  """Train and evaluate variants of a pipeline's training parameters on the same window of landed
  spans, each against production on the same eval rows; production and the registry untouched.

  :param pipeline: a declared pipeline (a folder of beam_pipelines/pipelines/); needed when several are declared.
  :param param: NAME=VALUE overriding pipeline.yaml's train section (repeat: `--param a=1 --param b=2`).
  :param grid: YAML file {param: [values...]}: every combination is a variant.
  :param span: a span directory of the window (repeat); default: the latest window of accepted spans.
  :param bucket: bucket URL (local dir or gs://); default $BEAM_PIPELINES_BUCKET or ./bucket.
  :param json_: end with one JSON object on stdout: the experiment's runs, ranked.
  """
  from beam_pipelines import experiment as experiments  # imports Beam: only when run
  url = _bucket(bucket)
  with refusals():
    flags = (['--bucket', url, '--pipeline', _pipeline(pipeline)]
             + [a for p in param or [] for a in ('--param', p)]
             + (['--grid', grid] if grid else []) + [a for s in span or [] for a in ('--span', s)]
             + (['--json'] if json_ else []) + shlex.split(c.remainder or ''))
  if experiments.main(flags):
    raise Exit('[beam-pipelines] experiment failed', code=runtime.EXIT_ERROR)


@task(name='experiment-adopt')
def experiment_adopt(c, run=None, pipeline=None, bucket=None):
  """Write an experiment run's parameters into its pipeline.yaml (train section, experiment_run):
  the change to commit, so `invoke build test deploy` and `invoke ct` take it through the checks.

  :param run: the experiment run id (see `invoke runs`).
  :param pipeline: a declared pipeline (a folder of beam_pipelines/pipelines/); needed when several are declared.
  :param bucket: bucket URL (local dir or gs://); default $BEAM_PIPELINES_BUCKET or ./bucket.
  """
  from beam_pipelines import experiment as experiments  # imports Beam: only when run
  url = _bucket(bucket)
  with refusals():
    if not run:
      raise HarnessError('--run RUN_ID is required (see `invoke runs`)')
    flags = ['--bucket', url, '--pipeline', _pipeline(pipeline), '--adopt', run]
  if experiments.main(flags):
    raise Exit('[beam-pipelines] experiment-adopt failed', code=runtime.EXIT_ERROR)


@task
def runs(c, pipeline=None, experiment=None, metric=None, bucket=None, json_=False):
  """Every tracked run of a pipeline (experiment variants and CT runs), best first by a metric.

  :param pipeline: a declared pipeline (a folder of beam_pipelines/pipelines/); needed when several are declared.
  :param experiment: only the variants of this experiment id.
  :param metric: rank by this metric (default: the first metric of the pipeline's blessing).
  :param bucket: bucket URL (local dir or gs://); default $BEAM_PIPELINES_BUCKET or ./bucket.
  :param json_: print one JSON object instead: {pipeline, metric, runs (ranked), skipped}.
  """
  with refusals():
    url, name = _bucket(bucket), _pipeline(pipeline)
    metric = metric or run_records.ranking_metric(load_definition(name).blessing_config)
    found, skipped = run_records.list_runs(CtPaths(url, name), experiment)
    ordered = run_records.ranked(found, metric)
    if json_:
      _print_json({'pipeline': name, 'metric': metric, 'runs': ordered, 'skipped': skipped})
    else:
      print('\n'.join(run_records.runs_lines(ordered, metric)
                      + [f'  SKIPPED an unreadable record: {s}' for s in skipped]))
