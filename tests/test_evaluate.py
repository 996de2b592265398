"""Evaluation in Beam + blessing: a worse candidate is NOT_BLESSED naming the metric, a first model
is rubber-stamped, metrics equal scikit-learn's, unverified models are refused."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

from beam_pipelines import evaluate, train
from beam_pipelines.ml import artifacts, model_io, tabular

import mldata

pytestmark = pytest.mark.slow  # trains models and runs RunInference
features_dir, good_model_dir = mldata.features_dir, mldata.good_model_dir  # session fixtures
bad_model_dir, shuffled_features_dir = mldata.bad_model_dir, mldata.shuffled_features_dir


def run_evaluate(features, model, output, *extra):
  record = evaluate.run(['--features', str(features), '--model', str(model),
                         '--output', str(output), *extra])
  return record, json.loads((output / artifacts.METRICS_FILE).read_text())


@pytest.fixture(scope='module')
def worse_vs_good(features_dir, good_model_dir, bad_model_dir, tmp_path_factory):
  """A candidate trained on shuffled labels against a good baseline, one run for several tests."""
  output = tmp_path_factory.mktemp('worse_vs_good')
  record, metrics = run_evaluate(features_dir, bad_model_dir, output,
                                 '--baseline_model', str(good_model_dir))
  return output, record, metrics


@pytest.fixture(scope='module')
def first_model(features_dir, good_model_dir, tmp_path_factory):
  output = tmp_path_factory.mktemp('first_model')
  record, metrics = run_evaluate(features_dir, good_model_dir, output)
  return output, record, metrics


def test_worse_candidate_is_not_blessed_naming_the_metric(worse_vs_good):
  output, record, _ = worse_vs_good
  assert record['status'] == artifacts.NOT_BLESSED
  assert record['message'].startswith('NOT_BLESSED: auc')
  assert 'short by' in record['message'] and 'below lower_bound 0.6' in record['message']
  failed = [c for c in record['checks'] if not c['passed']]
  assert [(c['metric'], c['kind']) for c in failed] == [('auc', 'value_threshold'),
                                                        ('auc', 'change_threshold')]
  assert failed[1]['diff'] < -0.2
  assert (output / artifacts.NOT_BLESSED).exists() and not (output / artifacts.BLESSED).exists()
  assert json.loads((output / artifacts.BLESSING_FILE).read_text())['status'] == artifacts.NOT_BLESSED


def test_candidate_and_baseline_are_scored_on_the_same_rows(worse_vs_good):
  _, _, metrics = worse_vs_good
  candidate, baseline = (metrics['models'][m]['overall'] for m in ('candidate', 'baseline'))
  assert candidate['example_count'] == baseline['example_count'] == 1500
  assert candidate['positive_count'] == baseline['positive_count']


def test_metrics_are_per_slice_of_payment_type(worse_vs_good):
  _, _, metrics = worse_vs_good
  assert metrics['slice_feature'] == 'payment_type'
  slices = metrics['models']['baseline']['slices']
  assert set(mldata.PAYMENT_TYPES) <= set(slices)
  assert sum(s['example_count'] for s in slices.values()) == 1500


def test_report_html_shows_the_verdict_the_reason_and_the_slices(worse_vs_good):
  output, record, _ = worse_vs_good
  page = (output / artifacts.REPORT_FILE).read_text()
  assert page.startswith('<!DOCTYPE html>')
  assert 'NOT_BLESSED' in page and 'Slices by payment_type' in page and 'Credit Card' in page
  assert 'short by' in page


def test_first_model_is_rubber_stamped(first_model):
  output, record, metrics = first_model
  assert record['status'] == artifacts.BLESSED
  assert record['rubber_stamped'] is True
  assert [c['kind'] for c in record['checks']] == ['value_threshold']
  assert (output / artifacts.BLESSED).exists()
  assert list(metrics['models']) == ['candidate']


def test_overall_metrics_equal_sklearn_on_the_eval_split(first_model, features_dir, good_model_dir):
  _, _, metrics = first_model
  overall = metrics['models']['candidate']['overall']
  frame = pd.read_parquet(features_dir / 'eval')
  model = model_io.load_model(str(good_model_dir))
  scores = model.predict_proba(tabular.typed_frame(frame, mldata.NUMERIC, mldata.CATEGORICAL))[:, 1]
  labels = frame['big_tip']
  assert abs(overall['auc'] - roc_auc_score(labels, scores)) <= overall['auc_error_bound'] + 1e-12
  assert overall['accuracy'] == pytest.approx(accuracy_score(labels, scores >= 0.5))
  assert overall['log_loss'] == pytest.approx(log_loss(labels, scores), rel=1e-9)
  assert overall['example_count'] == len(frame)


def test_better_candidate_is_blessed(features_dir, good_model_dir, bad_model_dir, tmp_path):
  record, _ = run_evaluate(features_dir, good_model_dir, tmp_path,
                           '--baseline_model', str(bad_model_dir))
  assert record['status'] == artifacts.BLESSED and not record['rubber_stamped']
  assert (tmp_path / artifacts.BLESSED).exists()


def test_candidate_with_fewer_features_is_not_blessed(features_dir, good_model_dir, tmp_path):
  spec = tmp_path / 'spec.yaml'
  spec.write_text('label: big_tip\nkey: trip_id\nnumeric: [trip_seconds, trip_start_day_of_week]\n'
                  'categorical: [company]\nignore: [trip_start_timestamp, fare, trip_miles, '
                  'trip_start_hour, payment_type]\n')
  train.run(['--features', str(features_dir), '--spec', str(spec), '--output', str(tmp_path / 'm')])
  record, metrics = run_evaluate(features_dir, tmp_path / 'm', tmp_path / 'e',
                                 '--baseline_model', str(good_model_dir), '--slice_feature', 'company')
  assert record['status'] == artifacts.NOT_BLESSED
  assert 'auc' in record['message']
  assert metrics['models']['candidate']['features'] == ['trip_seconds', 'trip_start_day_of_week', 'company']


def test_config_thresholds_name_each_failing_or_missing_metric(features_dir, good_model_dir, tmp_path):
  config = tmp_path / 'blessing.yaml'
  config.write_text('metrics:\n'
                    '  accuracy: {value_threshold: {lower_bound: 0.99}}\n'
                    '  precision: {value_threshold: {lower_bound: 0.5}}\n')
  record, _ = run_evaluate(features_dir, good_model_dir, tmp_path / 'e',
                           '--blessing_config', str(config))
  assert record['status'] == artifacts.NOT_BLESSED
  assert 'is below lower_bound 0.99' in record['message']
  assert 'precision: metric not found for the candidate' in record['message']


def test_rerun_replaces_the_stale_marker(features_dir, good_model_dir, bad_model_dir, tmp_path):
  run_evaluate(features_dir, bad_model_dir, tmp_path, '--baseline_model', str(good_model_dir))
  assert (tmp_path / artifacts.NOT_BLESSED).exists()
  run_evaluate(features_dir, good_model_dir, tmp_path)
  assert (tmp_path / artifacts.BLESSED).exists() and not (tmp_path / artifacts.NOT_BLESSED).exists()


def test_tampered_baseline_is_refused_and_nothing_is_blessed(features_dir, good_model_dir, tmp_path):
  baseline = tmp_path / 'baseline'
  shutil.copytree(good_model_dir, baseline)
  (baseline / artifacts.MODEL_FILE).write_bytes(b'cos\nsystem\n(S"echo owned"\ntR.')
  with pytest.raises(Exception, match='refusing to unpickle'):
    run_evaluate(features_dir, good_model_dir, tmp_path / 'e', '--baseline_model', str(baseline))
  assert not (tmp_path / 'e' / artifacts.BLESSED).exists()
  assert not (tmp_path / 'e' / artifacts.NOT_BLESSED).exists()


def test_baseline_sha256_from_a_registry_is_checked(features_dir, good_model_dir, tmp_path):
  with pytest.raises(model_io.ModelIntegrityError, match=r'the caller \(registry\) says f+'):
    run_evaluate(features_dir, good_model_dir, tmp_path, '--baseline_model', str(good_model_dir),
                 '--baseline_sha256', 'f' * 64)
  sha256 = json.loads((good_model_dir / artifacts.MODEL_METADATA_FILE).read_text())['model_sha256']
  record, _ = run_evaluate(features_dir, good_model_dir, tmp_path, '--baseline_model',
                           str(good_model_dir), '--baseline_sha256', sha256)
  assert record['status'] == artifacts.BLESSED  # the same model is at least as good as itself


def test_slicing_by_a_non_categorical_column_is_a_clear_error(features_dir, good_model_dir, tmp_path):
  with pytest.raises(ValueError, match=r"--slice_feature 'fare' is not a categorical feature"):
    run_evaluate(features_dir, good_model_dir, tmp_path, '--slice_feature', 'fare')
