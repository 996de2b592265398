"""The drift distances of ``beam_pipelines.ml.drift`` on statistics protos built from known samples:
heavy tails, point masses, the noise floor, small-sample shares."""

from __future__ import annotations

import math

import numpy as np
import pytest
from tensorflow_metadata.proto.v0 import statistics_pb2

from beam_pipelines.ml import drift

QUANTILE_BUCKETS = 10


def numeric(values) -> statistics_pb2.FeatureNameStatistics:
  """A numeric feature's statistics as TFDV writes them: common stats and a quantile histogram
  (equal-count buckets between consecutive quantiles)."""
  values = np.asarray(values, dtype=float)
  feature = statistics_pb2.FeatureNameStatistics(name='x')
  feature.num_stats.common_stats.num_non_missing = len(values)
  feature.num_stats.mean = float(values.mean())
  histogram = feature.num_stats.histograms.add(type=statistics_pb2.Histogram.QUANTILES)
  edges = np.quantile(values, np.linspace(0, 1, QUANTILE_BUCKETS + 1))
  for low, high in zip(edges[:-1], edges[1:]):
    histogram.buckets.add(low_value=low, high_value=high, sample_count=len(values) / QUANTILE_BUCKETS)
  return feature


def categorical(counts) -> statistics_pb2.FeatureNameStatistics:
  feature = statistics_pb2.FeatureNameStatistics(name='c')
  total = sum(counts.values())
  feature.string_stats.common_stats.num_non_missing = total
  feature.string_stats.common_stats.tot_num_values = total
  for rank, (value, count) in enumerate(sorted(counts.items(), key=lambda i: -i[1])):
    feature.string_stats.rank_histogram.buckets.add(low_rank=rank, high_rank=rank, label=value,
                                                    sample_count=count)
  return feature


def test_one_huge_value_is_not_drift_on_quantile_bins():
  rng = np.random.RandomState(0)
  before = rng.lognormal(2.5, 0.5, 12000)
  after = np.append(rng.lognormal(2.5, 0.5, 12000), 700.0)  # one $700 fare
  found = drift.compare('fare', numeric(before), numeric(after), 'jensen_shannon')
  assert found is not None and found.value < found.noise_floor * 3
  assert found.value < 0.01


def test_a_real_shift_is_drift():
  rng = np.random.RandomState(1)
  found = drift.compare('fare', numeric(rng.normal(10, 2, 5000)), numeric(rng.normal(12, 2, 5000)),
                        'jensen_shannon')
  assert found is not None and found.value > 0.1 > found.noise_floor


def test_point_masses_compare_the_same_in_both_directions():
  zeros_then_ones = numeric([0] * 900 + [1] * 100), numeric([0] * 100 + [1] * 900)
  there = drift.compare('flag', *zeros_then_ones, 'jensen_shannon')
  back = drift.compare('flag', *reversed(zeros_then_ones), 'jensen_shannon')
  assert there is not None and back is not None
  assert there.value == pytest.approx(back.value, abs=1e-6) and there.value > 0.3
  monday, tuesday = numeric([1] * 500), numeric([2] * 500)  # a constant that changes
  assert drift.compare('day', monday, tuesday, 'jensen_shannon').value == 1.0
  assert drift.compare('day', tuesday, monday, 'jensen_shannon').value == 1.0


def test_categorical_measures():
  before = categorical({'cash': 600, 'card': 400})
  after = categorical({'cash': 400, 'card': 500, 'mobile': 100})
  assert drift.compare('p', before, after, 'l_infinity').value == pytest.approx(0.2)
  assert drift.compare('p', before, after, 'normalized_abs_difference').value == pytest.approx(0.2)
  assert 0 < drift.compare('p', before, after, 'jensen_shannon').value < 1
  assert drift.compare('p', before, before, 'l_infinity').value == 0


def test_the_noise_floor_bounds_sampling_noise_95_times_in_100():
  rng = np.random.RandomState(2)
  shares = np.array([0.5, 0.3, 0.15, 0.05])
  floor = drift.noise_floor('l_infinity', shares, 2000, 500)
  js_floor = drift.noise_floor('jensen_shannon', shares, 2000, 500)
  over, js_over = 0, 0
  for _ in range(400):
    a = rng.multinomial(2000, shares) / 2000
    b = rng.multinomial(500, shares) / 500
    over += np.abs(a - b).max() > floor
    js_over += drift.jensen_shannon(a, b) > js_floor
  assert over / 400 < 0.08 and js_over / 400 < 0.08
  assert over / 400 > 0.005 or floor < 0.1  # a bound, not an unreachable ceiling


def test_shares_on_small_samples_count_by_their_lower_bound():
  assert drift.wilson_lower_bound(4, 398) < 0.01 < 4 / 398
  assert drift.wilson_lower_bound(40, 398) > 0.01
  assert drift.wilson_lower_bound(0, 10) == 0
  assert drift.wilson_lower_bound(0, 0) == 0


def test_suggested_thresholds_can_fire():
  assert drift.suggested_threshold(0.001) == 0.03
  assert drift.suggested_threshold(0.7) == 0.9  # never above what the measure can reach


def test_label_shift_beyond_noise():
  before, after = numeric([0] * 830 + [1] * 170), numeric([0] * 720 + [1] * 280)
  shift = drift.label_shift(before, after)
  assert shift is not None and shift.beyond_noise
  assert shift.difference == pytest.approx(0.11)
  same = drift.label_shift(before, numeric([0] * 820 + [1] * 180))
  assert same is not None and not same.beyond_noise
  assert math.isclose(same.noise_floor, 1.96 * math.sqrt(0.175 * 0.825 * 2 / 1000), rel_tol=1e-3)


def test_a_truncated_value_list_is_not_drift():
  """TFDV lists a categorical feature's 1,000 most frequent values; with 2,000 equally frequent
  ones, each side lists another half. Identical data must not read as drift."""
  values = [f'v{i}' for i in range(2000)]
  before, after = categorical({}), categorical({})
  for feature, listed in ((before, values[:1000]), (after, values[500:1500])):
    feature.string_stats.common_stats.num_non_missing = 200_000
    feature.string_stats.common_stats.tot_num_values = 200_000
    for rank, value in enumerate(listed):
      feature.string_stats.rank_histogram.buckets.add(low_rank=rank, high_rank=rank, label=value,
                                                      sample_count=100)
  found = drift.compare('zip', before, after, 'jensen_shannon')
  assert found is not None and found.value < 1e-9
  assert drift.compare('zip', before, after, 'l_infinity').value < 1e-9


def test_a_binary_column_is_compared_by_its_share_of_ones():
  """Quantile buckets of a 0/1 column include one spanning 0 to 1; its mass cannot be placed.
  71% against 69% zeros is a small distance, not a jump of a whole decile."""
  rng = np.random.RandomState(4)
  before = numeric((rng.rand(100_000) > 0.71).astype(float))
  after = numeric((rng.rand(100_000) > 0.69).astype(float))
  assert drift.is_binary(before) and drift.is_binary(after)
  found = drift.compare('flag', before, after, 'jensen_shannon')
  exact = drift.jensen_shannon(np.array([1 - before.num_stats.mean, before.num_stats.mean]),
                               np.array([1 - after.num_stats.mean, after.num_stats.mean]))
  assert found is not None and found.value == pytest.approx(exact, abs=1e-6) and found.value < 0.001


def test_presence_minimums_allow_for_the_size_of_a_split():
  from tensorflow_metadata.proto.v0 import schema_pb2

  from beam_pipelines import validate
  schema = schema_pb2.Schema()
  for name, fraction in (('payor', 0.8), ('age', 1.0), ('note', 0.0)):
    feature = schema.feature.add(name=name)
    feature.presence.min_fraction = fraction
  small = {f.name: f.presence.min_fraction for f in validate.presence_allowance(schema, 20).feature}
  large = {f.name: f.presence.min_fraction
           for f in validate.presence_allowance(schema, 1_000_000).feature}
  assert small['payor'] == pytest.approx(0.8 - 1.645 * math.sqrt(0.16 / 20), abs=1e-3)
  assert large['payor'] == pytest.approx(0.8, abs=1e-3)
  assert small['age'] == 1.0 and small['note'] == 0.0
  assert schema.feature[0].presence.min_fraction == pytest.approx(0.8)  # the schema is unchanged
