"""What each ML pipeline's core returns: the typed contract between the pipelines and their callers.

Like a TFX executor's output artifacts, each core (``features.extract``, ``validate.validate``,
``train.fit``, ``evaluate.evaluate``, ``predict.predict``) writes its files under its output
directory (``ml/artifacts.py``) and returns one of these frozen records, which its command line
prints and continuous training passes on and caches (``store.typed_json``)::

    features.extract(inputs, spec, output)                 -> FeaturesResult
    validate.validate(features, output, schema, previous)  -> Verdict
    train.fit(features, output, spec, params, verdict)     -> TrainedModel
    evaluate.evaluate(model, output, features|input, baseline, rule) -> Evaluation
    predict.predict(input, model, output)                  -> PredictionResult

A dry run (Beam's ``--dry_run True``) writes nothing; the cores then return ``DRY_RUN``.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Optional, Tuple, Union

from beam_pipelines.ml import artifacts
from beam_pipelines.store.errors import Refusal

Number = Union[int, float, None]  # a metric (a count is an int); None when undefined
ParamValue = Union[bool, int, float, str, None]  # a hyperparameter's value


class ReconciliationError(Refusal, RuntimeError):
  """Counts do not add up: rows read != rows written (or scored) + rows dead-lettered."""


@dataclasses.dataclass(frozen=True)
class DryRun:
  """Beam built the job (``--dry_run True``) and nothing ran or was written."""
  dry_run: bool = True


DRY_RUN = DryRun()


@dataclasses.dataclass(frozen=True)
class ModelRef:
  """A model directory and the sha256 its model file must have (None: the metadata's own)."""
  directory: str
  sha256: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class FeaturesResult:
  """Feature extraction's counts (its ``summary.json``) and where the splits are."""
  output: str
  rows_read: int
  rows_written: Dict[str, int]
  rows_dead_lettered: int
  reconciled: bool
  spec_fingerprint: str
  missing_columns: Tuple[str, ...] = ()
  extra_columns: Tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Finding:
  """An anomaly (or a tolerated rare-value warning) of one feature in one split."""
  feature: Optional[str]  # None: the dataset as a whole
  split: Optional[str]  # None: the CSV (a column not in the spec)
  types: Tuple[str, ...]
  description: str


@dataclasses.dataclass(frozen=True)
class Distance:
  """A drift (span against span) or skew (training against serving) measurement."""
  feature: str
  measure: str
  value: float
  threshold: float  # applied: the configured one, raised to the noise floor when below it
  exceeded: bool
  noise_floor: Optional[float] = None
  configured_threshold: Optional[float] = None
  threshold_source: Optional[str] = None  # spec | schema | default


@dataclasses.dataclass(frozen=True)
class LabelDrift:
  """The label's positive rate in the previous span and in this one."""
  baseline_rate: float
  rate: float
  difference: float
  noise_floor: float
  beyond_noise: bool


@dataclasses.dataclass(frozen=True)
class NoiseFloor:
  """A feature's noise floor between two samples the size of its train split."""
  measure: str
  noise_floor: float
  threshold: Optional[float]
  suggested_threshold: float


@dataclasses.dataclass(frozen=True)
class Verdict:
  """Validation's verdict (its ``verdict.json``): ok, drift or anomalous, and why."""
  status: str  # artifacts.VERDICT_OK | VERDICT_DRIFT | VERDICT_ANOMALOUS
  message: str
  anomalies: Tuple[Finding, ...] = ()
  drift: Tuple[Distance, ...] = ()
  skew: Tuple[Distance, ...] = ()
  drifted_features: Tuple[str, ...] = ()
  skewed_features: Tuple[str, ...] = ()
  warnings: Tuple[Finding, ...] = ()
  rows: Dict[str, int] = dataclasses.field(default_factory=dict)
  noise_floor: Dict[str, NoiseFloor] = dataclasses.field(default_factory=dict)
  statistics: Dict[str, str] = dataclasses.field(default_factory=dict)  # split -> .pb path
  features: Optional[str] = None
  output: Optional[str] = None
  report: Optional[str] = None
  schema: Optional[str] = None
  schema_source: Optional[str] = None  # 'curated' | 'inferred'
  schema_stored_sha256: Optional[str] = None  # set when this run inferred and stored ``schema``
  previous_statistics: Optional[str] = None
  serving_features: Optional[str] = None
  rows_dead_lettered: Optional[int] = None
  missing_columns: Tuple[str, ...] = ()
  label_drift: Optional[LabelDrift] = None
  leakage: Dict[str, Optional[float]] = dataclasses.field(default_factory=dict)
  rows_read: Optional[int] = None

  @property
  def anomalous(self) -> bool:
    return self.status == artifacts.VERDICT_ANOMALOUS

  @property
  def drifted(self) -> bool:
    return self.status == artifacts.VERDICT_DRIFT


@dataclasses.dataclass(frozen=True)
class TrainedModel:
  """A fitted, saved model: where, its file's sha256, what it was trained on and with. ``rows``
  were fitted of the split's ``rows_available``; ``sample`` is the rule that chose them when the
  split had more than ``max_train_rows`` (None: every row; all three None in older records)."""
  directory: str
  model_sha256: str
  rows: int
  positives: int
  data_fingerprint: str
  hyperparameters: Dict[str, ParamValue]
  rows_available: Optional[int] = None
  max_train_rows: Optional[int] = None  # 0: no budget
  sample: Optional[str] = None  # ``ml.sampling.RULE`` when a sample was fitted

  @property
  def ref(self) -> ModelRef:
    return ModelRef(self.directory, self.model_sha256)


@dataclasses.dataclass(frozen=True)
class AucComparison:
  """The candidate's AUC against the baseline's on the same rows (``artifacts.AucComparison``):
  the difference and DeLong's paired standard error of it, on a bounded sample of the rows."""
  rows: int
  positives: int
  sampled_rows: int
  sampled_positives: int
  candidate_auc: Optional[float]
  baseline_auc: Optional[float]
  auc_difference: Optional[float]  # candidate - baseline
  standard_error: Optional[float]
  z: float  # one-sided 95%
  lower_bound: Optional[float]  # auc_difference - z x standard_error
  upper_bound: Optional[float]  # auc_difference + z x standard_error
  method: str = artifacts.DELONG


@dataclasses.dataclass(frozen=True)
class Evaluation:
  """An evaluation and its blessing (``blessing.json``; the metrics are in ``metrics.json``)."""
  status: str  # artifacts.BLESSED | NOT_BLESSED
  message: str
  rubber_stamped: bool
  metrics: Dict[str, Number]  # the candidate's overall metrics
  output: str
  baseline_metrics: Optional[Dict[str, Number]] = None  # the baseline's, on the same rows
  baseline: Optional[str] = None  # the baseline's model directory
  rows_read: Optional[int] = None  # with a CSV input: rows read = scored + dead-lettered
  rows_scored: Optional[int] = None
  rows_dead_lettered: Optional[int] = None
  auc_comparison: Optional[AucComparison] = None  # with a baseline: paired, on the same rows

  @property
  def blessed(self) -> bool:
    return self.status == artifacts.BLESSED


@dataclasses.dataclass(frozen=True)
class PredictionResult:
  """Batch inference's counts (its ``summary.json``) and where the predictions are."""
  output: str
  rows_read: int
  predictions_written: int
  rows_dead_lettered: int
  reconciled: bool
