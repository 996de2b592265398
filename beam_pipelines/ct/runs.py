"""Run records: one ``run.json`` per training run, experiment or continuous training, in one format,
so any two runs can be listed, ranked and compared (``invoke runs``, the site's runs page).

Bucket layout, under the environment (``prod``)::

    <env>/ct/<pipeline>/experiments/<run_id>/run.json   a variant of ``python -m
                                                         beam_pipelines.experiment``
    <env>/ct/<pipeline>/runs/<run_id>/run.json          a CT run (beside its lineage.json, whose
                                                         facts it repeats in this format)

``run.json`` (``RunDocument``)::

    {"run_id", "kind": "experiment" | "ct", "pipeline", "status", "started_at", "finished_at",
     "experiment_id",            # the experiment grouping variants (ct: null)
     "experiment_run",           # ct: the experiment run its pipeline.yaml was adopted from
     "params": {...},            # the training hyperparameters, completed (train.parameters)
     "overrides": {...},         # experiment: what differs from the pipeline.yaml train section
     "metric": "auc",            # the ranking metric: the blessing config's first metric
     "metrics": {...},           # the model on the eval rows (the eval split of the window)
     "comparison": {"auc": {"candidate", "baseline", "difference", "ci_lower", "ci_upper",
                            "ci_level", "rows", "method"}, ...},   # vs baseline, same rows
     "baseline": {"version", "model_sha256", "metrics"},            # production, when one was
     "blessing": {"status", "message"},   # the pipeline's rule on the eval split
     "data": {"span", "window", "sha256", "eval_sha256", "eval_rows"},
     "training": {"rows_used", "rows_available", "max_train_rows", "sample"},  # the rows fitted
                                 # of the train split's; sample: the rule, null when all were
     "code": {...},              # lineage.code_identity
     "artifacts": {"features_dir", "model_dir", "model_sha256", "evaluation_dir", "lineage"},
     "model_version",            # ct: the registry version of its model
     "reason", "error"}

Status: ``evaluated`` (an experiment variant) or ``failed`` (a variant that raised: its params,
data and ``error``, no metrics; the experiment stops there), or the CT outcome (``pushed``,
``registered``, ``not_blessed``, ``stopped``, ``no_trigger``, ``failed``). Two runs were scored on the same rows
when their ``data.eval_sha256`` are equal. Reading imports neither Beam nor any pipeline.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, TypedDict, cast

from beam_pipelines.ct.outcomes import FAILED  # noqa: F401 (re-exported: a run that raised)
from beam_pipelines.ct.paths import CtPaths
from beam_pipelines.ct.records import CodeIdentity, LineageDocument
from beam_pipelines.ml import artifacts
from beam_pipelines.ml.blessing import DEFAULT_CONFIG
from beam_pipelines.ml.results import Number, ParamValue
from beam_pipelines.ml.tabular import data_fingerprint
from beam_pipelines.pages.runs import (  # noqa: F401 (re-exported: the records' order and text)
  LOWER_IS_BETTER,
  interval_text,
  metric_value,
  param_text,
  params_text,
  ranked,
)
from beam_pipelines.store import bucket, layout
from beam_pipelines.store.console import number
from beam_pipelines.store.errors import Refusal

RUN_FILE = 'run.json'
EXPERIMENTS = 'experiments'
EXPERIMENT, CT = 'experiment', 'ct'
EVALUATED = 'evaluated'  # an experiment variant: trained and evaluated, never registered
RUN_ID = re.compile(r'[A-Za-z0-9][A-Za-z0-9_.-]{0,99}')  # a run id is one path segment
INTERVAL_KEYS = ('candidate', 'baseline', 'difference', 'ci_lower', 'ci_upper', 'ci_level',
                 'rows', 'method')


class RunError(Refusal):
  """A run record that cannot be read or found (the message names it)."""


class Interval(TypedDict, total=False):
  """A metric of the run against the baseline on the same rows (metrics.json ``comparison``)."""
  candidate: Optional[float]
  baseline: Optional[float]
  difference: Optional[float]  # candidate - baseline
  ci_lower: Optional[float]  # two-sided ci_level interval of the difference
  ci_upper: Optional[float]
  ci_level: float
  rows: int
  method: str


class BaselineEntry(TypedDict, total=False):
  """The model the run was compared with (production), and its metrics on the same rows."""
  version: Optional[int]
  model_sha256: str
  metrics: Dict[str, Number]


class RunDataEntry(TypedDict, total=False):
  span: Optional[str]
  window: List[str]
  sha256: str  # of the training window's files (``lineage.data_sha256``)
  eval_sha256: Optional[str]  # of the eval split's shards: equal means the same eval rows
  eval_rows: Optional[int]


class TrainingEntry(TypedDict, total=False):
  """The rows the model was fitted on (``train --max_train_rows``); None in older records."""
  rows_used: Optional[int]
  rows_available: Optional[int]
  max_train_rows: Optional[int]  # 0: no budget
  sample: Optional[str]  # ``ml.sampling.RULE`` when a sample was fitted, else None


class RunArtifacts(TypedDict, total=False):
  features_dir: Optional[str]
  model_dir: Optional[str]
  model_sha256: Optional[str]
  evaluation_dir: Optional[str]
  lineage: Optional[str]  # ct: its lineage.json


class _RunKeys(TypedDict):
  run_id: str
  kind: str  # experiment | ct
  pipeline: str
  status: str


class RunDocument(_RunKeys, total=False):
  """``run.json``: one training run in the format every run shares (module docstring)."""
  started_at: str
  finished_at: Optional[str]
  experiment_id: Optional[str]
  experiment_run: Optional[str]
  params: Dict[str, ParamValue]
  overrides: Dict[str, ParamValue]
  metric: str
  metrics: Dict[str, Number]
  comparison: Dict[str, Interval]
  baseline: Optional[BaselineEntry]
  blessing: Optional[Dict[str, str]]
  data: RunDataEntry
  training: TrainingEntry
  code: CodeIdentity
  artifacts: RunArtifacts
  model_version: Optional[int]
  reason: Optional[str]
  error: Optional[str]


# Where ---------------------------------------------------------------------------------------

def experiments_dir(paths: CtPaths) -> str:
  return layout.join(paths.root, EXPERIMENTS)


def experiment_run_dir(paths: CtPaths, run_id: str) -> str:
  if not RUN_ID.fullmatch(run_id or ''):
    raise RunError(f'invalid run id {run_id!r}: letters, digits, _ . and -, one path segment')
  return layout.join(experiments_dir(paths), run_id)


def run_path(paths: CtPaths, run_id: str, kind: str) -> str:
  """Where the run record of ``run_id`` is (an experiment variant's, or a CT run's)."""
  folder = experiment_run_dir(paths, run_id) if kind == EXPERIMENT else paths.run(run_id)
  return layout.join(folder, RUN_FILE)


# Facts shared by both kinds -------------------------------------------------------------------

def ranking_metric(blessing_config: Optional[Mapping[str, object]]) -> str:
  """The metric runs are ranked by: the first metric of the pipeline's blessing config."""
  metrics = (blessing_config or DEFAULT_CONFIG).get('metrics')
  return next(iter(metrics), 'auc') if isinstance(metrics, Mapping) and metrics else 'auc'


def comparison(evaluation_dir: Optional[str]) -> Dict[str, Interval]:
  """The paired comparison of an evaluation's ``metrics.json`` (with a baseline), per metric."""
  path = layout.join(evaluation_dir, artifacts.METRICS_FILE) if evaluation_dir else None
  if not path or not bucket.exists(path):
    return {}
  document = bucket.read_json(path, 'evaluation metrics')
  return {metric: cast(Interval, {k: entry.get(k) for k in INTERVAL_KEYS if k in entry})
          for metric, entry in (document.get('comparison') or {}).items()}


def eval_rows(features_dir: Optional[str]) -> Tuple[Optional[str], Optional[int]]:
  """(sha256 of the eval split's shards, its rows) of a features directory: two evaluations with
  the same sha256 scored the same rows."""
  if not features_dir:
    return None, None
  shards = [p for p in bucket.list_files(layout.join(features_dir, artifacts.EVAL))
            if not bucket.is_temp_name(p.rsplit('/', 1)[-1])] \
      if bucket.exists(layout.join(features_dir, artifacts.EVAL)) else []
  if not shards:
    return None, None
  sha = data_fingerprint([{'path': p, 'sha256': bucket.sha256_of(p)} for p in sorted(shards)])
  rows = None
  summary_path = layout.join(features_dir, artifacts.SUMMARY_FILE)
  if bucket.exists(summary_path):
    written = bucket.read_json(summary_path, 'features summary').get('rows_written') or {}
    rows = written.get(artifacts.EVAL) if isinstance(written, Mapping) else None
  return sha, rows


def training_entry(trained: Mapping[str, Any]) -> TrainingEntry:
  """The rows fitted, from a training step's result (``TrainedModel`` as JSON)."""
  return TrainingEntry(rows_used=trained.get('rows'), rows_available=trained.get('rows_available'),
                       max_train_rows=trained.get('max_train_rows'), sample=trained.get('sample'))


# CT runs: the same facts, from the lineage record ----------------------------------------------

def from_lineage(document: LineageDocument, pipeline: str, lineage_path: str,
                 metric: str) -> RunDocument:
  """The run record of a CT run, from its lineage record (and its evaluation's metrics.json)."""
  steps = document.get('steps') or {}
  parameters = cast(Dict[str, Any], document.get('parameters') or {})
  features, training, evaluation = (cast(Dict[str, Any], steps.get(name) or {})
                                    for name in ('features', 'training', 'evaluation'))
  trained = cast(Dict[str, Any], training.get('result') or {})
  evaluated = cast(Dict[str, Any], evaluation.get('result') or {})
  eval_sha256, rows = eval_rows(features.get('outputs'))
  data = cast(Dict[str, Any], document.get('data') or {})
  model = cast(Dict[str, Any], document.get('model') or {})
  forward = cast(Dict[str, Any], steps.get('forward_evaluation') or {})
  intervals = comparison(evaluation.get('outputs'))
  record = RunDocument(
      run_id=document['run_id'], kind=CT, pipeline=pipeline, status=document['status'],
      started_at=document.get('started_at', ''), finished_at=document.get('finished_at'),
      experiment_id=None, experiment_run=parameters.get('experiment_run'),
      params=trained.get('hyperparameters') or dict(parameters.get('train') or {}),
      metric=metric, metrics=evaluated.get('metrics') or {}, comparison=intervals,
      baseline=BaselineEntry(
          version=forward.get('model_version'), model_sha256=evaluated.get('baseline') or '',
          metrics=evaluated.get('baseline_metrics') or {})
      if evaluated.get('baseline_metrics') is not None else None,
      blessing={'status': evaluated['status'], 'message': evaluated.get('message', '')}
      if evaluated.get('status') else None,
      data=RunDataEntry(span=data.get('span'), window=list(data.get('window') or []),
                        sha256=data.get('sha256', ''), eval_sha256=eval_sha256, eval_rows=rows),
      training=training_entry(trained),
      code=document.get('code') or cast(CodeIdentity, {}),
      artifacts=RunArtifacts(features_dir=features.get('outputs'),
                             model_dir=training.get('outputs'),
                             model_sha256=trained.get('model_sha256'),
                             evaluation_dir=evaluation.get('outputs'), lineage=lineage_path),
      model_version=model.get('version'), reason=document.get('reason'),
      error=document.get('error'))
  return record


def record_ct_run(document: LineageDocument, pipeline: str, lineage_path: str,
                  metric: str) -> str:
  """Writes the run record of a CT run beside its lineage record; returns its path."""
  path = layout.join(lineage_path.rsplit('/', 1)[0], RUN_FILE)
  bucket.write_json(path, from_lineage(document, pipeline, lineage_path, metric))
  return path


# Reading ----------------------------------------------------------------------------------------

def read_run(path: str) -> RunDocument:
  """The one reader of ``run.json``."""
  document = bucket.read_json(path, 'run record')
  missing = [key for key in _RunKeys.__annotations__ if not isinstance(document.get(key), str)]
  if missing:
    raise RunError(f'run record {path} lacks {", ".join(missing)}: not a run record')
  return cast(RunDocument, document)


def run_files(paths: CtPaths) -> List[str]:
  """Every run.json of a pipeline: experiment variants and CT runs (``<root>/<run_id>/run.json``;
  the files of an experiment's working area, deeper down, are not run records)."""
  found = []
  for root in (experiments_dir(paths), layout.join(paths.root, 'runs')):
    if bucket.exists(root):
      found += [p for p in bucket.list_tree(root)
                if p.endswith('/' + RUN_FILE) and p[len(root):].strip('/').count('/') == 1]
  return sorted(found)


def list_runs(paths: CtPaths, experiment: Optional[str] = None) -> Tuple[List[RunDocument],
                                                                         List[str]]:
  """(run records, unreadable ones said in a line), of one experiment when given."""
  runs, skipped = [], []
  for path in run_files(paths):
    try:
      record = read_run(path)
    except Refusal as error:
      skipped.append(str(error))
      continue
    if experiment is None or record.get('experiment_id') == experiment:
      runs.append(record)
  return runs, skipped


def find_run(paths: CtPaths, run_id: str) -> RunDocument:
  """The run record of ``run_id`` (an experiment variant's or a CT run's)."""
  for kind in (EXPERIMENT, CT):
    path = run_path(paths, run_id, kind)
    if bucket.exists(path):
      return read_run(path)
  raise RunError(f'no run {run_id!r} in {paths.root} (`invoke runs --pipeline {paths.pipeline}` '
                 f'lists them)')


# For people ------------------------------------------------------------------------------------

def runs_lines(runs: Sequence[RunDocument], metric: str) -> List[str]:
  """A ranked list of runs as a table for people."""
  if not runs:
    return ['no run recorded yet']
  header = f'{"#":>2}  {"run":34s} {"kind":10s} {"status":12s} {metric:>8s}  ' \
           f'{"vs baseline [95% CI]":27s} params'
  lines = [header]
  for i, run in enumerate(ranked(runs, metric), 1):
    shown = run.get('overrides') or run.get('params') or {}  # a variant: what it changed
    lines.append(f'{i:>2}  {run["run_id"]:34s} {run["kind"]:10s} {run["status"]:12s} '
                 f'{number(metric_value(run, metric)):>8s}  '
                 f'{interval_text((run.get("comparison") or {}).get(metric)):27s} '
                 f'{params_text(shown)}')
  return lines
