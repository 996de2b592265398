"""``invoke report``: one static site for a bucket, written to ``<bucket>/site/``.

    site/index.html            deployments (test, prod), deploy history (rollbacks, approvals,
                               overrides), test results per build, continuous-training runs per
                               span with links to their validation and evaluation reports
    site/model-<name>.html     per ML pipeline (registry): aliases and their history, the metric
                               across versions, each version's metrics, blessing and lineage graph

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

from beam_pipelines.ct.paths import CT_DIR, LINEAGE_FILE, REGISTRY_DIR, RUNS, CtPaths
from beam_pipelines.ct.registry import ALIASES, Registry
from beam_pipelines.harness.deploy import approval_required, history
from beam_pipelines.harness.errors import HarnessError
from beam_pipelines.harness.ml_check import VAR_OVERRIDE
from beam_pipelines.harness.results import read_report
from beam_pipelines.ml import artifacts
from beam_pipelines.ml.artifacts import SliceMetrics
from beam_pipelines.pages import charts, page
from beam_pipelines.store import bucket, layout, records
from beam_pipelines.store.errors import Refusal

SITE_DIR = 'site'
INDEX = 'index.html'
METRIC_CHARTED = ('auc', 'accuracy')


# What the site reads of the continuous-training records (``ct.lineage``, ``ct.registry``): every
# key is optional, as a run killed half-way or an older version leaves some out.

class StepRecord(TypedDict, total=False):
  """A CT step in a lineage record."""

  status: str
  outputs: str  # the step's output directory
  result: Dict[str, object]  # what the step returned, e.g. validation's verdict


class DataRecord(TypedDict, total=False):
  span: str
  sha256: str


class CodeRecord(TypedDict, total=False):
  build_id: Optional[str]
  git_commit: Optional[str]
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
  status: str
  data: DataRecord
  code: CodeRecord
  parameters: ParametersRecord
  steps: Dict[str, StepRecord]
  model: RunModel


class BlessingRecord(TypedDict, total=False):
  status: str
  message: str


class VersionRecord(TypedDict, total=False):
  """A registered model version's ``version.json``."""

  version: int
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
    if len(parts) == 4 and parts[1] == RUNS and parts[3] == LINEAGE_FILE:
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
                    for n in names) + '</nav>')


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


def _ct_table(bucket_url: str, runs: List[LineageRecord]) -> str:
  rows, classes = [], []
  for run in reversed(runs):
    links = _report_links(bucket_url, run)
    steps = run.get('steps') or {}
    verdict = ((steps.get('validation') or {}).get('result') or {}).get('status')
    model = run.get('model') or {}
    span = (run.get('data') or {}).get('span') or ''
    rows.append([run.get('run_id'), span.rsplit('/', 1)[-1], run.get('status'),
                 verdict or 'n/a', f'v{model["version"]}' if model.get('version') else '',
                 model.get('blessing') or '',
                 _td_link('validation', links['validation']) if links['validation'] else '',
                 _td_link('evaluation', links['evaluation']) if links['evaluation'] else ''])
    classes.append('fail' if verdict == artifacts.VERDICT_ANOMALOUS else
                   'warn' if verdict == artifacts.VERDICT_DRIFT else '')
  return page.table(['run', 'span', 'outcome', 'validation verdict', 'model', 'blessing',
                     'validation report', 'evaluation report'], rows, classes)


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
               + _ct_table(bucket_url, runs[name]) for name in names]
  return page.shell('beam-pipelines: bucket overview', '\n'.join(body), _nav(names))


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


def _metric_chart(records_by_number: Dict[int, VersionRecord], spans: Dict[int, str]) -> str:
  numbers = sorted(records_by_number)
  series = {}
  for metric in METRIC_CHARTED:
    values = [(i, (records_by_number[n].get('metrics') or {}).get(metric))
              for i, n in enumerate(numbers)]
    points = [(i, value) for i, value in values if isinstance(value, float)]
    if points:
      series[metric] = points
  names = [f'v{n} {spans.get(n, "")[-10:]}' for n in numbers]
  return charts.line_chart('metric-by-version', series, 'version (span)', 'metric on eval split',
                           (-0.3, max(len(numbers) - 0.7, 0.7)), None, markers=True,
                           x_names=names, width=620, height=300, title='metrics across versions')


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
  body.append(page.figure(_metric_chart(by_number, spans),
                          'Each version\'s metrics on its own span\'s eval split (versions '
                          'trained on different spans are compared on different rows).')
              if by_number else '<p class="muted">No version.</p>')
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
    rows.append([f'v{number}' + (f' ({", ".join(held)})' if held else ''),
                 page.cell(status, f'v{number}.blessing', status or ''),
                 page.cell(metrics.get('auc'), f'v{number}.auc'),
                 page.cell(metrics.get('accuracy'), f'v{number}.accuracy'),
                 page.cell(metrics.get('log_loss'), f'v{number}.log_loss'),
                 page.cell(metrics.get('example_count'), f'v{number}.example_count'),
                 spans.get(number), _short(data.get('sha256')),
                 code.get('build_id') or f'source {(code.get("git_commit") or "")[:10]}',
                 _td_link('validation', links.get('validation')) if links.get('validation') else '',
                 _td_link('evaluation', links.get('evaluation')) if links.get('evaluation') else ''])
    classes.append('' if status == 'BLESSED' else 'fail')
  body.append(page.table(['version', 'blessing', 'AUC', 'accuracy', 'log loss', 'eval rows',
                          'span', 'data sha256', 'build', 'validation', 'evaluation'],
                         rows, classes))
  body.append('<h2>Alias history (newest first)</h2>')
  events = list(reversed(reg.history()))
  body.append(page.table(
      ['at', 'event', 'moves', 'by', 'reason'],
      [[e.get('at'), e.get('event'),
        ', '.join(f'{a} {"v" + str(m["from"]) if m.get("from") else "none"} → v{m["to"]}'
                  for a, m in (e.get('moves') or {}).items()),
        e.get('by'), e.get('reason')] for e in events],
      ['warn' if e.get('event') in ('promote', 'rollback') else '' for e in events]))
  body.append('<h2>Lineage of each version</h2>')
  for number in sorted(by_number, reverse=True):
    record = by_number[number]
    data, _, parameters = facts[number]
    body.append(f'<h3 id="v{number}">v{number}</h3>')
    body.append(_lineage_graph(bucket_url, number, record, run_by_id.get(record.get('run_id'))))
    body.append(f'<p class="small muted">data sha256 {html.escape(str(data.get("sha256")))}; '
                f'training parameters {html.escape(json.dumps(parameters.get("train") or {}, sort_keys=True))}</p>')
  return page.shell(f'Model registry: {name}', '\n'.join(body), _nav(names))


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
