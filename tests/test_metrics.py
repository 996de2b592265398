"""Metric combiners in Beam, checked against scikit-learn's metrics on the same data."""

from __future__ import annotations

import json
import math
import os
import tempfile

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
  accuracy_score,
  average_precision_score,
  brier_score_loss,
  confusion_matrix,
  f1_score,
  log_loss,
  precision_recall_curve,
  precision_score,
  recall_score,
  roc_auc_score,
  roc_curve,
)

from beam_pipelines.ml import metrics

from conftest import read_shards


def scored_pairs(n=5000, seed=3):
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 2, n)
  scores = 1 / (1 + np.exp(-(1.2 * labels - 0.6 + rng.normal(0, 1, n))))
  return [(int(y), float(p)) for y, p in zip(labels, scores)]


def combine_globally(pairs, combine_fn):
  """Runs the combiner in a real pipeline; returns its single output (written as JSON, read back)."""
  with tempfile.TemporaryDirectory() as directory:
    prefix = os.path.join(directory, 'out')
    with TestPipeline() as pipeline:
      _ = (pipeline
           | beam.Create(pairs)
           | beam.CombineGlobally(combine_fn)
           | beam.Map(lambda out: json.dumps(
               {k: v for k, v in out.items() if k != metrics.HISTOGRAM}))
           | beam.io.WriteToText(prefix))
    (line,) = read_shards(prefix)
  return json.loads(line)


@pytest.fixture(scope='module')
def combined():
  """One pipeline run of every metric over 5,000 scored examples, checked by several tests."""
  return combine_globally(TestAgainstSklearn.PAIRS, metrics.BinaryMetricsCombineFn())


class TestAgainstSklearn:
  PAIRS = scored_pairs()
  LABELS = [y for y, _ in PAIRS]
  SCORES = [p for _, p in PAIRS]

  def test_auc_equals_sklearn_within_the_reported_bound(self, combined):
    exact = roc_auc_score(self.LABELS, self.SCORES)
    assert abs(combined['auc'] - exact) <= combined['auc_error_bound'] + 1e-12
    assert combined['auc_error_bound'] < 1e-3
    assert combined['auc'] == pytest.approx(exact, abs=1e-3)

  def test_accuracy_equals_sklearn(self, combined):
    assert combined['accuracy'] == pytest.approx(
        accuracy_score(self.LABELS, [p >= 0.5 for p in self.SCORES]))

  def test_log_loss_equals_sklearn(self, combined):
    assert combined['log_loss'] == pytest.approx(log_loss(self.LABELS, self.SCORES), rel=1e-9)

  def test_counts(self, combined):
    assert combined['example_count'] == len(self.PAIRS)
    assert combined['positive_count'] == sum(self.LABELS)


  def test_roc_points_lie_on_sklearns_curve(self, combined):
    fpr, tpr, _ = roc_curve(self.LABELS, self.SCORES)
    roc = combined['curves']['roc']
    assert roc[0] == [1.0, 1.0] and roc[-1] == [0.0, 0.0] and len(roc) == 101
    for x, y in roc:  # each point is (within the histogram's resolution) on the exact curve
      assert min(abs(y - np.interp(x, fpr, tpr)), abs(x - np.interp(y, tpr, fpr))) < 0.02

  def test_calibration_bins_count_every_example_and_match_the_observed_rate(self, combined):
    bins = combined['curves']['calibration']
    assert sum(count for _, _, count in bins) == len(self.PAIRS)
    scores, labels = np.array(self.SCORES), np.array(self.LABELS)
    index = np.minimum((scores * 10).astype(int), 9)
    for mean_p, observed, count in bins:
      members = index == min(int(mean_p * 10), 9)
      assert count == members.sum()
      assert observed == pytest.approx(labels[members].mean(), abs=1e-6)
      assert mean_p == pytest.approx(scores[members].mean(), abs=1e-4)  # bucket midpoints


  def test_brier_score_equals_sklearn(self, combined):
    assert combined['brier_score'] == pytest.approx(
        brier_score_loss(self.LABELS, self.SCORES), rel=1e-12)

  def test_decision_metrics_equal_sklearn_at_the_threshold(self, combined):
    predicted = np.array(self.SCORES) >= combined['threshold']
    assert combined['precision'] == pytest.approx(precision_score(self.LABELS, predicted), rel=1e-12)
    assert combined['recall'] == pytest.approx(recall_score(self.LABELS, predicted), rel=1e-12)
    assert combined['f1'] == pytest.approx(f1_score(self.LABELS, predicted), rel=1e-12)
    tn, fp, fn, tp = confusion_matrix(self.LABELS, predicted).ravel()
    assert [combined[k] for k in ('true_negatives', 'false_positives', 'false_negatives',
                                  'true_positives')] == [tn, fp, fn, tp]

  def test_the_threshold_maximises_f1_over_every_threshold(self, combined):
    """sklearn's best F1 over all distinct scores: the rule's edge reaches it (the histogram's
    edges split every pair of scores more than 1e-4 apart)."""
    precision, recall, _ = precision_recall_curve(self.LABELS, self.SCORES)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-300)
    assert combined['f1'] == pytest.approx(f1.max(), rel=1e-9)
    assert combined['threshold'] * metrics.DEFAULT_BUCKETS == int(
        combined['threshold'] * metrics.DEFAULT_BUCKETS)  # an edge k/10,000

  def test_average_precision_equals_sklearn_within_the_reported_bound(self, combined):
    exact = average_precision_score(self.LABELS, self.SCORES)
    assert abs(combined['average_precision'] - exact) <= (
        combined['average_precision_error_bound'] + 1e-12)
    assert 0 < combined['average_precision_error_bound'] < 1e-3

  def test_expected_calibration_error_equals_sklearns_calibration_curve(self, combined):
    observed, predicted = calibration_curve(self.LABELS, self.SCORES, n_bins=10)
    counts = np.histogram(self.SCORES, bins=np.linspace(0, 1, 11))[0]
    counts = counts[counts > 0]
    assert combined['expected_calibration_error'] == pytest.approx(
        np.sum(counts * np.abs(observed - predicted)) / len(self.PAIRS), rel=1e-9)
    assert [c for _, _, c in combined['curves']['calibration']] == counts.tolist()

  def test_pr_points_equal_sklearn_at_their_thresholds(self, combined):
    labels, scores = np.array(self.LABELS), np.array(self.SCORES)
    points = combined['curves']['pr']
    assert [t for t, *_ in points] == [t / 100 for t in range(100)]  # 1.0: no row predicted
    assert points[0][1] == 1.0  # threshold 0: every row positive
    for threshold, recall, precision, f1 in points:
      predicted = scores >= threshold
      assert recall == pytest.approx(recall_score(labels, predicted), abs=1e-6)
      assert precision == pytest.approx(precision_score(labels, predicted), abs=1e-6)
      assert f1 == pytest.approx(f1_score(labels, predicted), abs=1e-6)


def test_a_fixed_threshold_is_counted_exactly_even_off_the_histogram_edges():
  labels, scores = (np.array(a) for a in zip(*scored_pairs(2000, seed=8)))
  threshold = 0.123456789
  result = combine_globally([(labels, scores)], metrics.BinaryMetricsCombineFn(threshold=threshold))
  tn, fp, fn, tp = confusion_matrix(labels, scores >= threshold).ravel()
  assert result['threshold'] == threshold
  assert (result['true_positives'], result['false_positives'], result['true_negatives'],
          result['false_negatives']) == (tp, fp, tn, fn)
  assert result['precision'] == pytest.approx(precision_score(labels, scores >= threshold))


def test_a_score_on_a_bucket_edge_counts_as_at_the_threshold():
  """p * 10,000 rounds below 2,035 for p = 0.2035 (2034.9999999999998): the bucket is corrected, so
  the counts above the edge are those of p >= 0.2035."""
  edge = 0.2035
  assert int(edge * metrics.DEFAULT_BUCKETS) == 2034
  assert metrics.bucket_of(np.array([edge, np.nextafter(edge, 0)]), metrics.DEFAULT_BUCKETS
                           ).tolist() == [2035, 2034]
  fn = metrics.BinaryMetricsCombineFn()
  accumulator = fn.add_input(fn.create_accumulator(), (np.array([1, 0, 1]),
                                                        np.array([edge, 0.2, 0.9])))
  assert metrics.at_threshold(fn.extract_output(accumulator), edge)['true_positives'] == 2


def test_average_precision_bound_is_zero_when_no_bucket_mixes_the_classes():
  pairs = [(1, 0.9), (0, 0.8), (1, 0.7), (0, 0.3), (1, 0.2), (0, 0.1)]
  result = combine_globally(pairs, metrics.BinaryMetricsCombineFn())
  assert result['average_precision_error_bound'] == 0
  assert result['average_precision'] == pytest.approx(average_precision_score(*zip(*pairs)))


def test_the_threshold_falls_back_to_one_half_without_positives():
  result = combine_globally([(0, 0.2), (0, 0.7)], metrics.BinaryMetricsCombineFn())
  assert result['threshold'] == 0.5 and result['false_positives'] == 1
  assert math.isnan(result['average_precision']) and result['curves']['pr'] == []


class TestMergeInvariance:
  """The metrics of 1 shard and of 3 shards (each combined apart, then merged) are identical."""
  PAIRS = scored_pairs(3000, seed=12)
  ARRAYS = tuple(np.array(a) for a in zip(*PAIRS))

  @staticmethod
  def summary(result):
    curves = result['curves']
    return tuple(sorted((k, v) for k, v in result.items() if k not in ('curves', 'histogram'))) + (
        json.dumps(curves, sort_keys=True),)

  def test_one_shard_and_three_shards_in_beam(self):
    labels, scores = self.ARRAYS
    shards = [(labels[i::3], scores[i::3]) for i in range(3)]
    fn = metrics.BinaryMetricsCombineFn()
    expected = self.summary(fn.extract_output(fn.add_input(fn.create_accumulator(),
                                                           (labels, scores))))
    with TestPipeline() as pipeline:
      one = (pipeline | 'One' >> beam.Create([('all', (labels, scores))])
             | 'CombineOne' >> beam.CombinePerKey(metrics.BinaryMetricsCombineFn())
             | 'SummaryOne' >> beam.Map(lambda kv: self.summary(kv[1])))
      three = (pipeline | 'Three' >> beam.Create([('all', shard) for shard in shards])
               | 'Reshuffle' >> beam.Reshuffle()
               | 'CombineThree' >> beam.CombinePerKey(metrics.BinaryMetricsCombineFn())
               | 'SummaryThree' >> beam.Map(lambda kv: self.summary(kv[1])))
      assert_that(one, equal_to([expected]), label='OneShard')
      assert_that(three, equal_to([expected]), label='ThreeShards')

  def test_three_accumulators_merged_in_any_order(self):
    labels, scores = self.ARRAYS
    fn = metrics.BinaryMetricsCombineFn()
    parts = [fn.add_input(fn.create_accumulator(), (labels[i::3], scores[i::3])) for i in range(3)]
    whole = self.summary(fn.extract_output(fn.add_input(fn.create_accumulator(), (labels, scores))))
    for order in ((0, 1, 2), (2, 0, 1)):
      merged = fn.merge_accumulators([fn.merge_accumulators([parts[order[0]], parts[order[1]]]),
                                      parts[order[2]]])
      assert self.summary(fn.extract_output(merged)) == whole


def test_auc_is_exact_when_scores_fall_in_distinct_buckets():
  pairs = [(1, 0.9), (0, 0.8), (1, 0.7), (0, 0.3), (1, 0.2), (0, 0.1)]
  result = combine_globally(pairs, metrics.AucCombineFn())
  assert result['auc_error_bound'] == 0.0
  assert result['auc'] == pytest.approx(roc_auc_score(*zip(*pairs)))


def test_tied_scores_count_half_as_sklearn():
  pairs = [(1, 0.5), (0, 0.5), (1, 0.9), (0, 0.1)]
  assert combine_globally(pairs, metrics.AucCombineFn())['auc'] == pytest.approx(
      roc_auc_score(*zip(*pairs)))


def test_auc_is_nan_with_a_single_class():
  assert math.isnan(combine_globally([(1, 0.3), (1, 0.6)], metrics.AucCombineFn())['auc'])


def test_log_loss_clips_certain_wrong_predictions():
  result = combine_globally([(1, 0.0), (0, 1.0)], metrics.LogLossCombineFn())
  assert math.isfinite(result['log_loss'])
  assert result['log_loss'] == pytest.approx(log_loss([1, 0], [0.0, 1.0]))


def test_metrics_per_key_in_beam_style():
  with TestPipeline() as pipeline:
    key_to_count = (
        pipeline
        | beam.Create([('a', (1, 0.9)), ('a', (0, 0.2)), ('b', (1, 0.4))])
        | beam.CombinePerKey(metrics.ExampleCountCombineFn()))
    assert_that(key_to_count, equal_to([
        ('a', {'example_count': 2, 'positive_count': 1}),
        ('b', {'example_count': 1, 'positive_count': 1})]))


def test_log_loss_is_bit_identical_whatever_the_merge_order():
  fn = metrics.LogLossCombineFn()
  pairs = scored_pairs(2000, seed=9)

  def accumulate(chunk):
    accumulator = fn.create_accumulator()
    for pair in chunk:
      accumulator = fn.add_input(accumulator, pair)
    return accumulator

  one = fn.extract_output(accumulate(pairs))
  chunks = [accumulate(pairs[i::7]) for i in range(7)]
  merged = fn.extract_output(fn.merge_accumulators(chunks[::-1]))
  assert merged == one  # exact equality, not approx
  assert one['log_loss'] == pytest.approx(log_loss(*zip(*pairs)), rel=1e-12)


def test_a_batch_of_arrays_gives_exactly_the_metrics_of_its_pairs():
  fn = metrics.BinaryMetricsCombineFn()
  pairs = scored_pairs(3000, seed=5) + [(1, 0.0), (0, 1.0), (1, 1.0), (0, 0.0)]  # clipped ends
  one_by_one = fn.create_accumulator()
  for pair in pairs:
    one_by_one = fn.add_input(one_by_one, pair)
  labels = np.array([y for y, _ in pairs])
  scores = np.array([p for _, p in pairs])
  batches = [fn.add_input(fn.create_accumulator(), (labels[i:i + 700], scores[i:i + 700]))
             for i in range(0, len(pairs), 700)]
  expected = fn.extract_output(one_by_one)
  merged = fn.extract_output(fn.merge_accumulators(batches[::-1]))
  assert np.array_equal(merged.pop(metrics.HISTOGRAM), expected.pop(metrics.HISTOGRAM))
  assert merged == expected  # exact
  assert expected['log_loss'] == pytest.approx(log_loss(labels, scores), rel=1e-12)


def direct_delong(labels, candidate, baseline):
  """DeLong's AUC difference and its variance straight from the definition, O(m x n) pairs."""
  positive = np.asarray(labels).astype(bool)
  components = []
  for scores in (candidate, baseline):
    x, y = scores[positive], scores[~positive]
    psi = (x[:, None] > y[None, :]) + 0.5 * (x[:, None] == y[None, :])
    components.append((psi.mean(axis=1), psi.mean(axis=0), psi.mean()))
  m, n = positive.sum(), (~positive).sum()
  s10 = np.cov(np.vstack([components[0][0], components[1][0]]))
  s01 = np.cov(np.vstack([components[0][1], components[1][1]]))
  c = np.array([1.0, -1.0])
  return components[0][2] - components[1][2], c @ s10 @ c / m + c @ s01 @ c / n


def paired_scores(n=400, seed=0, decimals=None):
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 2, n)
  candidate = rng.normal(size=n) + labels
  baseline = candidate + rng.normal(0, 0.7, n)
  if decimals is not None:  # coarse scores: many ties within and across the classes
    candidate, baseline = candidate.round(decimals), baseline.round(decimals)
  return labels, candidate, baseline


def keyed(labels, candidate, baseline):
  """Rows with distinct, shuffled sample keys (as the pipeline's row hashes)."""
  keys = np.random.default_rng(99).permutation(labels.size).astype(np.uint64) * np.uint64(2**40)
  return keys, labels, candidate, baseline


def chunks(element, size):
  return [tuple(a[i:i + size] for a in element) for i in range(0, element[0].size, size)]


class TestDeLong:

  @pytest.mark.parametrize('seed, decimals', [(0, None), (1, 1), (2, 0)])
  def test_variance_equals_the_direct_computation(self, seed, decimals):
    labels, candidate, baseline = paired_scores(n=300, seed=seed, decimals=decimals)
    paired = metrics.delong(labels, candidate, baseline)
    diff, variance = direct_delong(labels, candidate, baseline)
    assert paired['auc_difference'] == pytest.approx(diff, abs=1e-12)
    assert paired['variance'] == pytest.approx(variance, rel=1e-9)

  @pytest.mark.parametrize('decimals', [None, 1])
  def test_aucs_equal_sklearn(self, decimals):
    labels, candidate, baseline = paired_scores(seed=4, decimals=decimals)
    paired = metrics.delong(labels, candidate, baseline)
    assert paired['candidate_auc'] == pytest.approx(roc_auc_score(labels, candidate), abs=1e-12)
    assert paired['baseline_auc'] == pytest.approx(roc_auc_score(labels, baseline), abs=1e-12)

  def test_midranks_share_tied_ranks(self):
    assert metrics.midranks(np.array([3.0, 1.0, 3.0, 2.0, 3.0])).tolist() == [4, 1, 4, 2, 4]

  def test_identical_models_differ_by_zero_with_zero_error(self):
    labels, candidate, _ = paired_scores()
    paired = metrics.delong(labels, candidate, candidate)
    assert paired['auc_difference'] == 0 and paired['variance'] == 0

  def test_one_class_or_a_single_positive_leaves_it_undefined(self):
    labels, candidate, baseline = paired_scores(n=50)
    assert math.isnan(metrics.delong(np.zeros(50), candidate, baseline)['auc_difference'])
    one = np.zeros(50, dtype=int)
    one[3] = 1
    paired = metrics.delong(one, candidate, baseline)
    assert not math.isnan(paired['auc_difference']) and math.isnan(paired['variance'])


class TestPairedAucCombineFn:

  def test_in_beam_equals_delong_on_every_row(self):
    element = keyed(*paired_scores(n=3000, seed=5))
    direct = metrics.delong(*element[1:])
    error = math.sqrt(direct['variance'])
    with TestPipeline() as pipeline:
      compared = (pipeline
                  | beam.Create(chunks(element, 250))
                  | beam.CombineGlobally(metrics.PairedAucCombineFn())
                  | beam.Map(lambda c: (c['rows'], c['sampled_rows'], c['positives'],
                                        round(c['auc_difference'], 12),
                                        round(c['standard_error'], 12),
                                        round(c['upper_bound'] - c['auc_difference'], 12))))
      assert_that(compared, equal_to([(
          3000, 3000, int(element[1].sum()), round(direct['auc_difference'], 12), round(error, 12),
          round(metrics.Z_95 * error, 12))]))

  def test_the_sample_is_bounded_and_the_same_whatever_the_order_and_merges(self):
    element = keyed(*paired_scores(n=5000, seed=6))
    combine = metrics.PairedAucCombineFn(max_rows=1000)
    results = []
    for size, reverse in ((5000, False), (300, False), (77, True)):
      parts = chunks(element, size)[::-1 if reverse else 1]
      accumulators = [combine.add_input(combine.create_accumulator(), p) for p in parts]
      merged = combine.merge_accumulators(accumulators)
      assert merged[2].shape[1] <= 2 * 1000  # memory bounded by the sample, not the rows
      results.append(combine.extract_output(merged))
    assert results[0] == results[1] == results[2]  # bit-identical
    assert results[0]['rows'] == 5000 and results[0]['sampled_rows'] == 1000

  def test_the_sample_keeps_the_rows_with_the_smallest_keys(self):
    keys, labels, candidate, baseline = keyed(*paired_scores(n=2000, seed=7))
    combine = metrics.PairedAucCombineFn(max_rows=500)
    result = combine.extract_output(combine.add_input(
        combine.create_accumulator(), (keys, labels, candidate, baseline)))
    kept = np.argsort(keys)[:500]
    direct = metrics.delong(labels[kept], candidate[kept], baseline[kept])
    assert result['auc_difference'] == pytest.approx(direct['auc_difference'], abs=1e-12)
    assert result['sampled_positives'] == int(labels[kept].sum())


@pytest.mark.parametrize('n', [300, 2000])
def test_one_sided_test_rejects_equally_good_models_about_5_percent_of_the_time(n):
  """Pairs of equally good, correlated models: 'worse beyond noise' (diff + 1.645 SE < 0) should be
  concluded about 5 times in 100."""
  rng = np.random.default_rng(n)
  simulations, rejected = 1000, 0
  for _ in range(simulations):
    labels = rng.random(n) < 0.2
    signal = rng.normal(size=n) + 1.2 * labels
    candidate = signal + rng.normal(0, 0.8, n)  # same noise: the same true AUC
    baseline = signal + rng.normal(0, 0.8, n)
    paired = metrics.delong(labels, candidate, baseline)
    rejected += paired['auc_difference'] + metrics.Z_95 * math.sqrt(paired['variance']) < 0
  assert 0.02 <= rejected / simulations <= 0.09


def paired_probabilities(n=2000, seed=11):
  """Two correlated probability models of the same rows (the candidate a little sharper)."""
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 2, n)
  signal = 1.4 * labels - 0.7 + rng.normal(0, 1, n)
  candidate = 1 / (1 + np.exp(-(1.1 * signal + rng.normal(0, 0.3, n))))
  baseline = 1 / (1 + np.exp(-(signal + rng.normal(0, 0.3, n))))
  return labels, candidate, baseline


def direct_losses(metric, labels, scores):
  """Per-row losses from the definitions (natural log; scores away from 0 and 1 here)."""
  if metric == metrics.LOG_LOSS:
    return -(labels * np.log(scores) + (1 - labels) * np.log(1 - scores))
  return (scores - labels) ** 2


class TestPairedMeans:
  """Log loss and Brier score of two models on the same rows: the difference of two means of
  per-row losses is the mean of the per-row differences, with standard error sd(d) / sqrt(n)."""

  @pytest.mark.parametrize('metric', [metrics.LOG_LOSS, metrics.BRIER_SCORE])
  def test_values_and_standard_error_equal_a_direct_numpy_computation(self, metric):
    labels, candidate, baseline = paired_probabilities()
    paired = metrics.paired_mean(labels, candidate, baseline, metric)
    mine, theirs = (direct_losses(metric, labels, s) for s in (candidate, baseline))
    reference = (log_loss if metric == metrics.LOG_LOSS else brier_score_loss)
    assert paired['candidate'] == pytest.approx(reference(labels, candidate), rel=1e-12)
    assert paired['baseline'] == pytest.approx(reference(labels, baseline), rel=1e-12)
    assert paired['difference'] == pytest.approx(mine.mean() - theirs.mean(), abs=1e-14)
    error = np.std(mine - theirs, ddof=1) / np.sqrt(labels.size)
    assert math.sqrt(paired['variance']) == pytest.approx(error, rel=1e-12)
    # pairing matters: the unpaired error (independent samples) is several times larger here
    unpaired = math.sqrt((np.var(mine, ddof=1) + np.var(theirs, ddof=1)) / labels.size)
    assert unpaired > 3 * error

  @pytest.mark.parametrize('metric', [metrics.LOG_LOSS, metrics.BRIER_SCORE])
  def test_standard_error_agrees_with_a_paired_bootstrap(self, metric):
    labels, candidate, baseline = paired_probabilities(n=1500, seed=12)
    paired = metrics.paired_mean(labels, candidate, baseline, metric)
    differences = (direct_losses(metric, labels, candidate)
                   - direct_losses(metric, labels, baseline))
    rng = np.random.default_rng(13)
    resampled = rng.integers(0, labels.size, (2000, labels.size))  # rows drawn with replacement
    bootstrap = differences[resampled].mean(axis=1)
    assert math.sqrt(paired['variance']) == pytest.approx(np.std(bootstrap, ddof=1), rel=0.08)

  def test_one_row_has_no_error_and_no_rows_nothing(self):
    one = metrics.paired_mean(np.array([1]), np.array([0.8]), np.array([0.6]), metrics.BRIER_SCORE)
    assert one['difference'] == pytest.approx(0.04 - 0.16) and math.isnan(one['variance'])
    assert math.isnan(metrics.paired_mean(np.zeros(0), np.zeros(0), np.zeros(0),
                                          metrics.LOG_LOSS)['difference'])

  def test_equally_good_models_are_worse_beyond_noise_about_5_percent_of_the_time(self):
    rng = np.random.default_rng(14)
    simulations, rejected = 600, 0
    for _ in range(simulations):
      labels = rng.random(500) < 0.3
      signal = 1.3 * labels - 0.6 + rng.normal(0, 1, 500)
      candidate, baseline = (1 / (1 + np.exp(-(signal + rng.normal(0, 0.7, 500))))
                             for _ in range(2))
      paired = metrics.paired_mean(labels, candidate, baseline, metrics.LOG_LOSS)
      rejected += paired['difference'] - metrics.Z_95 * math.sqrt(paired['variance']) > 0
    assert 0.02 <= rejected / simulations <= 0.09


class TestPairedMetricsCombineFn:

  def test_in_beam_every_metric_is_compared_on_the_same_rows(self):
    element = keyed(*paired_probabilities(n=3000, seed=15))
    labels, candidate, baseline = element[1:]
    with TestPipeline() as pipeline:
      compared = (pipeline
                  | beam.Create(chunks(element, 250))
                  | beam.CombineGlobally(metrics.PairedMetricsCombineFn())
                  | beam.Map(lambda c: sorted(
                      (metric, e['rows'], e['sampled_rows'], e['positives'], e['method'],
                       round(e['difference'], 12), round(e['standard_error'], 12),
                       round(e['ci_upper'] - e['difference'], 12))
                      for metric, e in c.items())))
      expected = []
      delong = metrics.delong(labels, candidate, baseline)
      for metric, method, diff, variance in [
          (metrics.AUC, 'DeLong', delong['auc_difference'], delong['variance'])] + [
          (m, 'paired mean', p['difference'], p['variance']) for m, p in (
              (m, metrics.paired_mean(labels, candidate, baseline, m))
              for m in (metrics.LOG_LOSS, metrics.BRIER_SCORE))]:
        error = math.sqrt(variance)
        expected.append((metric, 3000, 3000, int(labels.sum()), method, round(diff, 12),
                         round(error, 12), round(1.959964 * error, 6)))
      assert_that(compared | beam.Map(lambda rows: [r[:7] + (round(r[7], 6),) for r in rows]),
                  equal_to([sorted(expected)]))

  def test_losses_use_the_same_bounded_sample_as_the_auc(self):
    keys, labels, candidate, baseline = keyed(*paired_probabilities(n=2000, seed=16))
    combine = metrics.PairedMetricsCombineFn(max_rows=500)
    result = combine.extract_output(combine.add_input(
        combine.create_accumulator(), (keys, labels, candidate, baseline)))
    kept = np.argsort(keys)[:500]
    assert set(result) == set(metrics.PAIRED_METRICS)
    for metric in (metrics.LOG_LOSS, metrics.BRIER_SCORE):
      entry = result[metric]
      direct = metrics.paired_mean(labels[kept], candidate[kept], baseline[kept], metric)
      assert (entry['rows'], entry['sampled_rows'], entry['sampled_positives']) == (
          2000, 500, int(labels[kept].sum()))
      assert entry['difference'] == pytest.approx(direct['difference'], abs=1e-15)
      assert entry['lower_bound'] == pytest.approx(
          direct['difference'] - metrics.Z_95 * math.sqrt(direct['variance']))
      assert entry['ci_lower'] < entry['lower_bound'] < entry['difference'] < entry['upper_bound']
    auc = result[metrics.AUC]  # the older AUC fields stay, equal to the generic ones
    assert (auc['candidate_auc'], auc['baseline_auc'], auc['auc_difference']) == (
        auc['candidate'], auc['baseline'], auc['difference'])
    assert auc['sampled_rows'] == 500 and auc['ci_level'] == 0.95
