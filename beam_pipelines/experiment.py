"""Experiments: variants of a pipeline's training parameters, each trained on the same window of
landed spans and evaluated on the same eval rows against production, without touching production
or the registry; then the chosen variant written into the pipeline's folder (``--adopt``).

    python -m beam_pipelines.experiment --pipeline taxi [--bucket URL] [--span DIR ...]
        [--param classifier=gbt --param max_depth=4] [--grid grid.yaml] [--json]
    python -m beam_pipelines.experiment --adopt RUN_ID [--pipeline NAME|PATH/pipeline.yaml]

``--param NAME=VALUE`` overrides the ``train:`` section of pipeline.yaml (a flag of
``beam_pipelines.train``, without ``--``); ``--grid`` is a YAML mapping ``{param: [values...]}``
whose every combination is a variant (with the ``--param`` values in each). The window is the
``--span`` directories, else the latest window of spans continuous training accepted. An
experiment holds continuous training's lock of the pipeline (``ct.lock``) from start to end: it
and a CT run never interleave. Its steps run in its own cache,
``<env>/ct/<pipeline>/experiments/<experiment_id>/cache/``; CT's step cache is only read (its
features and validation of the same window, same keys as ``ct``, are reused), never written. Each
variant writes its run record ``<env>/ct/<pipeline>/experiments/<run_id>/run.json`` (``ct.runs``;
a variant whose steps raise is recorded ``failed`` with its error, and the experiment stops; a
window that validation stops refuses the experiment, recording nothing) and the table ranks them
by the blessing's first metric, with the 95% interval of the paired difference against
production on the same rows and whether the pipeline's rule would bless it (on the eval split;
CT also judges the fixed holdout).

``--adopt RUN_ID`` rewrites the ``train:`` block of the pipeline's pipeline.yaml with that
variant's classifier and the parameters where it differs from the defaults of
``beam_pipelines.train`` (it reads back as exactly the run's parameters), and records
``experiment_run: RUN_ID`` (other lines kept as they are): the change to commit, so ``invoke
build test deploy`` and ``ct`` run the level-2 check on it and the lineage of each model trained
from it names the experiment run.

With ``$MLFLOW_TRACKING_URI`` set, each variant recorded becomes a run of the pipeline's MLflow
experiment after the experiment ends (a failed variant as a FAILED run) (``beam_pipelines.tracking.mlflow_mirror``;
a server that fails is said in one line and changes nothing).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import logging
import pathlib
import re
import sys
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import yaml

from beam_pipelines import runtime
from beam_pipelines.ct import runs
from beam_pipelines.ct.definition import PipelineDefinition, definition_path, load_definition
from beam_pipelines.ct.paths import CtPaths
from beam_pipelines.ml.results import ParamValue
from beam_pipelines.store import bucket, layout
from beam_pipelines.store.bucket import check_bucket_name, resolve_bucket
from beam_pipelines.store.console import number, progress
from beam_pipelines.store.errors import Refusal
from beam_pipelines.store.lock import BucketLock
from beam_pipelines.store.typed_json import to_json

Params = Dict[str, ParamValue]
TRAIN_LINE = re.compile(r'^train:(?P<rest>.*)$')
EXPERIMENT_RUN_LINE = re.compile(r'^experiment_run:.*$')


class ExperimentError(Refusal):
  """An experiment that cannot run (bad parameter, no span); the message says what to do."""


class UsageError(ExperimentError):
  """Flags that do not make an experiment command."""


class _Parser(argparse.ArgumentParser):
  def error(self, message: str):
    raise UsageError(f'{message} (see python -m beam_pipelines.experiment --help)')


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument('--pipeline', default=None,
                      help='A declared pipeline or the path of a pipeline.yaml (default: the only '
                           'one declared).')
  parser.add_argument('--bucket', default=None,
                      help='Bucket URL (default: $BEAM_PIPELINES_BUCKET, else ./bucket).')
  parser.add_argument('--env', default=layout.PROD, help='Environment of the bucket (prod).')
  parser.add_argument('--span', action='append', default=None,
                      help='A span directory of the window (repeat); default: the latest window '
                           'of spans continuous training accepted.')
  parser.add_argument('--param', action='append', default=[], metavar='NAME=VALUE',
                      help='A training parameter overriding pipeline.yaml\'s train section.')
  parser.add_argument('--grid', default=None,
                      help='YAML file {param: [values...]}: every combination is a variant.')
  parser.add_argument('--json', action='store_true',
                      help='End with one JSON object on stdout: the experiment, ranked.')
  parser.add_argument('--adopt', default=None, metavar='RUN_ID',
                      help="Write that experiment run's parameters into pipeline.yaml.")


# Variants ----------------------------------------------------------------------------------------

def parse_param(text: str) -> Tuple[str, ParamValue]:
  """``max_depth=4`` -> ('max_depth', 4): the value read as a YAML scalar."""
  name, sep, raw = text.partition('=')
  if not sep or not re.fullmatch(r'[A-Za-z_]\w*', name.strip()):
    raise UsageError(f'--param {text!r}: expected NAME=VALUE, e.g. --param max_depth=4')
  return name.strip(), _scalar(yaml.safe_load(raw) if raw.strip() else None, f'--param {text}')


def _scalar(value: Any, where: str) -> ParamValue:
  if isinstance(value, (dict, list)):
    raise UsageError(f'{where}: a parameter value is one number, text or true/false')
  return value


def load_grid(path: str) -> Dict[str, List[ParamValue]]:
  """A grid file: ``{param: [values...]}`` (a single value is a list of one)."""
  try:
    raw = yaml.safe_load(bucket.read_bytes(path, 'experiment grid').decode('utf-8'))
  except yaml.YAMLError as error:
    raise UsageError(f'grid {path} is not valid YAML: {str(error).splitlines()[0]}') from None
  if not isinstance(raw, dict) or not raw:
    raise UsageError(f'grid {path}: expected a mapping {{param: [values...]}}, got {raw!r}')
  return {str(k): [_scalar(v, f'grid {path}: {k}') for v in (vs if isinstance(vs, list) else [vs])]
          for k, vs in raw.items()}


def variants(fixed: Mapping[str, ParamValue],
             grid: Optional[Mapping[str, Sequence[ParamValue]]]) -> List[Params]:
  """The overrides of each variant: every combination of ``grid`` (in its order), each with
  ``fixed``; ``fixed`` alone without a grid."""
  if not grid:
    return [dict(fixed)]
  names = list(grid)
  return [dict(fixed, **dict(zip(names, values))) for values in itertools.product(*grid.values())]


def completed(base: Mapping[str, ParamValue], overrides: Mapping[str, ParamValue]) -> Params:
  """The variant's hyperparameters (``train.parameters`` of base + overrides); an override the
  classifier does not use is refused (``max_depth`` of ``logistic`` would change nothing)."""
  from beam_pipelines import train  # imports Beam: only once the flags are parsed
  params = train.parameters(dict(base, **overrides))
  unused = sorted(set(overrides) - set(params))
  if unused:
    raise ExperimentError(f'training parameter(s) {", ".join(unused)} do not apply to classifier '
                          f'{params["classifier"]} (it uses {", ".join(params)})')
  return params


# Adopting a variant ----------------------------------------------------------------------------

def settings_of(params: Mapping[str, ParamValue]) -> Params:
  """What pipeline.yaml's train section holds for ``params`` (completed hyperparameters): the
  classifier, then each value that differs from ``beam_pipelines.train``'s default for that
  classifier, in ``params``' order; ``train.parameters`` of it gives ``params`` back."""
  from beam_pipelines import train  # imports Beam: only once the flags are parsed
  defaults = train.parameters({'classifier': params['classifier']})
  return {k: v for k, v in params.items()
          if k == 'classifier' or k not in defaults or v != defaults[k]}


def _block_end(lines: Sequence[str], start: int) -> int:
  """The line after the block opened at ``start``: its indented lines, and the blank lines
  between them (a blank line followed by an unindented one ends it)."""
  end = start + 1
  while end < len(lines):
    if not lines[end].startswith((' ', '\t')) and (
        lines[end].strip() or not next((line for line in lines[end:] if line.strip()),
                                       '').startswith((' ', '\t'))):
      break
    end += 1
  return end


def rewrite_train(text: str, train: Mapping[str, ParamValue], run_id: str) -> str:
  """``text`` of a pipeline.yaml with its ``train:`` block replaced by ``train`` (the comment on
  its first line kept) and ``experiment_run: run_id`` after it; every other line kept as it is."""
  lines = [line for line in text.splitlines() if not EXPERIMENT_RUN_LINE.match(line)]
  start = next((i for i, line in enumerate(lines) if TRAIN_LINE.match(line)), len(lines))
  header = 'train:'
  if start < len(lines):
    rest = TRAIN_LINE.match(lines[start]).group('rest')  # type: ignore[union-attr]
    if rest.strip().startswith('#'):
      header += rest.rstrip()  # the block form's comment, where it was
    elif '#' in rest:
      header += '  ' + rest[rest.index('#'):].rstrip()  # a flow mapping's comment
  end = _block_end(lines, start) if start < len(lines) else start
  block = [header] + [f'  {yaml.safe_dump({k: v}, default_flow_style=False).strip()}'
                      for k, v in train.items()]
  marker = f'experiment_run: {run_id}  # the experiment run this train section came from'
  return '\n'.join(lines[:start] + block + [marker] + lines[end:]) + '\n'


def adopt(run_id: str, pipeline: Optional[str], bucket_url: str, env: str) -> str:
  """Writes experiment run ``run_id``'s parameters into the pipeline's pipeline.yaml; returns
  its path. Checked: the file loads and trains with exactly the run's parameters."""
  from beam_pipelines import train  # imports Beam: only once the flags are parsed
  path = definition_path(pipeline)
  if '://' in path:
    raise ExperimentError(f'{path}: --adopt rewrites a pipeline.yaml of a source tree, not an '
                          f'object in a bucket')
  definition = load_definition(path)
  record = runs.find_run(CtPaths(bucket_url, definition.name, env), run_id)
  if record['kind'] != runs.EXPERIMENT:
    raise ExperimentError(f'run {run_id} is a {record["kind"]} run: adopt an experiment run')
  if record['status'] != runs.EVALUATED:
    raise ExperimentError(f'run {run_id} is {record["status"]} ({record.get("error")}): adopt a '
                          f'variant that was trained and evaluated')
  wanted = dict(record.get('params') or {})
  if 'classifier' not in wanted:
    raise ExperimentError(f'run {run_id} records no classifier in its params: not a variant to '
                          f'adopt')
  file = pathlib.Path(path)
  text = rewrite_train(file.read_text(encoding='utf-8'), settings_of(wanted), run_id)
  file.write_text(text, encoding='utf-8')
  written = load_definition(path)
  if train.parameters(written.train) != wanted or written.experiment_run != run_id:
    raise ExperimentError(f'{path} was rewritten but does not read back as run {run_id}\'s '
                          f'parameters: check its train section by hand')
  progress(f'experiment: {path}: train is now {runs.params_text(written.train)} '
           f'(experiment_run {run_id}); commit it, then `invoke build test deploy` checks it '
           f'against production and `invoke ct` trains it')
  return path


# Running -----------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Experiment:
  """What an experiment ran: its id, the ranked variants, production's row."""
  experiment_id: str
  pipeline: str
  metric: str
  runs: List[runs.RunDocument]
  production: Optional[Dict[str, Any]]  # {version, model_sha256, metrics} on the same rows


def window_of(paths: CtPaths, definition: PipelineDefinition,
              spans: Optional[Sequence[str]]) -> List[str]:
  """The spans trained on: ``spans`` as given, else the latest window of accepted spans."""
  from beam_pipelines.ct import loop  # imports Beam: only once the flags are parsed
  if spans:
    return sorted(s.rstrip('/') for s in spans)
  latest = loop.latest_records(loop.processed_spans(paths))
  accepted = [s for s in loop.landed_spans(paths) if s in latest and loop.accepted(latest[s])]
  if not accepted:
    raise ExperimentError(f'no span of {paths.landing} was accepted by continuous training yet: '
                          f'name the window with --span DIR')
  return loop.window_spans(accepted, accepted[-1], definition.window)


def experiment_dir(paths: CtPaths, experiment_id: str) -> str:
  """An experiment's working area: its step cache, and its schema when CT has inferred none."""
  return runs.experiment_run_dir(paths, experiment_id)


def experiment(definition: PipelineDefinition, bucket_url: str, env: str,
               spans: Optional[Sequence[str]], overrides: List[Params],
               beam_args: Sequence[str] = ()) -> Experiment:
  """Trains and evaluates each variant (``overrides`` of the train section) on the same window,
  against production; writes a run record each (``ct.runs``). Holds CT's lock of the pipeline
  throughout; production, the registry and CT's step cache are only read. Then, with
  ``$MLFLOW_TRACKING_URI`` set, the variants recorded (also when a later one failed) are mirrored
  to MLflow, best effort (``tracking.mlflow_mirror``)."""
  from beam_pipelines.tracking import mlflow_mirror  # only when an experiment runs
  paths = CtPaths(bucket_url, definition.name, env)
  checked = [completed(definition.train, o) for o in overrides]  # all refused before any run
  locked = False
  try:
    with BucketLock(paths.lock, 'experiment', guards=f'continuous training of {paths.root}'):
      locked = True
      return _experiment(definition, paths, spans, overrides, checked, beam_args)
  finally:  # a refused experiment recorded nothing; one that ran is mirrored, failed or not
    if locked:
      mlflow_mirror.mirror_after(paths)  # opt-in: $MLFLOW_TRACKING_URI; never raises


def _experiment(definition: PipelineDefinition, paths: CtPaths, spans: Optional[Sequence[str]],
                overrides: List[Params], checked: List[Params],
                beam_args: Sequence[str]) -> Experiment:
  """``experiment``'s runs, under the lock."""
  from beam_pipelines.ct import cache, lineage, loop, registry, steps  # imports Beam (see above)
  window = window_of(paths, definition, spans)
  entries = lineage.file_entries([f for s in window for f in loop.span_files(s)])
  data_sha256, code = lineage.data_sha256(entries), lineage.code_identity()
  last_sha = lineage.data_sha256(lineage.file_entries(loop.span_files(window[-1])))
  previous = loop.chronological_previous(loop.processed_spans(paths), window[-1], last_sha)
  experiment_id = loop.new_run_id()
  schema = definition.schema_path or paths.schema
  if not bucket.exists(schema):  # CT has inferred none yet: this experiment's own, not prod's
    schema = layout.join(experiment_dir(paths, experiment_id), 'schema.pbtxt')
  reg = registry.Registry(paths.registry)
  baseline = None
  if reg.aliases().get(registry.PRODUCTION) is not None:
    directory, record = reg.verified_dir(registry.PRODUCTION)
    baseline = steps.Baseline(directory, record['model_sha256'],
                              reg.record_path(record['version']), record['version'])
  metric = runs.ranking_metric(definition.blessing_config)
  progress(f'experiment {experiment_id}: {len(checked)} variant(s) of {definition.name} on '
           f'{", ".join(loop.span_name(s) for s in window)} ({len(entries)} file(s), data sha256 '
           f'{data_sha256[:12]}); baseline: '
           f'{f"production v{baseline.version}" if baseline else "none (no production yet)"}')
  step_cache = cache.StepCache(layout.join(experiment_dir(paths, experiment_id), 'cache'),
                               read_only=[paths.cache])
  done_runs: List[runs.RunDocument] = []
  production: Optional[Dict[str, Any]] = None
  for index, (override, params) in enumerate(zip(overrides, checked), 1):
    run_id = f'{experiment_id}-{index:02d}'
    started = layout.now_utc()
    progress(f'experiment: run {run_id}: {runs.params_text(override) or "pipeline.yaml as is"}')
    data = runs.RunDataEntry(span=window[-1], window=list(window), sha256=data_sha256)
    try:
      done = steps.run_steps(
          dataclasses.replace(definition, train=dict(definition.train, **override)),
          [loop.span_pattern(s) for s in window], data_sha256, code['fingerprint'], step_cache,
          lambda step: progress(f'experiment: step {step.name}: {step.status} -> {step.directory}'),
          baseline=baseline, schema=schema, previous=previous.statistics if previous else None,
          beam_args=beam_args, registered_on_holdout=bool(definition.integration_path))
    except Exception as error:  # recorded as a failed variant (MLflow: FAILED), then raised
      _record_failed(paths, runs.RunDocument(
          run_id=run_id, kind=runs.EXPERIMENT, pipeline=definition.name, status=runs.FAILED,
          started_at=started, finished_at=layout.now_utc(), experiment_id=experiment_id,
          experiment_run=None, params=params, overrides=override, metric=metric, metrics={},
          comparison={}, baseline=None, blessing=None, data=data, code=code,
          artifacts=runs.RunArtifacts(), model_version=None, reason=None,
          error=f'{type(error).__name__}: {error}'))
      raise
    if done.training is None or done.evaluation is None:
      verdict = done.validation.result
      raise ExperimentError(f'the window stopped at validation ({verdict.status}): '
                            f'{verdict.message}; report {verdict.report}')
    evaluation = done.evaluation.result
    eval_sha256, rows = runs.eval_rows(done.features.directory)
    run = runs.RunDocument(
        run_id=run_id, kind=runs.EXPERIMENT, pipeline=definition.name, status=runs.EVALUATED,
        started_at=started, finished_at=layout.now_utc(), experiment_id=experiment_id,
        experiment_run=None, params=params, overrides=override, metric=metric,
        metrics=dict(evaluation.metrics), comparison=runs.comparison(done.evaluation.directory),
        baseline=runs.BaselineEntry(version=baseline.version, model_sha256=baseline.model_sha256,
                                    metrics=dict(evaluation.baseline_metrics or {}))
        if baseline else None,
        blessing={'status': evaluation.status, 'message': evaluation.message},
        data=runs.RunDataEntry(span=window[-1], window=list(window), sha256=data_sha256,
                               eval_sha256=eval_sha256, eval_rows=rows),
        training=runs.training_entry(to_json(done.training.result)),
        code=code, artifacts=runs.RunArtifacts(
            features_dir=done.features.directory, model_dir=done.training.directory,
            model_sha256=done.training.result.model_sha256,
            evaluation_dir=done.evaluation.directory, lineage=None),
        model_version=None, reason=None, error=None)
    bucket.write_json(runs.run_path(paths, run_id, runs.EXPERIMENT), run)
    done_runs.append(run)
    production = dict(run['baseline'] or {}) if run.get('baseline') else None
  order = [r['run_id'] for r in runs.ranked(done_runs, metric)]
  return Experiment(experiment_id, definition.name, metric,
                    sorted(done_runs, key=lambda r: order.index(r['run_id'])), production)


def _record_failed(paths: CtPaths, record: runs.RunDocument) -> None:
  """Writes a failed variant's run record; one that cannot be written is said, never put in
  place of the variant's own error."""
  try:
    bucket.write_json(runs.run_path(paths, record['run_id'], runs.EXPERIMENT), record)
  except Exception as error:  # noqa: BLE001 - the variant's error is the one raised
    progress(f'experiment: run {record["run_id"]} could not be recorded as failed: '
             f'{type(error).__name__}: {error}')


def table_lines(result: Experiment) -> List[str]:
  """The ranked table: each variant's metric, its difference with production [95% interval] on
  the same rows, and whether the pipeline's rule would bless it; production as a row."""
  metric = result.metric
  lines = [f'{"#":>2}  {"run":27s} {metric:>8s}  {"vs production [95% CI]":27s} '
           f'{"would be":12s} params']
  rows: List[Tuple[Optional[float], str]] = []
  for run in result.runs:
    rows.append((runs.metric_value(run, metric),
                 f'{run["run_id"]:27s} {number(runs.metric_value(run, metric)):>8s}  '
                 f'{runs.interval_text((run.get("comparison") or {}).get(metric)):27s} '
                 f'{(run.get("blessing") or {}).get("status", "n/a"):12s} '
                 f'{runs.params_text(run.get("overrides") or {}) or "pipeline.yaml as is"}'))
  if result.production:
    value = runs.metric_value(result.production, metric)
    rows.append((value, f'{"production v" + str(result.production.get("version")):27s} '
                        f'{number(value):>8s}  {"(the baseline: same rows)":27s} {"":12s} '
                        f'as registered'))
  sign = 1.0 if metric in runs.LOWER_IS_BETTER else -1.0
  rows.sort(key=lambda r: (r[0] is None, sign * (r[0] or 0.0)))
  lines += [f'{i:>2}  {text}' for i, (_, text) in enumerate(rows, 1)]
  first = result.runs[0] if result.runs else None
  if first:
    data = first.get('data') or {}
    lines.append(f'{len(result.runs)} variant(s) on the same {number(data.get("eval_rows"))} eval '
                 f'rows (sha256 {str(data.get("eval_sha256"))[:12]}); `invoke runs --pipeline '
                 f'{result.pipeline} --experiment {result.experiment_id}`, `invoke '
                 f'experiment-adopt --pipeline {result.pipeline} --run RUN_ID`')
  return lines


def run(argv: Optional[Sequence[str]] = None) -> Optional[Experiment]:
  """The command line (module docstring)."""
  parser = _Parser(prog='python -m beam_pipelines.experiment', allow_abbrev=False,
                   description=__doc__.split('\n')[0],
                   formatter_class=argparse.RawDescriptionHelpFormatter,
                   epilog=__doc__.split('\n', 2)[2])
  add_arguments(parser)
  known, beam_args = parser.parse_known_args(list(sys.argv[1:] if argv is None else argv))
  url = resolve_bucket(known.bucket, pathlib.Path.cwd())
  check_bucket_name(url)
  if known.adopt:
    if known.param or known.grid or known.span:
      raise UsageError('--adopt takes no --param, --grid or --span: it writes a run\'s parameters')
    adopt(known.adopt, known.pipeline, url, known.env)
    return None
  fixed = dict(parse_param(p) for p in known.param)
  grid = load_grid(known.grid) if known.grid else None
  if not fixed and not grid:
    raise UsageError('nothing to try: give --param NAME=VALUE and/or --grid FILE')
  result = experiment(load_definition(known.pipeline), url, known.env, known.span,
                      variants(fixed, grid), beam_args)
  for line in table_lines(result):
    print(line, flush=True)
  if known.json:
    print(json.dumps({'experiment_id': result.experiment_id, 'pipeline': result.pipeline,
                      'metric': result.metric, 'production': result.production,
                      'runs': result.runs}, sort_keys=True), flush=True)
  return result


def main(argv: Optional[Sequence[str]] = None) -> int:
  return runtime.main('experiment', run, argv)


if __name__ == '__main__':
  logging.getLogger().setLevel(logging.WARNING)
  sys.exit(main())
