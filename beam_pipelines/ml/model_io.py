"""Saving and loading models with their metadata; a model is unpickled only after its sha256 checks.

Layout (see ``artifacts``): ``MDIR/model.joblib`` and ``MDIR/model.json``. The metadata holds the
input schema (columns, their types and the label: ``ml.input_schema``), spec fingerprint, library
versions, data fingerprint, hyperparameters, the model file's sha256 and its creation time. Both
files are written atomically (temp file, then rename) through the bucket layer, so ``gs://``
works; the metadata is written last, so a model directory without metadata is an unfinished save
and is refused.

Loading a pickle runs code: ``load_model`` reads the bytes once, checks their sha256 against the
metadata (and against ``expected_sha256`` when a registry supplies it: the metadata sits beside
the file and could be rewritten with it) and only then unpickles those same bytes.
"""

from __future__ import annotations

import datetime
import io
import json
import logging
import pickle
import platform
from typing import Any, Dict, List, Mapping, Optional, Sequence, TypedDict, cast

from beam_pipelines.ml import artifacts
from beam_pipelines.ml import input_schema as input_schema_lib
from beam_pipelines.store import bucket, layout
from beam_pipelines.store.errors import Refusal

FORMAT_VERSION = 1


class TrainingSample(TypedDict):
  """The sample a model was fitted on when its split had more rows than the budget."""
  rule: str  # ``ml.sampling.RULE``
  classes: Dict[str, Dict[str, int]]  # label -> {"available": rows of the split, "used": kept}


class _TrainingDataKeys(TypedDict):
  features_dir: str
  split: str
  rows: int  # rows fitted (= rows_used)
  positives: int  # of the rows fitted
  shards: List[Dict[str, str]]  # {"path", "sha256"} of each Parquet shard
  fingerprint: str


class TrainingData(_TrainingDataKeys, total=False):
  """What a model was trained on (``model.json``'s ``data``). A model saved before the row budget
  existed lacks the last five keys (it was fitted on every row)."""
  rows_available: int  # rows of the split
  rows_used: int  # rows fitted: all of them, or the sample's
  positives_available: int
  max_train_rows: int  # the budget (0: none)
  sample: Optional[TrainingSample]  # None: every row was fitted


class _MetadataKeys(TypedDict):
  model_sha256: str
  numeric: List[str]
  categorical: List[str]
  label: str


class ModelMetadata(_MetadataKeys, total=False):
  """``model.json``: the model file, its input schema, data, hyperparameters and versions.
  Keys a model of an older format may lack are optional; ``read_metadata`` checks the others."""
  format_version: int
  model_file: str
  model_bytes: int
  features: List[str]
  input_schema: Dict[str, object]  # ``ml.input_schema.InputSchema.to_dict``
  spec_fingerprint: str
  data: TrainingData
  data_fingerprint: str
  hyperparameters: Dict[str, object]
  versions: Dict[str, str]  # library -> version
  created: str
  spec: Dict[str, object]  # the dataset spec it was trained with
  training: Dict[str, object]  # seconds, train accuracy, iterations


class ModelIntegrityError(Refusal, RuntimeError):
  """The model file is missing, unfinished or does not match its recorded sha256: not loaded."""


def library_versions() -> Dict[str, str]:
  """Versions a model depends on to unpickle and predict the same way."""
  import joblib
  import numpy
  import pandas
  import sklearn
  return {'python': platform.python_version(), 'sklearn': sklearn.__version__,
          'numpy': numpy.__version__, 'pandas': pandas.__version__, 'joblib': joblib.__version__}


def model_paths(model_dir: str):
  return (layout.join(model_dir, artifacts.MODEL_FILE),
          layout.join(model_dir, artifacts.MODEL_METADATA_FILE))


def model_bytes(model: Any) -> bytes:
  """The pickle of ``model`` written without pickle's memo (``Pickler.fast``): every object in
  full where it occurs, so the bytes depend only on the model's content. With the memo, an equal
  string or tuple met twice is written once when both are one object, which depends on the
  process's history (a model loaded before, modules imported): the same fit gave different
  bytes, hence another sha256 and a new registry version. ``joblib.load`` reads these bytes."""
  buffer = io.BytesIO()
  pickler = pickle.Pickler(buffer, protocol=4)
  pickler.fast = True  # no memo: nothing depends on which equal objects are one object
  pickler.dump(model)
  return buffer.getvalue()


def save_model(model: Any, model_dir: str, *, numeric: Sequence[str], categorical: Sequence[str],
               label: str, spec_fingerprint: str, data: TrainingData,
               hyperparameters: Mapping[str, object],
               extra: Optional[Mapping[str, object]] = None) -> ModelMetadata:
  """Pickles ``model`` (``model_bytes``: the same fit gives the same bytes in any process; read
  with joblib) and writes it and its metadata atomically; returns the metadata.

  ``data`` describes the training data: at least ``fingerprint`` (sha256 of the shards).
  """
  payload = model_bytes(model)
  model_path, metadata_path = model_paths(model_dir)
  metadata = cast(ModelMetadata, {
      'format_version': FORMAT_VERSION,
      'model_file': artifacts.MODEL_FILE,
      'model_sha256': bucket.sha256_bytes(payload),
      'model_bytes': len(payload),
      'features': list(numeric) + list(categorical),
      'numeric': list(numeric),
      'categorical': list(categorical),
      'label': label,
      'input_schema': input_schema_lib.from_columns(numeric, categorical, label).to_dict(),
      'spec_fingerprint': spec_fingerprint,
      'data': data,
      'data_fingerprint': data['fingerprint'],
      'hyperparameters': dict(hyperparameters),
      'versions': library_versions(),
      'created': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
      **(extra or {}),
  })
  bucket.write_bytes(model_path, payload)
  bucket.write_bytes(metadata_path, (json.dumps(metadata, indent=2, sort_keys=True) + '\n').encode())
  return metadata


def read_metadata(model_dir: str) -> ModelMetadata:
  """The model's metadata; raises ModelIntegrityError when absent or unreadable."""
  _, metadata_path = model_paths(model_dir)
  try:
    metadata = json.loads(bucket.read_bytes(metadata_path, 'model metadata').decode('utf-8'))
  except Exception as error:  # noqa: BLE001 - any failure means: not a finished, trusted model
    raise ModelIntegrityError(
        f'no readable model metadata at {metadata_path} ({error}); refusing to load the model') from error
  for field in ('model_sha256', 'numeric', 'categorical', 'label'):
    if field not in metadata:
      raise ModelIntegrityError(f'model metadata {metadata_path} lacks {field!r}; refusing to load')
  return cast(ModelMetadata, metadata)


def read_input_schema(model_dir: str) -> input_schema_lib.InputSchema:
  """The model's input contract (the one reader of ``input_schema`` in ``model.json``).

  A model saved before the schema was recorded has it as ``numeric``/``categorical``/``label``.
  """
  return input_schema_from_metadata(read_metadata(model_dir))


def input_schema_from_metadata(metadata: ModelMetadata) -> input_schema_lib.InputSchema:
  """The input schema of metadata already read (``read_metadata``); see ``read_input_schema``."""
  if 'input_schema' in metadata:
    return input_schema_lib.from_dict(metadata['input_schema'])
  return input_schema_lib.from_columns(metadata['numeric'], metadata['categorical'],
                                       metadata['label'])


def read_verified_bytes(model_dir: str, expected_sha256: Optional[str] = None) -> bytes:
  """The model file's bytes, after checking their sha256 against the metadata (and the caller's)."""
  model_path, _ = model_paths(model_dir)
  metadata = read_metadata(model_dir)
  try:
    payload = bucket.read_bytes(model_path, 'model file')
  except Exception as error:  # noqa: BLE001
    raise ModelIntegrityError(f'cannot read model file {model_path}: {error}') from error
  actual = bucket.sha256_bytes(payload)
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
