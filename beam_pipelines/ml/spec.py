"""The dataset spec: which CSV columns are the label, the key and the numeric/categorical features.

A spec is a small YAML or JSON file::

    name: taxi
    label: big_tip                 # required; binary (0/1, true/false, yes/no)
    key: trip_id                   # optional; the train/eval split hashes it (else the whole row)
    timestamp: trip_start_timestamp  # optional; kept in the features, never used as a feature
    numeric: [fare, trip_miles]    # a list, or "all" (= every column not named elsewhere)
    categorical: [payment_type]    # a list, or "all"; at most one of numeric/categorical is "all"
    ignore: [notes]                # optional columns to drop
    eval_fraction: 0.2             # optional, default 0.2
    split: hash                    # optional: hash (default: a stable hash of the key, else of the
                                   # row) | time (eval = the latest eval_fraction of the rows by
                                   # the timestamp column); also {by: time, eval_fraction: 0.2}
    thresholds:                    # optional, per feature
      payment_type: {drift: 0.05, skew: 0.05}  # L-infinity (categorical) / Jensen-Shannon (numeric)
    measures:                      # optional: the distance of a feature's drift/skew check
      fare: jensen_shannon         # l_infinity (categorical only), jensen_shannon,
                                   # normalized_abs_difference (categorical only)
    min_domain_mass: 0.99          # optional, default 0.99: the share of a categorical feature's rows
                                   # its domain must hold (TFDV's distribution_constraints); judged
                                   # with a small-sample allowance (docs/ml.md, "Schema policy")
    new_values: warn               # optional: warn (default) | block. warn: categories may grow: a
                                   # new value is a warning unless that one value holds more than
                                   # 1 - min_domain_mass of the rows; block: all new values together
    presence_tolerance: 0.1        # optional: an inferred schema requires each feature in at least
                                   # (share seen in the train split - this) of the rows
    max_dead_letter_fraction: 0.05  # optional: more rows dead-lettered than this stops the span
    leakage: warn                  # optional: warn (default) | block | off: a feature that alone
    leakage_auc: 0.98              # predicts the label with AUC >= leakage_auc (default 0.98)

A bad spec raises ``SpecError`` naming the field. ``resolve(header)`` checks the spec against a CSV
header and expands "all".
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
from importlib import resources
from typing import Any, Dict, List, Mapping, Optional, Sequence, TypedDict, Union, cast

from beam_pipelines.store.errors import Refusal

ALL = 'all'
THRESHOLD_KINDS = ('drift', 'skew')
L_INFINITY, JENSEN_SHANNON, NORMALIZED_ABS_DIFFERENCE = (
    'l_infinity', 'jensen_shannon', 'normalized_abs_difference')
MEASURES = (L_INFINITY, JENSEN_SHANNON, NORMALIZED_ABS_DIFFERENCE)
CATEGORICAL_ONLY_MEASURES = (L_INFINITY, NORMALIZED_ABS_DIFFERENCE)
DEFAULT_MIN_DOMAIN_MASS = 0.99
NEW_VALUES_WARN, NEW_VALUES_BLOCK = 'warn', 'block'
LEAKAGE_WARN, LEAKAGE_BLOCK, LEAKAGE_OFF = 'warn', 'block', 'off'
DEFAULT_PRESENCE_TOLERANCE = 0.1
DEFAULT_MAX_DEAD_LETTER_FRACTION = 0.05
DEFAULT_LEAKAGE_AUC = 0.98
SPLIT_HASH, SPLIT_TIME = 'hash', 'time'  # how rows are assigned to the eval split
SPLITS = (SPLIT_HASH, SPLIT_TIME)
_FIELDS = ('name', 'label', 'key', 'timestamp', 'numeric', 'categorical', 'ignore',
           'eval_fraction', 'thresholds', 'measures', 'min_domain_mass', 'new_values',
           'presence_tolerance', 'max_dead_letter_fraction', 'leakage', 'leakage_auc', 'split')


class SpecError(Refusal, ValueError):
  """The dataset spec is invalid; the message names the field."""


class _SpecKeys(TypedDict):
  label: str
  numeric: Union[str, List[str]]  # "all" until resolved
  categorical: Union[str, List[str]]
  name: str
  key: Optional[str]
  timestamp: Optional[str]
  ignore: List[str]
  eval_fraction: float
  thresholds: Dict[str, Dict[str, float]]
  measures: Dict[str, str]
  min_domain_mass: float
  new_values: str
  presence_tolerance: float
  max_dead_letter_fraction: float
  leakage: str
  leakage_auc: float


class SpecDocument(_SpecKeys, total=False):
  """A spec as JSON (``DatasetSpec.to_dict``): what its fingerprint hashes and outputs record.
  ``split`` is there only when it is not the default hash (so older fingerprints stay)."""
  split: str


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """A validated dataset spec. ``numeric``/``categorical`` may still be ``'all'`` until resolved."""

  label: str
  numeric: Union[str, Sequence[str]] = ()
  categorical: Union[str, Sequence[str]] = ()
  name: str = 'dataset'
  key: Optional[str] = None
  timestamp: Optional[str] = None
  ignore: Sequence[str] = ()
  eval_fraction: float = 0.2
  thresholds: Dict[str, Dict[str, float]] = dataclasses.field(default_factory=dict)
  measures: Dict[str, str] = dataclasses.field(default_factory=dict)
  min_domain_mass: float = DEFAULT_MIN_DOMAIN_MASS
  new_values: str = NEW_VALUES_WARN
  presence_tolerance: float = DEFAULT_PRESENCE_TOLERANCE
  max_dead_letter_fraction: float = DEFAULT_MAX_DEAD_LETTER_FRACTION
  leakage: str = LEAKAGE_WARN
  leakage_auc: float = DEFAULT_LEAKAGE_AUC
  split: str = SPLIT_HASH  # SPLIT_TIME: the eval split is the latest rows by ``timestamp``

  def measure(self, feature: str) -> str:
    """The distance of a feature's drift/skew check: the spec's choice, else TFDV's usual one
    (L-infinity for categorical features, Jensen-Shannon divergence for numeric ones)."""
    default = L_INFINITY if feature in self.categorical else JENSEN_SHANNON
    return self.measures.get(feature, default)

  @property
  def features(self) -> List[str]:
    """Numeric then categorical feature columns (requires a resolved spec)."""
    self._require_resolved()
    return list(self.numeric) + list(self.categorical)

  @property
  def columns(self) -> List[str]:
    """Every column written to the features files: key, timestamp, features, label."""
    self._require_resolved()
    extra = [c for c in (self.key, self.timestamp) if c]
    return extra + self.features + [self.label]

  def threshold(self, feature: str, kind: str) -> Optional[float]:
    """The drift or skew threshold of a feature, or None."""
    return self.thresholds.get(feature, {}).get(kind)

  def resolve(self, header: Sequence[str]) -> 'DatasetSpec':
    """Checks the spec against a CSV header and expands ``all``; raises SpecError naming the field."""
    header = list(header)
    duplicates = sorted({c for c in header if header.count(c) > 1})
    if duplicates:
      raise SpecError(f'CSV header repeats column(s) {duplicates}')
    named = [c for c in (self.label, self.key, self.timestamp) if c] + list(self.ignore)
    for field in ('numeric', 'categorical'):
      value = getattr(self, field)
      if value != ALL:
        named += list(value)
    rest = [c for c in header if c not in named]
    numeric = rest if self.numeric == ALL else list(self.numeric)
    categorical = rest if self.categorical == ALL else list(self.categorical)
    for field, columns in (('label', [self.label]), ('key', [self.key] if self.key else []),
                           ('timestamp', [self.timestamp] if self.timestamp else []),
                           ('numeric', numeric), ('categorical', categorical)):
      missing = [c for c in columns if c not in header]
      if missing:
        raise SpecError(f'spec field {field!r}: column(s) {missing} not in the CSV header {header}')
    if not numeric and not categorical:
      raise SpecError("spec fields 'numeric'/'categorical': no feature columns left")
    return dataclasses.replace(self, numeric=tuple(numeric), categorical=tuple(categorical))

  @property
  def is_resolved(self) -> bool:
    return ALL not in (self.numeric, self.categorical)

  def _require_resolved(self):
    if not self.is_resolved:
      raise SpecError('spec has "all" columns: call resolve(header) first')

  def to_dict(self) -> SpecDocument:
    document = {f: (list(v) if isinstance(v, tuple) else v)
                for f, v in dataclasses.asdict(self).items()}
    if self.split == SPLIT_HASH:  # the default: absent, as before the field existed
      del document['split']
    return cast(SpecDocument, document)

  def fingerprint(self) -> str:
    """sha256 of the spec's canonical JSON: part of a cache key / lineage record."""
    return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()


def _column_list(raw: Mapping[str, object], field: str) -> Union[str, tuple]:
  value = raw.get(field, ())
  if value == ALL:
    return ALL
  if isinstance(value, str) or not isinstance(value, (list, tuple)):
    raise SpecError(f'spec field {field!r} must be a list of column names or "all", got {value!r}')
  if not all(isinstance(c, str) and c for c in value):
    raise SpecError(f'spec field {field!r} must hold non-empty column names, got {value!r}')
  return tuple(value)


def from_dict(raw: Any) -> DatasetSpec:
  """Validates a parsed spec document; raises SpecError naming the offending field."""
  if not isinstance(raw, dict):
    raise SpecError(f'a spec is a mapping of fields, got {type(raw).__name__}')
  unknown = sorted(set(raw) - set(_FIELDS))
  if unknown:
    raise SpecError(f'unknown spec field(s) {unknown}; known: {list(_FIELDS)}')
  for field in ('label', 'name', 'key', 'timestamp'):
    value = raw.get(field)
    if field == 'label' and value is None:
      raise SpecError("spec field 'label' is required")
    if value is not None and (not isinstance(value, str) or not value):
      raise SpecError(f'spec field {field!r} must be a non-empty string, got {value!r}')
  numeric = _column_list(raw, 'numeric')
  categorical = _column_list(raw, 'categorical')
  if numeric == ALL and categorical == ALL:
    raise SpecError("spec fields 'numeric' and 'categorical' cannot both be \"all\"")
  if not numeric and not categorical:
    raise SpecError("spec needs feature columns: field 'numeric' or 'categorical'")
  ignore = _column_list(raw, 'ignore')
  if ignore == ALL:
    raise SpecError("spec field 'ignore' must be a list")
  listed = [c for c in (numeric, categorical) if c != ALL for c in c] + list(ignore)
  singles = [raw.get(f) for f in ('label', 'key', 'timestamp') if raw.get(f)]
  clashes = sorted({c for c in listed + singles if (listed + singles).count(c) > 1})
  if clashes:
    raise SpecError(f'spec names column(s) {clashes} in more than one field')
  split, eval_fraction = _split(raw)
  if split == SPLIT_TIME and not raw.get('timestamp'):
    raise SpecError("spec field 'split': a time split makes the eval split the latest rows by the "
                    "spec's timestamp column, and this spec names none: add 'timestamp: "
                    "<column>' or use 'split: hash'")
  if (isinstance(eval_fraction, bool) or not isinstance(eval_fraction, (int, float))
      or not 0 < eval_fraction < 1):
    raise SpecError(f"spec field 'eval_fraction' must be a number in (0, 1), got {eval_fraction!r}")
  thresholds = raw.get('thresholds') or {}
  if not isinstance(thresholds, dict):
    raise SpecError("spec field 'thresholds' must map feature -> {drift: x, skew: y}")
  for feature, kinds in thresholds.items():
    where = f"spec field 'thresholds.{feature}'"
    if listed and feature not in listed and numeric != ALL and categorical != ALL:
      raise SpecError(f'{where}: {feature!r} is not a numeric or categorical feature')
    if not isinstance(kinds, dict) or not set(kinds) <= set(THRESHOLD_KINDS):
      raise SpecError(f'{where} must map {list(THRESHOLD_KINDS)} to numbers, got {kinds!r}')
    for kind, value in kinds.items():
      if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise SpecError(f'{where}.{kind} must be a number >= 0, got {value!r}')
  measures = raw.get('measures') or {}
  if not isinstance(measures, dict):
    raise SpecError(f"spec field 'measures' must map feature -> one of {list(MEASURES)}")
  for feature, measure in measures.items():
    where = f"spec field 'measures.{feature}'"
    if listed and feature not in listed and numeric != ALL and categorical != ALL:
      raise SpecError(f'{where}: {feature!r} is not a numeric or categorical feature')
    if measure not in MEASURES:
      raise SpecError(f'{where} must be one of {list(MEASURES)}, got {measure!r}')
    if (measure in CATEGORICAL_ONLY_MEASURES and numeric != ALL
        and feature in numeric):
      raise SpecError(f'{where}: {measure} applies to categorical features only')
  mass = raw.get('min_domain_mass', DEFAULT_MIN_DOMAIN_MASS)
  if isinstance(mass, bool) or not isinstance(mass, (int, float)) or not 0 < mass <= 1:
    raise SpecError(f"spec field 'min_domain_mass' must be a number in (0, 1], got {mass!r}")
  leakage_auc = _fraction(raw, 'leakage_auc', DEFAULT_LEAKAGE_AUC)
  if leakage_auc <= 0.5:
    raise SpecError("spec field 'leakage_auc' must be above 0.5 (an AUC of chance)")
  return DatasetSpec(
      label=raw['label'], numeric=numeric, categorical=categorical,
      name=raw.get('name', 'dataset'), key=raw.get('key'), timestamp=raw.get('timestamp'),
      ignore=tuple(ignore), eval_fraction=float(eval_fraction),
      thresholds={f: {k: float(v) for k, v in kinds.items()} for f, kinds in thresholds.items()},
      measures=dict(measures), min_domain_mass=float(mass),
      new_values=_choice(raw, 'new_values', (NEW_VALUES_WARN, NEW_VALUES_BLOCK)),
      presence_tolerance=_fraction(raw, 'presence_tolerance', DEFAULT_PRESENCE_TOLERANCE, True),
      max_dead_letter_fraction=_fraction(raw, 'max_dead_letter_fraction',
                                         DEFAULT_MAX_DEAD_LETTER_FRACTION, True),
      leakage=_choice(raw, 'leakage', (LEAKAGE_WARN, LEAKAGE_BLOCK, LEAKAGE_OFF)),
      leakage_auc=leakage_auc, split=split)


def _split(raw: Mapping[str, Any]) -> tuple:
  """(split rule, eval fraction) of ``split: hash|time`` or ``split: {by: ..., eval_fraction}``
  (the fraction may be given there or as the top-level ``eval_fraction``, not both)."""
  value = raw.get('split', SPLIT_HASH)
  fraction = raw.get('eval_fraction', 0.2)
  if isinstance(value, dict):
    unknown = sorted(set(value) - {'by', 'eval_fraction'})
    if unknown or 'by' not in value:
      raise SpecError(f"spec field 'split' must map 'by' (one of {list(SPLITS)}) and optionally "
                      f"'eval_fraction', got {value!r}")
    if 'eval_fraction' in value:
      if 'eval_fraction' in raw:
        raise SpecError("spec fields 'eval_fraction' and 'split.eval_fraction': give one")
      fraction = value['eval_fraction']
    value = value['by']
  if value not in SPLITS:
    raise SpecError(f"spec field 'split' must be one of {list(SPLITS)}, got {value!r}")
  return value, fraction


def _choice(raw: Mapping[str, object], field: str, choices: Sequence[str]) -> str:
  value = raw.get(field, choices[0])
  if value not in choices:
    raise SpecError(f'spec field {field!r} must be one of {list(choices)}, got {value!r}')
  return str(value)


def _fraction(raw: Mapping[str, object], field: str, default: float,
              closed: bool = False) -> float:
  """A number in (0, 1] (``closed``: [0, 1])."""
  value = raw.get(field, default)
  number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
  low_ok = number is not None and (number >= 0 if closed else number > 0)
  if number is None or not low_ok or number > 1:
    raise SpecError(f'spec field {field!r} must be a number in {"[0" if closed else "(0"}, 1], '
                    f'got {value!r}')
  return float(number)


def load(path: Union[str, pathlib.Path]) -> DatasetSpec:
  """Reads a YAML or JSON spec (local path or any Beam filesystem URL)."""
  import yaml
  from apache_beam.io.filesystems import FileSystems
  try:
    with FileSystems.open(str(path)) as handle:
      text = handle.read().decode('utf-8')
  except Exception as error:  # noqa: BLE001 - report the path, keep the cause
    raise SpecError(f'cannot read dataset spec {path}: {error}') from error
  try:
    raw = yaml.safe_load(text)  # YAML is a superset of JSON
  except yaml.YAMLError as error:
    raise SpecError(f'dataset spec {path} is not valid YAML/JSON: {error}') from error
  try:
    return from_dict(raw)
  except SpecError as error:
    raise SpecError(f'{path}: {error}') from None


def default_sample_path() -> str:
  """The bundled sample span (3,000 trips, 5 malformed rows): every ML command's default input."""
  return str(resources.files('beam_pipelines') / 'data' / 'taxi_sample.csv')


def default_spec_path() -> str:
  """The spec of the bundled taxi sample (the embedded default of every ML command)."""
  return str(resources.files('beam_pipelines') / 'pipelines' / 'taxi' / 'spec.yaml')
