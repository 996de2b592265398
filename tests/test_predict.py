"""Batch inference: keyed predictions from CSV rows, malformed rows dead-lettered, counts reconcile."""

from __future__ import annotations

import glob
import json
import shutil

import apache_beam as beam
import numpy as np
import pandas as pd
import pytest
from apache_beam.ml.inference.base import PredictionResult
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from beam_pipelines import predict
from beam_pipelines.ml import artifacts

import mldata

pytestmark = pytest.mark.slow  # trains a model and runs RunInference
good_model_dir = mldata.good_model_dir  # session fixture

MALFORMED = [
    'trip-x1,2026-01-01 00:00:00,12.5,3.0,600,8,2,Cash\n',  # too few fields
    'trip-x2,2026-01-01 00:00:00,twelve,3.0,600,8,2,Cash,Sun Taxi,1\n',  # not a number
    ',2026-01-01 00:00:00,12.5,3.0,600,8,2,Cash,Sun Taxi,1\n',  # empty key
]


def read_jsonl(pattern):
  return [json.loads(line) for path in sorted(glob.glob(pattern))
          for line in open(path, encoding='utf-8')]


@pytest.fixture(scope='module')
def predicted(good_model_dir, tmp_path_factory):
  """One run on 200 good rows (20 without a label) + 3 malformed ones."""
  root = tmp_path_factory.mktemp('predict')
  frame = mldata.taxi_frame(200, seed=11)
  frame['big_tip'] = frame['big_tip'].astype(object)
  frame.loc[:19, 'big_tip'] = None  # new data often has no label yet
  text = frame.to_csv(index=False)
  (root / 'new.csv').write_text(text + ''.join(MALFORMED))
  summary = predict.run(['--input', str(root / '*.csv'), '--model', str(good_model_dir),
                         '--output', str(root / 'out')])
  return root / 'out', summary, frame


def test_every_good_row_gets_one_keyed_prediction(predicted):
  output, _, frame = predicted
  records = read_jsonl(str(output / artifacts.PREDICTIONS_DIR / '*.jsonl'))
  assert sorted(r['key'] for r in records) == sorted(frame['trip_id'])
  assert all(set(r) == {'key', 'probability', 'prediction'} for r in records)
  assert all(0 <= r['probability'] <= 1 for r in records)
  assert all(r['prediction'] == int(r['probability'] >= 0.5) for r in records)


def test_malformed_rows_are_dead_lettered_with_reasons(predicted):
  output, _, _ = predicted
  dead = read_jsonl(str(output / artifacts.DEAD_LETTER_DIR / '*.jsonl'))
  reasons = sorted(d['reason'] for d in dead)
  assert len(dead) == 3
  assert any('wrong column count' in r for r in reasons)
  assert any("'twelve' is not a number" in r for r in reasons)
  assert any('(the key) is empty' in r for r in reasons)
  assert {d['line_number'] for d in dead} == {202, 203, 204}


def test_counts_reconcile(predicted):
  output, summary, _ = predicted
  assert summary.rows_read == 203
  assert summary.predictions_written == 200 and summary.rows_dead_lettered == 3
  assert summary.reconciled is True
  written = json.loads((output / artifacts.SUMMARY_FILE).read_text())
  assert (written['rows_read'], written['predictions_written'], written['rows_dead_lettered'],
          written['reconciled']) == (summary.rows_read, summary.predictions_written,
                                     summary.rows_dead_lettered, summary.reconciled)


def test_predictions_are_keyed_in_beam_style(good_model_dir):
  rows = [{'trip_id': 'a', 'fare': 40.0, 'payment_type': 'Credit Card'},
          {'trip_id': 'b', 'fare': 4.0, 'payment_type': 'Cash'}]
  with TestPipeline() as pipeline:
    key_to_prediction = (
        pipeline
        | beam.Create([pd.DataFrame(rows, columns=['trip_id'] + mldata.NUMERIC + mldata.CATEGORICAL)])
        | predict.PredictRows(str(good_model_dir), 'trip_id')
        | beam.FlatMap(lambda lines_and_count: lines_and_count[0].split('\n'))
        | beam.Map(json.loads)
        | beam.Map(lambda r: (r['key'], r['prediction'])))
    assert_that(key_to_prediction, equal_to([('a', 1), ('b', 0)]))


def test_prediction_lines_are_json_dumps_of_each_prediction(good_model_dir):
  rows = mldata.taxi_frame(50, seed=4).drop(columns=['big_tip'])
  rows.loc[3, 'trip_id'] = 'quote " and \\ and é'
  result = PredictionResult(example=rows, inference=np.linspace(0, 1, 50))
  text, count = predict.prediction_lines(result, 'trip_id')
  expected = [json.dumps({'key': str(k), 'probability': float(p), 'prediction': int(p >= 0.5)},
                         sort_keys=True)
              for k, p in zip(rows['trip_id'], np.linspace(0, 1, 50))]
  assert count == 50 and text.split('\n') == expected


def test_frame_keys_without_a_key_column_are_the_row_hashes():
  frame = pd.DataFrame([[1.0, 'Cash', None], [None, 'Mobile', 1]], columns=['fare', 'payment', 'y'],
                       dtype=object)
  key_row = predict.row_key(None)
  assert predict.frame_keys(frame, None) == [
      key_row({'fare': 1.0, 'payment': 'Cash', 'y': None})[0],
      key_row({'fare': None, 'payment': 'Mobile', 'y': 1})[0]]


def test_without_a_key_column_the_key_is_a_row_hash():
  key_row = predict.row_key(None)
  key, _ = key_row({'fare': 1.0, 'payment_type': 'Cash'})
  assert len(key) == 32 and key == key_row({'payment_type': 'Cash', 'fare': 1.0})[0]
  assert key != key_row({'fare': 2.0, 'payment_type': 'Cash'})[0]


def test_tampered_model_is_refused_with_a_clear_error(good_model_dir, tmp_path, capsys):
  model = tmp_path / 'model'
  shutil.copytree(good_model_dir, model)
  (model / artifacts.MODEL_FILE).write_bytes(b'tampered')
  (tmp_path / 'new.csv').write_text(mldata.taxi_frame(5, seed=1).to_csv(index=False))
  code = predict.main(['--input', str(tmp_path / 'new.csv'), '--model', str(model),
                       '--output', str(tmp_path / 'out')])
  assert code == 2
  assert 'refusing to unpickle' in capsys.readouterr().err
  assert not (tmp_path / 'out').exists()


def test_registry_sha256_is_checked(good_model_dir, tmp_path, capsys):
  (tmp_path / 'new.csv').write_text(mldata.taxi_frame(5, seed=1).to_csv(index=False))
  code = predict.main(['--input', str(tmp_path / 'new.csv'), '--model', str(good_model_dir),
                       '--model_sha256', '0' * 64, '--output', str(tmp_path / 'out')])
  assert code == 2
  assert 'the caller (registry) says 000' in capsys.readouterr().err


def test_input_lacking_a_model_column_is_refused_naming_it(good_model_dir, tmp_path, capsys):
  """Before the input contract, the absent column was imputed and 50 predictions came out."""
  mldata.taxi_frame(50, seed=2).drop(columns='company').to_csv(tmp_path / 'new.csv', index=False)
  code = predict.main(['--input', str(tmp_path / 'new.csv'), '--model', str(good_model_dir),
                       '--output', str(tmp_path / 'out')])
  err = capsys.readouterr().err
  assert code == 2
  assert "predict: error: input file" in err and "lacks column(s) ['company']" in err
  assert len(err.strip().splitlines()) == 1
  assert not (tmp_path / 'out').exists()


def test_empty_cells_of_a_present_column_are_still_predicted(good_model_dir, tmp_path):
  """The contract is about absent columns: an empty cell is a missing value for the imputer."""
  frame = mldata.taxi_frame(10, seed=3)
  frame['company'] = None
  frame.to_csv(tmp_path / 'new.csv', index=False)
  summary = predict.run(['--input', str(tmp_path / 'new.csv'), '--model', str(good_model_dir),
                         '--output', str(tmp_path / 'out')])
  assert (summary.predictions_written, summary.rows_dead_lettered) == (10, 0)
