"""Batch scoring with Beam's RunInference: a scikit-learn model handler that loads a model only
once its sha256 checks (``model_io``), over row dicts."""

from __future__ import annotations

import logging
from typing import Any, Dict, Iterable, Optional, Sequence

from apache_beam.ml.inference.base import PredictionResult
from apache_beam.ml.inference.sklearn_inference import ModelFileType, SklearnModelHandlerPandas

from beam_pipelines.ml import model_io
from beam_pipelines.ml.tabular import rows_to_frame


class _BeamMemoryWarningFilter(logging.Filter):
  """Drops Beam 2.72's "Resource module is not available" warning, logged at every model load.

  Beam's RunInference sets ``resource = None`` when its optional ``model_manager`` fails to import
  torch, although ``resource`` exists on Linux: the warning is noise, not a platform problem.
  """

  def filter(self, record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith('Resource module is not available')


logging.getLogger().addFilter(_BeamMemoryWarningFilter())



class VerifiedSklearnModelHandler(SklearnModelHandlerPandas):
  """Beam's scikit-learn handler over row dicts, loading the model only once its sha256 checks.

  Elements are row dicts (from Parquet or parsed CSV); a batch becomes one typed DataFrame and the
  inference is P(label = 1) from ``predict_proba``. Wrap it in ``KeyedModelHandler`` for
  ``(key, row)`` elements.
  """

  def __init__(self, model_dir: str, expected_sha256: Optional[str] = None, **kwargs):
    model_path, _ = model_io.model_paths(model_dir)
    super().__init__(model_uri=model_path, model_file_type=ModelFileType.JOBLIB, **kwargs)
    schema = model_io.read_input_schema(model_dir)  # fail at construction when the dir is wrong
    self._model_dir = model_dir
    self._expected_sha256 = expected_sha256
    self._numeric = list(schema.numeric)
    self._categorical = list(schema.categorical)

  def load_model(self):
    return model_io.load_model(self._model_dir, self._expected_sha256)

  def update_model_path(self, model_path: Optional[str] = None):
    if model_path:
      raise NotImplementedError('a verified model is identified by its directory, not a file path')

  def run_inference(self, batch: Sequence[Dict[str, Any]], model: Any,
                    inference_args: Optional[Dict[str, Any]] = None) -> Iterable[PredictionResult]:
    frame = rows_to_frame(batch, self._numeric, self._categorical)
    probabilities = model.predict_proba(frame)[:, 1]
    return [PredictionResult(example=row, inference=float(p), model_id=self._model_dir)
            for row, p in zip(batch, probabilities)]

  def get_num_bytes(self, batch: Sequence[Dict[str, Any]]) -> int:
    return sum(len(repr(row)) for row in batch)
