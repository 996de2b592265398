"""The runs of a pipeline (``ct.runs``: experiment variants and CT runs) as a sortable table, and the
page comparing two runs: parameters changed, metrics side by side, ROC curves on one chart.

Metrics are like for like only when both runs were evaluated on the same eval rows (equal
``data.eval_sha256``); otherwise the page says the rows differ. Each run's difference against its
baseline (production on the same rows) is shown with its 95% interval.
"""

from __future__ import annotations

import html
import math
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from beam_pipelines.pages import charts, compare, page, sortable

LOWER_IS_BETTER = ('log_loss', 'brier_score')
CT = 'ct'  # a run record's kind (``ct.runs``)
ALL_PAIRS_UP_TO = 8  # variants of one experiment: every pair; above, consecutive pairs by rank
Roc = Optional[List[List[float]]]


def metric_value(run: Mapping[str, Any], metric: str) -> Optional[float]:
  value = (run.get('metrics') or {}).get(metric)
  if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
    return None
  return float(value)


def ranked(runs: Sequence[Mapping[str, Any]], metric: str) -> List[Mapping[str, Any]]:
  """Best first by ``metric`` (higher is better, losses lower); runs without it last, newest
  first among equals."""
  sign = 1.0 if metric in LOWER_IS_BETTER else -1.0
  newest = sorted(runs, key=lambda r: r.get('started_at') or '', reverse=True)
  return sorted(newest, key=lambda r: (metric_value(r, metric) is None,
                                       sign * (metric_value(r, metric) or 0.0)))


def interval_text(interval: Optional[Mapping[str, Any]]) -> str:
  """``+0.0123 [-0.0040, +0.0286]``: the difference against the baseline and its interval."""
  if not interval or interval.get('difference') is None:
    return 'n/a'
  low, high = interval.get('ci_lower'), interval.get('ci_upper')
  bounds = (f' [{low:+.4f}, {high:+.4f}]' if isinstance(low, (int, float))
            and isinstance(high, (int, float)) else '')
  return f'{interval["difference"]:+.4f}{bounds}'


def param_text(value: Any) -> str:
  """A parameter as pipeline.yaml writes it: 0.05 not 0.0500, 1000 not 1,000, true."""
  if isinstance(value, bool):
    return 'true' if value else 'false'
  if isinstance(value, float):
    return f'{value:g}'
  return 'null' if value is None else str(value)


def params_text(params: Mapping[str, Any]) -> str:
  return ', '.join(f'{k}={param_text(v)}' for k, v in params.items())



def runs_page_name(name: str) -> str:
  return f'runs-{name}.html'


def compare_runs_name(name: str, left: str, right: str) -> str:
  low, high = sorted((left, right))
  return f'compare-runs-{name}-{low}-{high}.html'


def compare_pairs(runs: Sequence[Mapping[str, Any]], metric: str) -> List[Tuple[str, str]]:
  """The pairs that get a page: the variants of each experiment (every pair up to
  ``ALL_PAIRS_UP_TO``, else consecutive by rank), each with the CT run of production's model
  when it is recorded, and consecutive evaluated CT runs."""
  found = set()
  groups: Dict[str, List[Mapping[str, Any]]] = {}
  for run in runs:
    if run.get('experiment_id'):
      groups.setdefault(run['experiment_id'], []).append(run)
  evaluated_ct = [r for r in sorted(runs, key=lambda r: r.get('started_at') or '')
                  if r.get('kind') == CT and r.get('metrics')]
  by_model = {r.get('artifacts', {}).get('model_sha256'): r['run_id'] for r in evaluated_ct}
  for members in groups.values():
    ids = [r['run_id'] for r in ranked(members, metric) if r.get('metrics')]  # not failed ones
    if len(ids) <= ALL_PAIRS_UP_TO:
      found |= {(a, b) for i, a in enumerate(ids) for b in ids[i + 1:]}
    else:
      found |= set(zip(ids, ids[1:]))
    production = by_model.get(((members[0].get('baseline') or {}).get('model_sha256')))
    if production:
      found |= {(run_id, production) for run_id in ids}
  found |= {(a['run_id'], b['run_id']) for a, b in zip(evaluated_ct, evaluated_ct[1:])}
  return sorted(tuple(sorted(pair)) for pair in found)


def _interval(run: Mapping[str, Any], metric: str) -> str:
  return interval_text((run.get('comparison') or {}).get(metric))


def runs_table(name: str, runs: Sequence[Mapping[str, Any]], metric: str,
               pages: Sequence[Tuple[str, str]]) -> str:
  """Every run, best first by ``metric``; sortable by each column; a link to its compare pages."""
  linked: Dict[str, List[Tuple[str, str]]] = {}
  for a, b in pages:
    linked.setdefault(a, []).append((b, compare_runs_name(name, a, b)))
    linked.setdefault(b, []).append((a, compare_runs_name(name, a, b)))
  rows = []
  for rank, run in enumerate(ranked(list(runs), metric), 1):
    run_id = run['run_id']
    value = metric_value(run, metric)
    links = ' '.join(f'<a href="{html.escape(f)}">vs {html.escape(other[-9:])}</a>'
                     for other, f in sorted(linked.get(run_id, []))[:6])
    params = run.get('overrides') or run.get('params') or {}
    rows.append([
        sortable.td(rank, key=f'run.{run_id}.rank'),
        sortable.td(run_id, cls='text', key=f'run.{run_id}.id'),
        sortable.td(run.get('kind'), cls='text'),
        sortable.td(run.get('experiment_id') or run.get('experiment_run') or '', cls='text'),
        sortable.td(run.get('status'), cls=f'text {(run.get("blessing") or {}).get("status", "")}',
                    key=f'run.{run_id}.status'),
        sortable.td(value, sort=value if value is not None else '', key=f'run.{run_id}.{metric}'),
        sortable.td(_interval(run, metric), key=f'run.{run_id}.interval', cls='text',
                    sort=((run.get('comparison') or {}).get(metric) or {}).get('difference')),
        sortable.td((run.get('blessing') or {}).get('status') or 'n/a', cls='text'),
        sortable.td(params_text(params), cls='reason', key=f'run.{run_id}.params'),
        sortable.td(str((run.get('data') or {}).get('eval_sha256') or '')[:12], cls='text'),
        sortable.td(run.get('started_at') or '', cls='text'),
        sortable.td(links or '', raw=True, cls='text')])
  return sortable.table(f'runs-{name}', [
      'rank', 'run', 'kind', 'experiment', 'status', metric, 'vs baseline [95% CI]', 'blessing',
      'params (a variant: what it changed)', 'eval rows sha256', 'started', 'compare'], rows)


def runs_page(name: str, runs: Sequence[Mapping[str, Any]], metric: str,
              pages: Sequence[Tuple[str, str]], nav: str = '', skipped: Sequence[str] = ()) -> str:
  body = [f'<h1>Runs: {html.escape(name)}</h1>',
          f'<p>{len(runs):,} run(s): experiment variants (<code>python -m '
          f'beam_pipelines.experiment</code>) and continuous-training runs, ranked by '
          f'{html.escape(metric)} on their eval rows. Runs with the same eval rows sha256 were '
          f'scored on the same rows. Click a header to sort.</p>',
          page.scroll(runs_table(name, runs, metric, pages))]
  body += [f'<p class="warn">skipped an unreadable record: {html.escape(s)}</p>' for s in skipped]
  return page.shell(f'Runs: {name}', '\n'.join(body) + sortable.SCRIPT, nav)


def _summary(left: Mapping[str, Any], right: Mapping[str, Any], metric: str) -> str:
  rows = []
  for side, run in (('left', left), ('right', right)):
    baseline = run.get('baseline') or {}
    rows.append([f'<td class="text" data-key="run.{side}">{html.escape(run["run_id"])}</td>',
                 run.get('kind'), run.get('experiment_id') or run.get('experiment_run') or 'none',
                 page.cell(run.get('status'), f'{side}.status'),
                 page.cell((run.get('blessing') or {}).get('status') or 'n/a', f'{side}.blessing'),
                 f'v{baseline["version"]}' if baseline.get('version') else 'none',
                 page.cell(_interval(run, metric), f'{side}.interval'),
                 run.get('started_at') or 'n/a'])
  return page.scroll(page.table(['run', 'kind', 'experiment', 'status', 'blessing', 'baseline',
                                f'{metric} vs baseline [95% CI]', 'started'], rows))


def _metrics(left: Mapping[str, Any], right: Mapping[str, Any]) -> str:
  a, b = left.get('metrics') or {}, right.get('metrics') or {}
  rows = [[metric, page.cell(a.get(metric), f'metric.{metric}.left'),
           page.cell(b.get(metric), f'metric.{metric}.right'),
           page.cell(compare.difference(metric, a.get(metric), b.get(metric)),
                     f'metric.{metric}.difference')]
          for metric in compare.metric_names(a, b)]
  return page.scroll(page.table(['metric', 'left', 'right', 'difference (right - left)'], rows))


def _parameters(left: Mapping[str, Any], right: Mapping[str, Any]) -> str:
  changed, equal = compare.parameter_diff(left.get('params') or {}, right.get('params') or {})
  out = [page.scroll(page.table(['parameter', 'left', 'right'], [
      [f'<td class="text" data-key="param.{html.escape(k)}">{html.escape(k)}</td>',
       page.cell(compare.parameter_text(a), f'param.{k}.left'),
       page.cell(compare.parameter_text(b), f'param.{k}.right')] for k, a, b in changed]))
         if changed else '<p data-key="params.same">Same parameters.</p>']
  if equal:
    out.append(f'<details><summary>{len(equal):,} parameter(s) equal in both</summary>'
               + page.scroll(page.table(['parameter', 'value'],
                                        [[k, compare.parameter_text(v)] for k, v in equal]))
               + '</details>')
  return ''.join(out)


def _roc(left: Mapping[str, Any], right: Mapping[str, Any], roc_left: Roc, roc_right: Roc) -> str:
  series = {f'{side} {run["run_id"]}': [(float(x), float(y)) for x, y in roc]
            for side, run, roc in (('left', left, roc_left), ('right', right, roc_right)) if roc}
  if not series:
    return '<p class="muted">No ROC points recorded for either run.</p>'
  return page.figure(
      charts.line_chart('roc-compare-runs', series, 'false positive rate', 'true positive rate',
                        (0.0, 1.0), (0.0, 1.0), diagonal=True, width=460, height=380,
                        title='ROC curves'),
      'Both ROC curves on their eval rows; the dashed diagonal is chance.')


def compare_runs_page(name: str, left: Mapping[str, Any], right: Mapping[str, Any], metric: str,
                      roc_left: Roc = None, roc_right: Roc = None, nav: str = '') -> str:
  """The page comparing run ``left`` with run ``right``."""
  title = f'{name}: run {left["run_id"]} vs {right["run_id"]}'
  body = [f'<h1>{html.escape(title)}</h1>', _summary(left, right, metric), '<h2>Metrics</h2>']
  ld, rd = left.get('data') or {}, right.get('data') or {}
  if ld.get('eval_sha256') and ld.get('eval_sha256') == rd.get('eval_sha256'):
    body.append(f'<p data-key="rows.same">Measured on the same {page.esc(ld.get("eval_rows"))} '
                f'eval rows (sha256 {html.escape(str(ld["eval_sha256"])[:12])}): like for '
                f'like.</p>')
  else:
    body.append(f'<p class="warn" data-key="rows.different">Measured on different rows: left on '
                f'{page.esc(ld.get("eval_rows"))} eval rows of {html.escape(str(ld.get("span")))}, '
                f'right on {page.esc(rd.get("eval_rows"))} of {html.escape(str(rd.get("span")))}; '
                f'a difference mixes the models with the data they were scored on.</p>')
  body += [_metrics(left, right), '<h2>ROC curves</h2>', _roc(left, right, roc_left, roc_right),
           '<h2>Parameters</h2>', _parameters(left, right)]
  return page.shell(title, '\n'.join(body) + compare.WRAP, nav)
