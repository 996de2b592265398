"""The evaluation's HTML page: the verdict in a sentence; ROC, precision-recall, threshold and
calibration (with the rows of each bin) charts of candidate and baseline; the confusion matrix at
each model's decision threshold; overall metrics with a delta column; the permutation feature
importance; per-slice metrics of every slicing spec with a 95% AUC interval and small-slice
warnings. Self-contained: inline SVG, nothing fetched; wide tables scroll inside their own box."""

from __future__ import annotations

import html
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple, cast

from beam_pipelines.ml.artifacts import (
  BlessingDocument,
  Importance,
  MetricsDocument,
  ModelMetrics,
  SliceMetrics,
  Slicing,
)
from beam_pipelines.pages import charts, page

COLUMNS = ('example_count', 'positive_count', 'auc', 'average_precision', 'accuracy', 'log_loss',
           'brier_score', 'expected_calibration_error', 'threshold', 'precision', 'recall', 'f1',
           'auc_error_bound', 'average_precision_error_bound')
CANDIDATE, BASELINE = 'candidate', 'baseline'
LOWER_IS_BETTER = {'log_loss', 'brier_score', 'expected_calibration_error'}
NO_DELTA = {'threshold', 'auc_error_bound', 'average_precision_error_bound'}
CONFUSION = (('true_positives', 'false_negatives'), ('false_positives', 'true_negatives'))
CHECK_KINDS = {'value_threshold': 'below its bound', 'change_threshold': 'worse than the baseline',
               'registered_change': "too far below the baseline's registered value"}
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
  if name in NO_DELTA:
    return '<td></td>'
  if not isinstance(candidate, (int, float)) or not isinstance(baseline, (int, float)):
    return '<td>n/a</td>'
  diff = candidate - baseline
  if name in ('example_count', 'positive_count'):
    return f'<td>{page.esc(diff)}</td>'
  better = diff < 0 if name in LOWER_IS_BETTER else diff > 0
  cls = 'pass' if better else ('fail' if diff else '')
  return f'<td class="{cls}" data-key="{html.escape(key or "delta." + name)}">{diff:+.4f}</td>'


def _boxed(content: str) -> str:
  """A wide table scrolls inside its own box: the page never overflows."""
  return f'<div class="box" style="overflow-x:auto;max-width:100%">{content}</div>'


def _three(value: Optional[float]) -> str:
  return 'n/a' if value is None else f'{value:.3f}'


def headline(document: MetricsDocument, record: BlessingDocument) -> str:
  """The verdict as a sentence, e.g. 'Blessed: candidate AUC 0.842 vs baseline 0.838 on the same
  2,007 rows.' (numbers marked with data-key for the browser test)."""
  models = document['models']
  blessed = record['status'] == 'BLESSED'
  word = 'Blessed' if blessed else 'Not blessed'
  candidate = models[CANDIDATE]['overall']
  comparison = (document.get('comparison') or {}).get('auc')

  def value(key: str, number: Optional[float]) -> str:
    return f'<span data-key="headline.{key}">{html.escape(_three(number))}</span>'

  if comparison and comparison.get('candidate_auc') is not None:
    sentence = (f'{word}: candidate AUC {value("candidate_auc", comparison["candidate_auc"])} vs '
                f'baseline {value("baseline_auc", comparison["baseline_auc"])} on the same '
                f'<span data-key="headline.rows">{comparison["sampled_rows"]:,}</span> rows')
  elif BASELINE in models:
    sentence = (f'{word}: candidate AUC {value("candidate_auc", candidate.get("auc"))} vs '
                f'baseline {value("baseline_auc", models[BASELINE]["overall"].get("auc"))} on '
                f'<span data-key="headline.rows">{candidate.get("example_count") or 0:,}</span> '
                f'rows')
  else:
    sentence = (f'{word}: candidate AUC {value("candidate_auc", candidate.get("auc"))} on '
                f'<span data-key="headline.rows">{candidate.get("example_count") or 0:,}</span> '
                f'eval rows, no baseline to compare with')
  failed = [c for c in record.get('checks', []) if not c['passed']]
  if failed:
    reasons = [f'{c["metric"]} {CHECK_KINDS.get(c["kind"], c["kind"].replace("_", " "))}'
               for c in failed]
    sentence += '; ' + html.escape('; '.join(dict.fromkeys(reasons)))
  return sentence + '.'


def _charts(models: Dict[str, ModelMetrics], threshold_rule: str) -> str:
  roc: Dict[str, List[charts.Point]] = {}
  pr: Dict[str, List[charts.Point]] = {}
  calibration: Dict[str, List[Tuple[float, float, int]]] = {}
  for name, entry in models.items():
    curves = entry.get('curves')
    overall = entry['overall']
    if curves and curves.get('roc'):
      roc[f'{name} (AUC {page.number(overall.get("auc"))})'] = [(x, y) for x, y in curves['roc']]
    if curves and curves.get('pr'):
      pr[f'{name} (AP {page.number(overall.get("average_precision"))})'] = [
          (r, p) for _, r, p, _ in curves['pr']]
    if curves and curves.get('calibration'):
      calibration[name] = [(p, o, int(c)) for p, o, c in curves['calibration']]
  if not roc and not calibration:
    return '<p class="muted">No curves recorded in metrics.json (evaluated by an older version).</p>'
  parts = ['<div class="charts">']
  if roc:
    parts.append(page.figure(
        charts.line_chart('roc', roc, 'false positive rate', 'true positive rate', (0, 1), (0, 1),
                          diagonal=True, title='ROC curves'),
        'ROC of each model on the same eval rows; the dashed diagonal is chance.'))
  if pr:
    for name, entry in models.items():  # each model's operating point at its threshold
      overall = entry['overall']
      if overall.get('recall') is not None and overall.get('precision') is not None:
        pr[f'{name} at threshold {page.number(overall.get("threshold"))}'] = [
            (overall['recall'], overall['precision'])]  # type: ignore[list-item]
    parts.append(page.figure(
        charts.line_chart('pr', pr, 'recall', 'precision', (0, 1), (0, 1),
                          title='Precision-recall curves'),
        'Precision and recall of each model as the threshold moves from 0 (every row positive, '
        'right) to 1 (left); a dot: the decision threshold. AP: average precision (AUC-PR).'))
  candidate = models[CANDIDATE]
  curves = candidate.get('curves')
  points = (curves.get('pr') if curves else None) or []
  threshold = candidate['overall'].get('threshold')
  if points:
    by_threshold: Dict[str, List[charts.Point]] = {
        'precision': [(t, p) for t, _, p, _ in points], 'recall': [(t, r) for t, r, _, _ in points],
        'F1': [(t, f) for t, _, _, f in points]}
    if threshold is not None:
      by_threshold[f'threshold {page.number(threshold)}'] = [(threshold, 0.0), (threshold, 1.0)]
    parts.append(page.figure(
        charts.line_chart('threshold', by_threshold, 'decision threshold (p >= threshold is '
                          'positive)', 'candidate', (0, 1), (0, 1),
                          title='Precision, recall and F1 by threshold'),
        f'The candidate at every threshold; the vertical line is its decision threshold '
        f'({threshold_rule}).'))
  if calibration:
    parts.append(page.figure(
        charts.calibration_chart('calibration', calibration, title='Calibration'),
        'Calibration: each point is a 0.1-wide score bin, its area proportional to its rows; on '
        'the diagonal, a predicted 30% means 30% positives. Below: the rows of each bin (square-'
        'root scale), so a bin of a few rows reads as such.'))
  parts.append('</div>')
  return ''.join(parts)


def _confusion(models: Dict[str, ModelMetrics]) -> str:
  """The confusion matrix of each model at its threshold: counts and rates of each actual class."""
  parts = []
  for name, entry in models.items():
    overall = entry['overall']
    if overall.get('true_positives') is None:
      continue
    header = [f'{name} (threshold {page.number(overall.get("threshold"))})', 'predicted positive',
              'rate', 'predicted negative', 'rate']
    rows = []
    for actual, cells in zip(('actual positive', 'actual negative'), CONFUSION):
      counts = [int(cast(int, overall.get(cell)) or 0) for cell in cells]
      total = sum(counts)
      row: List[object] = [f'{actual} ({total:,})']
      for cell, count in zip(cells, counts):
        row += [page.cell(count, f'{name}.{cell}'),
                f'{count / total:.1%}' if total else 'n/a']
      rows.append(row)
    parts.append(page.table(header, rows))
  if not parts:
    return ''
  return ('<h2>Confusion matrix</h2><p class="small muted">Rows: the actual class; rates: share '
          'of that class (the positive row\'s first rate is the recall, the negative row\'s the '
          'false positive rate).</p><div class="charts">' + ''.join(parts) + '</div>')


def _overall(models: Dict[str, ModelMetrics]) -> str:
  names = list(models)
  header = ['metric'] + names + (['delta (candidate − baseline)'] if BASELINE in models else [])
  rows = []
  for column in COLUMNS:
    if all(models[n]['overall'].get(column) is None for n in names) and column not in (
        'auc', 'accuracy', 'log_loss'):
      continue  # a metric an older evaluation did not record
    row = [column] + [page.cell(models[n]['overall'].get(column), f'{n}.{column}') for n in names]
    if BASELINE in models:
      row.append(_delta(column, models[CANDIDATE]['overall'].get(column),
                        models[BASELINE]['overall'].get(column)))
    rows.append(row)
  return page.table(header, rows)


def _importance(models: Dict[str, ModelMetrics]) -> str:
  found: Dict[str, Importance] = {}
  for name, entry in models.items():
    found_importance = entry.get('importance')
    if found_importance:
      found[name] = found_importance
  if not found:
    return ''
  first = found.get(CANDIDATE) or next(iter(found.values()))
  features = [f['feature'] for f in first['features']]
  drops: Dict[str, Dict[str, Dict[str, Any]]] = {
      name: {f['feature']: dict(f) for f in imp['features']} for name, imp in found.items()}
  chart = charts.horizontal_bar_chart(
      'importance', features,
      {name: [drops[name].get(f, {}).get('auc_drop') for f in features] for name in found},
      'drop in AUC when the feature is permuted',
      errors={name: [drops[name].get(f, {}).get('auc_drop_std') for f in features]
              for name in found},
      title='Permutation feature importance')
  header = ['feature'] + [f'{name} {what}' for name in found
                          for what in ('AUC drop', '± std', 'log loss increase')]
  rows = []
  for feature in features:
    row: List[object] = [feature]
    for name in found:
      item = drops[name].get(feature, {})
      row += [page.cell(item.get('auc_drop'), f'importance.{name}.{feature}.auc_drop'),
              item.get('auc_drop_std'),
              page.cell(item.get('log_loss_increase'),
                        f'importance.{name}.{feature}.log_loss_increase')]
    rows.append(row)
  return ('<h2>Feature importance</h2>'
          f'<p class="small muted">Each feature of each model permuted on '
          f'{first["rows"]:,} eval rows (a fixed sample by row hash), {first["repeats"]} times '
          f'(seed {first["seed"]}): how much the AUC drops and the log loss rises. About 0: the '
          f'model does not rely on the feature.</p>'
          + page.figure(chart, 'Mean drop of the AUC over the permutations; the whisker: ± its '
                               'standard deviation.')
          + _boxed(page.table(header, rows)))


def _slicings(models: Dict[str, ModelMetrics], feature: Optional[str]) -> List[Slicing]:
  """The candidate's slicing specs, or the single ``slices`` of an older metrics.json."""
  slicings = models[CANDIDATE].get('slicings')
  if slicings:
    return slicings
  if feature:
    return [Slicing(name=feature, features=[feature], slices=models[CANDIDATE]['slices'])]
  return []


def _slices(index: int, slicing: Slicing, models: Dict[str, ModelMetrics]) -> str:
  name = slicing['name']
  candidate = slicing['slices']
  baseline: Dict[str, SliceMetrics] = {}
  if BASELINE in models:
    for other in models[BASELINE].get('slicings') or []:
      if other['name'] == name:
        baseline = other['slices']
    if not baseline and index == 0:
      baseline = models[BASELINE].get('slices', {})
  prefix = 'slice.' if index == 0 else f'slice.{name}.'  # the first spec keeps its old keys
  header = [name, 'examples', 'positives', 'candidate AUC', '95% interval']
  if baseline:
    header += ['baseline AUC', 'delta AUC']
  header += ['candidate AP', 'candidate accuracy', 'candidate F1', 'note']
  rows, classes = [], []
  for value in sorted(candidate):
    metrics = candidate[value]
    count, positives = metrics.get('example_count') or 0, metrics.get('positive_count') or 0
    interval = auc_interval(metrics.get('auc'), positives, count - positives)
    warning = small_slice_warning(metrics)
    row = [value, page.cell(count, f'{prefix}{value}.example_count'), positives,
           page.cell(metrics.get('auc'), f'{prefix}{value}.auc'),
           f'{interval[0]:.3f} – {interval[1]:.3f}' if interval else 'n/a']
    if baseline:
      base: SliceMetrics = baseline.get(value, {})
      row += [page.cell(base.get('auc'), f'baseline.{prefix}{value}.auc'),
              _delta('auc', metrics.get('auc'), base.get('auc'), f'delta.{prefix}{value}.auc')]
    row += [metrics.get('average_precision'), metrics.get('accuracy'),
            page.cell(metrics.get('f1'), f'{prefix}{value}.f1'),
            f'<td class="text warn">⚠ {html.escape(warning)}</td>' if warning else '<td></td>']
    rows.append(row)
    classes.append('warn' if warning else '')
  return _boxed(page.table(header, rows, classes))


def _models(models: Dict[str, ModelMetrics]) -> str:
  wrap = 'style="word-break:break-all"'
  rows: List[Sequence[object]] = [
      [name] + [f'<td class="text" {wrap}>{html.escape(page.number(value))}</td>'
                for value in (e['model_dir'], e['model_sha256'], e.get('data_fingerprint'))]
      for name, e in models.items()]
  return _boxed(page.table(['model', 'directory', 'sha256', 'data fingerprint'], rows))


def render(document: MetricsDocument, record: BlessingDocument) -> str:
  """metrics.json document + blessing record -> a standalone HTML page."""
  models = document['models']
  status = record['status']
  choice = document.get('threshold')
  rule = choice['rule'] if choice else 'max_f1'
  rule_text = {'max_f1': 'the one maximising F1 on the eval rows',
               'fixed': 'fixed by --threshold'}.get(rule, rule)
  parts = [f'<h1>Model evaluation: <span class="{status}" id="status">{status}</span></h1>',
           f'<p class="headline" id="headline">{headline(document, record)}</p>',
           f'<details class="small muted"><summary>The blessing\'s full message</summary>'
           f'<p>{html.escape(record["message"])}</p></details>']
  if record.get('rubber_stamped'):
    parts.append('<p class="warn">No baseline model: judged on value thresholds alone '
                 '(rubber stamp).</p>')
  parts.append(_charts(models, rule_text))
  parts.append(_confusion(models))
  parts.append('<h2>Overall</h2>'
               f'<p class="small muted">Precision, recall, F1 and the confusion matrix are at each '
               f'model\'s decision threshold: {html.escape(rule_text)}. Accuracy is at 0.5. '
               f'Average precision and AUC are read from a 10,000-bucket score histogram, within '
               f'the error bounds shown.</p>' + _boxed(_overall(models)))
  checks = record.get('checks', [])
  if checks:
    parts.append('<h2>Blessing checks</h2>')
    parts.append(_boxed(page.table(
        ['metric', 'kind', 'result', 'detail'],
        [[c['metric'], c['kind'], 'PASS' if c['passed'] else 'FAIL', c['message']] for c in checks],
        ['pass' if c['passed'] else 'fail' for c in checks])))
  parts.append(_importance(models))
  for index, slicing in enumerate(_slicings(models, document.get('slice_feature'))):
    parts.append(f'<h2>Slices by {html.escape(slicing["name"])}</h2>')
    parts.append(f'<p class="small muted">95% interval: Hanley–McNeil standard error of the AUC. '
                 f'Slices under {SMALL_SLICE_EXAMPLES} examples or with fewer than '
                 f'{SMALL_SLICE_CLASS} of a class are flagged. F1 at the model\'s threshold.</p>')
    parts.append(_slices(index, slicing, models))
  parts.append('<h2>Models</h2>')
  parts.append(_models(models))
  return page.shell(f'Model evaluation: {status}', '\n'.join(parts))
