"""The synthetic taxi-trips generator: deterministic, knobs do what they say, label learnable."""

from __future__ import annotations

import collections
import csv
import datetime
import io
import pathlib

import pytest

from beam_pipelines import taxi_data

DATE = datetime.date(2026, 11, 3)


def _rows(text):
  return list(csv.DictReader(io.StringIO(text, newline='')))


def test_same_seed_same_bytes_other_seed_other_bytes():
  first = taxi_data.render_span(2000, DATE, seed=5)
  assert first == taxi_data.render_span(2000, DATE, seed=5)
  assert first != taxi_data.render_span(2000, DATE, seed=6)


def test_bundled_sample_is_the_generators_output():
  assert pathlib.Path(taxi_data.sample_path()).read_text(encoding='utf-8') == \
      taxi_data.render_sample()


def test_columns_match_the_bundled_spec():
  from beam_pipelines.ml import spec
  header = taxi_data.render_span(10, DATE)[0].splitlines()[0].split(',')
  assert header == list(taxi_data.COLUMNS)
  assert spec.load(spec.default_spec_path()).resolve(header).columns == header


def test_shards_split_the_same_rows():
  whole = taxi_data.render_span(1000, DATE)[0].splitlines()
  parts = taxi_data.render_span(1000, DATE, shards=3)
  assert all(part.startswith(whole[0] + '\n') for part in parts)
  assert [line for part in parts for line in part.splitlines()[1:]] == whole[1:]


def test_drift_knobs_shift_the_payment_mix_and_scale_a_column():
  base = _rows(taxi_data.render_span(20000, DATE)[0])
  drifted = _rows(taxi_data.render_span(20000, DATE, knobs=taxi_data.Knobs(
      payment_shift=0.5, scale={'fare': 2.0}))[0])
  cash = [sum(r['payment_type'] == 'Cash' for r in rows) / len(rows) for rows in (base, drifted)]
  assert cash[1] - cash[0] > 0.15
  mean_fare = [sum(float(r['fare']) for r in rows) / len(rows) for rows in (base, drifted)]
  assert mean_fare[1] / mean_fare[0] == pytest.approx(2.0, rel=0.05)


def test_anomaly_knobs():
  text = taxi_data.render_span(5000, DATE, knobs=taxi_data.Knobs(
      drop_column='company', add_column='tolls', unknown_category=0.1))[0]
  header = text.splitlines()[0].split(',')
  assert 'company' not in header and header[-1] == 'tolls'
  text = taxi_data.render_span(5000, DATE, knobs=taxi_data.Knobs(unknown_category=0.1))[0]
  share = sum(r['company'] == taxi_data.UNKNOWN_COMPANY for r in _rows(text)) / 5000
  assert 0.08 < share < 0.12


def test_long_tail_adds_rare_names_some_in_one_split_only():
  """20 rare companies, each under 1% of the rows; with the features' 20% eval split some fall
  only in eval and some only in train (what blocks a schema inferred from train)."""
  from beam_pipelines import features
  knobs = taxi_data.Knobs(long_tail=20)
  text = taxi_data.render_span(3000, DATE, seed=0, knobs=knobs)[0]
  rows = _rows(text)
  splits = collections.defaultdict(set)
  for row in rows:
    if row['company'].startswith('Rare Cab '):
      splits[row['company']].add(features.assign_split(row['trip_id'], 0.2))
  counts = collections.Counter(r['company'] for r in rows if r['company'] in splits)
  assert len(counts) == 20 and max(counts.values()) < 0.01 * len(rows)
  assert {'train'} in splits.values() and {'eval'} in splits.values()
  assert text == taxi_data.render_span(3000, DATE, seed=0, knobs=knobs)[0]
  assert text != taxi_data.render_span(3000, DATE, seed=1, knobs=knobs)[0]


def test_long_tail_too_long_for_the_span_is_a_clear_error():
  with pytest.raises(ValueError, match='--long_tail 50: 50 rows of rare names'):
    taxi_data.render_span(60, DATE, knobs=taxi_data.Knobs(long_tail=50))


def test_malformed_rows_replace_good_ones():
  text = taxi_data.render_span(1000, DATE, knobs=taxi_data.Knobs(malformed=5))[0]
  records = list(csv.reader(io.StringIO(text, newline='')))[1:]
  assert len(records) == 1000
  bad = [r for r in records if len(r) != 10 or 'twelve dollars' in r or 'maybe' in r]
  assert len(bad) == 5
  assert any('Broken\nCab, Inc.' in r for r in bad)


def test_unknown_knob_values_are_clear_errors():
  with pytest.raises(ValueError, match='not a numeric column'):
    taxi_data.render_span(10, DATE, knobs=taxi_data.Knobs(scale={'company': 2.0}))
  with pytest.raises(ValueError, match='no such column'):
    taxi_data.render_span(10, DATE, knobs=taxi_data.Knobs(drop_column='nope'))


def test_cli_writes_daily_spans(tmp_path):
  paths = taxi_data.run(['--output', str(tmp_path), '--rows', '100', '--days', '2',
                         '--start', '2026-11-01', '--shards', '2'])
  assert sorted(pathlib.Path(p).relative_to(tmp_path).as_posix() for p in paths) == [
      'span-2026-11-01/data-00000-of-00002.csv', 'span-2026-11-01/data-00001-of-00002.csv',
      'span-2026-11-02/data-00000-of-00002.csv', 'span-2026-11-02/data-00001-of-00002.csv']


@pytest.mark.slow
def test_label_is_learnable():
  """A plain logistic regression on the features reaches an AUC well above 0.5."""
  import numpy as np
  from sklearn.linear_model import LogisticRegression
  from sklearn.metrics import roc_auc_score
  frame = taxi_data._frame(20000, DATE, 0, taxi_data.Knobs(missing=0))
  x = np.column_stack([frame['fare'], frame['trip_start_hour'] >= 20] + [
      frame['payment_type'] == p for p in taxi_data.PAYMENT_TYPES]).astype(float)
  y = frame['big_tip'].to_numpy()
  model = LogisticRegression(max_iter=1000).fit(x[:15000], y[:15000])
  auc = roc_auc_score(y[15000:], model.predict_proba(x[15000:])[:, 1])
  assert auc > 0.8


def test_cli_refuses_a_knob_that_does_not_fit_in_one_line(tmp_path, capsys):
  code = taxi_data.main(['--output', str(tmp_path), '--rows', '60', '--long_tail', '50'])
  assert code == 2
  err = capsys.readouterr().err
  assert 'taxi_data: error: --long_tail 50' in err and 'Traceback' not in err
