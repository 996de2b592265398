"""``invoke report``: one static site for a bucket, written to ``<bucket>/site/``.

    site/index.html            deployments (test, prod), deploy history (rollbacks, approvals,
                               overrides), test results per build, continuous-training runs per
                               span with links to their validation and evaluation reports
    site/model-<name>.html     per ML pipeline (registry): aliases and their history, one chart
                               per metric across versions, each version's metrics, blessing and
                               lineage graph, every CT run with its reason, a version chooser
    site/model-card-<name>-v<N>.html, .md
                               per registered version: its model card (``pages.model_card``)
    site/compare-<name>-v<N>-v<M>.html
                               two versions side by side (``pages.compare``): every pair up to 20
                               versions, else consecutive pairs and each against production
    site/runs-<name>.html      per ML pipeline: every run (experiment variants, CT runs; their
                               ``run.json``, ``ct.runs``) ranked by the blessing metric, sortable
    site/compare-runs-<name>-<A>-<B>.html
                               two runs side by side (``pages.runs``): the variants of each
                               experiment, each with production's CT run, consecutive CT runs

Built from the typed records only (``store.records``, ``harness.results``, ``ct.registry``,
``ct.lineage``); written through ``store.bucket``; every link is relative, so the same files work
opened from a local bucket with ``file://`` and served from a gs:// bucket. Self-contained pages
(``pages.page`` style, ``pages.charts`` inline SVG): nothing is fetched.
"""

from __future__ import annotations

import html
import json
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple, TypedDict, cast

from beam_pipelines.ct import runs as run_records
from beam_pipelines.ct.definition import (
  MODEL_CARD_FIELDS,
  declared_pipelines,
  definition_path,
  load_definition,
)
from beam_pipelines.ct.outcomes import combined_decision
from beam_pipelines.ct.paths import CT_DIR, LINEAGE_FILE, REGISTRY_DIR, RUNS, CtPaths
from beam_pipelines.ct.registry import ALIASES, Registry
from beam_pipelines.harness.deploy import approval_required, history
from beam_pipelines.harness.errors import HarnessError
from beam_pipelines.harness.ml_check import VAR_OVERRIDE
from beam_pipelines.harness.results import read_report
from beam_pipelines.ml import artifacts
from beam_pipelines.ml.artifacts import MetricsDocument, ModelMetrics, SliceMetrics
from beam_pipelines.pages import charts, compare, model_card, page, sortable, versions
from beam_pipelines.pages import runs as runs_pages
from beam_pipelines.store import bucket, layout, records
from beam_pipelines.store.errors import Refusal

SITE_DIR = 'site'
INDEX = 'index.html'
METRIC_CHARTED = ('auc', 'accuracy')
METRIC_LABELS = {'auc': 'AUC', 'accuracy': 'accuracy at 0.5', 'log_loss': 'log loss'}


# What the site reads of the continuous-training records (``ct.lineage``, ``ct.registry``): every
# key is optional, as a run killed half-way or an older version leaves some out.

class StepRecord(TypedDict, total=False):
  """A CT step in a lineage record."""

  status: str
  outputs: str  # the step's output directory
  result: Dict[str, object]  # what the step returned, e.g. validation's verdict


class FileRecord(TypedDict, total=False):
  path: str
  sha256: str
  size: int


class DataRecord(TypedDict, total=False):
  span: str
  sha256: str
  window: List[str]  # the spans trained on
  files: List[FileRecord]


class CodeRecord(TypedDict, total=False):
  version: str
  source: str
  fingerprint: str
  build_id: Optional[str]
  git_commit: Optional[str]
  git_dirty: Optional[bool]
  wheel_sha256: Optional[str]


class ParametersRecord(TypedDict, total=False):
  train: Dict[str, object]  # the classifier and its hyperparameters
  spec_fingerprint: str


class RunModel(TypedDict, total=False):
  version: int
  sha256: str
  blessing: str


class LineageRecord(TypedDict, total=False):
  """A CT run's ``lineage.json``."""

  run_id: str
  started_at: str
  finished_at: str
  status: str  # running | pushed | registered | not_blessed | stopped | no_trigger | failed
  trigger: List[str]
  data: DataRecord
  code: CodeRecord
  parameters: ParametersRecord
  steps: Dict[str, StepRecord]
  model: RunModel
  reason: str  # stopped: why; readmitted: the person's reason
  error: str  # failed: the exception
  report: str  # stopped: the validation report


class BlessingRecord(TypedDict, total=False):
  status: str
  message: str


class HoldoutRecord(TypedDict, total=False):
  """A version scored on its pipeline's fixed holdout: the same rows for every version."""

  sha256: str  # of the holdout data
  rows: int
  metrics: SliceMetrics
  evaluation: str  # the evaluation directory (metrics.json with curves)


class VersionRecord(TypedDict, total=False):
  """A registered model version's ``version.json``."""

  version: int
  model_sha256: str
  registered_at: str
  holdout: HoldoutRecord
  run_id: str
  lineage: str  # the path of the run's lineage record
  metrics: SliceMetrics
  blessing: BlessingRecord
  data: DataRecord
  code: CodeRecord
  parameters: ParametersRecord


def model_page(name: str) -> str:
  return f'model-{name}.html'


def relative(bucket_url: str, path: Optional[str]) -> Optional[str]:
  """A bucket object's link from ``<bucket>/site/``; None when it is not in this bucket."""
  prefix = bucket_url.rstrip('/') + '/'
  if not path or not path.startswith(prefix):
    return None
  return '../' + path[len(prefix):]


def _link(text: Any, href: Optional[str]) -> str:
  label = page.esc(text)
  return f'<a href="{html.escape(href)}">{label}</a>' if href else label


def _td_link(text: Any, href: Optional[str]) -> str:
  return f'<td class="text">{_link(text, href)}</td>'


def _short(sha: Optional[str]) -> str:
  return sha[:12] if sha else 'n/a'


def pipelines(bucket_url: str) -> Dict[str, List[int]]:
  """ML pipeline name -> registered version numbers, from ``prod/registry/<name>/versions/<N>/``
  and ``prod/ct/<name>/runs/`` (a pipeline whose runs all stopped has no version yet)."""
  prod = layout.Env(bucket_url, layout.PROD)
  found: Dict[str, set] = {}
  registries = prod.path(REGISTRY_DIR)
  for path in bucket.list_tree(registries) if bucket.exists(registries) else []:
    parts = path[len(registries) + 1:].split('/')
    if len(parts) == 4 and parts[1] == 'versions' and parts[3] == 'version.json' and parts[2].isdigit():
      found.setdefault(parts[0], set()).add(int(parts[2]))
  runs = prod.path(CT_DIR)
  for path in bucket.list_tree(runs) if bucket.exists(runs) else []:
    parts = path[len(runs) + 1:].split('/')
    if len(parts) == 4 and parts[1] in (RUNS, run_records.EXPERIMENTS) and parts[3] in (
        LINEAGE_FILE, run_records.RUN_FILE):
      found.setdefault(parts[0], set())
  return {name: sorted(numbers) for name, numbers in sorted(found.items())}


def _ct_runs(bucket_url: str, name: str) -> List[LineageRecord]:
  """Every CT lineage record of a pipeline in prod, oldest first."""
  runs_dir = layout.join(CtPaths(bucket_url, name).root, RUNS)
  paths = [p for p in (bucket.list_tree(runs_dir) if bucket.exists(runs_dir) else [])
           if p.endswith('/' + LINEAGE_FILE)]
  out = []
  for path in sorted(paths):
    try:
      out.append(cast(LineageRecord, bucket.read_json(path, 'lineage record')))
    except Refusal:
      continue
  return out


def _report_links(bucket_url: str, run: LineageRecord) -> Dict[str, Optional[str]]:
  steps = run.get('steps') or {}
  links = {}
  for step in ('validation', 'evaluation'):
    outputs = (steps.get(step) or {}).get('outputs')
    report = layout.join(outputs, artifacts.REPORT_FILE) if outputs else None
    links[step] = relative(bucket_url, report) if report and bucket.exists(report) else None
  return links


def _nav(names: Sequence[str]) -> str:
  return ('<nav><a href="index.html">Overview</a>'
          + ''.join(f'<a href="{html.escape(model_page(n))}">Model {html.escape(n)}</a>'
                    f'<a href="{html.escape(runs_pages.runs_page_name(n))}">Runs '
                    f'{html.escape(n)}</a>' for n in names) + '</nav>')


def _deployments(bucket_url: str) -> str:
  rows: List[List[object]] = []
  for env in layout.ENVIRONMENTS:
    environment = layout.Env(bucket_url, env)
    try:
      values = records.deployed(environment)
    except Refusal as error:
      rows.append([env, f'unreadable: {error}', '', '', '', ''])
      continue
    if values is None:
      rows.append([env, 'nothing deployed', '', '', '', ''])
      continue
    rows.append([env, page.cell(values.build_id, f'deployed.{env}.build_id'), values.version,
                 values.get(layout.VAR_EVENT), values.get(layout.VAR_DEPLOYED_AT),
                 values.get(layout.VAR_DEPLOYED_BY)])
  gate = 'ON (prod deploys need --approve)' if approval_required(bucket_url) else 'off'
  return (page.table(['environment', 'build', 'version', 'event', 'at', 'by'], rows)
          + f'<p>Approval gate: <b>{gate}</b></p>')


def _history(bucket_url: str) -> str:
  events = list(reversed(history(bucket_url)))
  rows, classes = [], []
  for e in events:
    override = e.get(VAR_OVERRIDE)
    rows.append([e.get(layout.VAR_DEPLOYED_AT), e.get(layout.VAR_EVENT),
                 e.get(layout.VAR_BUILD_ID), e.get(layout.VAR_PREVIOUS_BUILD_ID) or 'nothing',
                 e.get(layout.VAR_DEPLOYED_BY), bool(e.get('approved')),
                 override or ''])
    classes.append('warn' if override or e.get(layout.VAR_EVENT) == layout.EVENT_ROLLBACK else '')
  return page.table(['at', 'event', 'build', 'previous', 'by', 'approved',
                     'blessing overridden (reason)'], rows, classes)


def _tests(bucket_url: str) -> str:
  test = layout.Env(bucket_url, layout.TEST)
  paths = [p for p in (bucket.list_tree(test.results) if bucket.exists(test.results) else [])
           if p.endswith('/' + layout.REPORT_FILE)]
  rows, classes = [], []
  for path in sorted(paths, reverse=True):
    try:
      report = read_report(path)
    except Refusal:
      continue
    checks = report.results
    passed = sum(1 for r in checks if r.get('passed'))
    rows.append([_td_link(report.build_id, relative(bucket_url, path)),
                 page.cell(report.status, f'test.{report.build_id}.status',
                           'passed' if report.passed else 'failed'),
                 report.tested_at, f'{passed} of {len(checks)}',
                 ', '.join(f'{name} {verdict.get("status")}'
                           for name, verdict in report.ml_by_pipeline.items()) or 'n/a',
                 '; '.join(report.failures()) or ''])
    classes.append('' if report.passed else 'fail')
  return page.table(['build', 'status', 'tested at', 'checks passed', 'model check',
                     'failures'], rows, classes)


RUN_STATUS_CLASS = {'pushed': 'ok', 'registered': 'ok', 'not_blessed': 'fail', 'stopped': 'fail',
                    'failed': 'fail', 'running': 'warn', 'no_trigger': 'muted'}


ANOMALIES_LISTED = 3


def verdict_details(validation: Dict[str, object]) -> List[str]:
  """What validation found, for people: the missing columns, the first anomalies (feature:
  description, each once) and the features drifted above threshold."""
  missing = cast(List[str], validation.get('missing_columns') or [])
  anomalies = cast(List[Dict[str, object]], validation.get('anomalies') or [])
  drifted = cast(List[str], validation.get('drifted_features') or [])
  seen = list(dict.fromkeys(f'{a.get("feature") or "dataset"}: {a.get("description")}'
                            for a in anomalies))
  parts = [f'missing column(s) {", ".join(missing)}'] if missing else []
  parts += seen[:ANOMALIES_LISTED]
  if len(seen) > ANOMALIES_LISTED:
    parts.append(f'{len(seen) - ANOMALIES_LISTED:,} more anomalies in the validation report')
  if drifted:
    parts.append(f'drift above threshold: {", ".join(drifted)}')
  return parts


def run_reason(run: LineageRecord) -> str:
  """Why a CT run ended as it did, from its lineage record: the exception of a failed run, the
  reason (and validation's message) of a stopped one, the blessing decision of a trained one."""
  status = run.get('status') or 'unknown'
  steps = run.get('steps') or {}
  validation = (steps.get('validation') or {}).get('result') or {}
  evaluation = (steps.get('evaluation') or {}).get('result') or {}
  if run.get('error'):
    return str(run.get('error'))
  if status == 'stopped':
    details = '; '.join(verdict_details(validation))
    return ': '.join(str(p) for p in (run.get('reason'), details) if p) or 'stopped at validation'
  if run.get('reason'):
    return str(run.get('reason'))
  decision = str(evaluation.get('message') or '')
  holdout = steps.get('holdout_evaluation') or {}
  if decision and holdout.get('judged') and (holdout.get('result') or {}).get('message'):
    decision = combined_decision({
        'eval_split': (str(evaluation.get('status')), decision),
        'holdout': (str(holdout['result'].get('status')), str(holdout['result']['message']))})[1]
  if status == 'registered':
    pushed = cast(Dict[str, object], run.get('parameters') or {}).get('push', True)
    why = ('--no_push' if pushed is False else
           'production serves a model of a newer span, so it stays')
    return f'registered as candidate, not production ({why}); {decision}'.rstrip('; ')
  if decision:
    return decision
  if status == 'no_trigger':
    return (f'no trigger: the span validated ({validation.get("status") or "n/a"}) and the '
            f'policy did not call for training; production unchanged')
  if status == 'running':
    done = [name for name, step in steps.items() if step.get('status')]
    return (f'running, or killed before it finished (last step recorded: '
            f'{done[-1] if done else "none"})')
  return ''


def _when(at: Optional[str]) -> str:
  """An ISO time as people read it in a table: ``2026-11-02 14:28 UTC``."""
  if not at or len(at) < 16 or at[10] != 'T':
    return at or ''
  return f'{at[:10]} {at[11:16]}' + (' UTC' if at.endswith(('+00:00', 'Z')) else '')


def _ct_table(bucket_url: str, runs: List[LineageRecord], name: str = '') -> str:
  """Every CT run, newest first, with its status and reason; sortable by each column."""
  rows, classes = [], []
  for run in reversed(runs):
    links = _report_links(bucket_url, run)
    steps = run.get('steps') or {}
    verdict = ((steps.get('validation') or {}).get('result') or {}).get('status')
    model = run.get('model') or {}
    span = (run.get('data') or {}).get('span') or ''
    run_id = run.get('run_id') or '?'
    status = run.get('status') or 'unknown'
    lineage = relative(bucket_url, layout.join(CtPaths(bucket_url, name).run(run_id), LINEAGE_FILE)
                       ) if name and run.get('run_id') else None
    number = model.get('version')
    card = model_card.card_names(name, number)[0] if name and number else None
    reports = ' · '.join(_link(step, links[step]) for step in ('validation', 'evaluation')
                         if links[step]) or 'none'
    rows.append([
        sortable.td(_when(run.get('started_at')) or run_id[:15],
                    sort=run.get('started_at') or run_id),
        sortable.td(_link(run_id, lineage), sort=run_id, raw=True, cls='text'),
        sortable.td(span.rsplit('/', 1)[-1], cls='text'),
        sortable.td(status, key=f'run.{run_id}.status', cls=RUN_STATUS_CLASS.get(status, '')),
        sortable.td(verdict or 'n/a', cls='text'),
        sortable.td(run_reason(run), key=f'run.{run_id}.reason', cls='reason'),
        sortable.td(_link(f'v{number}', card) if number else '', sort=number or 0, raw=True,
                    cls='text'),
        sortable.td(reports, raw=True, cls='text')])
    classes.append('fail' if status in ('failed', 'stopped', 'not_blessed') else
                   'warn' if verdict == artifacts.VERDICT_DRIFT else '')
  return sortable.table(f'ct-runs-{name}', ['started', 'run', 'span', 'status',
                                            'validation verdict', 'reason', 'model',
                                            'reports'], rows, classes)


def index_page(bucket_url: str, names: Sequence[str], runs: Dict[str, List[LineageRecord]]) -> str:
  body = [f'<h1>beam-pipelines: {html.escape(bucket_url.rsplit("/", 1)[-1] or bucket_url)}</h1>',
          '<h2>Deployed</h2>', _deployments(bucket_url),
          '<h2>Deploy history (newest first)</h2>', _history(bucket_url),
          '<h2>Test results per build (newest first)</h2>', _tests(bucket_url),
          '<h2>ML pipelines</h2>',
          ('<ul>' + ''.join(f'<li><a href="{html.escape(model_page(n))}">{html.escape(n)}</a></li>'
                            for n in names) + '</ul>') if names else
          '<p class="muted">No model registered yet (run `invoke ct`).</p>',
          ] + [f'<h2>Continuous-training runs of {html.escape(name)} (newest first)</h2>'
               + _ct_table(bucket_url, runs[name], name) for name in names]
  return page.shell('beam-pipelines: bucket overview', '\n'.join(body) + sortable.SCRIPT,
                    _nav(names))


def _facts(record: VersionRecord,
           run: Optional[LineageRecord]) -> Tuple[DataRecord, CodeRecord, ParametersRecord]:
  """A version's data, code and parameters, from its run's lineage record: the one source (a
  version registered before versions referred to their run carries its own copies)."""
  source = run or {}
  return (source.get('data') or record.get('data') or {},
          source.get('code') or record.get('code') or {},
          source.get('parameters') or record.get('parameters') or {})


def _lineage_graph(bucket_url: str, number: int, record: VersionRecord,
                   run: Optional[LineageRecord]) -> str:
  data, code, parameters = _facts(record, run)
  train = parameters.get('train') or {}
  build = code.get('build_id') or f'source tree {(code.get("git_commit") or "")[:10]}'
  links = _report_links(bucket_url, run) if run else {'validation': None, 'evaluation': None}
  inputs = [('data', f'data {(data.get("span") or "").rsplit("/", 1)[-1]}\nsha256 '
             f'{_short(data.get("sha256"))}', None),
            ('code', f'code {build}\nwheel {_short(code.get("wheel_sha256"))}', None),
            ('params', f'parameters {train.get("classifier", "")}\nspec '
             f'{_short(parameters.get("spec_fingerprint"))}', None)]
  run_id = record.get('run_id') or (run or {}).get('run_id') or '?'
  lineage_link = relative(bucket_url, record.get('lineage'))
  middle = [('run', f'CT run\n{run_id}', lineage_link)]
  reports = [('validation', 'validation report', links['validation']),
             ('evaluation', 'evaluation report', links['evaluation'])]
  model = [('model', f'model v{number}\n{(record.get("blessing") or {}).get("status", "")}',
            None)]
  edges = [('data', 'run'), ('code', 'run'), ('params', 'run'), ('run', 'validation'),
           ('run', 'evaluation'), ('evaluation', 'model')]
  return charts.flow_graph(f'lineage-v{number}', [inputs, middle, reports, model], edges,
                           width=900, title=f'lineage of v{number}')


def _metric_charts(records_by_number: Dict[int, VersionRecord], spans: Dict[int, str]) -> str:
  """One chart per metric (its own honest axis), each point labelled with its version and span;
  the fixed holdout's values, when versions carry them, as a separate series."""
  numbers = sorted(records_by_number)
  order = [(n, spans.get(n, '')) for n in numbers]
  figures = []
  for metric in METRIC_CHARTED:
    own = [versions.VersionPoint(n, float(value), _blessed(records_by_number[n]))
           for n in numbers
           for value in [(records_by_number[n].get('metrics') or {}).get(metric)]
           if isinstance(value, (int, float)) and not isinstance(value, bool)]
    holdouts = {n: (held.get('sha256') or '', held.get('rows') or 0,
                    (held.get('metrics') or {}).get(metric))
                for n in numbers for held in [records_by_number[n].get('holdout')] if held}
    sha, rows, same_rows = versions.holdout_series(holdouts)
    series = {'own eval split (rows differ by span)': own} if own else {}
    if same_rows:
      series[f'fixed holdout ({page.number(rows)} rows, sha256 {sha[:8] if sha else "n/a"})'] = [
          versions.VersionPoint(n, float(v), _blessed(records_by_number[n]))
          for n, v in same_rows]
    if not series:
      continue
    values = [point.value for points in series.values() for point in points]
    label = METRIC_LABELS.get(metric, metric)
    figures.append(page.figure(
        versions.metric_by_version(f'metric-by-version-{metric}', metric, label, series, order),
        f'{label} of each version on its own span\'s eval split'
        + (' and on the fixed holdout (the same rows for each version)' if same_rows else
           ' (versions trained on different spans are measured on different rows)')
        + f'; the y axis starts at {charts.human_number(versions.axis(metric, values)[0])}.'))
  return '<div class="charts">' + ''.join(figures) + '</div>' if figures else \
      '<p class="muted">No metric recorded.</p>'


def _blessed(record: VersionRecord) -> bool:
  return (record.get('blessing') or {}).get('status') in (None, 'BLESSED')


def registry_page(bucket_url: str, name: str, names: Sequence[str],
                  runs: List[LineageRecord]) -> str:
  reg = Registry(CtPaths(bucket_url, name).registry)
  aliases = reg.aliases()
  by_number = {r['version']: r for r in cast(List[VersionRecord], reg.versions())}
  run_by_id = {r.get('run_id'): r for r in runs}
  facts = {n: _facts(r, run_by_id.get(r.get('run_id'))) for n, r in by_number.items()}
  spans = {n: (data.get('span') or '').rsplit('/', 1)[-1] for n, (data, _, _) in facts.items()}
  body = [f'<h1>Model registry: {html.escape(name)}</h1>',
          '<p>' + ', '.join(f'<b>{a}</b>: ' + (f'<span data-key="alias.{a}">v{aliases[a]}</span>'
                                               if a in aliases else 'none') for a in ALIASES)
          + '</p>']
  body.append('<h2>Metrics across versions</h2>')
  body.append(_metric_charts(by_number, spans) if by_number else
              '<p class="muted">No version.</p>')
  body.append(trend_section(runs))
  body.append('<h2>Versions (newest first)</h2>')
  rows, classes = [], []
  for number in sorted(by_number, reverse=True):
    record = by_number[number]
    metrics = record.get('metrics') or {}
    links = _report_links(bucket_url, run_by_id.get(record.get('run_id'), {}))
    status = (record.get('blessing') or {}).get('status')
    data, code, _ = facts[number]
    held = [a for a, v in aliases.items() if v == number]
    card = model_card.card_names(name, number)[0]
    previous = max((n for n in by_number if n < number), default=None)
    rows.append([f'<td class="text" data-sort="{number}">{_link(f"v{number}", card)}'
                 + (f' ({html.escape(", ".join(held))})' if held else '') + '</td>',
                 page.cell(status, f'v{number}.blessing', status or ''),
                 page.cell(metrics.get('auc'), f'v{number}.auc'),
                 page.cell(metrics.get('accuracy'), f'v{number}.accuracy'),
                 page.cell(metrics.get('log_loss'), f'v{number}.log_loss'),
                 page.cell(metrics.get('example_count'), f'v{number}.example_count'),
                 spans.get(number), _short(data.get('sha256')),
                 code.get('build_id') or f'source {(code.get("git_commit") or "")[:10]}',
                 '<td class="text">' + (' · '.join(_link(step, links[step])
                                                    for step in ('validation', 'evaluation')
                                                    if links.get(step)) or 'none') + '</td>',
                 _td_link(f'vs v{previous}', compare.compare_page_name(name, previous, number))
                 if previous is not None else ''])
    classes.append('' if status == 'BLESSED' else 'fail')
  body.append(sortable.table(f'versions-{name}',
                             ['version (model card)', 'blessing', 'AUC', 'accuracy', 'log loss',
                              'eval rows', 'span', 'data sha256', 'build', 'reports', 'compare'],
                             rows, classes))
  body.append('<h2>Compare two versions</h2>')
  body.append(compare.chooser(name, sorted(by_number),
                              compare.pairs(sorted(by_number), aliases.get('production'))))
  body.append('<h2>Alias history (newest first)</h2>')
  events = list(reversed(reg.history()))
  body.append(page.table(
      ['at', 'event', 'moves', 'by', 'reason'],
      [[e.get('at'), e.get('event'),
        ', '.join(f'{a} {"v" + str(m["from"]) if m.get("from") else "none"} → v{m["to"]}'
                  for a, m in (e.get('moves') or {}).items()),
        e.get('by'), e.get('reason')] for e in events],
      ['warn' if e.get('event') in ('promote', 'rollback') else '' for e in events]))
  body.append('<h2>Continuous-training runs (newest first; click a header to sort)</h2>')
  body.append(_ct_table(bucket_url, runs, name))
  body.append('<h2>Lineage of each version</h2>')
  for number in sorted(by_number, reverse=True):
    record = by_number[number]
    data, _, parameters = facts[number]
    body.append(f'<h3 id="v{number}">v{number}</h3>')
    body.append(_lineage_graph(bucket_url, number, record, run_by_id.get(record.get('run_id'))))
    body.append(f'<p class="small muted">data sha256 {html.escape(str(data.get("sha256")))}; '
                f'training parameters {html.escape(json.dumps(parameters.get("train") or {}, sort_keys=True))}</p>')
  return page.shell(f'Model registry: {name}', '\n'.join(body) + sortable.SCRIPT, _nav(names))


def _evaluated_model(directory: Optional[str]) -> Optional[ModelMetrics]:
  """The candidate's entry of an evaluation's ``metrics.json`` (the only model when it scored one);
  None when the directory or file is missing or unreadable."""
  path = layout.join(directory, artifacts.METRICS_FILE) if directory else None
  if not path or not bucket.exists(path):
    return None
  try:
    document = cast(MetricsDocument, bucket.read_json(path, 'evaluation metrics'))
  except Refusal:
    return None
  models = document.get('models') or {}
  model = models.get('candidate') or (next(iter(models.values())) if len(models) == 1 else None)
  if model is not None and document.get('slice_feature'):
    model = cast(ModelMetrics, dict(model, slice_feature=document.get('slice_feature')))
  return model


def _evaluation_dir(run: Optional[LineageRecord]) -> Optional[str]:
  return (((run or {}).get('steps') or {}).get('evaluation') or {}).get('outputs')


def _considerations(name: str, run: Optional[LineageRecord],
                    loaded: Dict[str, Tuple[Dict[str, str], str]]) -> Tuple[Dict[str, str], Optional[str]]:
  """The model card text of the pipeline.yaml that trained a version (its lineage's
  ``definition``), else of this build's declared pipeline of that name; ({}, None) when neither
  is readable."""
  recorded = cast(Dict[str, object], (run or {}).get('parameters') or {}).get('definition')
  candidates = [str(recorded)] if recorded else []
  if name in declared_pipelines():
    candidates.append(definition_path(name))
  for path in candidates:
    if path in loaded:
      return loaded[path]
    if not bucket.exists(path):
      continue
    try:
      text = dict(load_definition(path).model_card)
    except Refusal:
      continue
    source = path if path == candidates[0] else (
        f'{path} (this build\'s definition: the one that trained it is not readable)')
    loaded[path] = (text, source)
    return loaded[path]
  return {}, None


def _card(bucket_url: str, name: str, number: int, record: VersionRecord,
          run: Optional[LineageRecord], aliases: Dict[str, int],
          loaded: Dict[str, Tuple[Dict[str, str], str]]) -> model_card.ModelCard:
  """A version's model card, from its version.json, its run's lineage.json, the evaluation's
  metrics.json and the pipeline definition's ``model_card``."""
  data, code, parameters = _facts(record, run)
  train = dict(parameters.get('train') or {})
  evaluated = _evaluated_model(_evaluation_dir(run)) or cast(ModelMetrics, {})
  features_result = ((run or {}).get('steps') or {}).get('features', {}).get('result') or {}
  rows = cast(Dict[str, int], features_result.get('rows_written') or {})
  text, source = _considerations(name, run, loaded)
  holdout = record.get('holdout')
  blessing = record.get('blessing') or {}
  code_facts = [(what, value) for what, value in cast(Dict[str, object], code).items()
                if value is not None]
  return model_card.ModelCard(
      name=name, version=number, model_sha256=record.get('model_sha256'),
      registered_at=record.get('registered_at'),
      aliases=[a for a, v in sorted(aliases.items()) if v == number],
      blessing=blessing.get('status'), blessing_message=blessing.get('message'),
      run_id=record.get('run_id') or (run or {}).get('run_id'),
      classifier=cast(Optional[str], train.pop('classifier', None)), hyperparameters=train,
      code=code_facts, label=evaluated.get('label'), features=evaluated.get('features') or (),
      categorical=evaluated.get('categorical') or (),
      span=(data.get('span') or '').rsplit('/', 1)[-1] or None,
      window=[w.rstrip('/').rsplit('/', 1)[-1] for w in data.get('window') or []],
      files=[model_card.DataFile(f.get('path') or '', f.get('sha256') or '', f.get('size'))
             for f in data.get('files') or []],
      data_sha256=data.get('sha256'), rows=rows, metrics=record.get('metrics') or {},
      slice_feature=cast(Optional[str], cast(Dict[str, object], evaluated).get('slice_feature')),
      slices=evaluated.get('slices') or {},
      holdout=model_card.Holdout(holdout.get('sha256'), holdout.get('rows'),
                                 holdout.get('metrics') or {}) if holdout else None,
      considerations=[(field, text.get(field)) for field in MODEL_CARD_FIELDS],
      considerations_source=source)


def _side(name: str, number: int, record: VersionRecord, run: Optional[LineageRecord],
          aliases: Dict[str, int]) -> compare.Side:
  """A version as the compare page shows it: its lineage parameters, its own evaluation and,
  when recorded, its evaluation on the pipeline's fixed holdout."""
  data, _, parameters = _facts(record, run)
  span = (data.get('span') or '').rsplit('/', 1)[-1] or 'unknown span'
  metrics = record.get('metrics') or {}
  own = _evaluated_model(_evaluation_dir(run))
  holdout = record.get('holdout') or HoldoutRecord()
  held = _evaluated_model(holdout.get('evaluation')) if holdout else None

  def roc(model: Optional[ModelMetrics]) -> Optional[List[List[float]]]:
    curves = model.get('curves') if model else None
    return curves.get('roc') if curves else None

  return compare.Side(
      version=number, span=span, blessing=(record.get('blessing') or {}).get('status'),
      aliases=[a for a, v in sorted(aliases.items()) if v == number],
      registered_at=record.get('registered_at'), parameters=cast(Dict[str, object], parameters),
      own=compare.Scored(metrics, roc(own),
                         metrics.get('example_count'), f'eval split of {span}'),
      holdout=compare.Scored(holdout.get('metrics') or {},
                             roc(held), holdout.get('rows'),
                             'fixed holdout') if holdout else None,
      holdout_sha256=holdout.get('sha256'), card=model_card.card_names(name, number)[0])


def write_version_pages(bucket_url: str, name: str, names: Sequence[str],
                        runs: List[LineageRecord]) -> List[str]:
  """Writes each version's model card (HTML and Markdown) and the compare pages of
  ``compare.pairs``; returns the files written (names under ``site/``)."""
  reg = Registry(CtPaths(bucket_url, name).registry)
  aliases = reg.aliases()
  by_number = {r['version']: r for r in cast(List[VersionRecord], reg.versions())}
  run_by_id = {r.get('run_id'): r for r in runs}
  site = layout.join(bucket_url, SITE_DIR)
  written, loaded = [], {}  # type: ignore[var-annotated]
  for number, record in sorted(by_number.items()):
    card = _card(bucket_url, name, number, record, run_by_id.get(record.get('run_id')), aliases,
                 loaded)
    html_name, md_name = model_card.card_names(name, number)
    bucket.write_bytes(layout.join(site, html_name),
                       model_card.to_html(card, md_name, _nav(names)).encode('utf-8'))
    bucket.write_bytes(layout.join(site, md_name), model_card.to_markdown(card).encode('utf-8'))
    written += [html_name, md_name]
  sides = {n: _side(name, n, r, run_by_id.get(r.get('run_id')), aliases)
           for n, r in by_number.items()}
  for low, high in compare.pairs(sorted(by_number), aliases.get('production')):
    file_name = compare.compare_page_name(name, low, high)
    bucket.write_bytes(layout.join(site, file_name),
                       compare.compare_page(name, sides[low], sides[high], _nav(names)
                                            ).encode('utf-8'))
    written.append(file_name)
  return written


def _roc_of(run: run_records.RunDocument) -> Optional[List[List[float]]]:
  model = _evaluated_model((run.get('artifacts') or {}).get('evaluation_dir'))
  curves = model.get('curves') if model else None
  return curves.get('roc') if curves else None


def write_run_pages(bucket_url: str, name: str, names: Sequence[str]) -> List[str]:
  """Writes the runs page of a pipeline and the compare pages of ``runs_pages.compare_pairs``;
  returns the files written (names under ``site/``)."""
  found, skipped = run_records.list_runs(CtPaths(bucket_url, name))
  by_id = {run['run_id']: run for run in found}
  try:
    metric = run_records.ranking_metric(load_definition(name).blessing_config)
  except Refusal:  # a pipeline this build does not declare: the records say how they ranked
    metric = next((str(r['metric']) for r in found if r.get('metric')), 'auc')
  pairs = runs_pages.compare_pairs(found, metric)
  site = layout.join(bucket_url, SITE_DIR)
  written = [runs_pages.runs_page_name(name)]
  bucket.write_bytes(layout.join(site, written[0]), runs_pages.runs_page(
      name, found, metric, pairs, _nav(names), skipped).encode('utf-8'))
  for left, right in pairs:
    file_name = runs_pages.compare_runs_name(name, left, right)
    bucket.write_bytes(layout.join(site, file_name), runs_pages.compare_runs_page(
        name, by_id[left], by_id[right], metric, _roc_of(by_id[left]), _roc_of(by_id[right]),
        _nav(names)).encode('utf-8'))
    written.append(file_name)
  return written


def build_site(bucket_url: str, pipeline: Optional[str] = None) -> str:
  """Writes ``<bucket>/site/index.html`` and one page per ML pipeline; returns the index's path."""
  found = pipelines(bucket_url)
  if pipeline and pipeline not in found:
    raise HarnessError(f'no ML pipeline {pipeline!r} in {bucket_url} (registries: '
                       f'{", ".join(found) or "none"})')
  names = [pipeline] if pipeline else list(found)
  runs = {name: _ct_runs(bucket_url, name) for name in names}
  site = layout.join(bucket_url, SITE_DIR)
  for name in names:
    bucket.write_bytes(layout.join(site, model_page(name)),
                       registry_page(bucket_url, name, names, runs[name]).encode('utf-8'))
    write_version_pages(bucket_url, name, names, runs[name])
    write_run_pages(bucket_url, name, names)
  index = layout.join(site, INDEX)
  bucket.write_bytes(index, index_page(bucket_url, names, runs).encode('utf-8'))
  return index


# Performance and drift over spans: production's forward evaluation (``forward_evaluation`` step
# of each CT run: production scored on the new span before training) and the validation step's
# drift distances, from the same lineage records.

FORWARD_STEP, VALIDATION_STEP = 'forward_evaluation', 'validation'
FORWARD_METRICS = (('auc', 'AUC'), ('log_loss', 'log loss'))
MEASURES = {'L_INFTY': 'L-infinity', 'JENSEN_SHANNON_DIVERGENCE': 'Jensen-Shannon',
            'NORMALIZED_ABSOLUTE_DIFFERENCE': 'normalized abs. difference'}


class ForwardPoint(TypedDict):
  """One span's forward evaluation: the production version that scored it and its metrics."""
  span: str
  version: Optional[int]
  rows: int
  metrics: Dict[str, float]


def forward_points(runs: Sequence[LineageRecord]) -> List[ForwardPoint]:
  """Production's forward metrics per span (the latest run's, when a span ran more than once),
  in span order (span names sort in time); spans without labelled rows are left out."""
  latest: Dict[str, ForwardPoint] = {}
  for run in runs:  # oldest first
    step = cast(Dict[str, Any], (run.get('steps') or {}).get(FORWARD_STEP) or {})
    result = cast(Dict[str, Any], step.get('result') or {})
    metrics = {k: v for k, v in (result.get('metrics') or {}).items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if not result.get('rows_scored') or metrics.get('auc') is None:
      continue
    span = ((run.get('data') or {}).get('span') or '').rstrip('/').rsplit('/', 1)[-1]
    latest[span] = ForwardPoint(span=span, version=step.get('model_version'),
                                rows=int(result['rows_scored']), metrics=metrics)
  return [latest[s] for s in sorted(latest)]


def drift_by_span(runs: Sequence[LineageRecord]) -> Dict[str, Dict[str, Dict[str, Any]]]:
  """span -> feature -> its drift distance against the previous span ({value, threshold,
  exceeded, measure}), from each span's latest validation step, in span order."""
  latest: Dict[str, Dict[str, Dict[str, Any]]] = {}
  for run in runs:
    result = cast(Dict[str, Any],
                  ((run.get('steps') or {}).get(VALIDATION_STEP) or {}).get('result') or {})
    drift = result.get('drift') or []
    if not drift:
      continue
    span = ((run.get('data') or {}).get('span') or '').rstrip('/').rsplit('/', 1)[-1]
    latest[span] = {d['feature']: d for d in drift if isinstance(d, dict) and 'feature' in d}
  return {s: latest[s] for s in sorted(latest)}


def readable_range(values: Sequence[float], cap: Optional[float] = None) -> Tuple[float, float]:
  """A y range whose 5 ticks fall on multiples of 0.01 (labels of two decimals never repeat),
  covering ``values`` and not above ``cap`` (1 for an AUC)."""
  low, high = math.floor(min(values) * 100) / 100, math.ceil(max(values) * 100) / 100
  high = low + 0.04 * max(1, math.ceil(round((high - low) / 0.04, 9)))
  if cap is not None and high > cap:
    low, high = max(0.0, cap - (high - low)), cap
  return low, high


def _forward_chart(points: Sequence[ForwardPoint], metric: str, label: str) -> str:
  series = {f'production {label}': [(float(i), float(p['metrics'][metric]))
                                    for i, p in enumerate(points)
                                    if p['metrics'].get(metric) is not None]}
  names = [f'{p["span"]} v{p["version"]}' for p in points]
  values = [y for points_ in series.values() for _, y in points_]
  return charts.line_chart(f'forward-{metric.replace("_", "-")}', series,
                           'span (production version that scored it)', f'{label} on the span',
                           (-0.3, max(len(points) - 0.7, 0.7)),
                           readable_range(values, 1.0 if metric == 'auc' else None), markers=True,
                           x_names=names, width=max(420, 150 * len(points)), height=280,
                           title=f'production {label} on each new span, before training')


def trend_section(runs: Sequence[LineageRecord]) -> str:
  """The per-pipeline page's trend: production's forward AUC and log loss over spans (charts and
  a table of the same numbers), and each feature's drift distance per span (a table)."""
  points = forward_points(runs)
  out = ['<h2>Production on each new span (forward evaluation)</h2>']
  if not points:
    out.append('<p class="muted">No forward evaluation yet: production is scored on each new '
               'span before training, once there is a production model.</p>')
  else:
    out.append('<div class="charts">' + ''.join(
        page.figure(_forward_chart(points, metric, label),
                    f'Production\'s {label} on each span\'s labelled rows, scored before '
                    f'training on it (x: span and the production version that scored it).')
        for metric, label in FORWARD_METRICS) + '</div>')
    out.append(page.table(
        ['span', 'production', 'labelled rows', 'AUC', 'log loss', 'accuracy'],
        [[p['span'], f'v{p["version"]}', p['rows'],
          page.cell(p['metrics'].get('auc'), f'forward.{p["span"]}.auc'),
          page.cell(p['metrics'].get('log_loss'), f'forward.{p["span"]}.log_loss'),
          page.cell(p['metrics'].get('accuracy'), f'forward.{p["span"]}.accuracy')]
         for p in points]))
  drift = drift_by_span(runs)
  out.append('<h2>Drift of each feature per span (against the span before it)</h2>')
  if not drift:
    out.append('<p class="muted">No drift measured yet (the first span has no span before '
               'it).</p>')
    return '\n'.join(out)
  spans = list(drift)
  features = sorted({f for per_span in drift.values() for f in per_span})
  rows = []
  measures = {f: d.get('measure') for per_span in drift.values() for f, d in per_span.items()}
  for feature in features:
    cells: List[object] = [feature, MEASURES.get(str(measures.get(feature)),
                                                 str(measures.get(feature) or ''))]
    for span in spans:
      distance = drift[span].get(feature)
      if distance is None:
        cells.append('')
        continue
      exceeded = bool(distance.get('exceeded'))
      cells.append(page.cell(distance.get('value'), f'drift.{span}.{feature}',
                             'fail' if exceeded else ''))
    rows.append(cells)
  out.append(page.table(['feature', 'measure'] + spans, rows))
  out.append('<p class="small muted">Distance of each feature\'s distribution from the span '
             'before it in time, as the validation step of that span\'s run measured it; red: '
             'above its threshold.</p>')
  return '\n'.join(out)
