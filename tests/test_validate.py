"""Validation with real TFDV inside Beam: drift named, anomalies block training, curated schema wins.

One module fixture writes four daily spans (base, drifted, a dropped column, an unknown category
plus a new column), extracts their features and validates each once; the tests read the outputs.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys

import pytest

from beam_pipelines import features, taxi_data, validate
from beam_pipelines.ml import artifacts
from beam_pipelines.ml.results import Verdict
from beam_pipelines.store.typed_json import from_json

pytestmark = pytest.mark.slow

ROWS = 4000
SPANS = {
    'base': taxi_data.Knobs(),
    'drift': taxi_data.Knobs(payment_shift=0.5, scale={'fare': 2.0}),
    'dropped': taxi_data.Knobs(drop_column='company'),
    'unknown': taxi_data.Knobs(unknown_category=0.05, add_column='tolls'),
    'rare': taxi_data.Knobs(unknown_category=0.004),  # a new company on 0.4% of the rows
}


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  root = tmp_path_factory.mktemp('validation')
  feature_dirs = {}
  for day, (name, knobs) in enumerate(SPANS.items()):
    date = datetime.date(2026, 11, 1) + datetime.timedelta(days=day)
    taxi_data.write_span(str(root / 'spans'), date, ROWS, seed=11, knobs=knobs)
    feature_dirs[name] = root / 'features' / name
    features.run(['--input', str(root / 'spans' / f'span-{date}' / '*.csv'),
                  '--output', str(feature_dirs[name])])
  schema = root / 'schema' / artifacts.SCHEMA_FILE
  outputs = {name: root / 'validation' / name for name in SPANS}
  previous = outputs['base'] / artifacts.STATISTICS_DIR / 'train.pb'

  def args(name, *extra):
    return ['--features', str(feature_dirs[name]), '--output', str(outputs[name]), *extra]

  verdicts = {'base': verdict_of(args('base', '--schema', str(schema)))}
  verdicts['drift'] = verdict_of(args(
      'drift', '--schema', str(schema), '--previous_statistics', str(previous),
      '--serving_features', str(feature_dirs['base'])))
  exit_codes = {'dropped': validate.main(args('dropped', '--schema', str(schema),  # a directory:
                                              '--previous_statistics', str(outputs['base'])))}
  verdicts['dropped'] = artifacts.read_verdict(str(outputs['dropped']))
  verdicts['unknown'] = verdict_of(args('unknown', '--schema', str(schema)))
  verdicts['rare'] = verdict_of(args('rare', '--schema', str(schema), '--noise_floor'))
  # A person curates the stored schema: the new company is expected from now on.
  curated = root / 'curated.pbtxt'
  curated.write_text(schema.read_text().replace(
      'value: "Yellow Cab"', 'value: "Yellow Cab"\n  value: "Zebra Cab Co (new)"'))
  outputs['curated'] = root / 'validation' / 'curated'
  verdicts['curated'] = verdict_of(['--features', str(feature_dirs['unknown']),
                                      '--output', str(outputs['curated']), '--schema', str(curated)])
  return {'verdicts': verdicts, 'outputs': outputs, 'schema': schema, 'exit_codes': exit_codes,
          'features': feature_dirs}


def verdict_of(argv):
  """Runs validation; checks that the Verdict it returns is the verdict.json it wrote, and
  returns that document."""
  verdict = validate.run(argv)
  written = artifacts.read_verdict(argv[argv.index('--output') + 1])
  assert isinstance(verdict, Verdict) and verdict == from_json(Verdict, written)
  return written


def _anomalous_features(verdict):
  return {a['feature'] for a in verdict['anomalies']}


def test_first_span_is_ok_and_its_inferred_schema_is_stored(runs):
  verdict = runs['verdicts']['base']
  assert verdict['status'] == artifacts.VERDICT_OK, verdict['message']
  assert verdict['schema_source'] == 'inferred' and runs['schema'].exists()
  output = runs['outputs']['base']
  for name in ('statistics/train.pb', 'statistics/eval.pb', artifacts.SCHEMA_FILE,
               artifacts.ANOMALIES_FILE, artifacts.REPORT_FILE, artifacts.VERDICT_FILE):
    assert (output / name).stat().st_size > 0, name
  assert verdict['rows']['train'] + verdict['rows']['eval'] == ROWS
  assert validate.verdict_allows_training(str(output))


def test_statistics_are_computed_per_split(runs):
  output = runs['outputs']['base']
  rows = {split: validate.load_statistics(str(output / 'statistics' / f'{split}.pb'))
          .datasets[0].num_examples for split in artifacts.SPLITS}
  summary = artifacts.read_summary(str(runs['features']['base']))
  assert rows == summary['rows_written']


def test_drifted_span_is_flagged_with_the_features_named(runs):
  verdict = runs['verdicts']['drift']
  assert verdict['status'] == artifacts.VERDICT_DRIFT
  assert set(verdict['drifted_features']) == {'payment_type', 'fare'}
  payment = next(d for d in verdict['drift'] if d['feature'] == 'payment_type')
  assert payment['measure'] == 'L_INFTY' and payment['value'] > payment['threshold'] == 0.05
  fare = next(d for d in verdict['drift'] if d['feature'] == 'fare')
  assert fare['measure'] == 'JENSEN_SHANNON_DIVERGENCE' and fare['value'] > 0.1
  assert {'payment_type', 'fare'} <= set(verdict['skewed_features'])  # against serving = base
  assert verdict['anomalies'] == []
  assert validate.verdict_allows_training(str(runs['outputs']['drift']))  # drift alone: reported
  report = (runs['outputs']['drift'] / artifacts.REPORT_FILE).read_text()
  assert 'Data validation: <span class="drift"' in report and 'payment_type' in report
  assert 'data-chart="span-vs-previous-payment_type"' in report and 'facets' not in report.lower()
  assert 'data-chart="train-vs-serving-payment_type"' in report and 'data-chart="skew-fare"' in report


def test_same_distribution_shows_no_drift(runs):
  drift = {d['feature']: d for d in runs['verdicts']['drift']['drift']}
  assert set(drift) >= {'payment_type', 'company', 'fare', 'trip_miles'}
  assert not drift['company']['exceeded'] and not drift['trip_miles']['exceeded']


def test_missing_column_is_an_anomaly_that_blocks_training(runs):
  verdict = runs['verdicts']['dropped']
  assert verdict['status'] == artifacts.VERDICT_ANOMALOUS
  assert 'company' in _anomalous_features(verdict)
  assert verdict['missing_columns'] == ['company']
  assert runs['exit_codes']['dropped'] == 1
  assert verdict['previous_statistics'].endswith('statistics/train.pb')
  assert verdict['drift'] and not verdict['drifted_features']
  assert not validate.verdict_allows_training(str(runs['outputs']['dropped']))
  from beam_pipelines import train
  with pytest.raises(train.TrainingRefused, match='anomalous'):
    train.check_verdict(str(runs['outputs']['dropped']))
  anomalies = (runs['outputs']['dropped'] / artifacts.ANOMALIES_FILE).read_text()
  assert 'company' in anomalies


def test_unknown_category_and_new_column_are_anomalies(runs):
  verdict = runs['verdicts']['unknown']
  assert verdict['status'] == artifacts.VERDICT_ANOMALOUS
  assert _anomalous_features(verdict) == {'company', 'tolls'}
  company = next(a for a in verdict['anomalies'] if a['feature'] == 'company')
  assert 'Zebra Cab Co (new)' in company['description']


def test_curated_schema_wins_over_inference(runs):
  verdict = runs['verdicts']['curated']
  assert verdict['schema_source'] == 'curated'
  assert _anomalous_features(verdict) == {'tolls'}  # the new company is now in the domain
  used = (runs['outputs']['curated'] / artifacts.SCHEMA_FILE).read_text()
  assert 'Zebra Cab Co (new)' in used


def test_verdict_json_is_machine_readable(runs):
  verdict = json.loads((runs['outputs']['drift'] / artifacts.VERDICT_FILE).read_text())
  assert set(verdict) >= {'status', 'message', 'anomalies', 'drift', 'skew', 'rows'}
  assert 'payment_type' in verdict['message']


def test_unreadable_verdict_never_allows_training(tmp_path):
  with pytest.raises(validate.ValidationError, match='cannot read validation verdict'):
    validate.verdict_allows_training(str(tmp_path))


def test_missing_features_dir_is_a_clear_error(tmp_path, capsys):
  assert validate.main(['--features', str(tmp_path / 'nope'), '--output', str(tmp_path)]) == 2
  assert 'not a features directory' in capsys.readouterr().err


@pytest.mark.integration
def test_cli_on_the_bundled_sample(tmp_path):
  features.run(['--output', str(tmp_path / 'features')])
  done = subprocess.run(
      [sys.executable, '-m', 'beam_pipelines.validate', '--features', str(tmp_path / 'features'),
       '--output', str(tmp_path / 'validation')], capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-3000:]
  assert 'validate: computing statistics' in done.stderr
  assert 'validate: done: verdict ok' in done.stderr
  assert 'IPython' not in done.stderr
  assert (tmp_path / 'validation' / artifacts.REPORT_FILE).exists()


def test_a_rare_new_value_is_a_warning_not_an_anomaly(runs):
  verdict = runs['verdicts']['rare']
  assert verdict['status'] != artifacts.VERDICT_ANOMALOUS, verdict['message']
  assert {w['feature'] for w in verdict['warnings']} == {'company'}
  assert all('RARE_NEW_VALUES' in w['types'] for w in verdict['warnings'])
  assert validate.verdict_allows_training(str(runs['outputs']['rare']))


def test_a_new_value_with_real_mass_still_blocks(runs):
  verdict = runs['verdicts']['unknown']
  assert verdict['status'] == artifacts.VERDICT_ANOMALOUS
  assert 'company' in _anomalous_features(verdict)


def test_the_noise_floor_is_measured_between_random_halves_and_thresholds_suggested(runs):
  floors = json.loads((runs['outputs']['rare'] / validate.NOISE_FLOOR_FILE).read_text())
  assert set(floors) >= {'fare', 'payment_type', 'company'}
  for feature, floor in floors.items():
    assert 0 <= floor['noise_floor'] < 0.2, (feature, floor)
    assert floor['suggested_threshold'] > floor['noise_floor']
  assert floors['payment_type']['measure'] == 'L_INFTY'
  assert floors['fare']['measure'] == 'JENSEN_SHANNON_DIVERGENCE'
  assert floors['fare']['threshold'] == 0.1  # the spec's, for comparison
