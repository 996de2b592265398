"""Saving and loading models: metadata, atomic writes, sha256 checked before unpickling."""

from __future__ import annotations

import hashlib
import json
import shutil

import apache_beam as beam
import pytest
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from beam_pipelines.ml import artifacts, inference, input_schema, model_io

import mldata

pytestmark = pytest.mark.slow
features_dir, good_model_dir = mldata.features_dir, mldata.good_model_dir  # session fixtures (train models)

ROWS = [
    {'fare': 30.0, 'trip_miles': 10.0, 'trip_seconds': 1500.0, 'trip_start_hour': 6.0,
     'trip_start_day_of_week': 3.0, 'payment_type': 'Credit Card', 'company': 'Sun Taxi'},
    {'fare': 5.0, 'trip_miles': 0.5, 'trip_seconds': None, 'trip_start_hour': 20.0,
     'trip_start_day_of_week': 1.0, 'payment_type': 'Cash', 'company': None},
    {'fare': None, 'payment_type': 'Unseen Type'},  # absent columns and an unknown category
]


@pytest.fixture
def model_copy(good_model_dir, tmp_path):
  target = tmp_path / 'model'
  shutil.copytree(good_model_dir, target)
  return target


def test_metadata_records_features_versions_fingerprints_and_sha256(good_model_dir):
  metadata = json.loads((good_model_dir / artifacts.MODEL_METADATA_FILE).read_text())
  assert metadata['features'] == ['fare', 'trip_miles', 'trip_seconds', 'trip_start_hour',
                                  'trip_start_day_of_week', 'payment_type', 'company']
  assert metadata['label'] == 'big_tip'
  assert set(metadata['versions']) >= {'python', 'sklearn', 'numpy', 'pandas'}
  assert len(metadata['data_fingerprint']) == 64 and len(metadata['data']['shards']) == 2
  assert len(metadata['spec_fingerprint']) == 64
  assert metadata['hyperparameters']['classifier'] == 'logistic'
  payload = (good_model_dir / artifacts.MODEL_FILE).read_bytes()
  assert metadata['model_sha256'] == hashlib.sha256(payload).hexdigest()
  assert metadata['created'].endswith('+00:00')


def test_metadata_records_the_input_schema_and_one_reader_types_it(good_model_dir):
  metadata = json.loads((good_model_dir / artifacts.MODEL_METADATA_FILE).read_text())
  assert metadata['input_schema'] == {
      'columns': [{'name': c, 'type': 'numeric'} for c in mldata.NUMERIC]
      + [{'name': c, 'type': 'categorical'} for c in mldata.CATEGORICAL],
      'label': {'name': 'big_tip', 'type': 'binary'}}
  assert model_io.read_input_schema(str(good_model_dir)) == input_schema.InputSchema(
      tuple(mldata.NUMERIC), tuple(mldata.CATEGORICAL), 'big_tip')


def test_input_schema_of_a_model_saved_before_it_was_recorded(model_copy):
  path = model_copy / artifacts.MODEL_METADATA_FILE
  metadata = json.loads(path.read_text())
  del metadata['input_schema']
  path.write_text(json.dumps(metadata))
  schema = model_io.read_input_schema(str(model_copy))
  assert schema.numeric == tuple(mldata.NUMERIC) and schema.label == 'big_tip'


def test_a_malformed_input_schema_is_refused(model_copy):
  path = model_copy / artifacts.MODEL_METADATA_FILE
  metadata = json.loads(path.read_text())
  metadata['input_schema']['columns'][0]['type'] = 'text'
  path.write_text(json.dumps(metadata))
  with pytest.raises(input_schema.InputSchemaError, match="unknown column types.*'fare: text'"):
    model_io.read_input_schema(str(model_copy))


def test_save_leaves_no_temp_files(good_model_dir):
  assert sorted(p.name for p in good_model_dir.iterdir()) == sorted(
      [artifacts.MODEL_FILE, artifacts.MODEL_METADATA_FILE])


def test_verified_model_loads_and_predicts(good_model_dir):
  model = model_io.load_model(str(good_model_dir))
  assert list(model.feature_names_in_)[:2] == ['fare', 'trip_miles']


def test_tampered_model_is_refused_before_unpickling(model_copy, monkeypatch):
  import joblib
  unpickled = []
  monkeypatch.setattr(joblib, 'load', lambda *a, **k: unpickled.append(a))
  path = model_copy / artifacts.MODEL_FILE
  path.write_bytes(path.read_bytes() + b'tampered')
  with pytest.raises(model_io.ModelIntegrityError, match='refusing to unpickle'):
    model_io.load_model(str(model_copy))
  assert unpickled == []


def test_registry_sha256_is_checked_too(model_copy):
  with pytest.raises(model_io.ModelIntegrityError, match=r'the caller \(registry\) says 0+'):
    model_io.load_model(str(model_copy), expected_sha256='0' * 64)


def test_model_without_metadata_is_refused(model_copy):
  (model_copy / artifacts.MODEL_METADATA_FILE).unlink()
  with pytest.raises(model_io.ModelIntegrityError, match='no readable model metadata'):
    model_io.load_model(str(model_copy))


def test_handler_refuses_a_tampered_model(model_copy):
  handler = inference.VerifiedSklearnModelHandler(str(model_copy))
  (model_copy / artifacts.MODEL_FILE).write_bytes(b'not a model')
  with pytest.raises(model_io.ModelIntegrityError):
    handler.load_model()


def test_keyed_run_inference_gives_probabilities_per_key(good_model_dir):
  handler = KeyedModelHandler(inference.VerifiedSklearnModelHandler(str(good_model_dir)))
  with TestPipeline() as pipeline:
    key_to_probability = (
        pipeline
        | beam.Create([(f'k{i}', row) for i, row in enumerate(ROWS)])
        | RunInference(handler)
        | beam.MapTuple(lambda key, result: (key, 0.0 <= result.inference <= 1.0)))
    assert_that(key_to_probability, equal_to([('k0', True), ('k1', True), ('k2', True)]))


def test_the_same_model_gives_the_same_bytes_whatever_shares_its_strings(tmp_path):
  """Pickle writes an equal string once when both are one object: which are depends on the
  process (a model loaded before, interned constants). Saved models do not."""
  from sklearn.compose import ColumnTransformer
  shared = ColumnTransformer([('passthrough_x', 'passthrough', ['x'])], remainder='passthrough')
  apart = ColumnTransformer([('passthrough_x', ''.join(['pass', 'through']), ['x'])],
                            remainder='passthrough')
  saved = []
  for name, model in (('shared', shared), ('apart', apart)):
    saved.append(model_io.save_model(
        model, str(tmp_path / name), numeric=['x'], categorical=[], label='y',
        spec_fingerprint='f', data={'fingerprint': 'd'}, hyperparameters={})['model_sha256'])
  assert saved[0] == saved[1]
  assert model_io.model_bytes(shared) == model_io.model_bytes(apart)
