"""Saving and loading models with their metadata; a model is unpickled only after its sha256 checks.

Layout (see ``artifacts``): ``MDIR/model.joblib`` and ``MDIR/model.json``. The metadata holds the
feature list, label, spec fingerprint, library versions, data fingerprint, hyperparameters, the
model file's sha256 and its creation time. Both files are written atomically (temp file, then
rename) through Beam's FileSystems, so ``gs://`` works; the metadata is written last, so a model
directory without metadata is an unfinished save and is refused.

Loading a pickle runs code: ``load_model`` reads the bytes once, checks their sha256 against the
metadata (and against ``expected_sha256`` when a registry supplies it: the metadata sits beside
the file and could be rewritten with it) and only then unpickles those same bytes.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import logging
import platform
import uuid
from typing import Any, Dict, Iterable, Optional, Sequence

from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.base import PredictionResult
from apache_beam.ml.inference.sklearn_inference import ModelFileType, SklearnModelHandlerPandas

from beam_pipelines.ml import artifacts

FORMAT_VERSION = 1


class _BeamMemoryWarningFilter(logging.Filter):
  """Drops Beam 2.72's "Resource module is not available" warning, logged at every model load.

  Beam's RunInference sets ``resource = None`` when its optional ``model_manager`` fails to import
  torch, although ``resource`` exists on Linux: the warning is noise, not a platform problem.
  """

  def filter(self, record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith('Resource module is not available')


logging.getLogger().addFilter(_BeamMemoryWarningFilter())


class ModelIntegrityError(RuntimeError):
  """The model file is missing, unfinished or does not match its recorded sha256: not loaded."""


def sha256_bytes(data: bytes) -> str:
  return hashlib.sha256(data).hexdigest()


def write_atomic(path: str, data: bytes) -> None:
  """Writes ``data`` to ``path`` via a temp file in the same directory and a rename."""
  temp = f'{path}.tmp-{uuid.uuid4().hex}'
  with FileSystems.create(temp) as handle:
    handle.write(data)
  FileSystems.rename([temp], [path])


def library_versions() -> Dict[str, str]:
  """Versions a model depends on to unpickle and predict the same way."""
  import joblib
  import numpy
  import pandas
  import sklearn
  return {'python': platform.python_version(), 'sklearn': sklearn.__version__,
          'numpy': numpy.__version__, 'pandas': pandas.__version__, 'joblib': joblib.__version__}


def model_paths(model_dir: str):
  return (FileSystems.join(model_dir, artifacts.MODEL_FILE),
          FileSystems.join(model_dir, artifacts.MODEL_METADATA_FILE))


def save_model(model: Any, model_dir: str, *, numeric: Sequence[str], categorical: Sequence[str],
               label: str, spec_fingerprint: str, data: Dict[str, Any],
               hyperparameters: Dict[str, Any], extra: Optional[Dict[str, Any]] = None
               ) -> Dict[str, Any]:
  """Pickles ``model`` with joblib and writes it and its metadata atomically; returns the metadata.

  ``data`` describes the training data: at least ``fingerprint`` (sha256 of the shards).
  """
  import joblib
  buffer = io.BytesIO()
  joblib.dump(model, buffer)
  payload = buffer.getvalue()
  model_path, metadata_path = model_paths(model_dir)
  metadata = {
      'format_version': FORMAT_VERSION,
      'model_file': artifacts.MODEL_FILE,
      'model_sha256': sha256_bytes(payload),
      'model_bytes': len(payload),
      'features': list(numeric) + list(categorical),
      'numeric': list(numeric),
      'categorical': list(categorical),
      'label': label,
      'spec_fingerprint': spec_fingerprint,
      'data': data,
      'data_fingerprint': data['fingerprint'],
      'hyperparameters': hyperparameters,
      'versions': library_versions(),
      'created': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
      **(extra or {}),
  }
  write_atomic(model_path, payload)
  write_atomic(metadata_path, (json.dumps(metadata, indent=2, sort_keys=True) + '\n').encode())
  return metadata


def read_metadata(model_dir: str) -> Dict[str, Any]:
  """The model's metadata; raises ModelIntegrityError when absent or unreadable."""
  _, metadata_path = model_paths(model_dir)
  try:
    with FileSystems.open(metadata_path) as handle:
      metadata = json.loads(handle.read().decode('utf-8'))
  except Exception as error:  # noqa: BLE001 - any failure means: not a finished, trusted model
    raise ModelIntegrityError(
        f'no readable model metadata at {metadata_path} ({error}); refusing to load the model') from error
  for field in ('model_sha256', 'numeric', 'categorical', 'label'):
    if field not in metadata:
      raise ModelIntegrityError(f'model metadata {metadata_path} lacks {field!r}; refusing to load')
  return metadata


def read_verified_bytes(model_dir: str, expected_sha256: Optional[str] = None) -> bytes:
  """The model file's bytes, after checking their sha256 against the metadata (and the caller's)."""
  model_path, _ = model_paths(model_dir)
  metadata = read_metadata(model_dir)
  try:
    with FileSystems.open(model_path) as handle:
      payload = handle.read()
  except Exception as error:  # noqa: BLE001
    raise ModelIntegrityError(f'cannot read model file {model_path}: {error}') from error
  actual = sha256_bytes(payload)
  for source, expected in (('its metadata', metadata['model_sha256']),
                           ('the caller (registry)', expected_sha256)):
    if expected is not None and actual != expected:
      raise ModelIntegrityError(
          f'model file {model_path} has sha256 {actual} but {source} says {expected}: '
          'refusing to unpickle it (loading a pickle runs code)')
  return payload


def load_model(model_dir: str, expected_sha256: Optional[str] = None) -> Any:
  """Loads the fitted model after verifying its sha256 (see the module docstring)."""
  import joblib
  payload = read_verified_bytes(model_dir, expected_sha256)
  metadata = read_metadata(model_dir)
  saved, current = metadata.get('versions', {}), library_versions()
  for library in ('sklearn', 'numpy'):
    if saved.get(library) not in (None, current[library]):
      logging.warning('model %s was saved with %s %s; running %s', model_dir, library,
                      saved[library], current[library])
  return joblib.load(io.BytesIO(payload))


class VerifiedSklearnModelHandler(SklearnModelHandlerPandas):
  """Beam's scikit-learn handler over row dicts, loading the model only once its sha256 checks.

  Elements are row dicts (from Parquet or parsed CSV); a batch becomes one typed DataFrame and the
  inference is P(label = 1) from ``predict_proba``. Wrap it in ``KeyedModelHandler`` for
  ``(key, row)`` elements.
  """

  def __init__(self, model_dir: str, expected_sha256: Optional[str] = None, **kwargs):
    model_path, _ = model_paths(model_dir)
    super().__init__(model_uri=model_path, model_file_type=ModelFileType.JOBLIB, **kwargs)
    metadata = read_metadata(model_dir)  # fail at construction when the directory is wrong
    self._model_dir = model_dir
    self._expected_sha256 = expected_sha256
    self._numeric = list(metadata['numeric'])
    self._categorical = list(metadata['categorical'])

  def load_model(self):
    return load_model(self._model_dir, self._expected_sha256)

  def update_model_path(self, model_path: Optional[str] = None):
    if model_path:
      raise NotImplementedError('a verified model is identified by its directory, not a file path')

  def run_inference(self, batch: Sequence[Dict[str, Any]], model: Any,
                    inference_args: Optional[Dict[str, Any]] = None) -> Iterable[PredictionResult]:
    from beam_pipelines.ml.tabular import rows_to_frame
    frame = rows_to_frame(batch, self._numeric, self._categorical)
    probabilities = model.predict_proba(frame)[:, 1]
    return [PredictionResult(example=row, inference=float(p), model_id=self._model_dir)
            for row, p in zip(batch, probabilities)]

  def get_num_bytes(self, batch: Sequence[Dict[str, Any]]) -> int:
    return sum(len(repr(row)) for row in batch)
