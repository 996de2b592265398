"""The blessing rule: TFMA value/change threshold semantics, one rule per test."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from beam_pipelines import evaluate, train
from beam_pipelines.ml import artifacts, blessing, metrics, model_io, tabular
from beam_pipelines.ml.blessing import (
  HIGHER_IS_BETTER,
  LOWER_IS_BETTER,
  ChangeThreshold,
  MetricThreshold,
  ValueThreshold,
)

import mldata

features_dir, good_model_dir = mldata.features_dir, mldata.good_model_dir  # session fixtures


def auc_rule(**change):
  return {'auc': MetricThreshold(change=ChangeThreshold(HIGHER_IS_BETTER, **change))}


def loss_rule(**change):
  return {'log_loss': MetricThreshold(change=ChangeThreshold(LOWER_IS_BETTER, **change))}


class TestValueThreshold:

  def test_inside_bounds_passes(self):
    check = blessing.check_value('auc', 0.7, ValueThreshold(0.5, 0.9))
    assert check.passed

  def test_bounds_are_inclusive(self):
    assert blessing.check_value('auc', 0.5, ValueThreshold(0.5, 0.5)).passed

  def test_below_lower_bound_fails_saying_by_how_much(self):
    check = blessing.check_value('auc', 0.45, ValueThreshold(lower_bound=0.5))
    assert not check.passed
    assert 'below lower_bound 0.5 by 0.05' in check.message

  def test_above_upper_bound_fails_saying_by_how_much(self):
    check = blessing.check_value('log_loss', 0.75, ValueThreshold(upper_bound=0.7))
    assert not check.passed
    assert 'above upper_bound 0.7 by 0.05' in check.message

  def test_unset_bounds_are_infinite(self):
    assert blessing.check_value('x', -1e300, ValueThreshold(upper_bound=0)).passed
    assert blessing.check_value('x', 1e300, ValueThreshold(lower_bound=0)).passed

  def test_nan_value_fails(self):
    assert not blessing.check_value('auc', math.nan, ValueThreshold(lower_bound=0.5)).passed


class TestChangeThreshold:

  def test_diff_is_candidate_minus_baseline_and_relative_is_diff_over_baseline(self):
    check = blessing.check_change('auc', 0.9, 0.8, ChangeThreshold(HIGHER_IS_BETTER))
    assert check.diff == pytest.approx(0.1)
    assert check.relative == pytest.approx(0.125)

  def test_higher_is_better_passes_when_diff_at_least_absolute(self):
    assert blessing.check_change('auc', 0.81, 0.8, ChangeThreshold(HIGHER_IS_BETTER, absolute=0.01 - 1e-12)).passed

  def test_higher_is_better_fails_when_diff_below_absolute(self):
    check = blessing.check_change('auc', 0.79, 0.8, ChangeThreshold(HIGHER_IS_BETTER, absolute=0.0))
    assert not check.passed
    assert 'auc' in check.message and 'diff -0.01' in check.message and 'short by 0.01' in check.message

  def test_higher_is_better_fails_when_relative_below_bound(self):
    check = blessing.check_change('auc', 0.82, 0.8, ChangeThreshold(HIGHER_IS_BETTER, relative=0.05))
    assert not check.passed  # relative = 0.025 < 0.05
    assert 'relative +0.025' in check.message

  def test_higher_is_better_needs_both_absolute_and_relative(self):
    threshold = ChangeThreshold(HIGHER_IS_BETTER, absolute=0.01, relative=0.01)
    assert blessing.check_change('auc', 0.9, 0.8, threshold).passed
    assert not blessing.check_change('auc', 0.805, 0.8, threshold).passed

  def test_lower_is_better_passes_when_diff_at_most_absolute(self):
    assert blessing.check_change('log_loss', 0.52, 0.5, ChangeThreshold(LOWER_IS_BETTER, absolute=0.03)).passed

  def test_lower_is_better_fails_when_diff_above_absolute(self):
    check = blessing.check_change('log_loss', 0.6, 0.5, ChangeThreshold(LOWER_IS_BETTER, absolute=0.0))
    assert not check.passed
    assert 'is not <= absolute 0' in check.message

  def test_lower_is_better_fails_when_relative_above_bound(self):
    check = blessing.check_change('log_loss', 0.6, 0.5, ChangeThreshold(LOWER_IS_BETTER, relative=0.1))
    assert not check.passed  # relative = 0.2 > 0.1

  def test_unset_bounds_pass_any_change(self):
    assert blessing.check_change('auc', 0.1, 0.9, ChangeThreshold(HIGHER_IS_BETTER)).passed
    assert blessing.check_change('log_loss', 9.0, 0.1, ChangeThreshold(LOWER_IS_BETTER)).passed

  def test_zero_baseline_makes_relative_nan_and_fails_as_tfma(self):
    check = blessing.check_change('auc', 0.5, 0.0, ChangeThreshold(HIGHER_IS_BETTER, absolute=0.0))
    assert math.isnan(check.relative)
    assert not check.passed
    assert 'baseline is 0' in check.message

  def test_equal_model_passes_default_template(self):
    thresholds = blessing.load_config()
    assert blessing.bless({'auc': 0.8}, {'auc': 0.8}, thresholds).blessed


class TestBless:

  def test_worse_candidate_is_not_blessed_naming_the_metric(self):
    result = blessing.bless({'auc': 0.7}, {'auc': 0.8}, blessing.load_config())
    assert result.status == artifacts.NOT_BLESSED
    assert not result.rubber_stamped
    assert result.message.startswith('NOT_BLESSED: auc')
    assert 'diff -0.1' in result.message

  def test_better_candidate_is_blessed(self):
    result = blessing.bless({'auc': 0.85}, {'auc': 0.8}, blessing.load_config())
    assert result.status == artifacts.BLESSED
    assert [c.kind for c in result.checks] == [blessing.VALUE, blessing.CHANGE]

  def test_no_baseline_rubber_stamps_on_value_thresholds_alone(self):
    result = blessing.bless({'auc': 0.6}, None, blessing.load_config())
    assert result.status == artifacts.BLESSED
    assert result.rubber_stamped
    assert [c.kind for c in result.checks] == [blessing.VALUE]
    assert 'rubber-stamped' in result.message

  def test_no_baseline_still_fails_a_value_threshold(self):
    result = blessing.bless({'auc': 0.4}, None, blessing.load_config())
    assert result.status == artifacts.NOT_BLESSED
    assert 'auc = 0.4 is below lower_bound 0.6 by 0.2' in result.message

  def test_missing_candidate_metric_is_not_blessed_naming_it(self):
    result = blessing.bless({'accuracy': 0.9}, None, blessing.load_config())
    assert result.status == artifacts.NOT_BLESSED
    assert 'auc: metric not found for the candidate' in result.message

  def test_non_numeric_metric_counts_as_missing(self):
    result = blessing.bless({'auc': 'n/a'}, None, blessing.load_config())
    assert 'metric not found' in result.message

  def test_missing_baseline_metric_is_not_blessed_naming_it(self):
    result = blessing.bless({'auc': 0.9}, {'accuracy': 0.9}, blessing.load_config())
    assert result.status == artifacts.NOT_BLESSED
    assert 'auc: metric not found for the baseline' in result.message

  def test_every_failing_metric_is_named(self):
    thresholds = {**auc_rule(absolute=0.0), **loss_rule(absolute=0.0)}
    result = blessing.bless({'auc': 0.7, 'log_loss': 0.6}, {'auc': 0.8, 'log_loss': 0.5}, thresholds)
    assert 'auc' in result.message and 'log_loss' in result.message
    assert sum(not c.passed for c in result.checks) == 2

  def test_record_is_json_serialisable_with_nan(self):
    result = blessing.bless({'auc': 0.5}, {'auc': 0.0}, auc_rule(absolute=0.0))
    record = json.loads(json.dumps(result.to_dict()))
    assert record['status'] == artifacts.NOT_BLESSED
    assert record['checks'][0]['relative'] == 'nan'


class TestConfig:

  def test_default_is_the_tfx_taxi_template_with_a_floor_and_a_bounded_drop(self):
    thresholds = blessing.load_config()
    assert thresholds['auc'].value == ValueThreshold(lower_bound=0.6)
    assert thresholds['auc'].change == ChangeThreshold(HIGHER_IS_BETTER, absolute=-1e-10, noise='paired')
    assert blessing.parse_registered(blessing.DEFAULT_CONFIG) == {
        'auc': ChangeThreshold(HIGHER_IS_BETTER, absolute=-0.05)}

  def test_yaml_file_is_read(self, tmp_path):
    path = tmp_path / 'blessing.yaml'
    path.write_text('metrics:\n  log_loss:\n    change_threshold: {direction: LOWER_IS_BETTER, relative: 0.05}\n')
    thresholds = blessing.load_config(str(path))
    assert thresholds == {'log_loss': MetricThreshold(change=ChangeThreshold(LOWER_IS_BETTER, None, 0.05))}

  @pytest.mark.parametrize('raw, field', [
      ({}, "'metrics'"),
      ({'metrics': {'auc': {'value_threshold': {'lower': 1}}}}, 'metrics.auc.value_threshold'),
      ({'metrics': {'auc': {'value_threshold': {'lower_bound': 'x'}}}}, 'metrics.auc.value_threshold.lower_bound'),
      ({'metrics': {'auc': {'change_threshold': {'absolute': 0}}}}, 'metrics.auc.change_threshold.direction'),
      ({'metrics': {'auc': {'change_threshold': {'direction': 'UP'}}}}, 'metrics.auc.change_threshold.direction'),
      ({'metrics': {'auc': {'threshold': 1}}}, 'metrics.auc'),
  ])
  def test_bad_config_names_the_field(self, raw, field):
    with pytest.raises(blessing.BlessingConfigError, match=field.replace('.', r'\.')):
      blessing.parse_config(raw)

  def test_unreadable_file_names_the_path(self, tmp_path):
    with pytest.raises(blessing.BlessingConfigError, match='nope.yaml'):
      blessing.load_config(str(tmp_path / 'nope.yaml'))


def test_change_only_config_rubber_stamps_a_first_model_saying_why():
  result = blessing.bless({'auc': 0.1}, None, auc_rule(absolute=0.0))
  assert result.status == artifacts.BLESSED and result.checks == []
  assert result.message.endswith('no threshold applies without a baseline')


class TestRegisteredChange:
  """The bound on the drop from production's registered metric: what TFMA's same-data comparison
  cannot see when the eval data itself is corrupted."""

  def test_a_model_that_beats_production_on_corrupted_data_is_not_blessed(self):
    # Trained and evaluated on a span whose main feature is corrupted: the candidate (0.65) beats
    # production (0.60) on that same corrupted eval split, as TFMA's change threshold checks, but
    # production registered 0.95 on its own data.
    rule = blessing.BlessingRule.load(registered_metrics={'auc': 0.95})
    result = rule.judge({'auc': 0.65}, {'auc': 0.60})
    assert result.status == artifacts.NOT_BLESSED
    assert "auc: candidate 0.65 vs production's registered 0.95" in result.message
    assert [c.kind for c in result.checks if not c.passed] == [blessing.REGISTERED]
    assert blessing.bless({'auc': 0.65}, {'auc': 0.60}, blessing.load_config()).blessed  # TFMA alone

  def test_a_small_drop_within_the_bound_is_blessed(self):
    rule = blessing.BlessingRule.load(registered_metrics={'auc': 0.83})
    assert rule.judge({'auc': 0.80}, {'auc': 0.79}).blessed

  def test_without_registered_metrics_the_bound_is_not_checked(self):
    rule = blessing.BlessingRule.load()
    result = rule.judge({'auc': 0.65}, None)
    assert result.blessed and blessing.REGISTERED not in [c.kind for c in result.checks]

  def test_the_section_is_validated_and_described(self, tmp_path):
    path = tmp_path / 'b.yaml'
    path.write_text('metrics: {auc: {value_threshold: {lower_bound: 0.7}}}\n'
                    'registered_change: {auc: {direction: SIDEWAYS}}\n')
    with pytest.raises(blessing.BlessingConfigError, match='registered_change.auc.direction'):
      blessing.BlessingRule.load(str(path))
    described = blessing.BlessingRule.load(registered_metrics={'auc': 0.9}).describe()
    assert described['registered_change']['auc']['absolute'] == -0.05
    assert described['registered_metrics'] == {'auc': 0.9}


def compare(labels, candidate, baseline):
  """The paired comparison the evaluation records (``PairedAucCombineFn`` on every row)."""
  combine = metrics.PairedAucCombineFn()
  keys = np.arange(labels.size, dtype=np.uint64)
  return combine.extract_output(combine.add_input(
      combine.create_accumulator(), (keys, labels, candidate, baseline)))


def judged(rule, comparison):
  """The rule on metric maps as metrics.json holds them (here, the comparison's exact AUCs)."""
  return rule.judge({'auc': comparison['candidate_auc']}, {'auc': comparison['baseline_auc']},
                    {'auc': comparison})


EXACT_RULE = {'metrics': {'auc': {'value_threshold': {'lower_bound': 0.6}, 'change_threshold': {
    'direction': HIGHER_IS_BETTER, 'absolute': -1e-10}}}}


class TestPairedChange:
  """The default change threshold on AUC: not worse than the baseline beyond sampling noise, judged
  by the paired (DeLong) standard error of the difference on the same rows."""

  def test_near_identical_models_are_blessed_where_the_exact_rule_refuses(self):
    # As measured: AUC 0.99932 vs 0.99942 on the same 880 rows with 50 positives.
    rng = np.random.default_rng(9)
    labels = np.zeros(880, dtype=int)
    labels[:50] = 1
    baseline = rng.normal(size=880) + 4.2 * labels
    candidate = baseline + rng.normal(0, 0.15, 880)
    comparison = compare(labels, candidate, baseline)
    assert -2e-4 < comparison['auc_difference'] < 0
    result = judged(blessing.BlessingRule.load(), comparison)
    assert result.blessed, result.message
    change = result.checks[-1]
    assert (change.kind, change.noise, change.rows) == (blessing.CHANGE, blessing.PAIRED, 880)
    assert change.bound == pytest.approx(
        comparison['auc_difference'] + 1.6448536 * comparison['standard_error'])
    assert 'diff -0.0000' in change.message and 'upper bound +0.000' in change.message
    assert change.message.endswith('not worse beyond noise, ok')
    exact = judged(blessing.BlessingRule.from_config(EXACT_RULE), comparison)
    assert exact.status == artifacts.NOT_BLESSED and 'short by' in exact.message

  def test_a_candidate_worse_on_the_same_rows_is_not_blessed(self):
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 2000)
    baseline = rng.normal(size=2000) + 1.5 * labels
    candidate = baseline.copy()
    shuffled = rng.choice(2000, 600, replace=False)  # 30% of the rows' scores shuffled
    candidate[shuffled] = rng.permutation(candidate[shuffled])
    comparison = compare(labels, candidate, baseline)
    result = judged(blessing.BlessingRule.load(), comparison)
    assert result.status == artifacts.NOT_BLESSED
    assert 'worse beyond noise: bound -0.0' in result.message and 'short by' in result.message
    assert comparison['upper_bound'] < 0

  def test_a_small_real_drop_is_worse_beyond_noise_on_enough_rows(self):
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 50_000)
    baseline = rng.normal(size=labels.size) + 1.5 * labels
    candidate = baseline + rng.normal(0, 0.1, labels.size)  # AUC 0.0015 lower, SE 0.0002
    comparison = compare(labels, candidate, baseline)
    assert -0.003 < comparison['auc_difference'] < -0.001
    assert not judged(blessing.BlessingRule.load(), comparison).blessed

  def test_identical_models_pass_with_a_zero_error(self):
    labels = np.array([0, 1, 0, 1, 1, 0])
    scores = np.array([0.1, 0.9, 0.4, 0.35, 0.8, 0.2])
    comparison = compare(labels, scores, scores)
    assert comparison['standard_error'] == 0
    assert judged(blessing.BlessingRule.load(), comparison).blessed

  def test_without_a_standard_error_the_exact_rule_applies_saying_so(self):
    rule = blessing.BlessingRule.load()
    for paired in (None, {'auc': {'standard_error': None, 'candidate_auc': 0.79}}):
      result = rule.judge({'auc': 0.79}, {'auc': 0.8}, paired)
      assert result.status == artifacts.NOT_BLESSED
      assert 'short by 0.01' in result.message
      assert result.message.endswith('(no paired standard error: exact rule)')
      assert result.checks[-1].noise is None

  def test_a_config_without_noise_keeps_tfmas_exact_rule(self):
    comparison = {'candidate_auc': 0.79, 'baseline_auc': 0.8, 'auc_difference': -0.01,
                  'standard_error': 0.05, 'rows': 100, 'sampled_rows': 100}
    rule = blessing.BlessingRule.from_config(EXACT_RULE)
    assert rule.thresholds['auc'].change.noise == blessing.EXACT
    result = rule.judge({'auc': 0.79}, {'auc': 0.8}, {'auc': comparison})
    assert not result.blessed and 'exact rule' not in result.message
    paired = blessing.BlessingRule.load().judge({'auc': 0.79}, {'auc': 0.8}, {'auc': comparison})
    assert paired.blessed

  def test_lower_is_better_bounds_the_difference_from_below(self):
    comparison = {'candidate_auc': 0.81, 'baseline_auc': 0.8, 'auc_difference': 0.01,
                  'standard_error': 0.004, 'rows': 100, 'sampled_rows': 100}
    threshold = ChangeThreshold(LOWER_IS_BETTER, absolute=0.0, noise=blessing.PAIRED)
    check = blessing.check_change('auc', 0.81, 0.8, threshold, comparison)
    assert check.bound == pytest.approx(0.01 - 1.6448536 * 0.004) and not check.passed
    assert 'lower bound' in check.message

  def test_confidence_sets_z_and_a_sample_is_named(self):
    comparison = {'candidate_auc': 0.79, 'baseline_auc': 0.8, 'auc_difference': -0.01,
                  'standard_error': 0.005, 'rows': 900_000, 'sampled_rows': 200_000}
    threshold = ChangeThreshold(HIGHER_IS_BETTER, absolute=0.0, noise=blessing.PAIRED,
                                confidence=0.99)
    check = blessing.check_change('auc', 0.79, 0.8, threshold, comparison)
    assert check.bound == pytest.approx(-0.01 + 2.3263479 * 0.005) and check.passed
    assert 'a sample of 200,000 of the same 900,000 rows' in check.message
    assert 'one-sided 99% upper bound' in check.message

  def test_the_record_has_the_error_and_the_bound(self):
    comparison = {'candidate_auc': 0.79, 'baseline_auc': 0.8, 'auc_difference': -0.01,
                  'standard_error': 0.005, 'rows': 100, 'sampled_rows': 100}
    record = blessing.BlessingRule.load().judge(
        {'auc': 0.79}, {'auc': 0.8}, {'auc': comparison}).to_dict()
    change = json.loads(json.dumps(record))['checks'][-1]
    assert (change['noise'], change['standard_error'], change['rows']) == ('paired', 0.005, 100)
    assert change['bound'] == pytest.approx(-0.01 + 1.6448536 * 0.005)
    exact = blessing.bless({'auc': 0.9}, {'auc': 0.8}, auc_rule()).to_dict()['checks'][0]
    assert 'noise' not in exact and 'bound' not in exact

  @pytest.mark.parametrize('change, field', [
      ({'direction': HIGHER_IS_BETTER, 'noise': 'bootstrap'}, 'change_threshold.noise'),
      ({'direction': HIGHER_IS_BETTER, 'noise': 'paired', 'confidence': 1.0},
       'change_threshold.confidence'),
  ])
  def test_bad_noise_fields_are_named(self, change, field):
    with pytest.raises(blessing.BlessingConfigError, match=field.replace('.', r'\.')):
      blessing.parse_config({'metrics': {'auc': {'change_threshold': change}}})

  def test_paired_noise_is_for_compared_metrics_only_and_not_for_registered_change(self):
    assert blessing.PAIRED_METRICS == metrics.PAIRED_METRICS
    with pytest.raises(blessing.BlessingConfigError, match='brier_score only, not accuracy'):
      blessing.parse_config({'metrics': {'accuracy': {'change_threshold': {
          'direction': HIGHER_IS_BETTER, 'noise': 'non_inferiority'}}}})
    with pytest.raises(blessing.BlessingConfigError, match='registered_change.auc fields'):
      blessing.parse_registered({'registered_change': {'auc': {
          'direction': HIGHER_IS_BETTER, 'noise': 'paired'}}})

  def test_the_rule_describes_the_noise(self):
    described = blessing.BlessingRule.load().describe()
    assert described['auc']['change_threshold']['noise'] == 'paired'
    assert described['auc']['change_threshold']['confidence'] == 0.95


def interval(diff, error, rows=2007, positives=412, total=None, **more):
  """A paired comparison record (``artifacts.MetricComparison``) of given numbers."""
  return {'candidate': 0.8 + diff, 'baseline': 0.8, 'difference': diff, 'standard_error': error,
          'rows': total or rows, 'sampled_rows': rows, 'sampled_positives': positives,
          'positives': positives, 'data': 'features/eval/part-*.parquet', **more}


def ni_rule(metric='auc', direction=HIGHER_IS_BETTER, absolute=-0.01, **more):
  return blessing.BlessingRule.from_config({'metrics': {metric: {'change_threshold': {
      'direction': direction, 'absolute': absolute, 'noise': 'non_inferiority', **more}}}})


class TestNonInferiority:
  """``noise: non_inferiority``: the burden of proof is on the candidate. It passes only when the
  one-sided bound against it (diff - z SE when higher is better) clears the margin."""

  def test_a_small_gain_inside_a_wide_interval_is_not_shown_non_inferior(self):
    compared = interval(0.002, 0.0066)  # 95% CI [-0.0109, +0.0149]
    result = ni_rule(absolute=-0.005).judge({'auc': 0.802}, {'auc': 0.8}, {'auc': compared})
    assert result.status == artifacts.NOT_BLESSED
    check = result.checks[-1]
    assert check.bound == pytest.approx(0.002 - 1.6448536 * 0.0066)
    assert 'non-inferiority not shown: bound -0.008856' in check.message
    assert 'one-sided 95% lower bound' in check.message
    paired = blessing.BlessingRule.from_config({'metrics': {'auc': {'change_threshold': {
        'direction': HIGHER_IS_BETTER, 'absolute': -0.005, 'noise': 'paired'}}}})
    assert paired.judge({'auc': 0.802}, {'auc': 0.8}, {'auc': compared}).blessed

  def test_a_tight_interval_above_the_margin_passes(self):
    result = ni_rule().judge({'auc': 0.8}, {'auc': 0.801}, {'auc': interval(-0.001, 0.002)})
    assert result.blessed, result.message
    assert result.checks[-1].bound == pytest.approx(-0.001 - 1.6448536 * 0.002)
    assert result.message.endswith('shown no worse than the margin, ok')

  @pytest.mark.parametrize('diff, error, passed', [
      (0.0, 0.006, True),      # bound -0.00987 >= -0.01
      (0.0, 0.0061, False),    # bound -0.01003
      (-0.02, 0.0, False),     # exactly known and worse than the margin
      (-0.01, 0.0, True),      # on the margin: passes (>=, as TFMA)
  ])
  def test_the_rule_on_numbers(self, diff, error, passed):
    check = blessing.check_change('auc', 0.8 + diff, 0.8, ChangeThreshold(
        HIGHER_IS_BETTER, absolute=-0.01, noise=blessing.NON_INFERIORITY), interval(diff, error))
    assert check.passed is passed
    assert check.bound == pytest.approx(diff - 1.6448536 * error)

  def test_lower_is_better_bounds_the_loss_increase_from_above(self):
    # log loss: candidate 0.004 higher, SE 0.003; margin: at most 0.01 higher
    threshold = ChangeThreshold(LOWER_IS_BETTER, absolute=0.01, noise=blessing.NON_INFERIORITY)
    check = blessing.check_change('log_loss', 0.404, 0.4, threshold, interval(0.004, 0.003))
    assert check.bound == pytest.approx(0.004 + 1.6448536 * 0.003) and check.passed
    assert 'upper bound' in check.message
    worse = blessing.check_change('log_loss', 0.404, 0.4, threshold, interval(0.004, 0.004))
    assert not worse.passed  # bound 0.01058 > 0.01
    paired = ChangeThreshold(LOWER_IS_BETTER, absolute=0.0, noise=blessing.PAIRED)
    assert blessing.check_change('log_loss', 0.404, 0.4, paired, interval(0.004, 0.004)).passed

  def test_without_a_paired_error_nothing_is_shown_and_it_fails(self):
    for compared in (None, interval(0.01, None), {'candidate_auc': 0.81}):
      result = ni_rule().judge({'auc': 0.81}, {'auc': 0.8}, {'auc': compared} if compared else None)
      assert result.status == artifacts.NOT_BLESSED
      assert 'non-inferiority cannot be shown without a paired comparison' in result.message
    assert ni_rule().judge({'auc': 0.81}, None).blessed  # no baseline: rubber stamp, as ever

  def test_the_record_has_the_interval_and_the_rows_for_every_rule(self):
    compared = interval(0.002, 0.0066, rows=2007, positives=412, total=3026)
    for rule, noise in ((ni_rule(), 'non_inferiority'),
                        (blessing.BlessingRule.load(), 'paired'),
                        (blessing.BlessingRule.from_config(EXACT_RULE), None)):
      check = json.loads(json.dumps(rule.judge(
          {'auc': 0.802}, {'auc': 0.8}, {'auc': compared}).to_dict()))['checks'][-1]
      assert check['kind'] == 'change_threshold' and check.get('noise') == noise
      assert (check['rows'], check['positives'], check['total_rows'], check['data']) == (
          2007, 412, 3026, 'features/eval/part-*.parquet')
      assert check['ci_level'] == 0.95
      assert check['ci_lower'] == pytest.approx(0.002 - 1.959964 * 0.0066)
      assert check['ci_upper'] == pytest.approx(0.002 + 1.959964 * 0.0066)
    assert ('auc candidate - baseline on a sample of 2,007 of the same 3,026 rows (412 positives) '
            'of features/eval/part-*.parquet: +0.0020, 95% CI [-0.0109, +0.0149]'
            ) == blessing.measured(compared).describe('auc')

  def test_losses_are_judged_on_the_comparison_even_when_the_slices_lack_them(self):
    compared = interval(-0.003, 0.001)
    rule = ni_rule('brier_score', LOWER_IS_BETTER, 0.005)
    result = rule.judge({'auc': 0.9}, {'auc': 0.9}, {'brier_score': compared})
    assert result.blessed, result.message
    assert result.checks[-1].candidate == pytest.approx(0.797)
    assert not rule.judge({'auc': 0.9}, {'auc': 0.9}).blessed  # no comparison: not found

  def test_the_config_reads_non_inferiority_and_describes_it(self):
    rule = ni_rule('log_loss', LOWER_IS_BETTER, 0.01, confidence=0.975)
    change = rule.thresholds['log_loss'].change
    assert (change.noise, change.absolute, change.confidence) == ('non_inferiority', 0.01, 0.975)
    assert rule.describe()['log_loss']['change_threshold']['noise'] == 'non_inferiority'


@pytest.mark.slow
class TestNonInferiorityOnRealModels:
  """Two logistic regressions trained by the pipeline, compared by ``evaluate`` on the same 250
  held-out trips: the better-regularised one gains +0.0019 AUC, well inside the interval."""

  @pytest.fixture(scope='class')
  @classmethod
  def evaluated(cls, features_dir, good_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp('non_inferiority')
    train.run(['--features', str(features_dir), '--output', str(root / 'weak'), '--C', '0.003'])
    span = mldata.taxi_frame(250, 236, id_offset=10_000)
    mldata.write_shards(span, root / 'span' / artifacts.EVAL, 1)
    config = root / 'non_inferiority.yaml'
    config.write_text('metrics:\n  auc:\n    change_threshold: {direction: HIGHER_IS_BETTER, '
                      'absolute: -0.002, noise: non_inferiority}\n')
    evaluation = evaluate.run([
        '--features', str(root / 'span'), '--model', str(good_model_dir), '--output',
        str(root / 'eval'), '--baseline_model', str(root / 'weak'), '--blessing_config',
        str(config)])
    record = json.loads((root / 'eval' / artifacts.BLESSING_FILE).read_text())
    document = json.loads((root / 'eval' / artifacts.METRICS_FILE).read_text())
    return evaluation, record, document, span, root

  def test_a_small_gain_inside_a_wide_interval_is_not_a_push(self, evaluated):
    evaluation, record, _, span, root = evaluated
    assert evaluation.status == record['status'] == artifacts.NOT_BLESSED
    (check,) = record['checks']
    assert check['noise'] == 'non_inferiority' and not check['passed']
    assert 0.0015 < check['diff'] < 0.0025  # a +0.002 delta ...
    assert check['ci_lower'] < -0.005 and check['ci_upper'] > 0.008  # ... inside a wide interval
    assert check['bound'] < -0.002  # lower one-sided bound below the margin
    assert (check['rows'], check['total_rows'], check['positives']) == (
        250, 250, int(span['big_tip'].sum()))
    assert check['data'] == str(root / 'span' / 'eval' / 'part-*.parquet')
    assert 'non-inferiority not shown' in record['message']

  def test_the_values_are_scikit_learns_on_the_same_rows(self, evaluated, good_model_dir):
    _, record, document, span, root = evaluated
    check = record['checks'][0]
    labels = span['big_tip'].to_numpy()
    features = tabular.typed_frame(span, mldata.NUMERIC, mldata.CATEGORICAL)
    for key, model in (('candidate', good_model_dir), ('baseline', root / 'weak')):
      scores = model_io.load_model(str(model)).predict_proba(features)[:, 1]
      assert check[key] == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
      assert document['comparison']['brier_score'][key] == pytest.approx(
          np.mean((scores - labels) ** 2), abs=1e-12)
    assert set(document['comparison']) == {'auc', 'log_loss', 'brier_score'}
    assert record['comparison'] == document['comparison']

  def test_the_same_comparison_passes_with_benefit_of_the_doubt(self, evaluated):
    _, _, document, _, _ = evaluated
    paired = blessing.BlessingRule.from_config({'metrics': {'auc': {'change_threshold': {
        'direction': HIGHER_IS_BETTER, 'absolute': -0.002, 'noise': 'paired'}}}})
    overall = {m: document['models'][m]['overall'] for m in ('candidate', 'baseline')}
    result = paired.judge(overall['candidate'], overall['baseline'], document['comparison'])
    assert result.blessed and result.message.endswith('not worse beyond noise, ok')
