"""Batch scoring with Beam's RunInference: a scikit-learn model handler that loads a model only
once its sha256 checks (``model_io``), over whole frames of rows (or row dicts)."""

from __future__ import annotations

import logging
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

import numpy as np
import pandas as pd
from apache_beam.ml.inference.base import PredictionResult
from apache_beam.ml.inference.sklearn_inference import ModelFileType, SklearnModelHandlerPandas

from beam_pipelines.ml import model_io
from beam_pipelines.ml.tabular import rows_to_frame, typed_frame


class _BeamMemoryWarningFilter(logging.Filter):
  """Drops Beam 2.72's "Resource module is not available" warning, logged at every model load.

  Beam's RunInference sets ``resource = None`` when its optional ``model_manager`` fails to import
  torch, although ``resource`` exists on Linux: the warning is noise, not a platform problem.
  """

  def filter(self, record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith('Resource module is not available')


logging.getLogger().addFilter(_BeamMemoryWarningFilter())



Rows = Union[Mapping[str, object], pd.DataFrame]  # one row (column -> value), or a batch as a frame


class VerifiedSklearnModelHandler(SklearnModelHandlerPandas):
  """Beam's scikit-learn handler, loading the model only once its sha256 checks.

  An element is a pandas DataFrame holding a batch of rows (a Parquet record batch, parsed CSV
  rows): its inference is the array of P(label = 1) of its rows, from one ``predict_proba`` call.
  An element may also be one row dict (a batch of them becomes one frame): its inference is a
  float. RunInference loads the model once per worker and shares it between threads. Wrap it in
  ``KeyedModelHandler`` for ``(key, element)`` elements.
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

  def run_inference(self, batch: Sequence[Rows], model: Any,
                    inference_args: Optional[Mapping[str, object]] = None  # not used
                    ) -> Iterable[PredictionResult]:
    kinds = {isinstance(e, pd.DataFrame) for e in batch}
    if kinds == {True}:
      return [PredictionResult(example=frame, inference=self._probabilities(model, frame),
                               model_id=self._model_dir) for frame in batch]
    if kinds == {True, False}:  # results must follow the batch's order (keys are zipped with them)
      return [result for e in batch for result in self.run_inference([e], model)]
    probabilities = self._probabilities(model, rows_to_frame(batch, self._numeric, self._categorical))
    return [PredictionResult(example=row, inference=float(p), model_id=self._model_dir)
            for row, p in zip(batch, probabilities)]

  def _probabilities(self, model: Any, frame: pd.DataFrame) -> np.ndarray:
    """P(label = 1) per row. A lone row is scored twice over: a one-row matrix product takes
    another BLAS path whose result differs in the last bits, so a row's probability would depend
    on how rows were batched; with two or more rows it does not."""
    features = typed_frame(frame, self._numeric, self._categorical)
    if len(features) == 1:
      return model.predict_proba(pd.concat([features, features]))[:1, 1]
    return model.predict_proba(features)[:, 1]

  def get_num_bytes(self, batch: Sequence[Rows]) -> int:
    return sum(int(e.memory_usage(index=False).sum()) if isinstance(e, pd.DataFrame)
               else len(repr(e)) for e in batch)
