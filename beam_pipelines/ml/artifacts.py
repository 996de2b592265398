"""The ML pipelines' contract: every output directory's layout and fixed file names, in one place.

Like TFX's standard artifact names: a pipeline writes under its ``--output`` directory with these
names, and the next pipeline (or the continuous-training loop) reads them by the same names.
Paths are joined with ``FileSystems.join`` so local directories and ``gs://`` work alike.

Feature extraction (``python -m beam_pipelines.features --output DIR``)::

    DIR/train/part-SSSSS-of-NNNNN.parquet   features of the train split (one column per spec column)
    DIR/eval/part-SSSSS-of-NNNNN.parquet    features of the eval split
    DIR/dead_letter/part-SSSSS-of-NNNNN.jsonl  {"source", "line_number", "line", "reason"} per bad row
    DIR/summary.json                        counts: rows_read = rows_written + rows_dead_lettered

Feature columns: numeric features float64 (null = missing), categorical features string (null =
missing), label int64 (0/1), key and timestamp string.

Validation (``python -m beam_pipelines.validate --features DIR --output VDIR``)::

    VDIR/statistics/<split>.pb       DatasetFeatureStatisticsList (binary proto) per split
    VDIR/schema.pbtxt                the schema used (curated if given/stored, else inferred)
    VDIR/anomalies.pbtxt             Anomalies proto (schema + drift + skew)
    VDIR/verdict.json                {"status": "ok" | "drift" | "anomalous", ...}
    VDIR/report.html                 statistics + anomalies, for a person

Training (``python -m beam_pipelines.train --features DIR --output MDIR``)::

    MDIR/model.joblib                the fitted scikit-learn Pipeline
    MDIR/model.json                  metadata: input schema (columns, types, label), versions,
                                     data fingerprint, sha256

Evaluation (``python -m beam_pipelines.evaluate --features DIR --model MDIR --output EDIR``)::

    EDIR/metrics.json                overall and per-slice metrics
    EDIR/blessing.json               {"status": "BLESSED" | "NOT_BLESSED", "message", checks...}
    EDIR/BLESSED or EDIR/NOT_BLESSED empty marker file (as TFX's ModelValidator writes)
    EDIR/report.html                 metrics and the blessing, for a person

With ``--input CSV`` instead of ``--features DIR`` (every row of a CSV span)::

    EDIR/dead_letter/part-*.jsonl    rows that could not be typed, with the reason
    EDIR/summary.json                counts: rows_read = rows_scored + rows_dead_lettered

Batch inference (``python -m beam_pipelines.predict --input CSV --model MDIR --output PDIR``)::

    PDIR/predictions/part-*.jsonl    {"key", "probability", "prediction"}
    PDIR/dead_letter/part-*.jsonl    rows that could not be parsed, with the reason
    PDIR/summary.json                counts
"""

from typing import Any, Dict

from beam_pipelines.store import bucket, layout
from beam_pipelines.store.errors import Refusal

SPLITS = ('train', 'eval')
TRAIN, EVAL = SPLITS

# Feature extraction
DEAD_LETTER_DIR = 'dead_letter'
SUMMARY_FILE = 'summary.json'
FEATURES_SUFFIX = '.parquet'
DEAD_LETTER_SUFFIX = '.jsonl'
SHARD_PREFIX = 'part'

# Validation
STATISTICS_DIR = 'statistics'
STATISTICS_SUFFIX = '.pb'
SCHEMA_FILE = 'schema.pbtxt'
ANOMALIES_FILE = 'anomalies.pbtxt'
VERDICT_FILE = 'verdict.json'
REPORT_FILE = 'report.html'
VERDICT_OK, VERDICT_DRIFT, VERDICT_ANOMALOUS = 'ok', 'drift', 'anomalous'

# Training
MODEL_FILE = 'model.joblib'
MODEL_METADATA_FILE = 'model.json'

# Evaluation
METRICS_FILE = 'metrics.json'
BLESSING_FILE = 'blessing.json'
BLESSED, NOT_BLESSED = 'BLESSED', 'NOT_BLESSED'

# Batch inference
PREDICTIONS_DIR = 'predictions'


def split_dir(features_dir: str, split: str) -> str:
  """Directory of one split's feature shards."""
  from apache_beam.io.filesystems import FileSystems
  return FileSystems.join(features_dir, split)


def split_pattern(features_dir: str, split: str) -> str:
  """Glob of one split's feature shards."""
  from apache_beam.io.filesystems import FileSystems
  return FileSystems.join(features_dir, split, f'{SHARD_PREFIX}-*{FEATURES_SUFFIX}')


def read_summary(features_dir: str) -> Dict[str, Any]:
  """The one reader of feature extraction's ``summary.json``."""
  return bucket.read_json(layout.join(features_dir, SUMMARY_FILE), 'features summary')


class ArtifactError(Refusal):
  """An artifact of a pipeline that is missing, unreadable or not what its contract says."""


def read_verdict(path: str) -> Dict[str, Any]:
  """The one reader of validation's ``verdict.json`` (the file, or its validation directory).

  A verdict that cannot be read, or whose status is not ok/drift/anomalous, is an ArtifactError:
  an unreadable verdict never clears training.
  """
  if not path.endswith('.json'):
    path = layout.join(path, VERDICT_FILE)
  try:
    verdict = bucket.read_json(path, 'validation verdict')
  except Refusal as error:
    raise ArtifactError(f'cannot read validation verdict {path}: {error}') from None
  if verdict.get('status') not in (VERDICT_OK, VERDICT_DRIFT, VERDICT_ANOMALOUS):
    raise ArtifactError(f'validation verdict {path} has unknown status {verdict.get("status")!r}')
  return verdict
