"""Drift and skew distances from two TFDV statistics, made for heavy tails and small samples.

Numeric features are compared on the *baseline's quantile bins*: the edges are the baseline's
deciles (from its quantile histogram), so one huge value cannot stretch the bins the way TFDV's
ten equal-width buckets do (one $700 fare put 99.9% of the rows in the first bucket). Each side's
mass per bin is read off its own quantile histogram (linear inside a bucket, a point mass where a
bucket's low and high are equal). Categorical features are compared on their value counts (TFDV's
rank histogram: up to 1,000 values; the rest counts as one "other" value).

Measures (all in [0, 1]):

- ``jensen_shannon``: the Jensen-Shannon divergence, base 2; numeric or categorical.
- ``l_infinity``: the largest difference in one value's share; categorical only.
- ``normalized_abs_difference``: half the sum of the differences in share (the total variation
  distance); categorical only.

The **noise floor** of a comparison is the distance two samples of one population, of the sizes
compared, stay under 95 times in 100: what sampling noise alone reaches. It is computed, not
guessed: for Jensen-Shannon, ``8 ln2 · n_eff · JS`` is close to chi-squared with ``k - 1``
degrees of freedom (``k`` bins or values, ``n_eff = 1 / (1/n + 1/m)``); for a share it is the
normal bound of the largest value's difference (Bonferroni over the values); for the total
variation, the sum of the values' expected differences. A threshold at or below it fires on noise:
the threshold applied is never below the noise floor (the verdict says when it was raised). The
same definition gives the noise floor the report draws and the thresholds ``--write_schema``
suggests.

Nothing here imports TFDV or TensorFlow: it reads the statistics protos only.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from beam_pipelines.ml import spec as spec_lib

MEASURE_NAMES = {spec_lib.L_INFINITY: 'L_INFTY',
                 spec_lib.JENSEN_SHANNON: 'JENSEN_SHANNON_DIVERGENCE',
                 spec_lib.NORMALIZED_ABS_DIFFERENCE: 'NORMALIZED_ABSOLUTE_DIFFERENCE'}
DEFAULT_THRESHOLDS = {spec_lib.JENSEN_SHANNON: 0.1, spec_lib.L_INFINITY: 0.1,
                      spec_lib.NORMALIZED_ABS_DIFFERENCE: 0.1}  # a spec without thresholds
OTHER = '\x00other'  # the values beyond the rank histogram
CONFIDENCE = 0.95
_Z95 = 1.6448536269514722  # one-sided 95% normal quantile


@dataclasses.dataclass(frozen=True)
class Comparison:
  """One feature's distance between a baseline and a current sample."""
  feature: str
  measure: str  # a spec measure name
  value: float
  noise_floor: float
  n_baseline: int
  n_current: int


def feature_statistics(statistics) -> Dict[str, object]:
  """Feature name -> its FeatureNameStatistics (the first dataset of a statistics list)."""
  if not statistics.datasets:
    return {}
  found = {}
  for feature in statistics.datasets[0].features:
    name = '.'.join(feature.path.step) if feature.path.step else feature.name
    found[name] = feature
  return found


def _common(feature):
  stats = feature.num_stats if feature.HasField('num_stats') else feature.string_stats
  return stats.common_stats


def non_missing(feature) -> int:
  return int(_common(feature).num_non_missing)


def _quantile_buckets(feature) -> List[Tuple[float, float, float]]:
  for histogram in feature.num_stats.histograms:
    if histogram.type == histogram.QUANTILES:
      return [(b.low_value, b.high_value, b.sample_count) for b in histogram.buckets
              if b.sample_count > 0]
  return []


def _cdf(buckets: Sequence[Tuple[float, float, float]], x: float, strict: bool = False) -> float:
  """Share of the sample at or below ``x`` (``strict``: below it), linear inside a bucket; a
  bucket whose low and high are equal is a point mass."""
  total = sum(count for _, _, count in buckets)
  if not total:
    return 0.0
  below = 0.0
  for low, high, count in buckets:
    if high > low:
      below += count * min(max((x - low) / (high - low), 0.0), 1.0)
    elif x > low or (x == low and not strict):
      below += count
  return below / total


def quantile_edges(feature, bins: int = 10) -> List[float]:
  """The inner edges of a numeric feature's quantile bins (its deciles), without repeats."""
  buckets = _quantile_buckets(feature)
  if not buckets:
    return []
  total = sum(count for _, _, count in buckets)
  edges, cumulative, wanted = [], 0.0, 1
  for low, high, count in buckets:
    cumulative += count
    while wanted < bins and cumulative >= total * wanted / bins - 1e-9:
      edges.append(high)
      wanted += 1
  return sorted(set(edges))


def binned_shares(feature, edges: Sequence[float]) -> np.ndarray:
  """Shares of a numeric feature's sample in the bins (-inf, e1), [e1], (e1, e2), [e2], ...,
  (ek, inf): an edge is a bin of its own, so a value repeated across deciles (a 0/1 column, a
  constant) is compared as the point mass it is."""
  buckets = _quantile_buckets(feature)
  points = [0.0]
  for edge in edges:
    points += [_cdf(buckets, edge, strict=True), _cdf(buckets, edge)]
  points.append(1.0)
  return np.clip(np.diff(np.array(points)), 0.0, None)


def value_counts(feature) -> Dict[str, float]:
  """Counts of a categorical feature's values (the rank histogram; the rest as ``OTHER``)."""
  string_stats = feature.string_stats
  counts: Dict[str, float] = {}
  if string_stats.rank_histogram.buckets:
    for bucket in string_stats.rank_histogram.buckets:
      counts[bucket.label] = counts.get(bucket.label, 0.0) + float(bucket.sample_count)
  else:
    for top in string_stats.top_values:
      counts[top.value] = counts.get(top.value, 0.0) + float(top.frequency)
  common = string_stats.common_stats
  total = float(common.tot_num_values or common.num_non_missing)
  rest = total - sum(counts.values())
  if rest > 0.5:
    counts[OTHER] = rest
  return counts


def value_shares(feature) -> Dict[str, float]:
  """Shares of a categorical feature's values (the rank histogram; the rest as ``OTHER``)."""
  counts = value_counts(feature)
  total = sum(counts.values())
  return {k: v / total for k, v in counts.items()} if total else {}


def jensen_shannon(p: np.ndarray, q: np.ndarray) -> float:
  """The Jensen-Shannon divergence of two distributions, base 2 (0 = same, 1 = disjoint)."""
  p = p / p.sum() if p.sum() else p
  q = q / q.sum() if q.sum() else q
  m = (p + q) / 2

  def kl(a: np.ndarray) -> float:
    mask = a > 0
    return float(np.sum(a[mask] * np.log2(a[mask] / m[mask])))
  return max(0.0, min(1.0, (kl(p) + kl(q)) / 2))


def _chi2_quantile(degrees: int, probability: float = CONFIDENCE) -> float:
  from scipy.stats import chi2  # scikit-learn's dependency: always installed
  return float(chi2.ppf(probability, max(degrees, 1)))


def noise_floor(measure: str, baseline_shares: np.ndarray, n_baseline: int,
                n_current: int) -> float:
  """The distance two samples of one population (the baseline's shares), of sizes ``n_baseline``
  and ``n_current``, stay under 95 times in 100 (see the module docstring)."""
  if n_baseline <= 0 or n_current <= 0:
    return 1.0
  inverse = 1.0 / n_baseline + 1.0 / n_current
  shares = baseline_shares[baseline_shares > 0]
  if measure == spec_lib.JENSEN_SHANNON:
    k = max(len(shares), 2)
    return min(1.0, _chi2_quantile(k - 1) * inverse / (8 * math.log(2)))
  errors = np.sqrt(shares * (1 - shares) * inverse)
  if measure == spec_lib.L_INFINITY:
    from scipy.stats import norm
    z = float(norm.ppf(1 - (1 - CONFIDENCE) / (2 * max(len(shares), 1))))
    return min(1.0, z * float(errors.max(initial=0.0)))
  # total variation: half the sum of expected absolute differences, plus its own spread
  expected = math.sqrt(2 / math.pi) * float(errors.sum()) / 2
  spread = math.sqrt(1 - 2 / math.pi) * float(np.sqrt(np.sum(errors ** 2))) / 2
  return min(1.0, expected + _Z95 * spread)


def is_binary(feature) -> bool:
  """A numeric feature whose values are all 0 or 1 (its quantile buckets cannot place the mass
  of a bucket spanning 0 to 1; its mean can)."""
  if not feature.HasField('num_stats'):
    return False
  buckets = _quantile_buckets(feature)
  ends = {v for low, high, _ in buckets for v in (low, high)}
  return bool(buckets) and ends <= {0.0, 1.0}


def _aligned_shares(base: Dict[str, float], cur: Dict[str, float]
                    ) -> Tuple[np.ndarray, np.ndarray]:
  """Both sides' shares over the same values. When a side lists only its most frequent values
  (the rest in ``OTHER``), a value listed on one side only may hide in the other's ``OTHER``: such
  values are folded into ``OTHER`` on both sides, so truncation never reads as drift."""
  if OTHER in base or OTHER in cur:
    listed = (set(base) & set(cur)) - {OTHER}
    base = _fold(base, listed)
    cur = _fold(cur, listed)
  values = sorted(set(base) | set(cur))
  return (np.array([base.get(v, 0.0) for v in values]),
          np.array([cur.get(v, 0.0) for v in values]))


def _fold(shares: Dict[str, float], listed: set) -> Dict[str, float]:
  folded = {v: s for v, s in shares.items() if v in listed}
  rest = sum(s for v, s in shares.items() if v not in listed)
  if rest > 0:
    folded[OTHER] = rest
  return folded


def compare(name: str, baseline, current, measure: str) -> Optional[Comparison]:
  """The distance of one feature between two FeatureNameStatistics, or None when either side has
  no value (presence is the schema's check, not drift's)."""
  n, m = non_missing(baseline), non_missing(current)
  if not n or not m:
    return None
  if is_binary(baseline) and is_binary(current):  # a 0/1 column: its mean is its share of 1s
    p = np.array([1 - baseline.num_stats.mean, baseline.num_stats.mean])
    q = np.array([1 - current.num_stats.mean, current.num_stats.mean])
  elif baseline.HasField('num_stats') and current.HasField('num_stats'):
    edges = quantile_edges(baseline)
    p, q = binned_shares(baseline, edges), binned_shares(current, edges)
    keep = (p > 0) | (q > 0)  # a bin empty on both sides is no bin
    p, q = p[keep], q[keep]
  else:
    p, q = _aligned_shares(value_shares(baseline), value_shares(current))
  if measure == spec_lib.JENSEN_SHANNON:
    value = jensen_shannon(p, q)
  elif measure == spec_lib.L_INFINITY:
    value = float(np.max(np.abs(p - q), initial=0.0))
  else:
    value = float(np.abs(p - q).sum() / 2)
  return Comparison(name, measure, round(value, 6), round(noise_floor(measure, p, n, m), 6), n, m)


def suggested_threshold(floor: float) -> float:
  """A threshold above a noise floor that can still fire: twice it plus 0.02, rounded up to
  0.01, and never above 0.9 (the measures stop at 1)."""
  return min(0.9, math.ceil((2 * floor + 0.02) * 100) / 100)


@dataclasses.dataclass(frozen=True)
class RateShift:
  """The label's positive rate in a baseline and a current sample."""
  baseline_rate: float
  rate: float
  difference: float
  noise_floor: float  # the difference sampling alone stays under 95 times in 100 (two-sided)

  @property
  def beyond_noise(self) -> bool:
    return abs(self.difference) > self.noise_floor


def label_shift(baseline, current) -> Optional[RateShift]:
  """The shift of a 0/1 label's positive rate (its mean), or None without values."""
  if not (baseline.HasField('num_stats') and current.HasField('num_stats')):
    return None
  n, m = non_missing(baseline), non_missing(current)
  if not n or not m:
    return None
  before, after = baseline.num_stats.mean, current.num_stats.mean
  pooled = (before * n + after * m) / (n + m)
  floor = 1.959963984540054 * math.sqrt(max(pooled * (1 - pooled), 0.0) * (1 / n + 1 / m))
  return RateShift(round(before, 6), round(after, 6), round(after - before, 6), round(floor, 6))


def wilson_lower_bound(count: int, total: int, z: float = _Z95) -> float:
  """The one-sided 95% lower bound of a share ``count / total`` (Wilson's interval): a share
  judged on a small sample counts only what the sample shows beyond doubt."""
  if total <= 0:
    return 0.0
  p = count / total
  centre = p + z * z / (2 * total)
  margin = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total))
  return max(0.0, (centre - margin) / (1 + z * z / total))
