"""The page comparing two registered versions of a model: what changed in their parameters, their
metrics side by side, and their ROC curves on one chart.

Metrics are like for like only when both versions were scored on the same rows: the pipeline's
fixed holdout, when both carry a holdout evaluation of the same bytes (same sha256). Otherwise each
version's own evaluation is shown, and the page says the rows differ (another span, another size).
"""

from __future__ import annotations

import dataclasses
import html
import json
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from beam_pipelines.pages import charts, page

METRIC_ORDER = ('auc', 'accuracy', 'log_loss', 'example_count', 'positive_count')
COUNTS = ('example_count', 'positive_count')
MISSING = object()  # a parameter one version does not have
ALL_PAIRS_UP_TO = 20  # versions: every pair gets a page; above, consecutive pairs and each vs production


@dataclasses.dataclass(frozen=True)
class Scored:
  """A version's metrics on some rows, and where those rows come from."""
  metrics: Mapping[str, Any]
  roc: Optional[List[List[float]]]  # [false positive rate, true positive rate]
  rows: Optional[int]
  source: str  # e.g. "eval split of span-2026-11-04" or "holdout"


@dataclasses.dataclass(frozen=True)
class Side:
  """One version as the compare page shows it."""
  version: int
  span: str
  blessing: Optional[str]
  aliases: Sequence[str]
  registered_at: Optional[str]
  parameters: Mapping[str, Any]  # its run's lineage parameters
  own: Scored  # its evaluation on its own window's eval split
  holdout: Optional[Scored] = None
  holdout_sha256: Optional[str] = None
  card: Optional[str] = None  # its model card's page


def compare_page_name(name: str, left: int, right: int) -> str:
  low, high = sorted((left, right))
  return f'compare-{name}-v{low}-v{high}.html'


def pairs(numbers: Sequence[int], production: Optional[int]) -> List[Tuple[int, int]]:
  """The pairs that get a page: every pair up to ``ALL_PAIRS_UP_TO`` versions, else consecutive
  pairs and each version against production."""
  ordered = sorted(numbers)
  if len(ordered) <= ALL_PAIRS_UP_TO:
    return [(a, b) for i, a in enumerate(ordered) for b in ordered[i + 1:]]
  found = set(zip(ordered, ordered[1:]))
  if production in ordered:
    found |= {tuple(sorted((n, production))) for n in ordered if n != production}  # type: ignore[misc]
  return sorted(found)


def flatten(value: Any, prefix: str = '') -> Dict[str, Any]:
  """A nested mapping as ``dotted.key -> leaf value`` (lists are leaves)."""
  if isinstance(value, Mapping) and value:
    out: Dict[str, Any] = {}
    for key in sorted(value, key=str):
      out.update(flatten(value[key], f'{prefix}.{key}' if prefix else str(key)))
    return out
  return {prefix: value} if prefix else {}


def parameter_diff(left: Mapping[str, Any], right: Mapping[str, Any]
                   ) -> Tuple[List[Tuple[str, Any, Any]], List[Tuple[str, Any]]]:
  """(changed: (key, left value or MISSING, right value or MISSING), equal: (key, value))."""
  a, b = flatten(left), flatten(right)
  changed, equal = [], []
  for key in sorted(set(a) | set(b)):
    va, vb = a.get(key, MISSING), b.get(key, MISSING)
    if va == vb:
      equal.append((key, va))
    else:
      changed.append((key, va, vb))
  return changed, equal


def like_for_like(left: Side, right: Side) -> bool:
  """Whether both versions were scored on the same holdout bytes."""
  return (left.holdout is not None and right.holdout is not None
          and left.holdout_sha256 is not None and left.holdout_sha256 == right.holdout_sha256)


def metric_names(left: Mapping[str, Any], right: Mapping[str, Any]) -> List[str]:
  numeric = [k for k in set(left) | set(right)
             if isinstance(left.get(k), (int, float)) or isinstance(right.get(k), (int, float))]
  return ([m for m in METRIC_ORDER if m in numeric]
          + sorted(m for m in numeric if m not in METRIC_ORDER))


WRAP = '<style>td { overflow-wrap: anywhere; }</style>'  # long paths and hashes wrap in their cell


def parameter_text(value: Any) -> str:
  """A parameter as written in its file: 0.5 not 0.5000, -1e-10 not -1.0e-10."""
  if value is MISSING:
    return '(absent)'
  if isinstance(value, float) and not isinstance(value, bool):
    return f'{value:g}'
  return page.number(value)


def difference(metric: str, a: Any, b: Any) -> str:
  """``b - a`` for people: counts as ``+1,234``, tiny differences in scientific notation."""
  if not isinstance(a, (int, float)) or not isinstance(b, (int, float)) or isinstance(a, bool):
    return 'n/a'
  diff = b - a
  if metric in COUNTS and isinstance(diff, int):
    return f'{diff:+,}'
  return f'{diff:+.1e}' if diff and abs(diff) < 1e-4 else f'{diff:+.4f}'


def _metrics_table(left: Side, right: Side, a: Scored, b: Scored) -> str:
  rows = []
  for metric in metric_names(a.metrics, b.metrics):
    va, vb = a.metrics.get(metric), b.metrics.get(metric)
    rows.append([metric, page.cell(va, f'metric.{metric}.left'),
                 page.cell(vb, f'metric.{metric}.right'),
                 page.cell(difference(metric, va, vb), f'metric.{metric}.difference')])
  return page.scroll(page.table(['metric', f'v{left.version}', f'v{right.version}',
                                f'difference (v{right.version} - v{left.version})'], rows))


def _roc(name: str, left: Side, right: Side, a: Scored, b: Scored) -> str:
  series = {f'v{side.version} ({side.span})': [(float(x), float(y)) for x, y in scored.roc]
            for side, scored in ((left, a), (right, b)) if scored.roc}
  if not series:
    return '<p class="muted">No ROC points recorded for either version.</p>'
  return page.figure(
      charts.line_chart(name, series, 'false positive rate', 'true positive rate', (0.0, 1.0),
                        (0.0, 1.0), diagonal=True, width=460, height=380, title='ROC curves'),
      'Both ROC curves; the dashed diagonal is chance.')


def _summary(left: Side, right: Side) -> str:
  rows = []
  for side in (left, right):
    version = (f'<a href="{html.escape(side.card)}">v{side.version}</a>' if side.card
               else f'v{side.version}')
    rows.append([f'<td class="text" data-key="side.v{side.version}">{version}</td>', side.span,
                 page.cell(side.blessing, f'v{side.version}.blessing', side.blessing or ''),
                 ', '.join(side.aliases) or 'none', side.registered_at or 'n/a'])
  return page.scroll(page.table(['version', 'span', 'blessing', 'aliases now', 'registered at'],
                                rows))


def _parameters(left: Side, right: Side) -> str:
  changed, equal = parameter_diff(left.parameters, right.parameters)
  out = []
  if changed:
    out.append(page.scroll(page.table(
        ['parameter', f'v{left.version}', f'v{right.version}'],
        [[f'<td class="text" data-key="param.{html.escape(k)}">{html.escape(k)}</td>',
          page.cell(parameter_text(a), f'param.{k}.left'),
          page.cell(parameter_text(b), f'param.{k}.right')]
         for k, a, b in changed])))
  else:
    out.append('<p data-key="params.same">Same parameters.</p>')
  if equal:
    out.append(f'<details><summary>{len(equal):,} parameter(s) equal in both</summary>'
               + page.scroll(page.table(['parameter', 'value'],
                                        [[k, parameter_text(v)] for k, v in equal]))
               + '</details>')
  return ''.join(out)


def compare_page(name: str, left: Side, right: Side, nav: str = '') -> str:
  """The whole page comparing ``left`` (the older) with ``right``."""
  body = [f'<h1>{html.escape(name)}: v{left.version} vs v{right.version}</h1>', _summary(left, right)]
  body.append('<h2>Metrics</h2>')
  if like_for_like(left, right):
    a, b = left.holdout, right.holdout
    assert a is not None and b is not None
    rows = a.rows if a.rows is not None else b.rows
    body.append(f'<p data-key="rows.same">Measured on the same {page.esc(rows)} holdout rows '
                f'(sha256 {html.escape((left.holdout_sha256 or "")[:12])}): like for like.</p>')
  else:
    a, b = left.own, right.own
    body.append(f'<p class="warn" data-key="rows.different">Measured on different rows: '
                f'v{left.version} on {page.esc(a.rows)} rows of its {html.escape(a.source)}, '
                f'v{right.version} on {page.esc(b.rows)} rows of its {html.escape(b.source)}; '
                f'a difference mixes the models with the data they were scored on.</p>')
  body.append(_metrics_table(left, right, a, b))
  body.append('<h2>ROC curves</h2>')
  body.append(_roc('roc-compare', left, right, a, b))
  body.append('<h2>Parameters (from each run\'s lineage record)</h2>')
  body.append(_parameters(left, right))
  return page.shell(f'{name}: v{left.version} vs v{right.version}', '\n'.join(body) + WRAP, nav)


def _js(value: Any) -> str:
  """A value as a JavaScript literal inside an inline script."""
  return json.dumps(value).replace('</', '<\\/')


def chooser(name: str, numbers: Sequence[int], available: Sequence[Tuple[int, int]]) -> str:
  """A form picking two versions (a small inline script opens their page), then the links."""
  if len(numbers) < 2:
    return '<p class="muted">One version only: nothing to compare yet.</p>'
  options = ''.join(f'<option value="{n}">v{n}</option>' for n in sorted(numbers, reverse=True))
  files = [compare_page_name(name, a, b) for a, b in available]
  links = ''.join(f'<li><a href="{html.escape(f)}">v{a} vs v{b}</a></li>'
                  for (a, b), f in zip(available, files))
  return (f'<form id="compare-form" onsubmit="return false"><label>compare <select id="compare-a">'
          f'{options}</select></label> <label>with <select id="compare-b">{options}</select></label>'
          f' <button id="compare-go" type="submit">open</button> <span id="compare-note" '
          f'class="muted"></span></form>'
          f'<script>(function () {{ var pages = {_js(sorted(files))}; var name = {_js(name)};'
          ' document.getElementById("compare-b").selectedIndex = 1;'
          ' document.getElementById("compare-form").addEventListener("submit", function () {'
          ' var a = Number(document.getElementById("compare-a").value),'
          ' b = Number(document.getElementById("compare-b").value);'
          ' var note = document.getElementById("compare-note");'
          ' if (a === b) { note.textContent = "pick two different versions"; return; }'
          ' var file = "compare-" + name + "-v" + Math.min(a, b) + "-v" + Math.max(a, b) + ".html";'
          ' if (pages.indexOf(file) < 0) { note.textContent = "no page for this pair: see the list below"; return; }'
          ' window.location.href = file; }); })();</script>'
          f'<details><summary>{len(files):,} comparison page(s)</summary><ul>{links}</ul></details>')
