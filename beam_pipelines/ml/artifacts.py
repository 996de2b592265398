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

from typing import Dict, List, Optional, TypedDict, Union, cast

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


# The JSON documents: what verdict.json, metrics.json and blessing.json hold. Keys that some runs
# or older files lack are in the ``total=False`` part; a metric that is undefined is null.

class Anomaly(TypedDict):
  """A schema anomaly of validation (or, in ``warnings``, a tolerated one)."""

  feature: Optional[str]  # None: the dataset as a whole
  split: Optional[str]  # None: the CSV itself (a column not in the spec)
  types: List[str]  # TFDV's anomaly type names, or EMPTY_SPLIT, NO_VALUES, SCHEMA_NEW_COLUMN
  description: str


class _DistanceKeys(TypedDict):
  feature: str
  measure: str  # L_INFTY, JENSEN_SHANNON_DIVERGENCE, ...
  value: float
  threshold: float  # the threshold applied: the configured one, raised to the noise floor
  exceeded: bool


class Distance(_DistanceKeys, total=False):
  """One drift (span against the previous span) or skew (train against serving) measurement
  (``beam_pipelines.ml.drift``)."""

  noise_floor: float  # what sampling noise alone reaches between samples of these sizes
  configured_threshold: float  # the spec's, the schema's or the default one
  threshold_source: str  # spec | schema | default


class LabelDrift(TypedDict):
  """The label's positive rate in the previous span and in this one."""

  baseline_rate: float
  rate: float
  difference: float
  noise_floor: float  # the difference sampling alone stays under 95 times in 100
  beyond_noise: bool


class NoiseFloor(TypedDict):
  """A feature's noise floor between two samples the size of the train split, and a threshold
  above it (``beam_pipelines.ml.drift``)."""

  measure: str
  noise_floor: float
  threshold: Optional[float]  # the spec's drift threshold
  suggested_threshold: float


class _VerdictKeys(TypedDict):
  status: str  # VERDICT_OK, VERDICT_DRIFT or VERDICT_ANOMALOUS
  message: str
  anomalies: List[Anomaly]
  drift: List[Distance]
  skew: List[Distance]


class VerdictDocument(_VerdictKeys, total=False):
  """``verdict.json``."""

  drifted_features: List[str]
  skewed_features: List[str]
  rows: Dict[str, int]  # split -> rows
  rows_dead_lettered: Optional[int]
  missing_columns: List[str]
  warnings: List[Anomaly]
  noise_floor: Dict[str, NoiseFloor]  # feature -> floor, with --noise_floor
  label_drift: Optional[LabelDrift]  # with previous statistics
  leakage: Dict[str, Optional[float]]  # feature -> its AUC alone (None: too few rows to judge)
  rows_read: Optional[int]
  features: str  # the features directory validated
  output: str  # the validation directory
  report: str  # its report.html
  schema_stored_sha256: Optional[str]  # sha256 of the schema this run inferred and stored
  schema_source: str  # curated | inferred
  schema: Optional[str]
  previous_statistics: Optional[str]
  serving_features: Optional[str]
  statistics: Dict[str, str]  # split -> statistics file


class SliceMetrics(TypedDict, total=False):
  """A model's metrics overall or on one slice (``ml.metrics``)."""

  example_count: int
  positive_count: int
  auc: Optional[float]
  auc_error_bound: Optional[float]
  accuracy: Optional[float]
  log_loss: Optional[float]
  brier_score: Optional[float]  # mean (p - y)^2
  expected_calibration_error: Optional[float]  # 10 equal-width bins, count-weighted
  average_precision: Optional[float]  # AUC-PR, from the score histogram
  average_precision_error_bound: Optional[float]  # bound on |average_precision - exact|
  threshold: Optional[float]  # the decision threshold of the model (MetricsDocument.threshold)
  precision: Optional[float]  # at the threshold (p >= threshold is positive)
  recall: Optional[float]
  f1: Optional[float]
  true_positives: int
  false_positives: int
  true_negatives: int
  false_negatives: int


class _CurveKeys(TypedDict):
  roc: List[List[float]]  # [false positive rate, true positive rate]
  calibration: List[List[float]]  # [mean predicted probability, observed positive rate, count]


class Curves(_CurveKeys, total=False):
  """Chart points of a model on the eval rows (``ml.metrics.roc_and_calibration``)."""

  pr: List[List[float]]  # [threshold, recall, precision, f1] at 101 thresholds


class ModelDescription(TypedDict):
  """What ``metrics.json`` records about a model besides its metrics."""

  model_dir: str
  model_sha256: str
  expected_sha256: Optional[str]  # the sha256 the caller (a registry, a step) required
  label: str
  features: List[str]
  categorical: List[str]
  data_fingerprint: Optional[str]
  hyperparameters: Optional[Dict[str, object]]


class _ModelKeys(ModelDescription):
  overall: SliceMetrics
  slices: Dict[str, SliceMetrics]  # slice value -> metrics


class ModelMetrics(_ModelKeys, total=False):
  """One model's entry in ``metrics.json``: what it is, then its metrics and chart points."""

  curves: Optional[Curves]
  slicings: List['Slicing']  # every slicing spec's slices (the first one is also ``slices``)
  importance: Optional['Importance']  # permutation feature importance (``ml.importance``)


class Slicing(TypedDict):
  """One slicing spec of a model: a feature, or a cross of features, and its slices."""

  name: str  # the feature, or the crossed features joined by ' × '
  features: List[str]
  slices: Dict[str, SliceMetrics]  # value (crossed values joined by ' | ') -> metrics


class FeatureImportance(TypedDict):
  """The drop of a model's metrics on the sample when one feature's values are permuted."""

  feature: str
  auc_drop: Optional[float]  # mean over the repeats of AUC(sample) - AUC(permuted)
  auc_drop_std: Optional[float]
  log_loss_increase: float  # mean of log loss(permuted) - log loss(sample)
  log_loss_increase_std: float


class Importance(TypedDict):
  """Permutation feature importance of a model on a sample of the eval rows."""

  method: str  # permutation
  rows: int  # rows of the sample
  positives: int
  repeats: int  # permutations per feature
  seed: int
  auc: Optional[float]  # exact, on the sample, nothing permuted
  log_loss: float
  features: List[FeatureImportance]  # most important (largest auc_drop) first


class ThresholdChoice(TypedDict):
  """How each model's decision threshold was chosen (``ml.metrics``)."""

  rule: str  # max_f1 | fixed
  description: str
  values: Dict[str, float]  # model -> its threshold


class SlicingSpec(TypedDict):
  name: str
  features: List[str]


DELONG = 'DeLong'


class _ComparisonKeys(TypedDict):

  rows: int  # rows both models scored
  positives: int
  sampled_rows: int  # rows of the sample the comparison used (all of them up to the bound)
  sampled_positives: int
  candidate: Optional[float]  # the metric of each model on the sample
  baseline: Optional[float]
  difference: Optional[float]  # candidate - baseline
  standard_error: Optional[float]  # of difference, paired (the models' errors correlate)
  z: float  # 1.645: one-sided 95%
  lower_bound: Optional[float]  # difference - z x standard_error
  upper_bound: Optional[float]  # difference + z x standard_error
  ci_level: float  # 0.95
  ci_lower: Optional[float]  # two-sided ci_level confidence interval: difference -/+ 1.96 x SE
  ci_upper: Optional[float]
  method: str  # DeLong (auc) | paired mean (log_loss, brier_score)


class MetricComparison(_ComparisonKeys, total=False):
  """The candidate against the baseline on the same rows, one metric (``ml.metrics.
  PairedMetricsCombineFn``): both models' values on a bounded sample of the rows, their difference
  and its paired standard error (DeLong's for AUC; sd(per-row loss differences)/sqrt(n) for the
  mean losses). Undefined values (one class only; fewer than 2 rows, or 2 of a class for AUC, for
  the error) are null."""

  data: str  # which rows: the eval split's files or the input pattern
  candidate_auc: Optional[float]  # 'auc' only, as older records: = candidate
  baseline_auc: Optional[float]  # = baseline
  auc_difference: Optional[float]  # = difference


AucComparison = MetricComparison  # the 'auc' entry (older name)


class _MetricsKeys(TypedDict):
  slice_feature: Optional[str]
  models: Dict[str, ModelMetrics]  # candidate, and baseline when one was given


class MetricsDocument(_MetricsKeys, total=False):
  """``metrics.json``."""

  comparison: Dict[str, MetricComparison]  # with a baseline: auc, log_loss, brier_score
  slicing_specs: List[SlicingSpec]  # every spec, in order; ``slice_feature`` names the first
  threshold: ThresholdChoice


JsonNumber = Union[float, str, None]  # NaN and infinities are written as strings


class _CheckKeys(TypedDict):

  metric: str
  kind: str  # value_threshold | change_threshold | registered_change
  passed: bool
  message: str
  candidate: JsonNumber
  baseline: JsonNumber
  diff: JsonNumber
  relative: JsonNumber


class BlessingCheck(_CheckKeys, total=False):
  """One threshold checked on one metric (``ml.blessing.Check``); a change threshold judged
  within sampling noise also has the paired comparison's numbers."""

  noise: str  # 'paired' | 'non_inferiority': diff and its standard error from the same rows
  standard_error: JsonNumber
  bound: JsonNumber  # the one-sided bound of diff compared with the thresholds
  rows: int  # rows of the paired comparison (its sample)
  # With a paired comparison of the metric (whatever the noise rule): what it was measured on
  positives: int  # positives among those rows
  total_rows: int  # rows both models scored (the sample is drawn from them)
  data: str  # which rows: the eval split's files or the input pattern
  ci_level: float  # 0.95
  ci_lower: JsonNumber  # two-sided confidence interval of the paired difference
  ci_upper: JsonNumber


class _BlessingKeys(TypedDict):
  status: str  # BLESSED or NOT_BLESSED
  message: str
  rubber_stamped: bool
  checks: List[BlessingCheck]


class BlessingDocument(_BlessingKeys, total=False):
  """``blessing.json``: the blessing (``ml.blessing.Blessing``), the models and the rule."""

  candidate: str  # model directory
  baseline: Optional[str]
  thresholds: Dict[str, object]  # the rule (``BlessingRule.describe``)
  comparison: Dict[str, MetricComparison]  # the paired comparisons, with a baseline


def split_dir(features_dir: str, split: str) -> str:
  """Directory of one split's feature shards."""
  from apache_beam.io.filesystems import FileSystems
  return FileSystems.join(features_dir, split)


def split_pattern(features_dir: str, split: str) -> str:
  """Glob of one split's feature shards."""
  from apache_beam.io.filesystems import FileSystems
  return FileSystems.join(features_dir, split, f'{SHARD_PREFIX}-*{FEATURES_SUFFIX}')


class FileCounts(TypedDict):
  """One CSV file of a feature extraction: rows read, columns missing from or extra to the spec."""
  source: str
  rows_read: int
  missing_columns: List[str]
  extra_columns: List[str]


class _SummaryKeys(TypedDict):
  spec: Dict[str, object]  # the resolved spec (``ml.spec.DatasetSpec.to_dict``)
  rows_written: Dict[str, int]  # split -> rows


class FeaturesSummary(_SummaryKeys, total=False):
  """Feature extraction's ``summary.json``: rows read = rows written + rows dead-lettered."""
  input: Union[str, List[str]]  # the pattern(s) read
  output: str
  spec_fingerprint: str
  files: List[FileCounts]
  rows_read: int
  rows_dead_lettered: int
  reconciled: bool
  missing_columns: List[str]
  extra_columns: List[str]
  split: Dict[str, object]  # a time split: its rule and cutoff (``features.TimeSplit``)


def read_summary(features_dir: str) -> FeaturesSummary:
  """The one reader of feature extraction's ``summary.json``."""
  return cast(FeaturesSummary, bucket.read_json(layout.join(features_dir, SUMMARY_FILE),
                                                'features summary'))


class ArtifactError(Refusal):
  """An artifact of a pipeline that is missing, unreadable or not what its contract says."""


def read_verdict(path: str) -> VerdictDocument:
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
  return cast(VerdictDocument, verdict)
