"""Permutation feature importance of each evaluated model, on a bounded sample of the eval rows.

Computed in Beam, inside the evaluation's pipeline: every labelled row is keyed by a hash of its
content (``evaluate.row_keys``, the paired comparison's keys) and ``BottomKRowsCombineFn`` keeps the
``max_rows`` rows (default 20,000) with the smallest keys: a uniform sample, the same in every run
whatever the order, bundles or number of workers, its memory bounded by ``max_rows``. One step then
loads each model (its sha256 checked) on one worker and, on that sample, ``permutation_importance``
scores it as is and with each feature's column permuted alone (``repeats`` permutations drawn once
from ``numpy.random.default_rng(seed)`` and shared by every feature), recording the mean drop of the
exact AUC (scikit-learn's ``roc_auc_score``) and the mean increase of the log loss, with their
standard deviations over the repeats. A feature the model does not use, or uses for nothing, drops
by about 0; the larger the drop, the more the model leans on the feature. It measures reliance on
a feature given the others: of two correlated features, each may look unimportant alone.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import apache_beam as beam
import numpy as np
import pandas as pd
from sklearn.metrics import log_loss, roc_auc_score

from beam_pipelines.ml import model_io
from beam_pipelines.ml.artifacts import FeatureImportance, Importance, ModelDescription
from beam_pipelines.ml.tabular import typed_frame

PERMUTATION = 'permutation'
DEFAULT_ROWS = 20_000
DEFAULT_REPEATS = 3
DEFAULT_SEED = 0
KeyedFrame = Tuple[np.ndarray, pd.DataFrame]  # (uint64 key per row, the rows)


class BottomKRowsCombineFn(beam.CombineFn):
  """(keys, frame) -> the frame of the ``max_rows`` rows with the smallest keys, sorted by key."""

  def __init__(self, max_rows: int = DEFAULT_ROWS):
    super().__init__()
    self._max_rows = max_rows

  def create_accumulator(self) -> List[KeyedFrame]:
    return []

  def _keep(self, parts: List[KeyedFrame], slack: int = 2) -> List[KeyedFrame]:
    """Prunes to the ``max_rows`` smallest keys once more than ``slack`` x ``max_rows`` are held."""
    if sum(keys.size for keys, _ in parts) <= slack * self._max_rows:
      return parts
    keys = np.concatenate([k for k, _ in parts])
    frame = pd.concat([f for _, f in parts], ignore_index=True)
    order = np.argsort(keys, kind='stable')[:self._max_rows]
    return [(keys[order], frame.iloc[order].reset_index(drop=True))]

  def add_input(self, accumulator: List[KeyedFrame], element: KeyedFrame) -> List[KeyedFrame]:
    return self._keep(accumulator + [element])

  def merge_accumulators(self, accumulators) -> List[KeyedFrame]:
    return self._keep([part for accumulator in accumulators for part in accumulator])

  def extract_output(self, accumulator: List[KeyedFrame]) -> pd.DataFrame:
    kept = self._keep(accumulator, slack=0) if accumulator else []
    return kept[0][1] if kept else pd.DataFrame()


def _auc(labels: np.ndarray, scores: np.ndarray) -> Optional[float]:
  return float(roc_auc_score(labels, scores)) if 0 < labels.sum() < labels.size else None


def _log_loss(labels: np.ndarray, scores: np.ndarray) -> float:
  return float(log_loss(labels, scores, labels=[0, 1]))


def _mean_std(values: List[Optional[float]]) -> Tuple[Optional[float], Optional[float]]:
  known = [v for v in values if v is not None]
  if not known:
    return None, None
  return float(np.mean(known)), float(np.std(known))


def permutation_importance(model: Any, frame: pd.DataFrame, label: str, numeric: Sequence[str],
                           categorical: Sequence[str], repeats: int = DEFAULT_REPEATS,
                           seed: int = DEFAULT_SEED) -> Importance:
  """A fitted model's importance of each feature on ``frame`` (rows with ``label``)."""
  labels = frame[label].to_numpy(dtype=np.int64)
  features = typed_frame(frame, numeric, categorical)

  def score(rows: pd.DataFrame) -> np.ndarray:
    return model.predict_proba(rows)[:, 1]

  base = score(features)
  base_auc, base_loss = _auc(labels, base), _log_loss(labels, base)
  rng = np.random.default_rng(seed)
  permutations = [rng.permutation(len(frame)) for _ in range(repeats)]
  out: List[FeatureImportance] = []
  for feature in list(numeric) + list(categorical):
    drops: List[Optional[float]] = []
    increases: List[Optional[float]] = []
    column = features[feature].to_numpy()
    for permutation in permutations:
      permuted = features.copy()
      permuted[feature] = column[permutation]
      scores = score(permuted)
      auc = _auc(labels, scores)
      drops.append(None if auc is None or base_auc is None else base_auc - auc)
      increases.append(_log_loss(labels, scores) - base_loss)
    auc_drop, auc_std = _mean_std(drops)
    loss_increase, loss_std = _mean_std(increases)
    out.append(FeatureImportance(
        feature=feature, auc_drop=auc_drop, auc_drop_std=auc_std,
        log_loss_increase=loss_increase if loss_increase is not None else math.nan,
        log_loss_increase_std=loss_std if loss_std is not None else math.nan))
  out.sort(key=lambda f: (-(f['auc_drop'] if f['auc_drop'] is not None else -math.inf),
                          -f['log_loss_increase'], f['feature']))
  return Importance(method=PERMUTATION, rows=int(labels.size), positives=int(labels.sum()),
                    repeats=repeats, seed=seed, auc=base_auc, log_loss=base_loss, features=out)


def models_importance(sample: pd.DataFrame, models: Dict[str, ModelDescription], label: str,
                      repeats: int = DEFAULT_REPEATS, seed: int = DEFAULT_SEED
                      ) -> Dict[str, Importance]:
  """Each model (loaded after its sha256 checks) -> its importance on ``sample``; none without
  rows."""
  if sample.empty:
    return {}
  out = {}
  for name, info in models.items():
    schema = model_io.read_input_schema(info['model_dir'])
    model = model_io.load_model(info['model_dir'], info.get('expected_sha256'))
    out[name] = permutation_importance(model, sample, label, schema.numeric, schema.categorical,
                                       repeats, seed)
  return out


class PermutationImportance(beam.PTransform):
  """Labelled frames -> one {model: Importance} on the bottom-``max_rows`` sample by row key."""

  def __init__(self, models: Dict[str, ModelDescription], label: str, columns: Sequence[str],
               row_keys: Any, max_rows: int = DEFAULT_ROWS, repeats: int = DEFAULT_REPEATS,
               seed: int = DEFAULT_SEED):
    super().__init__()
    self._models, self._label, self._columns = models, label, list(columns)
    self._row_keys, self._max_rows, self._repeats, self._seed = row_keys, max_rows, repeats, seed

  def expand(self, frames):
    columns, row_keys = self._columns, self._row_keys
    return (frames
            | 'KeyRows' >> beam.Map(lambda frame: (row_keys(frame), frame[columns]))
            | 'Sample' >> beam.CombineGlobally(BottomKRowsCombineFn(self._max_rows))
            | 'Permute' >> beam.Map(models_importance, self._models, self._label, self._repeats,
                                    self._seed))
