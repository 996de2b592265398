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
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score, roc_curve

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
           | beam.Map(json.dumps)
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
  assert fn.extract_output(fn.merge_accumulators(batches[::-1])) == expected  # exact
  assert expected['log_loss'] == pytest.approx(log_loss(labels, scores), rel=1e-12)
