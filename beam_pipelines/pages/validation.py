"""The validation's HTML page: verdict, anomalies first, then per feature the distribution of this
span against the previous span and of train against eval, with the drift/skew distance against
its threshold and the noise floor. Self-contained (inline SVG), unlike TFDV's Facets view, which
loads its script from CDNs when opened.

Statistics are TFDV ``DatasetFeatureStatisticsList`` protos, read by attribute only (no
TensorFlow import here). The noise floor of a distance is the one validation computed for it
(``beam_pipelines.ml.drift``: what two samples of one population, of the sizes compared, stay
under 95 times in 100); a verdict written before validation computed it gets an estimate here:
the distance between the train and eval splits of the same span.

Also on the page: a statistics table per split in the manner of Facets Overview (``summarize``:
count, missing, mean, std, zeros, min, median, max; unique and top values), small-integer features
(a 0/1 label, day of week, hour: integer values, at most ``MAX_CATEGORY_VALUES`` distinct) drawn
as one bar per value from their exact counts (``VALUE_COUNTS``, a custom statistic validation
adds), other numeric features on the baseline's deciles (the bins drift measures on), and every
distance the verdict flags or that is large (>= ``LARGE_DISTANCE``) without a threshold someone
set, flagged at the top.
"""

from __future__ import annotations

import html
import math
from typing import (
  TYPE_CHECKING,
  Dict,
  List,
  Literal,
  Mapping,
  Optional,
  Sequence,
  Tuple,
  TypedDict,
  Union,
)

import numpy as np

from beam_pipelines.ml import drift
from beam_pipelines.ml.artifacts import Distance, VerdictDocument
from beam_pipelines.pages import charts, page
from beam_pipelines.pages.charts import human_number, human_percent

if TYPE_CHECKING:  # protobuf classes only, for the type checker: no TensorFlow import here
  from tensorflow_metadata.proto.v0.statistics_pb2 import DatasetFeatureStatisticsList

VALUE_COUNTS = 'value_counts'  # custom statistic: exact counts of a small-integer feature's values
MAX_CATEGORY_VALUES = 31  # at most this many distinct integer values: drawn as categories
LARGE_DISTANCE = 0.5  # a distance this large is flagged even when no threshold was set for it
TOP_VALUES = 3  # top values shown in the statistics table
NUMERIC_BINS = 12
TOP_CATEGORIES = 12
L_INFTY, JSD = 'L_INFTY', 'JENSEN_SHANNON_DIVERGENCE'
_STANDARD_HISTOGRAM = 0  # Histogram.HistogramType.STANDARD


Statistics = Optional['DatasetFeatureStatisticsList']
Bucket = Tuple[float, float, float]  # (low, high, count)


class NumericDistribution(TypedDict):
  kind: Literal['numeric']
  buckets: List[Bucket]  # TFDV's equal-width histogram (a fallback without quantiles)
  counts: Dict[str, float]  # a small-integer feature: value -> exact count; else empty
  feature: object  # the FeatureNameStatistics (its quantiles give the deciles)


class CategoricalDistribution(TypedDict):
  kind: Literal['categorical']
  counts: Dict[str, float]  # value -> count


Distribution = Union[NumericDistribution, CategoricalDistribution]


class Comparison(TypedDict):
  """Two distributions of one feature on common categories/bins."""

  labels: List[str]
  a: List[float]  # share of each label
  b: List[float]
  measure: str
  distance: float


def _name(feature) -> str:
  return '.'.join(feature.path.step) if feature.path.step else feature.name


def small_integer_counts(feature) -> Dict[str, float]:
  """value -> count of a numeric feature whose values are few integers: the exact counts
  validation stored (``VALUE_COUNTS``), else for a 0/1 feature its count times its mean; empty
  for any other feature."""
  for custom in feature.custom_stats:
    if custom.name == VALUE_COUNTS and custom.rank_histogram.buckets:
      return {b.label: float(b.sample_count) for b in custom.rank_histogram.buckets}
  if drift.is_binary(feature):
    count, mean = drift.non_missing(feature), feature.num_stats.mean
    return {'0': count * (1 - mean), '1': count * mean}
  return {}


def feature_distributions(statistics: Statistics) -> Dict[str, Distribution]:
  """Feature -> its distribution (numeric: buckets, and counts when it has few integer values;
  categorical: counts per value), from the first dataset of a statistics list."""
  out: Dict[str, Distribution] = {}
  if statistics is None or not statistics.datasets:
    return out
  for feature in statistics.datasets[0].features:
    if feature.HasField('num_stats'):
      standard = [h for h in feature.num_stats.histograms if h.type == _STANDARD_HISTOGRAM]
      buckets = [(b.low_value, b.high_value, b.sample_count)
                 for b in (standard[0].buckets if standard else [])]
      out[_name(feature)] = {'kind': 'numeric', 'buckets': buckets, 'feature': feature,
                             'counts': small_integer_counts(feature)}
    elif feature.HasField('string_stats'):
      stats = feature.string_stats
      pairs = ([(b.label, b.sample_count) for b in stats.rank_histogram.buckets]
               or [(v.value, v.frequency) for v in stats.top_values])
      out[_name(feature)] = {'kind': 'categorical', 'counts': dict(pairs)}
  return out


def _rebin(buckets: Sequence[Bucket], edges: Sequence[float]) -> List[float]:
  """Counts of equal-width-ish buckets spread uniformly over new ``edges``."""
  counts = [0.0] * (len(edges) - 1)
  for low, high, count in buckets:
    if high <= low:  # a point bucket
      index = max(0, min(len(counts) - 1, next((i for i in range(len(counts))
                                                 if edges[i + 1] >= low), len(counts) - 1)))
      counts[index] += count
      continue
    for i in range(len(counts)):
      overlap = min(high, edges[i + 1]) - max(low, edges[i])
      if overlap > 0:
        counts[i] += count * overlap / (high - low)
  return counts


def _shares(counts: Sequence[float]) -> List[float]:
  total = sum(counts)
  return [c / total if total else 0.0 for c in counts]


def _jsd(p: Sequence[float], q: Sequence[float]) -> float:
  """Jensen-Shannon divergence (log base 2, in [0, 1]) of two distributions on the same bins."""
  def kl(a, b):
    return sum(x * math.log2(x / y) for x, y in zip(a, b) if x > 0 and y > 0)
  m = [(x + y) / 2 for x, y in zip(p, q)]
  return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def compare(a: Distribution, b: Distribution, baseline: Optional[Distribution] = None
            ) -> Comparison:
  """Two distributions of one feature (of the same kind) on common categories/bins: values for
  categorical and small-integer features (in their numeric order for the latter), else the
  deciles of ``baseline`` (``a`` unless given), the bins drift measures on (``ml.drift``)."""
  if a['kind'] == 'categorical' and b['kind'] == 'categorical':
    return _compare_counts(a['counts'], b['counts'])
  if a['kind'] == 'numeric' and b['kind'] == 'numeric':
    if a['counts'] and b['counts']:
      return _compare_counts(a['counts'], b['counts'], ordered=True)
    base = baseline if baseline is not None and baseline['kind'] == 'numeric' else a
    return _compare_deciles(a, b, base)
  raise ValueError(f'cannot compare a {a["kind"]} distribution with a {b["kind"]} one')


def _compare_deciles(a: NumericDistribution, b: NumericDistribution,
                     base: NumericDistribution) -> Comparison:
  """Numeric: shares in the baseline's decile bins (an edge repeated across deciles is a bin
  of its own), Jensen-Shannon divergence; TFDV's equal-width buckets when there are no quantiles."""
  edges = drift.quantile_edges(base['feature'])
  if not edges:
    return _compare_buckets(a['buckets'], b['buckets'])
  p, q = drift.binned_shares(a['feature'], edges), drift.binned_shares(b['feature'], edges)
  labels = [f'< {human_number(edges[0])}']
  for low, high in zip(edges, edges[1:] + [math.inf]):
    labels.append(f'= {human_number(low)}')
    labels.append(f'> {human_number(low)}' if math.isinf(high) else
                  f'{human_number(low)}–{human_number(high)}')
  keep = (p > 0) | (q > 0)
  shown = [i for i in range(len(labels)) if keep[i]]
  return {'labels': [labels[i] for i in shown], 'a': [float(p[i]) for i in shown],
          'b': [float(q[i]) for i in shown], 'measure': JSD,
          'distance': drift.jensen_shannon(np.array(p[keep]), np.array(q[keep]))}


def _compare_counts(a: Dict[str, float], b: Dict[str, float], ordered: bool = False
                    ) -> Comparison:
  """Categorical: shares of the most frequent values (``ordered``: of every value, in numeric
  order), L-infinity distance over all values."""
  values = set(a) | set(b)
  share_a = dict(zip(a, _shares(list(a.values()))))
  share_b = dict(zip(b, _shares(list(b.values()))))
  distance = max((abs(share_a.get(v, 0.0) - share_b.get(v, 0.0)) for v in values), default=0.0)
  if ordered:
    shown = sorted(values, key=float)
  else:
    shown = sorted(values, key=lambda v: -(share_a.get(v, 0.0) + share_b.get(v, 0.0)))
    shown = shown[:TOP_CATEGORIES]
  return {'labels': shown, 'a': [share_a.get(v, 0.0) for v in shown],
          'b': [share_b.get(v, 0.0) for v in shown], 'measure': L_INFTY, 'distance': distance}


def _compare_buckets(a: List[Bucket], b: List[Bucket]) -> Comparison:
  """Numeric: shares on common equal-width bins, Jensen-Shannon divergence."""
  lows = [lo for lo, _, _ in a + b]
  highs = [hi for _, hi, _ in a + b]
  if not lows:
    return {'labels': [], 'a': [], 'b': [], 'measure': JSD, 'distance': 0.0}
  low, high = min(lows), max(highs)
  width = (high - low) / NUMERIC_BINS or 1.0
  edges = [low + width * i for i in range(NUMERIC_BINS + 1)]
  bins_a, bins_b = _shares(_rebin(a, edges)), _shares(_rebin(b, edges))
  labels = [human_number(edges[i]) for i in range(NUMERIC_BINS)]
  return {'labels': labels, 'a': bins_a, 'b': bins_b, 'measure': JSD,
          'distance': _jsd(bins_a, bins_b)}


class FeatureSummary(TypedDict, total=False):
  """One feature of one split, as the statistics table shows it (``summarize``)."""

  kind: str  # numeric | categorical
  type: str  # TFDV's type: INT, FLOAT, STRING, BYTES
  count: int  # rows with a value
  missing: float  # share of the rows without a value
  mean: float
  std: float
  zeros: float  # share of the rows with a value that are 0
  min: float
  median: float  # from TFDV's quantiles histogram
  max: float
  values: int  # a small-integer feature: how many distinct values
  unique: int  # categorical: distinct values
  top: List[Tuple[str, float]]  # categorical: most frequent values and their share of count


_TYPES = {0: 'INT', 1: 'FLOAT', 2: 'STRING', 3: 'BYTES', 4: 'STRUCT'}


def quantile_median(feature) -> Optional[float]:
  """The median of a numeric feature: where its quantiles histogram reaches half the rows."""
  for histogram in feature.num_stats.histograms:
    if histogram.type == histogram.QUANTILES and histogram.buckets:
      total = sum(b.sample_count for b in histogram.buckets)
      cumulative = 0.0
      for bucket in histogram.buckets:
        cumulative += bucket.sample_count
        if cumulative >= total / 2 - 1e-9:
          return float(bucket.high_value)
  return None


def summarize(statistics: Statistics) -> Dict[str, FeatureSummary]:
  """Feature -> its summary (Facets Overview's columns) from a statistics list's first dataset."""
  out: Dict[str, FeatureSummary] = {}
  if statistics is None or not statistics.datasets:
    return out
  for feature in statistics.datasets[0].features:
    numeric = feature.HasField('num_stats')
    if not numeric and not feature.HasField('string_stats'):
      continue
    stats = feature.num_stats if numeric else feature.string_stats
    common = stats.common_stats
    count, missing = int(common.num_non_missing), int(common.num_missing)
    summary: FeatureSummary = {
        'kind': 'numeric' if numeric else 'categorical',
        'type': _TYPES.get(feature.type, str(feature.type)), 'count': count,
        'missing': missing / (count + missing) if count + missing else 0.0}
    if numeric:
      num = feature.num_stats
      summary['mean'], summary['std'] = num.mean, num.std_dev
      summary['min'], summary['max'] = num.min, num.max
      summary['zeros'] = num.num_zeros / count if count else 0.0
      median = quantile_median(feature)
      if median is not None:
        summary['median'] = median
      values = small_integer_counts(feature)
      if values:
        summary['values'] = len(values)
    else:
      top = sorted(((v.value, v.frequency) for v in feature.string_stats.top_values),
                   key=lambda vf: -vf[1])[:TOP_VALUES]
      summary['unique'] = int(feature.string_stats.unique)
      summary['top'] = [(value, frequency / count if count else 0.0) for value, frequency in top]
    out[_name(feature)] = summary
  return out


STAT_SPLITS = (('train', 'train'), ('eval', 'eval'), ('previous', "previous span's train"),
               ('serving', 'serving'))
NUMERIC_FIELDS = ('count', 'missing', 'mean', 'std', 'zeros', 'min', 'median', 'max')


def stat_text(summary: FeatureSummary, field: str) -> str:
  """How the statistics table shows one field of a summary (shares as percentages)."""
  if field == 'top':
    return ', '.join(f'{value} {human_percent(share)}' for value, share in summary.get('top', []))
  value = summary.get(field)
  if field in ('missing', 'zeros'):
    return human_percent(value)  # type: ignore[arg-type]
  return human_number(value)  # type: ignore[arg-type]


def _number_cell(text: str, key: str, cls: str = '') -> str:
  return (f'<td data-key="{html.escape(key)}"{f" class={cls}" if cls else ""}>'
          f'{html.escape(text)}</td>')


def statistics_tables(summaries: Mapping[str, Mapping[str, FeatureSummary]],
                      order: Sequence[str]) -> str:
  """The numeric and categorical tables: a row per feature and split (``summaries``: split ->
  ``summarize``'s result), each cell ``data-key="stats.<split>.<feature>.<field>"``."""
  numeric, categorical = [], []
  for name in order:
    for split, split_label in STAT_SPLITS:
      summary = summaries.get(split, {}).get(name)
      if summary is None:
        continue
      key = f'stats.{split}.{name}'
      if summary['kind'] == 'numeric':
        kind = summary['type'].lower()
        if 'values' in summary:
          kind += f', {summary["values"]} values'
        numeric.append([name, split_label, kind] + [
            _number_cell(stat_text(summary, field), f'{key}.{field}') for field in NUMERIC_FIELDS])
      else:
        categorical.append([name, split_label, summary['type'].lower(),
                            _number_cell(stat_text(summary, 'count'), f'{key}.count'),
                            _number_cell(stat_text(summary, 'missing'), f'{key}.missing'),
                            _number_cell(stat_text(summary, 'unique'), f'{key}.unique'),
                            _number_cell(stat_text(summary, 'top'), f'{key}.top', 'values')])
  parts = []
  if numeric:
    parts += ['<h3>Numeric features</h3>', page.scroll(page.table(
        ['feature', 'split', 'type', 'count', 'missing', 'mean', 'std', 'zeros', 'min', 'median',
         'max'], numeric))]
  if categorical:
    parts += ['<h3>Categorical features</h3>', page.scroll(page.table(
        ['feature', 'split', 'type', 'count', 'missing', 'unique', 'top values'], categorical))]
  return ''.join(parts) or '<p class="muted">No statistics.</p>'


def flag(distance: Distance) -> Optional[str]:
  """Why a distance is flagged: "over threshold" when the verdict says so, "large, no threshold
  set" when it is at least ``LARGE_DISTANCE`` and only the default threshold (raised to the noise
  floor) applied to it; None when neither."""
  if distance['exceeded']:
    return 'over threshold'
  if (distance['value'] >= LARGE_DISTANCE
      and distance.get('threshold_source', 'default') not in ('spec', 'schema')):
    return 'large, no threshold set'
  return None


def _flags(verdict: VerdictDocument) -> str:
  """Every flagged distance, named at the top of the page."""
  items = []
  for kind, distances in _measured(verdict):
    for d in distances:
      why = flag(d)
      if why:
        cls = 'fail' if d['exceeded'] else 'warn'
        items.append(f'<li class="{cls}"><a href="#feature-{html.escape(d["feature"])}">'
                     f'{html.escape(d["feature"])}</a>: {kind} {html.escape(d["measure"])} '
                     f'{page.number(d["value"])}, threshold {page.number(d["threshold"])}: '
                     f'<span data-key="flag.{kind}.{html.escape(d["feature"])}">{why}</span></li>')
  if not items:
    return ''
  return f'<ul id="flags">{"".join(items)}</ul>'


def _measured(verdict: VerdictDocument) -> Tuple[Tuple[str, List[Distance]], ...]:
  """(check, its distances): drift, then skew."""
  return ('drift', verdict['drift']), ('skew', verdict['skew'])


def _order(verdict: VerdictDocument, names: Sequence[str]) -> List[str]:
  """Anomalous features first, then those over a drift/skew threshold, then those with a large
  distance and no threshold set, then the rest."""
  anomalous = {a['feature'] for a in verdict['anomalies'] if a.get('feature')}
  exceeded = {d['feature'] for d in verdict['drift'] + verdict['skew'] if d['exceeded']}
  large = {d['feature'] for d in verdict['drift'] + verdict['skew'] if flag(d)}
  return sorted(names, key=lambda n: (n not in anomalous, n not in exceeded, n not in large, n))


_SOURCES = {'spec': 'spec', 'schema': 'schema', 'default': 'default (none set)'}


def _distance_rows(verdict: VerdictDocument, floors: Dict[str, float]) -> str:
  rows, classes = [], []
  for kind, distances in _measured(verdict):
    for d in sorted(distances, key=lambda d: (not d['exceeded'], flag(d) is None, d['feature'])):
      why = flag(d)
      source = _SOURCES.get(d.get('threshold_source', ''), 'n/a')
      configured = d.get('configured_threshold')
      if configured is not None and d['threshold'] > configured:
        source += f', {human_number(configured)} raised to the noise floor'
      rows.append([d['feature'], kind, d['measure'],
                   page.cell(d['value'], f'{kind}.{d["feature"]}.value'),
                   page.cell(d['threshold'], f'{kind}.{d["feature"]}.threshold'),
                   source, d.get('noise_floor', floors.get(d['feature'])),
                   f'<td class="text {"fail" if d["exceeded"] else "warn"}" '
                   f'data-key="{kind}.{html.escape(d["feature"])}.result">{why}</td>' if why else
                   f'<td class="text pass" data-key="{kind}.{html.escape(d["feature"])}.result">'
                   'within</td>'])
      classes.append('fail' if d['exceeded'] else 'warn' if why else '')
  header = ['feature', 'check', 'measure', 'distance', 'threshold', 'threshold set by',
            'noise floor', 'result']
  return page.scroll(page.table(header, rows, classes))


MEASURED_FLOOR = ('computed by validation: the distance two samples of one population, of the '
                  'sizes compared, stay under 95 times in 100')
ESTIMATED_FLOOR = 'estimated from the train and eval histograms of this span'


def noise_floors(verdict: VerdictDocument, current: Mapping[str, Distribution],
                 evaluation: Mapping[str, Distribution]) -> Tuple[Dict[str, float], str]:
  """Each feature's noise floor and where it comes from: the one validation computed
  (``ml.drift``) when the verdict has it, else an estimate from the train and eval histograms."""
  measured = verdict.get('noise_floor') or {}
  if measured:
    return {f: v['noise_floor'] for f, v in measured.items()}, MEASURED_FLOOR
  return ({name: compare(current[name], evaluation[name])['distance'] for name in current
           if name in evaluation and current[name]['kind'] == evaluation[name]['kind']},
          ESTIMATED_FLOOR)


def _feature_section(name: str, verdict: VerdictDocument, current: Mapping[str, Distribution],
                     evaluation: Mapping[str, Distribution], previous: Mapping[str, Distribution],
                     floors: Dict[str, float], serving: Mapping[str, Distribution],
                     floor_source: str) -> str:
  anomalies = [a for a in verdict['anomalies'] if a.get('feature') == name]
  measured = [(k, d) for k, distances in _measured(verdict) for d in distances
              if d['feature'] == name]
  badges = ''.join(f'<span class="badge anomalous">{html.escape(", ".join(a["types"]))}</span>'
                   for a in anomalies)
  badges += ''.join(f'<span class="badge {"fail" if d["exceeded"] else "warn"}">{k} {flag(d)}'
                    '</span>' for k, d in measured if flag(d))
  parts = [f'<section class="feature" id="feature-{html.escape(name)}">'
           f'<h3>{html.escape(name)}{badges}</h3>']
  for a in anomalies:
    parts.append(f'<p class="anomalous">{html.escape(a["description"])}</p>')
  figures = []
  for kind, d in measured:
    figures.append(page.figure(
        charts.distance_meter(f'{kind}-{name}', d['value'], d['threshold'], floors.get(name)),
        f'{kind}: {d["measure"]} {page.number(d["value"])} against threshold '
        f'{page.number(d["threshold"])}; grey: noise floor '
        f'{page.number(floors.get(name))} ({floor_source})'))
  for other, key, names, caption, against_other in (
      (previous, 'span-vs-previous', ('this span (train)', 'previous span (train)'),
       'This span against the previous one', True),
      (serving, 'train-vs-serving', ('train', 'serving'), 'Training against serving data', False),
      (evaluation, 'train-vs-eval', ('train', 'eval'), 'Train against eval of this span', False)):
    if name not in other or other[name]['kind'] != current[name]['kind']:
      continue
    c = compare(current[name], other[name], other[name] if against_other else None)
    if c['labels']:
      figures.append(page.figure(
          charts.bar_chart(f'{key}-{name}', c['labels'], {names[0]: c['a'], names[1]: c['b']},
                           'share of rows'),
          f'{caption} ({c["measure"]} {page.number(c["distance"])} on these '
          f'{_bins_are(current[name])}).'))
  if not figures:
    parts.append('<p class="muted">No values to chart (no statistics for this feature).</p>')
  parts.append(f'<div class="charts">{"".join(figures)}</div></section>')
  return ''.join(parts)


def _bins_are(distribution: Distribution) -> str:
  if distribution['kind'] == 'categorical':
    return 'values'
  return 'values (few integers)' if distribution['counts'] else "bins (the baseline's deciles)"


def _headline(verdict: VerdictDocument) -> str:
  """The verdict's message in words (its anomalous form names features as a Python list)."""
  anomalies = verdict['anomalies']
  if verdict['status'] != 'anomalous' or not anomalies:
    return verdict['message']
  named = sorted({a.get('feature') or a.get('split') or 'dataset' for a in anomalies})
  count = len(anomalies)
  return (f'{count} anomal{"y" if count == 1 else "ies"} in {", ".join(named)}: '
          'training is blocked')


def render(verdict: VerdictDocument, statistics: Mapping[str, Statistics],
           previous: Statistics = None) -> str:
  """verdict.json + statistics protos per split (train, eval[, serving]) + the previous span's
  train statistics (or None) -> a standalone HTML page."""
  status = verdict['status']
  current = feature_distributions(statistics.get('train'))
  evaluation = feature_distributions(statistics.get('eval'))
  before = feature_distributions(previous)
  serving = feature_distributions(statistics.get('serving'))
  floors, floor_source = noise_floors(verdict, current, evaluation)
  rows = verdict.get('rows', {})
  parts = [f'<h1>Data validation: <span class="{status}" id="status">{status}</span></h1>',
           f'<p>{html.escape(_headline(verdict))}</p>', _flags(verdict),
           page.table(['split', 'rows'], [[split, page.cell(count, f'rows.{split}')]
                                          for split, count in rows.items()]
                      + ([['dead-lettered', page.cell(verdict['rows_dead_lettered'],
                                                      'rows.dead_lettered')]]
                         if verdict.get('rows_dead_lettered') is not None else [])),
           '<h2>Anomalies</h2>']
  anomalies = verdict['anomalies']
  parts.append(page.scroll(page.table(['feature', 'split', 'types', 'description'],
                                      [[a.get('feature') or 'dataset', a.get('split') or 'csv',
                                        a['types'], a['description']] for a in anomalies],
                                      ['fail'] * len(anomalies)))
               if anomalies else '<p class="ok">No anomaly.</p>')
  warnings = verdict.get('warnings') or []
  if warnings:
    parts.append('<h2>Warnings</h2>')
    parts.append(page.scroll(page.table(
        ['feature', 'split', 'types', 'description'],
        [[w.get('feature') or 'dataset', w.get('split') or 'csv', w['types'], w['description']]
         for w in warnings], ['warn'] * len(warnings))))
  parts.append('<h2>Drift and skew</h2>')
  parts.append('<p class="small muted">Drift: this span against the previous span; skew: '
               f'training against serving. Noise floor: {html.escape(floor_source)}. Flagged: '
               'a distance over its threshold, or of at least '
               f'{human_number(LARGE_DISTANCE)} when no threshold was set for it.</p>')
  parts.append(_distance_rows(verdict, floors) if verdict['drift'] or verdict['skew'] else
               '<p class="muted">Not checked (no previous span or serving data given).</p>')
  order = _order(verdict, list(current))
  summaries = {split: summarize(stats) for split, stats in (
      ('train', statistics.get('train')), ('eval', statistics.get('eval')),
      ('previous', previous), ('serving', statistics.get('serving')))}
  parts.append('<h2>Statistics per split</h2>')
  parts.append('<p class="small muted">From the TFDV statistics of each split. Count: rows with '
               'a value; missing: share of the rows without one; zeros: share of the counted '
               'values that are 0; median: from the quantiles histogram; top values: share of '
               'the count. A numeric column of integers with at most '
               f'{MAX_CATEGORY_VALUES} distinct values is charted one bar per value.</p>')
  parts.append(statistics_tables(summaries, order + sorted(
      {n for split in summaries.values() for n in split} - set(order))))
  parts.append('<h2>Features</h2>')
  missing = sorted({feature for feature in (a['feature'] for a in anomalies)
                    if feature and feature not in current})
  for name in missing:  # anomalies first, even those without statistics (a missing column)
    parts.append(f'<section class="feature"><h3>{html.escape(name)}'
                 f'<span class="badge anomalous">no statistics</span></h3></section>')
  for name in order:
    parts.append(_feature_section(name, verdict, current, evaluation, before, floors, serving,
                                  floor_source))
  return page.shell(f'Data validation: {status}', '\n'.join(parts))
