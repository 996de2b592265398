"""Forward evaluation of continuous training (``ct.steps.forward_evaluation``, ``ct.forward``):
a model scored on a span's labelled rows, with its exact AUC, against a plain scikit-learn
computation of the same model on the same rows; a span without labels is recorded, not failed."""

from __future__ import annotations

import hashlib
import json
import pathlib

import apache_beam as beam
import joblib
import numpy as np
import pandas as pd
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from sklearn.metrics import roc_auc_score

from beam_pipelines.ct import forward, steps
from beam_pipelines.ct.cache import CACHED, RAN, StepCache

import mldata
from mldata import CATEGORICAL, NUMERIC, taxi_frame

good_model_dir = mldata.good_model_dir  # a session fixture

LABEL = 'big_tip'


def sklearn_auc(model_dir: pathlib.Path, csv: pathlib.Path) -> tuple:
  """(AUC, labelled rows) of the model on the CSV's labelled rows, computed with scikit-learn
  alone, after checking the model file's sha256 against its metadata."""
  metadata = json.loads((model_dir / 'model.json').read_text())
  payload = (model_dir / 'model.joblib').read_bytes()
  assert hashlib.sha256(payload).hexdigest() == metadata['model_sha256']
  model = joblib.load(model_dir / 'model.joblib')
  frame = pd.read_csv(csv, dtype={c: str for c in CATEGORICAL})
  frame = frame[frame[LABEL].notna()]
  features = frame[NUMERIC + CATEGORICAL].astype({c: 'float64' for c in NUMERIC})
  scores = model.predict_proba(features)[:, 1]
  return roc_auc_score(frame[LABEL].astype(int), scores), len(frame)


def production(model_dir: pathlib.Path) -> steps.Baseline:
  sha = json.loads((model_dir / 'model.json').read_text())['model_sha256']
  return steps.Baseline(str(model_dir), sha, version=3)


def test_exact_auc_combines_scored_frames_to_scikit_learns_auc():
  rng = np.random.default_rng(0)
  frames = []
  for size in (40, 25, 35):
    labels = rng.integers(0, 2, size)
    scores = np.round(np.clip(labels * 0.3 + rng.random(size) * 0.7, 0, 1), 2)  # many ties
    frames.append((pd.DataFrame({LABEL: labels, 'x': rng.random(size)}),
                   {forward.MODEL: scores}))
  labels = np.concatenate([f[LABEL].to_numpy() for f, _ in frames])
  scores = np.concatenate([s[forward.MODEL] for _, s in frames])
  with TestPipeline() as pipeline:
    aucs = (pipeline
            | 'Frames' >> beam.Create(frames, reshuffle=False)
            | 'ExactAuc' >> forward.ExactAuc(LABEL)
            | 'RowsAndAuc' >> beam.Map(lambda c: (c['rows'], round(c['candidate_auc'], 12))))
    assert_that(aucs, equal_to([(100, round(roc_auc_score(labels, scores), 12))]))


@pytest.mark.integration
def test_forward_auc_equals_scikit_learn_on_the_same_labelled_rows(good_model_dir, tmp_path):
  frame = taxi_frame(1_200, seed=31)
  frame.loc[frame.index[::10], LABEL] = None  # a span where some outcomes are not known yet
  csv = tmp_path / 'span' / 'trips.csv'
  csv.parent.mkdir()
  frame.to_csv(csv, index=False)
  cache, seen = StepCache(str(tmp_path / 'cache')), []
  done = steps.forward_evaluation(str(csv), 'span-sha', production(good_model_dir), 'code', cache,
                                  seen.append)
  expected, rows = sklearn_auc(good_model_dir, csv)
  result = done.result
  assert done.status == RAN and [s.name for s in seen] == [steps.FORWARD]
  assert result.rows_scored == rows == 1_080 and result.rows_dead_lettered == 120
  assert abs(result.metrics['auc'] - expected) <= 1e-6, (result.metrics, expected)
  assert result.metrics['auc_error_bound'] <= 1e-6
  line = steps.describe_forward(result, 3, 'span')
  assert line.startswith('production v3 on span before training: AUC ') and '1,080 labelled' in line
  again = steps.forward_evaluation(str(csv), 'span-sha', production(good_model_dir), 'code',
                                   cache, seen.append)
  assert again.status == CACHED and again.result == result


@pytest.mark.integration
def test_the_exact_auc_replaces_a_histogram_auc_that_is_not_exact_enough(good_model_dir,
                                                                          tmp_path):
  frame = taxi_frame(2_000, seed=41)
  csv = tmp_path / 'trips.csv'
  frame.to_csv(csv, index=False)
  exact = forward.exact_auc(steps.Baseline(str(good_model_dir), None).ref, str(csv),
                            str(tmp_path / 'exact'))
  expected, rows = sklearn_auc(good_model_dir, csv)
  assert exact['rows'] == exact['sampled_rows'] == rows
  assert abs(exact['candidate_auc'] - expected) < 1e-12
  assert json.loads((tmp_path / 'exact' / forward.EXACT_AUC_FILE).read_text()) == exact


@pytest.mark.integration
def test_a_span_without_labelled_rows_is_recorded_not_failed(good_model_dir, tmp_path):
  frame = taxi_frame(200, seed=5)
  frame[LABEL] = None
  csv = tmp_path / 'unlabelled.csv'
  frame.to_csv(csv, index=False)
  done = steps.forward_evaluation(str(csv), 'sha', production(good_model_dir), 'code',
                                  StepCache(str(tmp_path / 'cache')), lambda step: None)
  assert done.result.rows_scored == 0 and 'auc' not in done.result.metrics
  assert steps.describe_forward(done.result, 3, 'span-x') == (
      'production v3 on span-x before training: no labelled rows (200 row(s) read, none with a '
      'label): nothing to score')


@pytest.mark.integration
def test_a_span_beyond_the_exact_rows_keeps_the_histogram_auc_in_one_pass(
    good_model_dir, tmp_path, monkeypatch):
  """Over ``MAX_EXACT_ROWS`` labelled rows the midrank AUC would be a sample's: the second pass
  is not run, and the histogram AUC is recorded with its error bound."""
  frame = taxi_frame(1_200, seed=31)
  csv = tmp_path / 'trips.csv'
  frame.to_csv(csv, index=False)
  monkeypatch.setattr(forward, 'MAX_EXACT_ROWS', 1_000)
  done = steps.forward_evaluation(str(csv), 'sha', production(good_model_dir), 'code',
                                  StepCache(str(tmp_path / 'cache')), lambda step: None)
  assert done.result.rows_scored == 1_200
  assert 'histogram_auc' not in done.result.metrics and done.result.metrics['auc_error_bound'] > 0
  assert not list(tmp_path.rglob(forward.EXACT_AUC_FILE))
