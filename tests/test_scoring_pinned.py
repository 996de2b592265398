"""Evaluation metrics and predictions are pinned: scoring may get faster, never different.

``tests/pinned/scoring.json`` holds the outputs of the row-at-a-time scoring (one dict per row
through RunInference and per-element metric combiners) on the seeded ``mldata`` sets; the current
code must reproduce them: the same keys, counts and decisions exactly, and every float within a
relative 1e-12. That bound, not bit-for-bit equality, because the file was written on one CPU and
another CPU's BLAS kernels round differently (measured on an AMD EPYC against the pinned file:
617 floats apart, at most 1.3e-13 relative, in training and scoring alike), while any change to
what is computed moves metrics and probabilities by far more. Regenerate only when a change is
meant to alter outputs: ``PYTHONPATH=. python tests/test_scoring_pinned.py``.
"""

from __future__ import annotations

import glob
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


RELATIVE = 1e-12  # floats: a few ulps of another CPU's BLAS, far below any real change


def differences(got, want, path=''):
  """Where ``got`` and ``want`` differ: structure, keys, ints and strings exactly, floats beyond
  ``RELATIVE``."""
  if isinstance(want, dict) and isinstance(got, dict):
    if sorted(got) != sorted(want):
      return [f'{path}: keys {sorted(got)} != {sorted(want)}']
    return [d for key in want for d in differences(got[key], want[key], f'{path}.{key}')]
  if isinstance(want, list) and isinstance(got, list):
    if len(got) != len(want):
      return [f'{path}: {len(got)} items != {len(want)}']
    return [d for i, (g, w) in enumerate(zip(got, want)) for d in differences(g, w, f'{path}[{i}]')]
  if isinstance(want, float) and isinstance(got, float):
    close = got == want or abs(got - want) <= RELATIVE * max(abs(want), abs(got))
    return [] if close else [f'{path}: {got!r} != {want!r}']
  return [] if (type(got), got) == (type(want), want) else [f'{path}: {got!r} != {want!r}']


def test_the_comparison_sees_a_real_change():
  assert differences({'auc': 0.8734360306300658}, {'auc': 0.8734360306300658 * (1 + 1e-13)}) == []
  assert differences({'auc': 0.8734}, {'auc': 0.8735}) and differences({'n': 162}, {'n': 161})
  assert differences({'auc': 1}, {'auc': 1.0}) and differences({'a': 1.0}, {'b': 1.0})


def test_evaluation_metrics_on_features_are_the_pinned_ones(outputs, pinned):
  assert not differences(outputs['evaluate_features'], pinned['evaluate_features'])


def test_evaluation_metrics_on_csv_are_the_pinned_ones(outputs, pinned):
  assert not differences(outputs['evaluate_csv'], pinned['evaluate_csv'])


def test_predictions_are_the_pinned_ones(outputs, pinned):
  """Same keys and decisions; the same probabilities within ``RELATIVE``."""
  assert outputs['prediction_lines'] == pinned['prediction_lines'] == 700
  got, want = outputs['predictions'], pinned['predictions']
  assert sorted(got) == sorted(want)
  assert {k: v[0] for k, v in got.items()} == {k: v[0] for k, v in want.items()}
  assert not differences(got, want)


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
