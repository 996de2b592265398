"""The evaluation's HTML page: verdict, ROC and calibration charts of candidate and baseline,
overall metrics with a delta column, per-slice metrics with a 95% AUC interval and small-slice
warnings. Self-contained: inline SVG, nothing fetched."""

from __future__ import annotations

import html
import math
from typing import Dict, List, Optional, Tuple

from beam_pipelines.ml.artifacts import (
  BlessingDocument,
  MetricsDocument,
  ModelMetrics,
  SliceMetrics,
)
from beam_pipelines.pages import charts, page

COLUMNS = ('example_count', 'positive_count', 'auc', 'accuracy', 'log_loss', 'auc_error_bound')
CANDIDATE, BASELINE = 'candidate', 'baseline'
LOWER_IS_BETTER = {'log_loss'}
SMALL_SLICE_EXAMPLES = 100  # below this, or fewer than SMALL_SLICE_CLASS of a class: a warning
SMALL_SLICE_CLASS = 10


def auc_interval(auc: Optional[float], positives: int, negatives: int,
                 z: float = 1.96) -> Optional[Tuple[float, float]]:
  """A 95% interval of an AUC from its standard error (Hanley & McNeil, 1982), clipped to [0, 1];
  None when the AUC is undefined (one class only). With fewer than ``SMALL_SLICE_CLASS`` examples
  of a class the estimate is not trusted (it is 0 at AUC 0 or 1): the conservative bound
  1 / (4 min(positives, negatives)) is used when larger."""
  if auc is None or not positives or not negatives or math.isnan(auc):
    return None
  q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
  variance = (auc * (1 - auc) + (positives - 1) * (q1 - auc * auc)
              + (negatives - 1) * (q2 - auc * auc)) / (positives * negatives)
  if min(positives, negatives) < SMALL_SLICE_CLASS:
    variance = max(variance, 0.25 / min(positives, negatives))
  half = z * math.sqrt(max(variance, 0.0))
  return max(0.0, auc - half), min(1.0, auc + half)


def small_slice_warning(metrics: SliceMetrics) -> Optional[str]:
  """Why a slice's metrics should not be trusted, or None."""
  count, positives = metrics.get('example_count') or 0, metrics.get('positive_count') or 0
  negatives = count - positives
  if not positives or not negatives:
    return f'one class only ({count:,} examples): AUC undefined'
  if count < SMALL_SLICE_EXAMPLES or min(positives, negatives) < SMALL_SLICE_CLASS:
    return (f'small slice ({count:,} examples, {min(positives, negatives):,} of the rarer class):'
            ' metrics are noisy')
  return None


def _delta(name: str, candidate: object, baseline: object, key: str = '') -> str:
  if not isinstance(candidate, (int, float)) or not isinstance(baseline, (int, float)):
    return '<td>n/a</td>'
  diff = candidate - baseline
  if name in ('example_count', 'positive_count'):
    return f'<td>{page.esc(diff)}</td>'
  better = diff < 0 if name in LOWER_IS_BETTER else diff > 0
  cls = 'pass' if better else ('fail' if diff else '')
  return f'<td class="{cls}" data-key="{html.escape(key or "delta." + name)}">{diff:+.4f}</td>'


def _charts(models: Dict[str, ModelMetrics]) -> str:
  roc: Dict[str, List[charts.Point]] = {}
  calibration: Dict[str, List[charts.Point]] = {}
  for name, entry in models.items():
    curves = entry.get('curves')
    auc = entry['overall'].get('auc')
    if curves and curves.get('roc'):
      roc[f'{name} (AUC {page.number(auc)})'] = [(x, y) for x, y in curves['roc']]
    if curves and curves.get('calibration'):
      calibration[name] = [(p, o) for p, o, _ in curves['calibration']]
  if not roc and not calibration:
    return '<p class="muted">No curves recorded in metrics.json (evaluated by an older version).</p>'
  parts = ['<div class="charts">']
  if roc:
    parts.append(page.figure(
        charts.line_chart('roc', roc, 'false positive rate', 'true positive rate', (0, 1), (0, 1),
                          diagonal=True, title='ROC curves'),
        'ROC of each model on the same eval rows; the dashed diagonal is chance.'))
  if calibration:
    parts.append(page.figure(
        charts.line_chart('calibration', calibration, 'mean predicted probability',
                          'observed positive rate', (0, 1), (0, 1), diagonal=True, markers=True,
                          title='Calibration'),
        'Calibration: each point is a 0.1-wide score bin; on the diagonal, a predicted 30% '
        'means 30% positives.'))
  parts.append('</div>')
  return ''.join(parts)


def _overall(models: Dict[str, ModelMetrics]) -> str:
  names = list(models)
  header = ['metric'] + names + (['delta (candidate − baseline)'] if BASELINE in models else [])
  rows = []
  for column in COLUMNS:
    row = [column] + [page.cell(models[n]['overall'].get(column), f'{n}.{column}') for n in names]
    if BASELINE in models:
      row.append(_delta(column, models[CANDIDATE]['overall'].get(column),
                        models[BASELINE]['overall'].get(column)))
    rows.append(row)
  return page.table(header, rows)


def _slices(feature: str, models: Dict[str, ModelMetrics]) -> str:
  candidate = models[CANDIDATE]['slices']
  baseline: Dict[str, SliceMetrics] = models[BASELINE].get('slices', {}) if BASELINE in models else {}
  header = [feature, 'examples', 'positives', 'candidate AUC', '95% interval']
  if baseline:
    header += ['baseline AUC', 'delta AUC']
  header += ['candidate accuracy', 'note']
  rows, classes = [], []
  for value in sorted(candidate):
    metrics = candidate[value]
    count, positives = metrics.get('example_count') or 0, metrics.get('positive_count') or 0
    interval = auc_interval(metrics.get('auc'), positives, count - positives)
    warning = small_slice_warning(metrics)
    row = [value, page.cell(count, f'slice.{value}.example_count'), positives,
           page.cell(metrics.get('auc'), f'slice.{value}.auc'),
           f'{interval[0]:.3f} – {interval[1]:.3f}' if interval else 'n/a']
    if baseline:
      base: SliceMetrics = baseline.get(value, {})
      row += [page.cell(base.get('auc'), f'baseline.slice.{value}.auc'),
              _delta('auc', metrics.get('auc'), base.get('auc'), f'delta.slice.{value}.auc')]
    row += [metrics.get('accuracy'),
            f'<td class="text warn">⚠ {html.escape(warning)}</td>' if warning else '<td></td>']
    rows.append(row)
    classes.append('warn' if warning else '')
  return page.table(header, rows, classes)


def render(document: MetricsDocument, record: BlessingDocument) -> str:
  """metrics.json document + blessing record -> a standalone HTML page."""
  models = document['models']
  status = record['status']
  parts = [f'<h1>Model evaluation: <span class="{status}" id="status">{status}</span></h1>',
           f'<p>{html.escape(record["message"])}</p>']
  if record.get('rubber_stamped'):
    parts.append('<p class="warn">No baseline model: judged on value thresholds alone '
                 '(rubber stamp).</p>')
  parts.append(_charts(models))
  parts.append('<h2>Overall</h2>' + _overall(models))
  checks = record.get('checks', [])
  if checks:
    parts.append('<h2>Blessing checks</h2>')
    parts.append(page.table(
        ['metric', 'kind', 'result', 'detail'],
        [[c['metric'], c['kind'], 'PASS' if c['passed'] else 'FAIL', c['message']] for c in checks],
        ['pass' if c['passed'] else 'fail' for c in checks]))
  feature = document.get('slice_feature')
  if feature:
    parts.append(f'<h2>Slices by {html.escape(feature)}</h2>')
    parts.append(f'<p class="small muted">95% interval: Hanley–McNeil standard error of the AUC. '
                 f'Slices under {SMALL_SLICE_EXAMPLES} examples or with fewer than '
                 f'{SMALL_SLICE_CLASS} of a class are flagged.</p>')
    parts.append(_slices(feature, models))
  parts.append('<h2>Models</h2>')
  parts.append(page.table(['model', 'directory', 'sha256', 'data fingerprint'],
                          [[name, e['model_dir'], e['model_sha256'], e.get('data_fingerprint')]
                           for name, e in models.items()]))
  return page.shell(f'Model evaluation: {status}', '\n'.join(parts))
