"""Binary-classification metrics as Beam ``CombineFn``s over ``(label, probability)`` pairs.

An element is one pair, or a batch as two arrays ``(labels, probabilities)``: a scored batch then
costs a few numpy calls, not one Python call per example, and gives exactly the same metrics.

Each combiner's accumulator is small and mergeable, so the metrics are computed at any scale and
per key (slice) with ``CombinePerKey``:

- ``ExampleCountCombineFn``: examples and positives.
- ``AccuracyCombineFn``: share of examples where ``probability >= 0.5`` equals the label.
- ``LogLossCombineFn``: mean of ``-(y log p + (1 - y) log(1 - p))``, ``p`` clipped to
  ``[eps, 1 - eps]`` with float64's machine epsilon, as scikit-learn's ``log_loss``; the sum is
  kept exactly, so the result is the same whatever the order or the number of workers.
- ``BrierScoreCombineFn``: mean of ``(p - y)**2`` (scikit-learn's ``brier_score_loss``), summed
  exactly like the log loss.
- ``AucCombineFn``: ROC AUC from a histogram of scores in ``num_buckets`` equal-width buckets over
  [0, 1] (default 10,000, like TFMA's default thresholds): pairs (positive, negative) in different
  buckets are ordered exactly; pairs sharing a bucket count as ties (1/2). The result carries
  ``auc_error_bound`` = 1/2 x (pairs sharing a bucket) / (all pairs), an upper bound on
  |histogram AUC - exact AUC|; on well-spread scores it is of the order of 1e-4 or less. A score
  ``p`` falls in bucket ``k`` exactly when ``k/N <= p < (k+1)/N`` (``bucket_of``), so counts
  above a bucket edge are the exact counts of ``p >= k/N``.
- ``ProbabilitySumsCombineFn``: the exact sum of ``p`` in each of the 10 calibration bins.
- ``ConfusionCountsCombineFn``: TP, FP, TN, FN of ``p >= threshold`` at one fixed threshold.
- ``BinaryMetricsCombineFn``: all of the above in one pass, returning a metrics dict (plus
  precision, recall, F1 and the confusion matrix at a decision threshold, average precision,
  the expected calibration error) and ``curves`` (``roc_and_calibration``, ``pr_curve``): ROC and
  precision/recall at 101 thresholds and a 10-bin calibration (reliability) table with counts.
- ``PairedAucCombineFn``: two models scored on the same rows, ``(keys, labels, candidate,
  baseline)`` arrays -> their exact AUCs, the difference and DeLong's standard error of it
  (``delong``), on a bounded, deterministic sample of the rows (at most 200,000 by default);
  ``PairedMetricsCombineFn``: the same, and log loss and Brier score compared on the same sample
  (``paired_mean``: the standard error of a difference of means is sd(per-row differences)/sqrt(n)).

The decision threshold: fixed (``threshold=``), or by the rule ``max_f1``: the bucket edge
``k/10,000`` maximising F1 on these rows, read from the histogram (ties: the middle edge of the
first run of edges with the highest F1, i.e. the middle of the gap between two scores); with no
positive row, 0.5. The counts at an edge are exact (not an approximation), so precision, recall,
F1 and the confusion matrix equal scikit-learn's at that threshold.

Average precision (AUC-PR) is read from the same histogram: buckets are swept from the top, each
bucket adding (its positives / all positives) x the precision with the whole bucket included, as
scikit-learn's ``average_precision_score`` does for tied scores. Only buckets holding both classes
can differ from the exact value: ``average_precision_error_bound`` sums, over them, the bucket's
weight times how far its precision can move whatever the order inside it; it is 0 when no bucket
mixes the classes.

Expected calibration error: the 10 equal-width score bins of the calibration table, ``sum over
bins of (bin count / all) x |mean p of the bin - positive rate of the bin|``, with the exact mean.

A metric that is undefined (AUC with a single class, anything on no examples) is NaN.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Dict, List, Optional, Tuple, TypedDict, Union

import apache_beam as beam
import numpy as np

from beam_pipelines.ml.artifacts import DELONG, Curves, MetricComparison

LabelAndScore = Tuple[int, float]
Scored = Union[LabelAndScore, Tuple[np.ndarray, np.ndarray]]  # one example, or arrays of them

EXAMPLE_COUNT, POSITIVE_COUNT = 'example_count', 'positive_count'
AUC, AUC_ERROR_BOUND, ACCURACY, LOG_LOSS = 'auc', 'auc_error_bound', 'accuracy', 'log_loss'
BRIER_SCORE, EXPECTED_CALIBRATION_ERROR = 'brier_score', 'expected_calibration_error'
AVERAGE_PRECISION, AVERAGE_PRECISION_ERROR_BOUND = (
    'average_precision', 'average_precision_error_bound')
THRESHOLD, PRECISION, RECALL, F1 = 'threshold', 'precision', 'recall', 'f1'
TRUE_POSITIVES, FALSE_POSITIVES = 'true_positives', 'false_positives'
TRUE_NEGATIVES, FALSE_NEGATIVES = 'true_negatives', 'false_negatives'
METRIC_NAMES = (EXAMPLE_COUNT, POSITIVE_COUNT, AUC, AUC_ERROR_BOUND, ACCURACY, LOG_LOSS,
                BRIER_SCORE, EXPECTED_CALIBRATION_ERROR, AVERAGE_PRECISION,
                AVERAGE_PRECISION_ERROR_BOUND, THRESHOLD, PRECISION, RECALL, F1, TRUE_POSITIVES,
                FALSE_POSITIVES, TRUE_NEGATIVES, FALSE_NEGATIVES)
CURVES = 'curves'  # not a metric: the ROC, PR and calibration points of the report's charts
HISTOGRAM = 'histogram'  # not a metric: the score histogram, to re-read at another threshold
DEFAULT_BUCKETS = 10_000
CALIBRATION_BINS = 10
MAX_F1, FIXED = 'max_f1', 'fixed'  # threshold rules
FALLBACK_THRESHOLD = 0.5  # max_f1 without a positive row
_EPS = float(np.finfo(np.float64).eps)


def as_arrays(element: Scored) -> Tuple[np.ndarray, np.ndarray]:
  """(label, p) or (labels, probabilities) arrays -> (int64 labels 0/1, float64 probabilities)."""
  labels, scores = element
  return (np.atleast_1d(np.asarray(labels)).astype(bool).astype(np.int64),
          np.atleast_1d(np.asarray(scores, dtype=np.float64)))


def bucket_of(scores: np.ndarray, num_buckets: int) -> np.ndarray:
  """The bucket of each score: ``k`` with ``k/N <= p < (k+1)/N`` (the edges ``k/N`` as float64
  divisions, the last bucket closed, below 0 and above 1 clipped), so ``bucket >= k`` exactly
  when ``p >= k/N``; ``p * N`` alone can round across an edge."""
  buckets = np.clip((scores * num_buckets).astype(np.int64), 0, num_buckets - 1)
  buckets -= ((scores < buckets / num_buckets) & (buckets > 0)).astype(np.int64)
  buckets += ((scores >= (buckets + 1) / num_buckets) & (buckets < num_buckets - 1)).astype(np.int64)
  return buckets


class _CountsCombineFn(beam.CombineFn):
  """A list of Python integers, summed element-wise when merged."""

  _SIZE = 2

  def create_accumulator(self):
    return [0] * self._SIZE

  def merge_accumulators(self, accumulators):
    return [sum(values) for values in zip(*accumulators)]


class ExampleCountCombineFn(_CountsCombineFn):
  """(label, p) or arrays -> {example_count, positive_count}."""

  def add_input(self, accumulator, element: Scored):
    labels, _ = as_arrays(element)
    accumulator[0] += int(labels.size)
    accumulator[1] += int(labels.sum())
    return accumulator

  def extract_output(self, accumulator) -> Dict[str, int]:
    return {EXAMPLE_COUNT: accumulator[0], POSITIVE_COUNT: accumulator[1]}


class AccuracyCombineFn(_CountsCombineFn):
  """(label, p) or arrays -> {accuracy} with the decision threshold 0.5."""

  def __init__(self, threshold: float = 0.5):
    super().__init__()
    self._threshold = threshold

  def add_input(self, accumulator, element: Scored):
    labels, scores = as_arrays(element)
    accumulator[0] += int(np.count_nonzero((scores >= self._threshold) == labels.astype(bool)))
    accumulator[1] += int(labels.size)
    return accumulator

  def extract_output(self, accumulator) -> Dict[str, float]:
    correct, total = accumulator
    return {ACCURACY: correct / total if total else math.nan}


class ConfusionCountsCombineFn(_CountsCombineFn):
  """(label, p) or arrays -> [TP, FP, TN, FN] of ``p >= threshold``, exactly."""

  _SIZE = 4

  def __init__(self, threshold: float):
    super().__init__()
    self._threshold = threshold

  def add_input(self, accumulator, element: Scored):
    labels, scores = as_arrays(element)
    predicted, positive = scores >= self._threshold, labels.astype(bool)
    for i, cell in enumerate((predicted & positive, predicted & ~positive,
                              ~predicted & ~positive, ~predicted & positive)):
      accumulator[i] += int(np.count_nonzero(cell))
    return accumulator

  def extract_output(self, accumulator) -> List[int]:
    return list(accumulator)


_UNIT_EXPONENT = 1074  # every finite float64 is an integer multiple of 2**-1074
_LOW_BITS = 26


def exact_sum(values: np.ndarray) -> int:
  """The exact sum of finite float64 ``values`` as an integer count of 2**-1074 (no rounding).

  Each value is mantissa x 2**exponent with a 53-bit integer mantissa; mantissas are summed per
  exponent in two 26/27-bit halves (int64 cannot overflow below 2**36 values) and shifted into
  place as Python integers. Integers add associatively, so merges in any order give the same sum.
  """
  if not values.size:
    return 0
  fractions, exponents = np.frexp(values)
  mantissas = (fractions * float(1 << 53)).astype(np.int64)  # exact: 53 significant bits
  total = 0
  for exponent in np.unique(exponents):
    selected = mantissas[exponents == exponent]
    high = int((selected >> _LOW_BITS).sum())
    low = int((selected & ((1 << _LOW_BITS) - 1)).sum())
    mantissa_sum = (high << _LOW_BITS) + low
    shift = int(exponent) - 53 + _UNIT_EXPONENT
    total += mantissa_sum << shift if shift >= 0 else mantissa_sum >> -shift
  return total


def exact_mean(units: int, count: int) -> float:
  """An exact sum (``exact_sum``) divided by ``count``: int / int is correctly rounded, as
  math.fsum is (the exact sum rounded once, then the mean); NaN without values."""
  return (units / (1 << _UNIT_EXPONENT)) / count if count else math.nan


def losses(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
  """Per-example binary cross-entropy with ``math.log``/``math.log1p`` (libm, as scikit-learn's
  reference and as the per-element combiner always did: numpy's SIMD log may differ in the last
  bit), ``p`` clipped to ``[eps, 1 - eps]``."""
  clipped = np.minimum(np.maximum(scores, _EPS), 1 - _EPS)
  out = np.empty(clipped.size, dtype=np.float64)
  positive = labels.astype(bool)
  out[positive] = np.fromiter(map(math.log, clipped[positive].tolist()), np.float64)
  out[~positive] = np.fromiter(map(math.log1p, (-clipped[~positive]).tolist()), np.float64)
  return -out


class LogLossCombineFn(_CountsCombineFn):
  """(label, p) or arrays -> {log_loss}, mean binary cross-entropy (natural log), summed exactly."""

  def add_input(self, accumulator, element: Scored):
    labels, scores = as_arrays(element)
    accumulator[0] += exact_sum(losses(labels, scores))
    accumulator[1] += int(labels.size)
    return accumulator

  def extract_output(self, accumulator) -> Dict[str, float]:
    return {LOG_LOSS: exact_mean(*accumulator)}


class BrierScoreCombineFn(_CountsCombineFn):
  """(label, p) or arrays -> {brier_score}, the mean of ``(p - y)**2``, summed exactly."""

  def add_input(self, accumulator, element: Scored):
    labels, scores = as_arrays(element)
    accumulator[0] += exact_sum((scores - labels) ** 2)
    accumulator[1] += int(labels.size)
    return accumulator

  def extract_output(self, accumulator) -> Dict[str, float]:
    return {BRIER_SCORE: exact_mean(*accumulator)}


class ProbabilitySumsCombineFn(_CountsCombineFn):
  """(label, p) or arrays -> the exact sum of ``p`` per calibration bin (bins of the histogram's
  buckets, ``bucket_of``), in units of 2**-1074."""

  def __init__(self, num_buckets: int = DEFAULT_BUCKETS, bins: int = CALIBRATION_BINS):
    super().__init__()
    self._buckets, self._bins, self._SIZE = num_buckets, bins, bins

  def add_input(self, accumulator, element: Scored):
    _, scores = as_arrays(element)
    bins = np.minimum(bucket_of(scores, self._buckets) // (self._buckets // self._bins),
                      self._bins - 1)
    for b in np.unique(bins):
      accumulator[int(b)] += exact_sum(scores[bins == b])
    return accumulator

  def extract_output(self, accumulator) -> List[int]:
    return list(accumulator)


class AucCombineFn(beam.CombineFn):
  """(label, p) or arrays -> {auc, auc_error_bound} from per-bucket positive/negative counts."""

  def __init__(self, num_buckets: int = DEFAULT_BUCKETS):
    super().__init__()
    self._buckets = num_buckets

  def create_accumulator(self):
    return np.zeros((2, self._buckets), dtype=np.int64)  # row 0: negatives, row 1: positives

  def add_input(self, accumulator, element: Scored):
    labels, scores = as_arrays(element)
    np.add.at(accumulator, (labels, bucket_of(scores, self._buckets)), 1)
    return accumulator

  def merge_accumulators(self, accumulators):
    accumulators = iter(accumulators)
    merged = next(accumulators).copy()
    for accumulator in accumulators:
      merged += accumulator
    return merged

  def extract_output(self, accumulator) -> Dict[str, float]:
    negatives, positives = accumulator[0].astype(np.float64), accumulator[1].astype(np.float64)
    total_neg, total_pos = negatives.sum(), positives.sum()
    if not total_neg or not total_pos:
      return {AUC: math.nan, AUC_ERROR_BOUND: math.nan}
    negatives_below = np.cumsum(negatives) - negatives  # negatives in strictly lower buckets
    wins = float(np.dot(positives, negatives_below))
    ties = float(np.dot(positives, negatives))
    pairs = total_pos * total_neg
    return {AUC: (wins + 0.5 * ties) / pairs, AUC_ERROR_BOUND: 0.5 * ties / pairs}


class _MetricsKeys(TypedDict):
  example_count: int
  positive_count: int
  accuracy: float
  log_loss: float
  auc: float
  auc_error_bound: float
  curves: Curves


class MetricsAndCurves(_MetricsKeys, total=False):
  """Every metric of one slice (NaN when undefined), its chart points and its histogram."""
  brier_score: float
  expected_calibration_error: float
  average_precision: float
  average_precision_error_bound: float
  threshold: float
  precision: float
  recall: float
  f1: float
  true_positives: int
  false_positives: int
  true_negatives: int
  false_negatives: int
  histogram: np.ndarray  # AucCombineFn's accumulator: for at_threshold, not written out


def _above(histogram: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
  """(negatives, positives) with a score in bucket >= k, for k = 0 .. N (the last is 0)."""
  tail = np.cumsum(histogram[:, ::-1], axis=1)[:, ::-1]
  return (np.append(tail[0], 0).astype(np.int64), np.append(tail[1], 0).astype(np.int64))


def confusion_at(histogram: np.ndarray, edge: int) -> List[int]:
  """[TP, FP, TN, FN] of ``p >= edge / N``, exact (``bucket_of``)."""
  negatives, positives = histogram[0], histogram[1]
  tp, fp = int(positives[edge:].sum()), int(negatives[edge:].sum())
  return [tp, fp, int(negatives.sum()) - fp, int(positives.sum()) - tp]


def max_f1_edge(histogram: np.ndarray) -> Optional[int]:
  """The bucket edge ``k`` (threshold ``k / N``, k < N) with the highest F1: the middle of the
  first run of consecutive edges reaching it; None without a positive row."""
  fp, tp = _above(histogram)
  total_pos = int(histogram[1].sum())
  if not total_pos:
    return None
  f1 = 2.0 * tp[:-1] / (tp[:-1] + fp[:-1] + total_pos)  # 2TP / (2TP + FP + FN), FN = P - TP
  best = np.flatnonzero(f1 == f1.max())
  run = np.split(best, np.flatnonzero(np.diff(best) > 1) + 1)[0]
  return int(run[len(run) // 2])


def edge_of(threshold: float, num_buckets: int) -> Optional[int]:
  """The bucket edge ``k`` with ``k / N == threshold``, or None when the threshold is no edge."""
  edge = int(round(threshold * num_buckets))
  return edge if 0 <= edge < num_buckets and edge / num_buckets == threshold else None


def decision_metrics(threshold: float, counts: List[int]) -> Dict[str, float]:
  """Threshold, precision, recall, F1 and the confusion matrix from [TP, FP, TN, FN]."""
  tp, fp, tn, fn = counts
  return {THRESHOLD: threshold, PRECISION: tp / (tp + fp) if tp + fp else math.nan,
          RECALL: tp / (tp + fn) if tp + fn else math.nan,
          F1: 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else math.nan,
          TRUE_POSITIVES: tp, FALSE_POSITIVES: fp, TRUE_NEGATIVES: tn, FALSE_NEGATIVES: fn}


def average_precision(histogram: np.ndarray) -> Tuple[float, float]:
  """(average precision, its error bound) from the histogram; NaN without a positive row."""
  negatives = histogram[0, ::-1].astype(np.float64)  # from the top bucket down
  positives = histogram[1, ::-1].astype(np.float64)
  total_pos = positives.sum()
  if not total_pos:
    return math.nan, math.nan
  tp, fp = np.cumsum(positives), np.cumsum(negatives)  # including the bucket
  tp0, fp0 = tp - positives, fp - negatives  # above the bucket
  has = positives > 0
  precision = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=has)
  value = float(np.dot(positives, precision) / total_pos)
  mixed = has & (negatives > 0)  # only there can the order inside the bucket matter
  low = (tp0 + 1) / (tp0 + 1 + fp0 + negatives)  # its first positive after all its negatives
  high = np.divide(tp, tp + fp0, out=np.zeros_like(tp), where=mixed)  # all positives first
  spread = np.maximum(precision - low, high - precision)
  bound = float(np.dot(positives[mixed], spread[mixed]) / total_pos)
  return value, bound


def pr_curve(histogram: np.ndarray, thresholds: int = 101) -> List[List[float]]:
  """[threshold, recall, precision, F1] at ``thresholds`` equally spaced thresholds (``p >=
  threshold`` is positive), thresholds where no row is predicted positive left out."""
  num_buckets = histogram.shape[1]
  fp, tp = _above(histogram)
  total_pos = int(histogram[1].sum())
  points: List[List[float]] = []
  if not total_pos:
    return points
  for t in range(thresholds):
    edge = min(int(round(t * num_buckets / (thresholds - 1))), num_buckets)
    if tp[edge] + fp[edge]:
      points.append([round(edge / num_buckets, 6), round(tp[edge] / total_pos, 6),
                     round(tp[edge] / (tp[edge] + fp[edge]), 6),
                     round(2 * tp[edge] / (tp[edge] + fp[edge] + total_pos), 6)])
  return points


def calibration_bins(histogram: np.ndarray, sums: Optional[List[int]] = None,
                     bins: int = CALIBRATION_BINS) -> List[Tuple[float, float, int]]:
  """Per equal-width score bin with rows: (mean predicted probability, positive rate, count); the
  exact mean with ``sums`` (``ProbabilitySumsCombineFn``), else from the buckets' midpoints."""
  negatives, positives = histogram[0].astype(np.float64), histogram[1].astype(np.float64)
  buckets = len(negatives)
  midpoints = (np.arange(buckets) + 0.5) / buckets
  per_bin = buckets // bins
  out = []
  for b in range(bins):
    part = slice(b * per_bin, (b + 1) * per_bin if b < bins - 1 else buckets)
    count = int(negatives[part].sum() + positives[part].sum())
    if count:
      mean_p = (exact_mean(sums[b], count) if sums is not None else
                float(np.dot(negatives[part] + positives[part], midpoints[part]) / count))
      out.append((mean_p, float(positives[part].sum()) / count, count))
  return out


def expected_calibration_error(bins: List[Tuple[float, float, int]]) -> float:
  """Count-weighted mean of |mean p - positive rate| over the calibration bins."""
  total = sum(count for _, _, count in bins)
  if not total:
    return math.nan
  return math.fsum(count * abs(mean_p - rate) for mean_p, rate, count in bins) / total


def roc_and_calibration(histogram: np.ndarray, thresholds: int = 101,
                        bins: int = CALIBRATION_BINS, sums: Optional[List[int]] = None) -> Curves:
  """An AUC accumulator (row 0 negatives, row 1 positives per score bucket) -> chart points.

  ``roc``: [false positive rate, true positive rate] at ``thresholds`` equally spaced score
  thresholds (score >= threshold is positive), from (1, 1) down to (0, 0). ``calibration``: per
  equal-width score bin with examples, [mean predicted probability, observed positive rate, count].
  ``pr``: ``pr_curve``.
  """
  negatives, positives = histogram[0].astype(np.float64), histogram[1].astype(np.float64)
  buckets = len(negatives)
  total_neg, total_pos = negatives.sum(), positives.sum()
  roc: List[List[float]] = []
  if total_neg and total_pos:
    neg_above = np.cumsum(negatives[::-1])[::-1]  # negatives with a score in bucket >= i
    pos_above = np.cumsum(positives[::-1])[::-1]
    for t in range(thresholds):
      i = min(int(round(t * buckets / (thresholds - 1))), buckets)
      fpr = float(neg_above[i] / total_neg) if i < buckets else 0.0
      tpr = float(pos_above[i] / total_pos) if i < buckets else 0.0
      roc.append([round(fpr, 6), round(tpr, 6)])
  calibration: List[List[float]] = [
      [round(mean_p, 6), round(rate, 6), count]
      for mean_p, rate, count in calibration_bins(histogram, sums, bins)]
  return {'roc': roc, 'calibration': calibration, 'pr': pr_curve(histogram, thresholds)}


def at_threshold(metrics: MetricsAndCurves, threshold: float) -> MetricsAndCurves:
  """``metrics`` with its decision metrics read again at ``threshold``, a bucket edge ``k / N``
  (the rule's threshold of another slice, e.g. the overall one)."""
  histogram = metrics['histogram']
  edge = edge_of(threshold, histogram.shape[1])
  if edge is None:
    raise ValueError(f'threshold {threshold} is not an edge of the {histogram.shape[1]} buckets')
  return {**metrics, **decision_metrics(threshold, confusion_at(histogram, edge))}  # type: ignore


class BinaryMetricsCombineFn(beam.CombineFn):
  """(label, p) -> one dict with every metric of this module, in a single pass.

  The decision metrics are at ``threshold`` (counted exactly, whatever the threshold) or, without
  one, at the rule ``max_f1``'s threshold on these rows (``at_threshold`` reads them at another).
  """

  def __init__(self, num_buckets: int = DEFAULT_BUCKETS, threshold: Optional[float] = None):
    super().__init__()
    self._threshold = threshold
    self._combiners: List[beam.CombineFn] = [
        ExampleCountCombineFn(), AccuracyCombineFn(), LogLossCombineFn(), AucCombineFn(num_buckets),
        BrierScoreCombineFn(), ProbabilitySumsCombineFn(num_buckets)]
    if threshold is not None:
      self._combiners.append(ConfusionCountsCombineFn(threshold))

  def create_accumulator(self):
    return [c.create_accumulator() for c in self._combiners]

  def add_input(self, accumulator, element):
    return [c.add_input(a, element) for c, a in zip(self._combiners, accumulator)]

  def merge_accumulators(self, accumulators):
    accumulators = list(accumulators)
    return [c.merge_accumulators([a[i] for a in accumulators])
            for i, c in enumerate(self._combiners)]

  def extract_output(self, accumulator) -> MetricsAndCurves:
    outputs = [c.extract_output(a) for c, a in zip(self._combiners, accumulator)]
    counts, accuracy, loss, auc, brier, sums = outputs[:6]
    histogram = accumulator[3]
    if self._threshold is not None:
      decision = decision_metrics(self._threshold, outputs[6])
    else:
      edge = max_f1_edge(histogram)
      threshold = FALLBACK_THRESHOLD if edge is None else edge / histogram.shape[1]
      edge = edge_of(threshold, histogram.shape[1])
      assert edge is not None
      decision = decision_metrics(threshold, confusion_at(histogram, edge))
    ap, ap_bound = average_precision(histogram)
    curves = roc_and_calibration(histogram, sums=sums)
    metrics = MetricsAndCurves(
        example_count=counts[EXAMPLE_COUNT], positive_count=counts[POSITIVE_COUNT],
        accuracy=accuracy[ACCURACY], log_loss=loss[LOG_LOSS], auc=auc[AUC],
        auc_error_bound=auc[AUC_ERROR_BOUND], curves=curves, brier_score=brier[BRIER_SCORE],
        expected_calibration_error=expected_calibration_error(
            [(p, rate, count) for p, rate, count in calibration_bins(histogram, sums)]),
        average_precision=ap, average_precision_error_bound=ap_bound, histogram=histogram)
    metrics.update(decision)  # type: ignore[typeddict-item]
    return metrics


# Paired comparison of two models scored on the same rows: DeLong's test of the AUC difference.

Z_95 = NormalDist().inv_cdf(0.95)  # one-sided 95%: 1.6449
CI_LEVEL = 0.95  # the two-sided confidence interval every comparison reports
Z_CI = NormalDist().inv_cdf(0.5 + CI_LEVEL / 2)  # 1.96
PAIRED_MEAN = 'paired mean'  # the method of log_loss and brier_score comparisons
BRIER_SCORE = 'brier_score'  # mean of (p - y)**2
DEFAULT_PAIRED_ROWS = 200_000
PairedRows = Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # keys, labels, candidate, baseline


def midranks(values: np.ndarray) -> np.ndarray:
  """1-based ranks of ``values``, tied values sharing the mean of their ranks (O(n log n))."""
  order = np.argsort(values, kind='mergesort')
  ordered = values[order]
  starts = np.r_[0, np.flatnonzero(np.diff(ordered)) + 1]
  ends = np.r_[starts[1:], ordered.size]
  ranks = np.empty(ordered.size, dtype=np.float64)
  ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
  return ranks


class PairedAuc(TypedDict):
  """Two models' exact AUCs on the same rows, their difference and its DeLong variance."""
  candidate_auc: float
  baseline_auc: float
  auc_difference: float  # candidate - baseline
  variance: float  # of the difference; NaN with fewer than 2 rows of either class


def delong(labels: np.ndarray, candidate: np.ndarray, baseline: np.ndarray) -> PairedAuc:
  """Exact AUCs of two score arrays on the same rows and the variance of their difference.

  DeLong, DeLong & Clarke-Pearson (1988), by the midrank algorithm of Sun & Xu (2014): each
  model's structural components are V10 per positive (share of negatives it outscores, ties 1/2)
  and V01 per negative (share of positives that outscore it); var(diff) = (S10 contrast) / m +
  (S01 contrast) / n, with S the 2 x 2 sample covariances of the components of both models over
  the m positives and the n negatives.
  """
  positive = np.asarray(labels).astype(bool)
  m, n = int(positive.sum()), int((~positive).sum())
  if not m or not n:
    return PairedAuc(candidate_auc=math.nan, baseline_auc=math.nan, auc_difference=math.nan,
                     variance=math.nan)
  v10, v01, aucs = [], [], []
  for scores in (np.asarray(candidate, np.float64), np.asarray(baseline, np.float64)):
    pos, neg = scores[positive], scores[~positive]
    overall = midranks(np.concatenate([pos, neg]))
    within_pos, within_neg = midranks(pos), midranks(neg)
    aucs.append(float((overall[:m].sum() - m * (m + 1) / 2.0) / (m * n)))
    v10.append((overall[:m] - within_pos) / n)
    v01.append(1.0 - (overall[m:] - within_neg) / m)
  contrast = np.array([1.0, -1.0])
  variance = math.nan
  if m > 1 and n > 1:
    variance = float(contrast @ np.cov(np.vstack(v10)) @ contrast / m
                     + contrast @ np.cov(np.vstack(v01)) @ contrast / n)
    variance = max(variance, 0.0)  # rounding can leave -1e-20 for identical models
  return PairedAuc(candidate_auc=aucs[0], baseline_auc=aucs[1],
                   auc_difference=aucs[0] - aucs[1], variance=variance)


class PairedLoss(TypedDict):
  """Two models' mean per-row losses on the same rows, the difference and its paired variance."""
  candidate: float
  baseline: float
  difference: float  # candidate - baseline
  variance: float  # of the difference: var(per-row differences) / n; NaN with fewer than 2 rows


def brier_losses(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
  """Per-row squared error ``(p - y)**2``: their mean is the Brier score."""
  return (np.asarray(scores, np.float64) - np.asarray(labels, np.float64)) ** 2


LOSSES = {LOG_LOSS: losses, BRIER_SCORE: brier_losses}  # the per-row losses of the paired means


def paired_mean(labels: np.ndarray, candidate: np.ndarray, baseline: np.ndarray,
                metric: str) -> PairedLoss:
  """A mean-of-per-row-losses metric (``log_loss``, ``brier_score``) of two models on the same
  rows, and the variance of the difference of the means.

  Both means are over the same rows, so their difference is the mean of the per-row differences
  ``d_i = loss(candidate_i) - loss(baseline_i)`` and its variance is ``var(d) / n`` (sample
  variance, ``ddof=1``): the paired t-statistic's denominator, which counts the models'
  correlated errors once instead of adding two independent variances.
  """
  loss = LOSSES[metric]
  labels = np.asarray(labels).astype(bool).astype(np.int64)
  if not labels.size:
    return PairedLoss(candidate=math.nan, baseline=math.nan, difference=math.nan,
                      variance=math.nan)
  mine = loss(labels, np.asarray(candidate, np.float64))
  theirs = loss(labels, np.asarray(baseline, np.float64))
  differences = mine - theirs
  variance = float(np.var(differences, ddof=1) / labels.size) if labels.size > 1 else math.nan
  return PairedLoss(candidate=math.fsum(mine.tolist()) / labels.size,
                    baseline=math.fsum(theirs.tolist()) / labels.size,
                    difference=math.fsum(differences.tolist()) / labels.size, variance=variance)


class _PairedSampleCombineFn(beam.CombineFn):
  """(keys, labels, candidate scores, baseline scores) arrays of the same rows -> a bounded,
  deterministic sample of them and the count of every row (what the paired comparisons use).

  Keeps the ``max_rows`` rows with the smallest keys (a bottom-k sample: keys are hashes of the
  rows, so it is a uniform sample, the same whatever the order, bundles or workers, and its memory
  is bounded by ``max_rows``, not by the rows).
  """

  def __init__(self, max_rows: int = DEFAULT_PAIRED_ROWS):
    super().__init__()
    self._max_rows = max_rows

  def create_accumulator(self):
    return [0, 0, np.zeros((3, 0), dtype=np.float64), np.zeros(0, dtype=np.uint64)]

  def _keep(self, accumulator, slack: int = 1):
    """Prunes the sample to the ``max_rows`` smallest (key, label, candidate, baseline) once it
    holds more than ``slack`` x ``max_rows`` rows (a total order: the same rows in any order)."""
    rows, keys = accumulator[2], accumulator[3]
    if keys.size > slack * self._max_rows:
      order = np.lexsort((rows[2], rows[1], rows[0], keys))[:self._max_rows]
      accumulator[2], accumulator[3] = rows[:, order], keys[order]
    return accumulator

  def add_input(self, accumulator, element: PairedRows):
    keys, labels, candidate, baseline = element
    labels = np.asarray(labels).astype(bool)
    accumulator[0] += int(labels.size)
    accumulator[1] += int(labels.sum())
    accumulator[2] = np.hstack([accumulator[2], np.vstack([
        labels.astype(np.float64), np.asarray(candidate, np.float64),
        np.asarray(baseline, np.float64)])])
    accumulator[3] = np.concatenate([accumulator[3], np.asarray(keys, np.uint64)])
    return self._keep(accumulator, slack=2)

  def merge_accumulators(self, accumulators):
    accumulators = list(accumulators)
    merged = [sum(a[0] for a in accumulators), sum(a[1] for a in accumulators),
              np.hstack([a[2] for a in accumulators]), np.concatenate([a[3] for a in accumulators])]
    return self._keep(merged, slack=2)

  def _sample(self, accumulator) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels, candidate, baseline) of the sample, in one fixed order."""
    rows, keys = accumulator[2], accumulator[3]
    order = np.lexsort((rows[2], rows[1], rows[0], keys))[:self._max_rows]
    return rows[0][order], rows[1][order], rows[2][order]



class PairedAucCombineFn(_PairedSampleCombineFn):
  """Paired rows -> the AUC comparison on the sample (``artifacts.MetricComparison``, with the
  older fields ``candidate_auc``, ``baseline_auc`` and ``auc_difference``): DeLong's test, the
  difference, its standard error, one-sided 95% bounds ``diff -/+ 1.645 SE`` and the two-sided
  95% confidence interval ``diff -/+ 1.96 SE``."""

  def extract_output(self, accumulator) -> MetricComparison:
    return _auc_comparison(accumulator, self._sample(accumulator))


def _auc_comparison(accumulator, sample) -> MetricComparison:
  labels, candidate, baseline = sample
  paired = delong(labels, candidate, baseline)
  comparison = _comparison(accumulator, labels, paired['candidate_auc'], paired['baseline_auc'],
                           paired['auc_difference'], paired['variance'], DELONG)
  comparison['candidate_auc'] = _defined(paired['candidate_auc'])
  comparison['baseline_auc'] = _defined(paired['baseline_auc'])
  comparison['auc_difference'] = _defined(paired['auc_difference'])
  return comparison


class PairedMetricsCombineFn(_PairedSampleCombineFn):
  """As ``PairedAucCombineFn``, for every metric with a paired comparison, on the same sample:
  ``{'auc': DeLong, 'log_loss': paired mean, 'brier_score': paired mean}`` (``PAIRED_METRICS``),
  each an ``artifacts.MetricComparison``."""

  def extract_output(self, accumulator) -> Dict[str, MetricComparison]:
    sample = self._sample(accumulator)
    compared = {AUC: _auc_comparison(accumulator, sample)}
    for metric in LOSSES:
      paired = paired_mean(*sample, metric)
      compared[metric] = _comparison(accumulator, sample[0], paired['candidate'],
                                     paired['baseline'], paired['difference'],
                                     paired['variance'], PAIRED_MEAN)
    return compared


PAIRED_METRICS = (AUC, LOG_LOSS, BRIER_SCORE)


def _comparison(accumulator, labels: np.ndarray, candidate: float, baseline: float,
                difference: float, variance: float, method: str) -> MetricComparison:
  """One metric's comparison record: counts, values, the difference, its standard error, the
  one-sided 95% bounds and the two-sided 95% confidence interval."""
  error = math.sqrt(variance) if variance >= 0 else math.nan
  return MetricComparison(
      rows=accumulator[0], positives=accumulator[1], sampled_rows=int(labels.size),
      sampled_positives=int(np.asarray(labels).sum()), candidate=_defined(candidate),
      baseline=_defined(baseline), difference=_defined(difference),
      standard_error=_defined(error), z=Z_95, lower_bound=_defined(difference - Z_95 * error),
      upper_bound=_defined(difference + Z_95 * error), ci_level=CI_LEVEL,
      ci_lower=_defined(difference - Z_CI * error), ci_upper=_defined(difference + Z_CI * error),
      method=method)


def _defined(value: float) -> Optional[float]:
  return None if math.isnan(value) else value
