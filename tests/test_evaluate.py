"""Evaluation in Beam + blessing: a worse candidate is NOT_BLESSED naming the metric, a first model
is rubber-stamped, metrics equal scikit-learn's, unverified models are refused."""

from __future__ import annotations

import dataclasses
import json
import shutil

import apache_beam as beam
import numpy as np
import pandas as pd
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
  accuracy_score,
  average_precision_score,
  brier_score_loss,
  confusion_matrix,
  f1_score,
  log_loss,
  precision_score,
  recall_score,
  roc_auc_score,
)

from beam_pipelines import evaluate, train
from beam_pipelines.ml import artifacts, importance, model_io, tabular

import mldata

pytestmark = pytest.mark.slow  # trains models and runs RunInference
features_dir, good_model_dir = mldata.features_dir, mldata.good_model_dir  # session fixtures
bad_model_dir, shuffled_features_dir = mldata.bad_model_dir, mldata.shuffled_features_dir


def blessing_record(evaluation, output):
  """The blessing.json an evaluation wrote, checked against the Evaluation it returned."""
  record = json.loads((output / artifacts.BLESSING_FILE).read_text())
  assert (evaluation.status, evaluation.message, evaluation.rubber_stamped) == (
      record['status'], record['message'], record['rubber_stamped'])
  metrics = json.loads((output / artifacts.METRICS_FILE).read_text())['models']
  assert evaluation.metrics == metrics['candidate']['overall']
  assert evaluation.baseline_metrics == metrics.get('baseline', {}).get('overall')
  comparison = json.loads((output / artifacts.METRICS_FILE).read_text()).get('comparison')
  assert record.get('comparison') == comparison
  auc = (comparison or {}).get('auc')  # the record's AUC entry has more fields than the result's
  assert (dataclasses.asdict(evaluation.auc_comparison) if evaluation.auc_comparison
          else None) == ({f.name: auc[f.name] for f in dataclasses.fields(evaluate.AucComparison)}
                         if auc else None)
  return record


def run_evaluate(features, model, output, *extra):
  evaluation = evaluate.run(['--features', str(features), '--model', str(model),
                             '--output', str(output), *extra])
  return (blessing_record(evaluation, output),
          json.loads((output / artifacts.METRICS_FILE).read_text()))


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


def test_both_models_are_compared_row_by_row_on_the_same_rows(worse_vs_good):
  _, record, metrics = worse_vs_good
  comparison = metrics['comparison']['auc']
  candidate, baseline = (metrics['models'][m]['overall'] for m in ('candidate', 'baseline'))
  assert comparison['rows'] == comparison['sampled_rows'] == candidate['example_count'] == 1500
  assert comparison['positives'] == candidate['positive_count']
  for name, entry in (('candidate', candidate), ('baseline', baseline)):  # exact vs histogram AUC
    assert abs(comparison[f'{name}_auc'] - entry['auc']) <= entry['auc_error_bound'] + 1e-12
  assert comparison['auc_difference'] == pytest.approx(
      comparison['candidate_auc'] - comparison['baseline_auc'])
  assert comparison['upper_bound'] == pytest.approx(
      comparison['auc_difference'] + 1.6448536 * comparison['standard_error'])
  change = [c for c in record['checks'] if c['kind'] == 'change_threshold'][0]
  assert (change['noise'], change['rows']) == ('paired', 1500)
  assert 'worse beyond noise' in change['message'] and 'paired, exact values on the same 1,500 rows' in change['message']


def test_the_comparison_is_the_same_on_every_run_and_worker_count(features_dir, good_model_dir,
                                                                  bad_model_dir, worse_vs_good,
                                                                  tmp_path):
  _, _, first = worse_vs_good
  _, again = run_evaluate(features_dir, bad_model_dir, tmp_path, '--baseline_model',
                          str(good_model_dir), '--direct_num_workers', '3',
                          '--direct_running_mode', 'multi_threading')
  assert again['comparison'] == first['comparison']


def test_row_keys_depend_on_the_rows_only_and_separate_duplicates():
  frame = pd.DataFrame({'a': [1.0, 2.0, 1.0, None], 'b': ['x', 'y', 'x', 'z']})
  keys = evaluate.row_keys(frame)
  assert len(set(keys.tolist())) == 4  # rows 0 and 2 are identical, yet keyed apart
  assert evaluate.row_keys(frame.iloc[[1, 0, 3]]).tolist() == keys[[1, 0, 3]].tolist()


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


def eval_scores(features_dir, model_dir):
  """The eval split's labels and a plain scikit-learn computation of the model's scores."""
  frame = pd.read_parquet(features_dir / 'eval')
  model = model_io.load_model(str(model_dir))
  scores = model.predict_proba(tabular.typed_frame(frame, mldata.NUMERIC, mldata.CATEGORICAL))[:, 1]
  return frame, frame['big_tip'].to_numpy(), scores


def assert_decision_metrics_equal_sklearn(metrics, labels, scores):
  predicted = scores >= metrics['threshold']
  tn, fp, fn, tp = confusion_matrix(labels, predicted, labels=[0, 1]).ravel()
  assert (metrics['true_positives'], metrics['false_positives'], metrics['true_negatives'],
          metrics['false_negatives']) == (tp, fp, tn, fn)
  assert metrics['precision'] == pytest.approx(precision_score(labels, predicted), rel=1e-12)
  assert metrics['recall'] == pytest.approx(recall_score(labels, predicted), rel=1e-12)
  assert metrics['f1'] == pytest.approx(f1_score(labels, predicted), rel=1e-12)


def test_new_metrics_equal_sklearn_on_the_eval_split(first_model, features_dir, good_model_dir):
  _, _, metrics = first_model
  overall = metrics['models']['candidate']['overall']
  _, labels, scores = eval_scores(features_dir, good_model_dir)
  assert overall['brier_score'] == pytest.approx(brier_score_loss(labels, scores), rel=1e-12)
  exact_ap = average_precision_score(labels, scores)
  assert abs(overall['average_precision'] - exact_ap) <= overall['average_precision_error_bound'] + 1e-12
  assert_decision_metrics_equal_sklearn(overall, labels, scores)
  assert 0 <= overall['expected_calibration_error'] < 0.1


def test_the_threshold_rule_and_value_are_recorded(first_model):
  _, _, metrics = first_model
  choice = metrics['threshold']
  assert choice['rule'] == 'max_f1' and 'maximising F1' in choice['description']
  threshold = metrics['models']['candidate']['overall']['threshold']
  assert choice['values'] == {'candidate': threshold}
  assert (threshold * 10_000) == int(threshold * 10_000)  # a histogram edge
  slices = metrics['models']['candidate']['slices']
  assert {s['threshold'] for s in slices.values()} == {threshold}  # every slice at the model's
  curves = metrics['models']['candidate']['curves']
  assert len(curves['pr']) >= 90 and all(len(point) == 4 for point in curves['pr'])


def test_the_first_slicing_spec_is_also_the_old_fields(worse_vs_good):
  _, _, metrics = worse_vs_good
  assert metrics['slicing_specs'] == [{'name': 'payment_type', 'features': ['payment_type']}]
  for entry in metrics['models'].values():
    assert entry['slicings'] == [{'name': 'payment_type', 'features': ['payment_type'],
                                  'slices': entry['slices']}]


@pytest.fixture(scope='module')
def crossed(features_dir, good_model_dir, tmp_path_factory):
  """Two slicing specs, one a cross, and a fixed threshold: one run for several tests."""
  output = tmp_path_factory.mktemp('crossed')
  return run_evaluate(features_dir, good_model_dir, output, '--slice_feature', 'company',
                      '--slice_feature', 'payment_type,company', '--threshold', '0.3')[1]


def test_several_slicing_specs_and_a_cross(crossed, features_dir):
  assert crossed['slice_feature'] == 'company'
  assert [s['name'] for s in crossed['slicing_specs']] == ['company', 'payment_type × company']
  company, cross = crossed['models']['candidate']['slicings']
  assert company['slices'] == crossed['models']['candidate']['slices']
  frame = pd.read_parquet(features_dir / 'eval')
  keys = (frame['payment_type'].fillna('<missing>') + ' | ' + frame['company'].fillna('<missing>'))
  assert {k: v['example_count'] for k, v in cross['slices'].items()} == keys.value_counts().to_dict()
  assert sum(s['example_count'] for s in cross['slices'].values()) == 1500


def test_a_fixed_threshold_applies_to_every_slice(crossed, features_dir, good_model_dir):
  assert crossed['threshold']['rule'] == 'fixed' and crossed['threshold']['values'] == {
      'candidate': 0.3}
  frame, labels, scores = eval_scores(features_dir, good_model_dir)
  entry = crossed['models']['candidate']
  assert_decision_metrics_equal_sklearn(entry['overall'], labels, scores)
  rows = (frame['company'] == 'Sun Taxi').to_numpy()
  assert_decision_metrics_equal_sklearn(entry['slices']['Sun Taxi'], labels[rows], scores[rows])


def test_importance_ranks_the_signal_first_and_noise_about_zero(worse_vs_good):
  """mldata's label depends on payment type most; company and day of week carry nothing."""
  _, _, metrics = worse_vs_good
  good = metrics['models']['baseline']['importance']
  assert (good['method'], good['rows'], good['repeats']) == ('permutation', 1500, 3)
  ranked = [f['feature'] for f in good['features']]
  assert ranked[0] == 'payment_type' and set(ranked) == set(mldata.NUMERIC + mldata.CATEGORICAL)
  drops = {f['feature']: f['auc_drop'] for f in good['features']}
  assert drops['payment_type'] > 0.2
  assert abs(drops['company']) < 0.005 and abs(drops['trip_start_day_of_week']) < 0.005
  bad = metrics['models']['candidate']['importance']  # trained on shuffled labels
  assert max(f['auc_drop'] for f in bad['features']) < drops['payment_type'] / 2


def test_importance_of_a_signal_and_a_noise_feature():
  rng = np.random.default_rng(1)
  frame = pd.DataFrame({'signal': rng.normal(size=4000), 'noise': rng.normal(size=4000)})
  frame['y'] = (rng.random(4000) < 1 / (1 + np.exp(-2 * frame['signal']))).astype(int)
  model = LogisticRegression().fit(frame[['signal', 'noise']], frame['y'])
  result = importance.permutation_importance(model, frame, 'y', ['signal', 'noise'], [])
  signal, noise = result['features']
  assert signal['feature'] == 'signal' and signal['auc_drop'] > 0.2
  assert abs(noise['auc_drop']) < 0.003 and abs(noise['log_loss_increase']) < 0.003
  again = importance.permutation_importance(model, frame, 'y', ['signal', 'noise'], [])
  assert again == result  # a fixed seed: the same permutations


def test_the_importance_sample_is_bounded_and_the_same_in_any_order():
  frame = mldata.taxi_frame(900, 5)
  keys = evaluate.row_keys(frame)
  combine = importance.BottomKRowsCombineFn(max_rows=100)
  outputs = []
  for parts in ([frame], [frame.iloc[:400], frame.iloc[400:]], [frame.iloc[i::3] for i in range(3)]):
    accumulators = [combine.add_input(combine.create_accumulator(),
                                      (evaluate.row_keys(p) if len(parts) == 1 else
                                       keys[p.index.to_numpy()], p)) for p in parts[::-1]]
    outputs.append(combine.extract_output(combine.merge_accumulators(accumulators)))
  assert all(len(o) == 100 for o in outputs)
  assert outputs[0].equals(outputs[1]) and outputs[0].equals(outputs[2])
  assert sorted(outputs[0]['trip_id']) == sorted(frame.iloc[np.argsort(keys)[:100]]['trip_id'])


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
                    '  specificity: {value_threshold: {lower_bound: 0.5}}\n')
  record, _ = run_evaluate(features_dir, good_model_dir, tmp_path / 'e',
                           '--blessing_config', str(config))
  assert record['status'] == artifacts.NOT_BLESSED
  assert 'is below lower_bound 0.99' in record['message']
  assert 'specificity: metric not found for the candidate' in record['message']


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
  change = record['checks'][-1]
  assert (change['diff'], change['standard_error'], change['noise']) == (0.0, 0.0, 'paired')


def test_slicing_by_a_non_categorical_column_is_a_clear_error(features_dir, good_model_dir, tmp_path):
  with pytest.raises(ValueError, match=r"--slice_feature fare is not a categorical feature"):
    run_evaluate(features_dir, good_model_dir, tmp_path, '--slice_feature', 'fare')


# Evaluation on any data: every row of a CSV span, typed by the model's input schema.
BAD_ROWS = [
    'trip-bad1,2026-01-01 00:00:00,twelve,3.0,600,8,2,Cash,Sun Taxi,1\n',  # not a number
    'trip-bad2,2026-01-01 00:00:00,12.5,3.0,600,8,2,Cash,Sun Taxi,\n',  # no label
    'trip-bad3,2026-01-01 00:00:00,12.5,3.0,600,8,2,Cash\n',  # too few fields
]


def eval_split_frame():
  """The rows of ``features_dir``'s eval split (mldata.write_features), as a frame."""
  return mldata.taxi_frame(1500, 107, id_offset=3000)


@pytest.fixture(scope='module')
def on_csv(good_model_dir, tmp_path_factory):
  """The good model on the eval split's rows written as CSV, plus three rows that cannot be typed."""
  root = tmp_path_factory.mktemp('on_csv')
  (root / 'span.csv').write_text(eval_split_frame().to_csv(index=False) + ''.join(BAD_ROWS))
  output = root / 'eval'
  evaluation = evaluate.run(['--input', str(root / '*.csv'), '--model', str(good_model_dir),
                             '--output', str(output)])
  assert (evaluation.rows_read, evaluation.rows_scored, evaluation.rows_dead_lettered) == (
      1503, 1500, 3)
  return output, blessing_record(evaluation, output), json.loads((output / artifacts.METRICS_FILE).read_text())


def test_evaluate_on_csv_scores_every_row_as_on_the_features(on_csv, first_model):
  _, record, metrics = on_csv
  _, first_record, first_metrics = first_model
  on_features = first_metrics['models']['candidate']
  on_span = metrics['models']['candidate']
  assert on_span['overall']['example_count'] == 1500
  assert on_span['overall'] == on_features['overall']
  assert on_span['slices'] == on_features['slices']
  assert record['status'] == first_record['status'] == artifacts.BLESSED


def test_evaluate_on_csv_dead_letters_rows_that_cannot_be_typed(on_csv):
  output, _, _ = on_csv
  dead = [json.loads(line) for path in sorted((output / artifacts.DEAD_LETTER_DIR).iterdir())
          for line in path.read_text().splitlines()]
  assert sorted(d['line_number'] for d in dead) == [1502, 1503, 1504]
  reasons = ' | '.join(sorted(d['reason'] for d in dead))
  assert "'twelve' is not a number" in reasons and '(the label) is empty' in reasons
  assert 'wrong column count' in reasons
  summary = json.loads((output / artifacts.SUMMARY_FILE).read_text())
  assert (summary['rows_read'], summary['rows_scored'], summary['rows_dead_lettered']) == (
      1503, 1500, 3)
  assert summary['reconciled'] is True


def test_csv_rows_are_typed_by_the_models_input_schema(good_model_dir, tmp_path):
  path = tmp_path / 'rows.csv'
  path.write_text('trip_id,fare,trip_miles,trip_seconds,trip_start_hour,trip_start_day_of_week,'
                  'payment_type,company,big_tip,notes\n'
                  'a,12.5,3,,8,2,Cash,Sun Taxi,1,free text\n'
                  'b,7,1.5,300,23,7,Mobile,,no,\n')
  schema = model_io.read_input_schema(str(good_model_dir))
  with TestPipeline() as pipeline:
    frames = pipeline | evaluate.ReadLabelledCsv(str(path), schema, str(tmp_path / 'out'))
    rows = frames | beam.FlatMap(lambda frame: frame.to_dict('records'))
    assert_that(rows, equal_to([
        {'fare': 12.5, 'trip_miles': 3.0, 'trip_seconds': None, 'trip_start_hour': 8.0,
         'trip_start_day_of_week': 2.0, 'payment_type': 'Cash', 'company': 'Sun Taxi',
         'big_tip': 1},
        {'fare': 7.0, 'trip_miles': 1.5, 'trip_seconds': 300.0, 'trip_start_hour': 23.0,
         'trip_start_day_of_week': 7.0, 'payment_type': 'Mobile', 'company': None,
         'big_tip': 0}]))


def test_csv_lacking_a_model_column_is_refused_naming_it(good_model_dir, tmp_path, capsys):
  eval_split_frame().drop(columns=['company', 'fare']).to_csv(tmp_path / 'span.csv', index=False)
  code = evaluate.main(['--input', str(tmp_path / 'span.csv'), '--model', str(good_model_dir),
                        '--output', str(tmp_path / 'e')])
  err = capsys.readouterr().err
  assert code == 2
  assert "lacks column(s) ['fare', 'company'] that the model needs" in err
  assert len(err.strip().splitlines()) == 1
  assert not (tmp_path / 'e').exists()


def test_features_lacking_a_model_column_are_refused_naming_it(good_model_dir, tmp_path, capsys):
  """Before the input contract, the absent column was imputed, AUC fell and it said BLESSED."""
  frame = eval_split_frame().drop(columns='company')
  (tmp_path / 'f' / 'eval').mkdir(parents=True)
  frame.to_parquet(tmp_path / 'f' / 'eval' / 'part-00000-of-00001.parquet', index=False)
  code = evaluate.main(['--features', str(tmp_path / 'f'), '--model', str(good_model_dir),
                        '--output', str(tmp_path / 'e')])
  err = capsys.readouterr().err
  assert code == 2
  assert "evaluate: error: eval features" in err and "lacks column(s) ['company']" in err
  assert not (tmp_path / 'e' / artifacts.BLESSED).exists()


def test_features_with_a_column_of_the_wrong_type_are_refused(good_model_dir, tmp_path, capsys):
  frame = eval_split_frame()
  frame['fare'] = frame['fare'].astype(str)
  (tmp_path / 'f' / 'eval').mkdir(parents=True)
  frame.to_parquet(tmp_path / 'f' / 'eval' / 'part-00000-of-00001.parquet', index=False)
  code = evaluate.main(['--features', str(tmp_path / 'f'), '--model', str(good_model_dir),
                        '--output', str(tmp_path / 'e')])
  assert code == 2
  assert 'fare is categorical, the model needs numeric' in capsys.readouterr().err


@pytest.mark.parametrize('data', [[], ['--features', 'f', '--input', 'x.csv']])
def test_exactly_one_of_features_or_input(good_model_dir, tmp_path, capsys, data):
  code = evaluate.main([*data, '--model', str(good_model_dir), '--output', str(tmp_path / 'e')])
  assert code == 2
  assert 'give one of --features DIR' in capsys.readouterr().err


def test_features_from_a_csv_lacking_a_model_column_are_refused(good_model_dir, tmp_path, capsys):
  """Feature extraction writes a column absent from the CSV as all-null and names it in its
  summary: scoring it would impute the whole column."""
  from beam_pipelines import features
  eval_split_frame().drop(columns='company').to_csv(tmp_path / 'span.csv', index=False)
  features.run(['--input', str(tmp_path / 'span.csv'), '--output', str(tmp_path / 'f')])
  code = evaluate.main(['--features', str(tmp_path / 'f'), '--model', str(good_model_dir),
                        '--output', str(tmp_path / 'e')])
  err = capsys.readouterr().err
  assert code == 2
  assert "summary.json: missing_columns) lacks column(s) ['company']" in err
  assert not (tmp_path / 'e' / artifacts.BLESSED).exists()
