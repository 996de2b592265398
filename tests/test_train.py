"""Training: the scikit-learn Pipeline, determinism, the validation verdict gate, bad input."""

from __future__ import annotations

import json
import shutil

import pytest

from beam_pipelines import train
from beam_pipelines.ml import artifacts, model_io

import mldata

pytestmark = pytest.mark.slow
features_dir, good_model_dir = mldata.features_dir, mldata.good_model_dir  # session fixtures


def test_model_is_a_column_transformer_plus_classifier(good_model_dir):
  from beam_pipelines.ml import model_io
  model = model_io.load_model(str(good_model_dir))
  assert [name for name, _ in model.steps] == ['preprocess', 'classifier']
  assert [name for name, _, _ in model.named_steps['preprocess'].transformers] == ['numeric', 'categorical']


def test_training_is_deterministic(features_dir, good_model_dir, tmp_path):
  model = train.run(['--features', str(features_dir), '--output', str(tmp_path)])
  first = json.loads((good_model_dir / artifacts.MODEL_METADATA_FILE).read_text())
  assert model.data_fingerprint == first['data_fingerprint']
  assert model.model_sha256 == first['model_sha256']


@pytest.fixture(scope='module')
def gbt_default(features_dir, tmp_path_factory):
  """A gbt model trained with the default flags (once for the module)."""
  output = tmp_path_factory.mktemp('gbt_default')
  train.run(['--features', str(features_dir), '--output', str(output), '--classifier', 'gbt'])
  return output, model_io.read_metadata(str(output))


def test_gbt_hyperparameters_are_recorded(features_dir, tmp_path):
  model = train.run(['--features', str(features_dir), '--output', str(tmp_path),
                     '--classifier', 'gbt', '--max_iter', '5', '--learning_rate', '0.2',
                     '--early_stopping', 'false'])
  metadata = model_io.read_metadata(str(tmp_path))
  assert model.hyperparameters == metadata['hyperparameters'] == {
      'classifier': 'gbt', 'learning_rate': 0.2, 'max_iter': 5, 'max_depth': None,
      'max_leaf_nodes': 31, 'early_stopping': False, 'validation_fraction': 0.1,
      'n_iter_no_change': 10, 'random_state': 0, 'max_train_rows': 2_000_000}
  assert metadata['training']['iterations'] == 5


def test_gbt_defaults_are_sklearns_with_early_stopping(gbt_default):
  _, metadata = gbt_default
  params = metadata['hyperparameters']
  assert (params['max_iter'], params['learning_rate'], params['max_leaf_nodes']) == (100, 0.1, 31)
  assert params['early_stopping'] is True and params['n_iter_no_change'] == 10


def test_gbt_defaults_stop_early_without_overfitting(gbt_default):
  """3,000 train rows: 1,000 iterations without early stopping reached train accuracy 1.000."""
  _, metadata = gbt_default
  assert metadata['training']['iterations'] < metadata['hyperparameters']['max_iter']
  assert metadata['training']['train_accuracy'] < 0.95


def test_gbt_training_is_deterministic(features_dir, gbt_default, tmp_path):
  _, first = gbt_default
  again = train.run(['--features', str(features_dir), '--output', str(tmp_path),
                     '--classifier', 'gbt'])
  assert again.model_sha256 == first['model_sha256']


def test_a_bad_boolean_flag_is_a_usage_error(features_dir, tmp_path, capsys):
  with pytest.raises(SystemExit) as exit_info:
    train.run(['--features', str(features_dir), '--output', str(tmp_path),
               '--classifier', 'gbt', '--early_stopping', 'maybe'])
  assert exit_info.value.code == 2
  assert "'maybe' is not true or false" in capsys.readouterr().err


@pytest.mark.parametrize('status', ['ok', 'drift'])
def test_ok_or_drift_verdict_allows_training(features_dir, tmp_path, status):
  (tmp_path / 'verdict.json').write_text(json.dumps({'status': status}))
  train.run(['--features', str(features_dir), '--output', str(tmp_path / 'm'),
             '--verdict', str(tmp_path)])
  assert (tmp_path / 'm' / artifacts.MODEL_FILE).exists()


def test_anomalous_verdict_refuses_training(features_dir, tmp_path):
  verdict = tmp_path / 'verdict.json'
  verdict.write_text(json.dumps({'status': 'anomalous', 'message': "column 'fare' is missing"}))
  with pytest.raises(train.TrainingRefused, match="anomalous.*column 'fare' is missing"):
    train.run(['--features', str(features_dir), '--output', str(tmp_path / 'm'),
               '--verdict', str(verdict)])
  assert not (tmp_path / 'm').exists()


def test_unreadable_verdict_refuses_training(features_dir, tmp_path):
  with pytest.raises(train.TrainingRefused, match='cannot read validation verdict'):
    train.run(['--features', str(features_dir), '--output', str(tmp_path / 'm'),
               '--verdict', str(tmp_path / 'missing.json')])


def test_missing_split_is_a_clear_error(tmp_path, capsys):
  assert train.main(['--features', str(tmp_path), '--output', str(tmp_path / 'm')]) == 2
  assert 'no train features: nothing matches' in capsys.readouterr().err


def test_single_class_is_refused(tmp_path):
  import mldata
  frame = mldata.taxi_frame(200, seed=1)
  frame['big_tip'] = 1
  mldata.write_shards(frame, tmp_path / 'train', 1)
  with pytest.raises(train.TrainingRefused, match='single class'):
    train.run(['--features', str(tmp_path), '--output', str(tmp_path / 'm')])


def test_spec_defaults_to_the_one_feature_extraction_recorded(features_dir, tmp_path):
  features = tmp_path / 'features'
  shutil.copytree(features_dir, features)
  (features / artifacts.SUMMARY_FILE).write_text(json.dumps({'spec': {
      'label': 'big_tip', 'key': 'trip_id', 'numeric': ['fare'], 'categorical': ['payment_type']}}))
  train.run(['--features', str(features), '--output', str(tmp_path / 'm')])
  assert model_io.read_metadata(str(tmp_path / 'm'))['features'] == ['fare', 'payment_type']
