"""The validation's HTML page: verdict, anomalies first, then per feature the distribution of this
span against the previous span and of train against eval, with the drift/skew distance against
its threshold and the noise floor. Self-contained (inline SVG), unlike TFDV's Facets view, which
loads its script from CDNs when opened.

Statistics are TFDV ``DatasetFeatureStatisticsList`` protos, read by attribute only (no
TensorFlow import here). The noise floor of a distance is the one validation computed for it
(``beam_pipelines.ml.drift``: what two samples of one population, of the sizes compared, stay
under 95 times in 100); a verdict written before validation computed it gets an estimate here:
the distance between the train and eval splits of the same span.
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

from beam_pipelines.ml.artifacts import Distance, VerdictDocument
from beam_pipelines.pages import charts, page

if TYPE_CHECKING:  # protobuf classes only, for the type checker: no TensorFlow import here
  from tensorflow_metadata.proto.v0.statistics_pb2 import DatasetFeatureStatisticsList

NUMERIC_BINS = 12
TOP_CATEGORIES = 12
L_INFTY, JSD = 'L_INFTY', 'JENSEN_SHANNON_DIVERGENCE'
_STANDARD_HISTOGRAM = 0  # Histogram.HistogramType.STANDARD


Statistics = Optional['DatasetFeatureStatisticsList']
Bucket = Tuple[float, float, float]  # (low, high, count)


class NumericDistribution(TypedDict):
  kind: Literal['numeric']
  buckets: List[Bucket]


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


def feature_distributions(statistics: Statistics) -> Dict[str, Distribution]:
  """Feature -> its distribution (numeric: buckets; categorical: counts per value), from the first
  dataset of a statistics list."""
  out: Dict[str, Distribution] = {}
  if statistics is None or not statistics.datasets:
    return out
  for feature in statistics.datasets[0].features:
    if feature.HasField('num_stats'):
      standard = [h for h in feature.num_stats.histograms if h.type == _STANDARD_HISTOGRAM]
      buckets = [(b.low_value, b.high_value, b.sample_count)
                 for b in (standard[0].buckets if standard else [])]
      out[_name(feature)] = {'kind': 'numeric', 'buckets': buckets}
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


def compare(a: Distribution, b: Distribution) -> Comparison:
  """Two distributions of one feature (of the same kind) on common categories/bins."""
  if a['kind'] == 'categorical' and b['kind'] == 'categorical':
    return _compare_counts(a['counts'], b['counts'])
  if a['kind'] == 'numeric' and b['kind'] == 'numeric':
    return _compare_buckets(a['buckets'], b['buckets'])
  raise ValueError(f'cannot compare a {a["kind"]} distribution with a {b["kind"]} one')


def _compare_counts(a: Dict[str, float], b: Dict[str, float]) -> Comparison:
  """Categorical: shares of the most frequent values, L-infinity distance over all values."""
  values = set(a) | set(b)
  share_a = dict(zip(a, _shares(list(a.values()))))
  share_b = dict(zip(b, _shares(list(b.values()))))
  distance = max((abs(share_a.get(v, 0.0) - share_b.get(v, 0.0)) for v in values), default=0.0)
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
  labels = [f'{edges[i]:.3g}' for i in range(NUMERIC_BINS)]
  return {'labels': labels, 'a': bins_a, 'b': bins_b, 'measure': JSD,
          'distance': _jsd(bins_a, bins_b)}


def _measured(verdict: VerdictDocument) -> Tuple[Tuple[str, List[Distance]], ...]:
  """(check, its distances): drift, then skew."""
  return ('drift', verdict['drift']), ('skew', verdict['skew'])


def _order(verdict: VerdictDocument, names: Sequence[str]) -> List[str]:
  """Anomalous features first, then those over a drift/skew threshold, then the rest."""
  anomalous = {a['feature'] for a in verdict['anomalies'] if a.get('feature')}
  exceeded = {d['feature'] for d in verdict['drift'] + verdict['skew'] if d['exceeded']}
  return sorted(names, key=lambda n: (n not in anomalous, n not in exceeded, n))


def _distance_rows(verdict: VerdictDocument, floors: Dict[str, float]) -> str:
  rows, classes = [], []
  for kind, distances in _measured(verdict):
    for d in sorted(distances, key=lambda d: (not d['exceeded'], d['feature'])):
      rows.append([d['feature'], kind, d['measure'],
                   page.cell(d['value'], f'{kind}.{d["feature"]}.value'),
                   page.cell(d['threshold'], f'{kind}.{d["feature"]}.threshold'),
                   d.get('noise_floor', floors.get(d['feature'])),
                   '<td class="text fail">over threshold</td>' if d['exceeded'] else
                   '<td class="text pass">within</td>'])
      classes.append('fail' if d['exceeded'] else '')
  header = ['feature', 'check', 'measure', 'distance', 'threshold', 'noise floor', 'result']
  return page.table(header, rows, classes)


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
  badges += ''.join(f'<span class="badge fail">{k} over threshold</span>'
                    for k, d in measured if d['exceeded'])
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
  for other, key, names, caption in (
      (previous, 'span-vs-previous', ('this span (train)', 'previous span (train)'),
       'This span against the previous one'),
      (serving, 'train-vs-serving', ('train', 'serving'), 'Training against serving data'),
      (evaluation, 'train-vs-eval', ('train', 'eval'), 'Train against eval of this span')):
    if name not in other or other[name]['kind'] != current[name]['kind']:
      continue
    c = compare(current[name], other[name])
    if c['labels']:
      figures.append(page.figure(
          charts.bar_chart(f'{key}-{name}', c['labels'], {names[0]: c['a'], names[1]: c['b']},
                           'share of rows'),
          f'{caption} ({c["measure"]} {page.number(c["distance"])} on these bins).'))
  if not figures:
    parts.append('<p class="muted">No values to chart (no statistics for this feature).</p>')
  parts.append(f'<div class="charts">{"".join(figures)}</div></section>')
  return ''.join(parts)


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
           f'<p>{html.escape(_headline(verdict))}</p>',
           page.table(['split', 'rows'], [[split, page.cell(count, f'rows.{split}')]
                                          for split, count in rows.items()]
                      + ([['dead-lettered', page.cell(verdict['rows_dead_lettered'],
                                                      'rows.dead_lettered')]]
                         if verdict.get('rows_dead_lettered') is not None else [])),
           '<h2>Anomalies</h2>']
  anomalies = verdict['anomalies']
  parts.append(page.table(['feature', 'split', 'types', 'description'],
                          [[a.get('feature') or 'dataset', a.get('split') or 'csv', a['types'],
                            a['description']] for a in anomalies],
                          ['fail'] * len(anomalies))
               if anomalies else '<p class="ok">No anomaly.</p>')
  parts.append('<h2>Drift and skew</h2>')
  parts.append('<p class="small muted">Drift: this span against the previous span; skew: '
               f'training against serving. Noise floor: {html.escape(floor_source)}.</p>')
  parts.append(_distance_rows(verdict, floors) if verdict['drift'] or verdict['skew'] else
               '<p class="muted">Not checked (no previous span or serving data given).</p>')
  parts.append('<h2>Features</h2>')
  missing = sorted({feature for feature in (a['feature'] for a in anomalies)
                    if feature and feature not in current})
  for name in missing:  # anomalies first, even those without statistics (a missing column)
    parts.append(f'<section class="feature"><h3>{html.escape(name)}'
                 f'<span class="badge anomalous">no statistics</span></h3></section>')
  for name in _order(verdict, list(current)):
    parts.append(_feature_section(name, verdict, current, evaluation, before, floors, serving,
                                  floor_source))
  return page.shell(f'Data validation: {status}', '\n'.join(parts))
