"""Evaluation metrics and predictions are pinned: scoring may get faster, never different.

``tests/pinned/scoring.json`` holds the outputs of the row-at-a-time scoring (one dict per row
through RunInference and per-element metric combiners) on the seeded ``mldata`` sets; the current
code must reproduce them bit for bit (floats compared exactly, predictions by the sha256 of their
sorted JSON lines). Regenerate only when a change is meant to alter outputs:
``PYTHONPATH=. python tests/test_scoring_pinned.py``.
"""

from __future__ import annotations

import glob
import hashlib
import json
import pathlib
import sys

import pytest

import mldata

pytestmark = pytest.mark.slow  # trains models and runs two pipelines
features_dir, good_model_dir = mldata.features_dir, mldata.good_model_dir  # session fixtures
bad_model_dir = mldata.bad_model_dir

PINNED = pathlib.Path(__file__).resolve().parent / 'pinned' / 'scoring.json'


def current_outputs(features, good_model, bad_model, root: pathlib.Path) -> dict:
  """evaluate (features and CSV) and predict on the seeded sets -> the comparable outputs."""
  from beam_pipelines import evaluate, predict
  from beam_pipelines.ml import artifacts
  evaluate.run(['--features', str(features), '--model', str(bad_model),
                '--baseline_model', str(good_model), '--output', str(root / 'eval')])
  frame = mldata.taxi_frame(1500, 107, id_offset=3000)
  (root / 'span.csv').write_text(frame.to_csv(index=False))
  evaluate.run(['--input', str(root / 'span.csv'), '--model', str(good_model),
                '--output', str(root / 'eval_csv')])
  new = mldata.taxi_frame(700, seed=11)
  new['big_tip'] = new['big_tip'].astype(object)
  new.loc[:49, 'big_tip'] = None
  (root / 'new').mkdir()
  (root / 'new' / 'new.csv').write_text(new.to_csv(index=False))
  predict.run(['--input', str(root / 'new' / '*.csv'), '--model', str(good_model),
               '--output', str(root / 'predict')])
  lines = sorted(line for path in glob.glob(str(root / 'predict' / artifacts.PREDICTIONS_DIR / '*'))
                 for line in open(path, encoding='utf-8').read().splitlines())

  def models(directory):
    document = json.loads((directory / artifacts.METRICS_FILE).read_text())
    return {name: {'overall': entry['overall'], 'slices': entry['slices']}
            for name, entry in document['models'].items()}

  return {'evaluate_features': models(root / 'eval'), 'evaluate_csv': models(root / 'eval_csv'),
          'predictions': {'count': len(lines),
                          'sha256': hashlib.sha256('\n'.join(lines).encode()).hexdigest(),
                          'first': lines[:3]}}


@pytest.fixture(scope='module')
def outputs(features_dir, good_model_dir, bad_model_dir, tmp_path_factory):
  return current_outputs(features_dir, good_model_dir, bad_model_dir,
                         tmp_path_factory.mktemp('pinned'))


@pytest.fixture(scope='module')
def pinned():
  return json.loads(PINNED.read_text())


def test_evaluation_metrics_on_features_are_the_pinned_ones(outputs, pinned):
  assert outputs['evaluate_features'] == pinned['evaluate_features']


def test_evaluation_metrics_on_csv_are_the_pinned_ones(outputs, pinned):
  assert outputs['evaluate_csv'] == pinned['evaluate_csv']


def test_predictions_are_the_pinned_ones(outputs, pinned):
  assert outputs['predictions']['first'] == pinned['predictions']['first']
  assert outputs['predictions'] == pinned['predictions']


if __name__ == '__main__':  # regenerate the pinned file (see the module docstring)
  import tempfile
  sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
  with tempfile.TemporaryDirectory() as tmp:
    root = pathlib.Path(tmp)
    features = mldata.write_features(root / 'features')
    shuffled = mldata.write_features(root / 'shuffled', shuffle_train_labels=True, eval_seed=107)
    mldata._train(features, root / 'good')
    mldata._train(shuffled, root / 'bad')
    (root / 'run').mkdir()
    result = current_outputs(features, root / 'good', root / 'bad', root / 'run')
  PINNED.write_text(json.dumps(result, indent=2, sort_keys=True) + '\n')
  print(f'wrote {PINNED}')
