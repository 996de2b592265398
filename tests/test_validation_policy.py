"""Validation's decisions on real data (COVID-19 tests, ``tests/real_covid.py``): empty cells,
categories that grow, small samples, a spec that a committed schema cannot override, a column
missing from one file, a column that leaks the label, rows that are mostly dead-lettered, drift
that survives heavy tails, label drift.

One module fixture extracts features and validates each case once (real Beam, real TFDV); the
tests read the verdicts.
"""

from __future__ import annotations

import pathlib

import numpy as np
import pandas as pd
import pytest

from beam_pipelines import features, validate
from beam_pipelines.ml import artifacts, drift
from beam_pipelines.ml.results import Verdict

import real_covid

pytestmark = pytest.mark.slow

FIRST, SECOND = list(real_covid.SPANS)[:2]


def _spec(root: pathlib.Path, name: str, extra: str = '') -> str:
  path = root / 'specs' / f'{name}.yaml'
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(real_covid.SPEC_YAML + extra)
  return str(path)


def _odd_even(frame: pd.DataFrame, odd: bool) -> pd.DataFrame:
  return frame[(frame['pan_day'] % 2 == 1) == odd]


def _cases(root: pathlib.Path):
  """name -> (CSV frames (one file each), spec path, schema, previous case)."""
  spec = _spec(root, 'header-only')
  schema = str(root / 'schema' / artifacts.SCHEMA_FILE)  # inferred from the integration data
  first = real_covid.span(FIRST)
  grown = first.copy()  # 25 more new clinics opening, 0.1% of the rows each: 3.3% new in all
  opened = np.random.RandomState(3).choice(len(grown), 25 * 4, replace=False)
  grown.iloc[opened, grown.columns.get_loc('clinic_name')] = [f'new clinic {i % 25}'
                                                              for i in range(len(opened))]
  one_empty = first.copy()
  one_empty.loc[one_empty.index[:1], 'age'] = np.nan  # one empty cell in 4,430 rows
  dead = first.copy()
  rows = np.random.RandomState(1).rand(len(dead)) < 0.47
  dead.loc[rows, 'age'] = np.inf  # not a number a model can use: dead-lettered
  without_payor = real_covid.span(SECOND).drop(columns=['payor_group'])
  sample = first.head(400).copy()  # a small integration sample: six clinics seen once each
  sample.iloc[[30, 90, 150, 210, 270, 330], sample.columns.get_loc('clinic_name')] = [
      f'clinic seen once {i}' for i in range(6)]
  corrupted = _odd_even(first, odd=True).copy()
  swap = np.random.RandomState(2).rand(len(corrupted)) < 0.4
  corrupted.loc[swap, 'demo_group'] = 'client'  # a broken export: 40% of the rows on one value
  more_positive = _odd_even(first, odd=True)
  more_positive = pd.concat([more_positive, more_positive[more_positive['positive'] == 1]] * 2)
  strict_schema = root / 'strict' / artifacts.SCHEMA_FILE
  return {
      'integration': ([real_covid.integration()], spec, schema, None),
      'one_empty': ([one_empty], spec, schema, None),
      'grown': ([grown], spec, schema, None),
      'grown_block': ([grown], _spec(root, 'block', 'new_values: block\n'), schema, None),
      'small_sample': ([sample], spec, schema, None),
      'committed_stricter': ([first], _spec(root, 'loose', 'min_domain_mass: 0.98\n'),
                             str(strict_schema), None),
      'window_missing': ([first, without_payor], spec, schema, None),
      'leak_block': ([real_covid.integration()], _spec(root, 'leak', 'leakage: block\n'),
                     str(root / 'leak' / artifacts.SCHEMA_FILE), None),
      'dead': ([dead], spec, schema, None),
      'even': ([_odd_even(first, odd=False)], spec, schema, None),
      'odd': ([_odd_even(first, odd=True)], spec, schema, 'even'),
      'corrupted': ([corrupted], spec, schema, 'even'),
      'more_positive': ([more_positive], spec, schema, 'even'),
  }


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  root = tmp_path_factory.mktemp('policy')
  verdicts, outputs, results = {}, {}, {}
  for name, (frames, spec, schema, previous) in _cases(root).items():
    if name == 'committed_stricter':  # a reviewed schema committed with a stricter domain mass
      text = pathlib.Path(verdicts['integration']['schema']).read_text()
      strict = pathlib.Path(schema)
      strict.parent.mkdir(parents=True, exist_ok=True)
      strict.write_text(text.replace('name: "clinic_name"', 'name: "clinic_name"\n  '
                                     'distribution_constraints { min_domain_mass: 0.999 }', 1))
    inputs = []
    for i, frame in enumerate(frames):  # each file with its own columns
      inputs.append(str(root / 'csv' / name / f'part-{i}.csv'))
      pathlib.Path(inputs[-1]).parent.mkdir(parents=True, exist_ok=True)
      frame.to_csv(inputs[-1], index=False)
    features_dir = str(root / 'features' / name)
    results[name] = features.extract(inputs, spec, features_dir)
    outputs[name] = root / 'validation' / name
    verdict = validate.validate(features_dir, str(outputs[name]), schema,
                                previous_statistics=str(outputs[previous]) if previous else None,
                                with_noise_floor=True)
    assert isinstance(verdict, Verdict)
    verdicts[name] = artifacts.read_verdict(str(outputs[name]))
  return {'verdicts': verdicts, 'outputs': outputs, 'features': results}


def _types(verdict, key='anomalies'):
  return {(a['feature'], t) for a in verdict[key] for t in a['types']}


def test_an_inferred_schema_asks_presence_as_a_tolerance_not_every_row(runs):
  from google.protobuf import text_format
  from tensorflow_metadata.proto.v0 import schema_pb2
  verdict = runs['verdicts']['integration']
  assert verdict['status'] != artifacts.VERDICT_ANOMALOUS, verdict['message']
  schema = text_format.Parse(pathlib.Path(verdict['schema']).read_text(), schema_pb2.Schema())
  for feature in schema.feature:
    assert not feature.HasField('shape'), feature.name
    assert feature.presence.min_fraction <= 0.9, (feature.name, feature.presence)
  age = next(f for f in schema.feature if f.name == 'age')
  assert age.presence.min_fraction == 0.9  # always there in the train split, minus 0.1


def test_one_empty_cell_is_a_missing_value_not_an_anomaly(runs):
  verdict = runs['verdicts']['one_empty']
  assert not {f for f, _ in _types(verdict)} & {'age'}, verdict['anomalies']


def test_categories_that_grow_over_time_warn_and_do_not_stop(runs):
  verdict = runs['verdicts']['grown']
  assert verdict['status'] != artifacts.VERDICT_ANOMALOUS, verdict['message']
  assert ('clinic_name', 'RARE_NEW_VALUES') in _types(verdict, 'warnings')
  clinic = next(w for w in verdict['warnings'] if w['feature'] == 'clinic_name')
  assert "not in the schema's domain" in clinic['description'] and '3% of' in clinic['description']


def test_new_values_block_when_the_spec_says_so_and_their_mass_is_real(runs):
  verdict = runs['verdicts']['grown_block']
  assert verdict['status'] == artifacts.VERDICT_ANOMALOUS
  assert ('clinic_name', 'NEW_VALUES_WITH_MASS') in _types(verdict)


def test_singletons_in_a_small_sample_are_not_real_mass(runs):
  verdict = runs['verdicts']['small_sample']
  clinic = [w for w in verdict['warnings'] if w['feature'] == 'clinic_name']
  shares = [float(w['description'].split('; ')[-1].split('%')[0]) for w in clinic]
  assert max(shares) > 1.0  # more than 1% of a split's rows, yet six values seen once each
  assert ('clinic_name', 'NEW_VALUES_WITH_MASS') not in _types(verdict)
  assert verdict['status'] != artifacts.VERDICT_ANOMALOUS, verdict['message']


def test_the_spec_decides_the_domain_mass_even_over_a_committed_schema(runs):
  verdict = runs['verdicts']['committed_stricter']
  assert verdict['schema_source'] == 'curated'
  assert verdict['status'] != artifacts.VERDICT_ANOMALOUS, verdict['message']
  assert ('clinic_name', 'RARE_NEW_VALUES') in _types(verdict, 'warnings')


def test_a_column_missing_from_one_file_of_the_window_blocks(runs):
  verdict = runs['verdicts']['window_missing']
  assert verdict['missing_columns'] == ['payor_group']
  assert verdict['status'] == artifacts.VERDICT_ANOMALOUS
  assert ('payor_group', 'SCHEMA_MISSING_COLUMN') in _types(verdict)


def test_a_column_that_leaks_the_label_is_flagged_and_can_block(runs):
  warned = runs['verdicts']['integration']
  leaks = {w['feature'] for w in warned['warnings'] if 'LABEL_LEAKAGE' in w['types']}
  assert leaks == {real_covid.LEAK}
  assert warned['leakage'][real_covid.LEAK] >= 0.98
  assert max(v for f, v in warned['leakage'].items() if f != real_covid.LEAK and v) < 0.9
  blocked = runs['verdicts']['leak_block']
  assert blocked['status'] == artifacts.VERDICT_ANOMALOUS
  assert (real_covid.LEAK, 'LABEL_LEAKAGE') in _types(blocked)


def test_a_span_mostly_dead_lettered_stops(runs):
  result = runs['features']['dead']
  assert result.rows_dead_lettered / result.rows_read > 0.4
  verdict = runs['verdicts']['dead']
  assert verdict['status'] == artifacts.VERDICT_ANOMALOUS
  assert (None, 'DEAD_LETTER_SHARE') in _types(verdict)
  assert verdict['rows_read'] == result.rows_read


def test_the_bundled_sample_stays_under_the_dead_letter_bound(runs):
  verdict = runs['verdicts']['grown']  # 84 invalid results in 4,430 rows
  assert (None, 'DEAD_LETTER_SHARE') not in _types(verdict)


def _tfdv_equal_width_js(runs, before: str, after: str, feature: str) -> float:
  """TFDV's own Jensen-Shannon divergence (its ten equal-width buckets), for comparison."""
  tfdv = validate._tfdv()
  train = {name: validate.load_statistics(validate.statistics_path(str(runs['outputs'][name]),
                                                                   artifacts.TRAIN))
           for name in (before, after)}
  schema = tfdv.infer_schema(train[before])
  tfdv.get_feature(schema, feature).drift_comparator.jensen_shannon_divergence.threshold = 1e-9
  found = tfdv.validate_statistics(train[after], schema, previous_statistics=train[before])
  return next(m.value for info in found.drift_skew_info for m in info.drift_measurements
              if '.'.join(info.path.step) == feature)


def test_two_clean_halves_of_one_period_show_no_numeric_drift_and_a_corrupted_categorical_does(
    runs, capsys):
  clean = {d['feature']: d for d in runs['verdicts']['odd']['drift']}
  corrupted = {d['feature']: d for d in runs['verdicts']['corrupted']['drift']}
  numeric = [f for f in clean if clean[f]['measure'] == 'JENSEN_SHANNON_DIVERGENCE']
  assert real_covid.HEAVY in numeric and 'age' in numeric
  assert not [f for f in numeric if clean[f]['exceeded']], clean
  assert not runs['verdicts']['odd']['drifted_features']
  assert corrupted['demo_group']['exceeded'] and not clean['demo_group']['exceeded']
  tfdv_heavy = _tfdv_equal_width_js(runs, 'even', 'odd', real_covid.HEAVY)
  with capsys.disabled():
    print(f'\n  clean halves, {real_covid.HEAVY}: quantile-bin JS {clean[real_covid.HEAVY]["value"]}'
          f' (noise floor {clean[real_covid.HEAVY]["noise_floor"]}), TFDV equal-width JS '
          f'{tfdv_heavy:.4f}; demo_group L-inf clean {clean["demo_group"]["value"]}, corrupted '
          f'{corrupted["demo_group"]["value"]} (threshold {corrupted["demo_group"]["threshold"]})')
  assert tfdv_heavy > clean[real_covid.HEAVY]['value']


def test_every_feature_is_watched_without_thresholds_in_the_spec(runs):
  drift_found = runs['verdicts']['odd']['drift']
  spec_features = set(real_covid.CATEGORICAL) | {'age', real_covid.HEAVY, real_covid.LEAK}
  assert spec_features <= {d['feature'] for d in drift_found}
  assert {d['threshold_source'] for d in drift_found} == {'default'}
  for d in drift_found:
    assert d['threshold'] == max(d['configured_threshold'], d['noise_floor'])


def test_label_drift_is_reported(runs):
  same = runs['verdicts']['odd']['label_drift']
  assert same is not None and not same['beyond_noise']
  moved = runs['verdicts']['more_positive']['label_drift']
  assert moved['beyond_noise'] and moved['rate'] > 1.5 * moved['baseline_rate']
  assert ('positive', 'LABEL_DRIFT') in _types(runs['verdicts']['more_positive'], 'warnings')


def test_suggested_thresholds_sit_above_the_noise_floor_and_can_fire(runs):
  floors = runs['verdicts']['odd']['noise_floor']
  assert set(floors) >= {'age', 'clinic_name'}
  for feature, floor in floors.items():
    assert floor['noise_floor'] < floor['suggested_threshold'] < 1, (feature, floor)
  # one definition: the floor of a comparison of the train split with itself, by ml.drift
  train = drift.feature_statistics(validate.load_statistics(validate.statistics_path(
      str(runs['outputs']['odd']), artifacts.TRAIN)))
  again = drift.compare('age', train['age'], train['age'], 'jensen_shannon')
  assert again is not None and floors['age']['noise_floor'] == again.noise_floor


def test_small_samples_get_an_allowance_and_real_mass_does_not():
  four_of_398 = drift.wilson_lower_bound(4, 398)  # 1.005%: four singletons
  assert four_of_398 < 0.01
  assert drift.wilson_lower_bound(40, 398) > 0.01  # one value on 10% of the rows
  assert drift.wilson_lower_bound(90, 4430) > 0.01  # 2% of a real span
