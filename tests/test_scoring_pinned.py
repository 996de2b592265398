"""Evaluation metrics and predictions are pinned: scoring may get faster, never different.

``tests/pinned/scoring.json`` holds the outputs of the row-at-a-time scoring (one dict per row
through RunInference and per-element metric combiners) on the seeded ``mldata`` sets; the current
code must reproduce them bit for bit (floats compared exactly, predictions per key). Regenerate only when a change is meant to alter outputs:
``PYTHONPATH=. python tests/test_scoring_pinned.py``.
"""

from __future__ import annotations

import glob
import json
import pathlib
import sys

import numpy as np
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

  records = [json.loads(line) for line in lines]
  return {'evaluate_features': models(root / 'eval'), 'evaluate_csv': models(root / 'eval_csv'),
          'predictions': {r['key']: [r['prediction'], r['probability']] for r in records},
          'prediction_lines': len(lines)}


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
  """Same keys and decisions; the same probabilities, bit for bit, except where the row-at-a-time
  code scored a row alone: RunInference's first batch held one row, and a one-row product takes
  another BLAS path (a few ulp apart), which scoring now never does (a lone row is scored as two)."""
  assert outputs['prediction_lines'] == pinned['prediction_lines'] == 700
  got, want = outputs['predictions'], pinned['predictions']
  assert sorted(got) == sorted(want)
  assert {k: v[0] for k, v in got.items()} == {k: v[0] for k, v in want.items()}
  differ = {k: abs(got[k][1] - want[k][1]) / np.spacing(want[k][1])
            for k in got if got[k][1] != want[k][1]}
  assert len(differ) <= 1 and all(ulp <= 8 for ulp in differ.values()), differ


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
