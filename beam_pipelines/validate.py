"""Data validation with TFDV: statistics per split, schema, anomalies, drift, skew, a verdict.

    python -m beam_pipelines.validate [--features DIR] [--output VDIR] [--spec SPEC]
        [--schema PATH] [--previous_statistics PATH] [--serving_features DIR] [--noise_floor]

``tfdv.GenerateStatistics`` runs inside the Beam pipeline over the Parquet splits written by
``beam_pipelines.features``. The schema is the curated one when ``--schema`` names an existing
file; otherwise it is inferred from the train statistics (and stored at ``--schema`` if given,
ready to be curated: first use). Drift is checked against ``--previous_statistics`` (a previous
span's ``statistics/train.pb``), skew against the statistics of ``--serving_features``, every
feature on the baseline's quantile bins or value shares (``ml.drift``).

Outputs (``ml/artifacts.py``): ``statistics/{train,eval[,serving]}.pb``, ``schema.pbtxt``,
``anomalies.pbtxt``, ``verdict.json`` (``ok`` | ``drift`` | ``anomalous``, naming features and
distances) and ``report.html``. "anomalous" blocks training (``verdict_allows_training``); drift
or skew alone is reported and can trigger retraining. The spec's schema policy (empty cells, new
categorical values, dead-lettered rows, leaking columns) is in docs/ml.md, "Schema policy".
``--noise_floor`` writes each feature's noise floor for samples the size of the train split and
a threshold above it (``noise_floor.json``). Any other flag is a Beam pipeline option.
"""

from __future__ import annotations

import argparse
import sys

from beam_pipelines import runtime

SERVING = 'serving'


def add_validate_arguments(parser: argparse.ArgumentParser) -> None:
  """The pipeline's own flags (plain argparse, so --help needs no Beam import)."""
  parser.add_argument('--features', default='outputs/features',
                      help='Output directory of beam_pipelines.features.')
  parser.add_argument('--output', default='outputs/validation', help='Output directory.')
  parser.add_argument('--spec', default=None,
                      help="Dataset spec (default: the spec recorded in the features' summary).")
  parser.add_argument('--schema', default=None,
                      help='Curated schema (pbtxt): used if it exists, else inferred and stored here.')
  parser.add_argument('--previous_statistics', default=None,
                      help="Previous span's statistics/train.pb (or its validation directory), "
                      'for the drift check.')
  parser.add_argument('--serving_features', default=None,
                      help='Features directory of serving data, for the skew check.')
  parser.add_argument('--noise_floor', action='store_true',
                      help="Write each feature's noise floor for samples the size of the train "
                      'split and a threshold above it (noise_floor.json).')


# Answers --help before importing Beam (~2 s).
runtime.answer_help_early(__name__, 'validate', __doc__, add_validate_arguments)

import contextlib
import io
import logging
import math
from typing import TYPE_CHECKING, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems

from beam_pipelines.ml import artifacts, drift, guards
from beam_pipelines.ml import spec as spec_lib
from beam_pipelines.ml.results import DRY_RUN, DryRun, Verdict
from beam_pipelines.pages import validation as validation_report
from beam_pipelines.runtime import quiet_startup_noise
from beam_pipelines.store import bucket
from beam_pipelines.store.console import counts, progress
from beam_pipelines.store.errors import Refusal
from beam_pipelines.store.typed_json import from_json

if TYPE_CHECKING:  # protobuf classes only, for the type checker: TFDV is imported when used
  from tensorflow_metadata.proto.v0.anomalies_pb2 import Anomalies
  from tensorflow_metadata.proto.v0.statistics_pb2 import DatasetFeatureStatisticsList

Statistics = Dict[str, 'DatasetFeatureStatisticsList']  # split -> its statistics
AnomaliesBySplit = Dict[str, 'Anomalies']
TRAINING_ENV, SERVING_ENV = 'TRAINING', 'SERVING'


NOISE_FLOOR_FILE = 'noise_floor.json'
_COMPARATOR_FIELD = {spec_lib.L_INFINITY: 'infinity_norm',
                     spec_lib.JENSEN_SHANNON: 'jensen_shannon_divergence',
                     spec_lib.NORMALIZED_ABS_DIFFERENCE: 'normalized_abs_difference'}


class ValidationError(Refusal, ValueError):
  """Validation cannot run: missing features, verdict or statistics; the message says which."""


def _tfdv():
  """Imports TFDV quietly: its "IPython missing" notice is dropped, any other output kept."""
  quiet_startup_noise()
  if 'tensorflow_data_validation' not in sys.modules:
    captured = io.StringIO()
    with contextlib.redirect_stderr(captured):
      import tensorflow_data_validation  # noqa: F401
    noise = ('Unable to import IPython', 'TFDV visualization APIs', 'visualization features')
    sys.stderr.write(''.join(line for line in captured.getvalue().splitlines(keepends=True)
                             if not line.startswith(noise)))
  import tensorflow_data_validation as tfdv
  return tfdv


def to_record_batch(table: pa.Table) -> pa.RecordBatch:
  """A Parquet table -> the RecordBatch TFDV takes: every column a list<value>, null = missing."""
  arrays = []
  for column in table.columns:
    values = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    valid = np.asarray(values.is_valid(), dtype=bool)
    offsets = np.zeros(len(values) + 1, dtype=np.int32)
    np.cumsum(valid, out=offsets[1:])
    mask = np.concatenate([~valid, [False]])
    arrays.append(pa.ListArray.from_arrays(pa.array(offsets, mask=mask), values.drop_null()))
  return pa.RecordBatch.from_arrays(arrays, table.column_names)


def _record_batches(table: pa.Table) -> Iterator[pa.RecordBatch]:
  if table.num_rows:
    yield to_record_batch(table)


class ComputeStatistics(beam.PTransform):
  """Pipeline root -> one DatasetFeatureStatisticsList of the Parquet files matching a pattern."""

  def __init__(self, file_pattern: str, columns: Sequence[str]):
    super().__init__()
    self.file_pattern = file_pattern
    self.columns = list(columns)

  def expand(self, root):
    tfdv = _tfdv()
    tables = root | 'ReadParquet' >> beam.io.ReadFromParquetBatched(
        self.file_pattern, columns=self.columns)
    return (
        tables
        | 'ToRecordBatches' >> beam.FlatMap(_record_batches)
        | 'GenerateStatistics' >> tfdv.GenerateStatistics(
            tfdv.StatsOptions(generators=[small_integer_values()])))


def small_integer_values():
  """A TFDV statistics generator: the exact count of each value of every numeric feature whose
  values are all integers, at most ``pages.validation.MAX_CATEGORY_VALUES`` of them (a 0/1 label,
  day of week, hour), stored as the feature's custom statistic ``pages.validation.VALUE_COUNTS``
  (a rank histogram) beside TFDV's own, so the report draws such a feature as categories."""
  _tfdv()
  from tensorflow_data_validation.statistics.generators import stats_generator
  from tensorflow_metadata.proto.v0 import statistics_pb2
  limit = validation_report.MAX_CATEGORY_VALUES

  class SmallIntegerValues(stats_generator.CombinerStatsGenerator):
    """Feature -> {value: count} while its values are small-integer, None once they are not."""

    def __init__(self):
      super().__init__('SmallIntegerValues')

    def create_accumulator(self) -> Dict[str, Optional[Dict[float, int]]]:
      return {}

    def add_input(self, accumulator, batch: pa.RecordBatch):
      for name, column in zip(batch.schema.names, batch.columns):
        if name in accumulator and accumulator[name] is None:
          continue
        if not pa.types.is_list(column.type):  # a column without any value in this batch
          continue
        values = column.flatten()
        if not (pa.types.is_integer(values.type) or pa.types.is_floating(values.type)):
          accumulator[name] = None
          continue
        array = np.asarray(values.to_numpy(zero_copy_only=False), dtype=float)
        if not np.all(np.isfinite(array)) or not np.all(array == np.round(array)):
          accumulator[name] = None
          continue
        found, times = np.unique(array, return_counts=True)
        counts = accumulator.setdefault(name, {})
        for value, count in zip(found.tolist(), times.tolist()):
          counts[value] = counts.get(value, 0) + count
        if len(counts) > limit:
          accumulator[name] = None
      return accumulator

    def merge_accumulators(self, accumulators):
      merged: Dict[str, Optional[Dict[float, int]]] = {}
      for accumulator in accumulators:
        for name, found in accumulator.items():
          if found is None or (name in merged and merged[name] is None):
            merged[name] = None
            continue
          into = merged.setdefault(name, {})
          for value, count in found.items():
            into[value] = into.get(value, 0) + count
          if len(into) > limit:
            merged[name] = None
      return merged

    def extract_output(self, accumulator):
      result = statistics_pb2.DatasetFeatureStatistics()
      for name, found in sorted(accumulator.items()):
        if not found:
          continue
        feature = result.features.add()
        feature.path.step.append(name)
        custom = feature.custom_stats.add()
        custom.name = validation_report.VALUE_COUNTS
        for rank, (value, count) in enumerate(sorted(found.items())):
          bucket = custom.rank_histogram.buckets.add()
          bucket.low_rank = bucket.high_rank = rank
          bucket.label = f'{value:.0f}'
          bucket.sample_count = count
      return result

  return SmallIntegerValues()


def statistics_path(output: str, split: str) -> str:
  return FileSystems.join(output, artifacts.STATISTICS_DIR, f'{split}{artifacts.STATISTICS_SUFFIX}')


def build_pipeline(pipeline: beam.Pipeline, features_dir: str, spec: spec_lib.DatasetSpec,
                   output: str, serving_features: Optional[str] = None) -> Dict[str, str]:
  """Adds statistics of each split (and of serving data); returns split -> statistics path."""
  tfdv = _tfdv()
  columns = spec.features + [spec.label]
  patterns = {split: artifacts.split_pattern(features_dir, split) for split in artifacts.SPLITS}
  if serving_features:
    patterns[SERVING] = FileSystems.join(
        serving_features, '*', f'{artifacts.SHARD_PREFIX}-*{artifacts.FEATURES_SUFFIX}')
  paths = {}
  for split, pattern in patterns.items():
    label = split.title()
    paths[split] = statistics_path(output, split)
    _ = (pipeline
         | f'Statistics{label}' >> ComputeStatistics(pattern, columns)
         | f'Write{label}Statistics' >> tfdv.WriteStatisticsToBinaryFile(paths[split]))
  return paths


def load_statistics(path: str):
  """A DatasetFeatureStatisticsList from a binary proto file (any Beam filesystem)."""
  from tensorflow_metadata.proto.v0 import statistics_pb2
  statistics = statistics_pb2.DatasetFeatureStatisticsList()
  try:
    with FileSystems.open(path) as handle:
      statistics.ParseFromString(handle.read())
  except Exception as error:  # noqa: BLE001 - name the file, keep the cause
    raise ValidationError(f'cannot read statistics {path}: {error}') from error
  return statistics


def _read_text(path: str) -> str:
  return bucket.read_bytes(path).decode('utf-8')


def _write_text(path: str, text: str) -> None:
  bucket.write_bytes(path, text.encode('utf-8'))


def load_or_infer_schema(schema_path: Optional[str], train_statistics,
                         spec: spec_lib.DatasetSpec):
  """(schema, source): the curated schema if ``schema_path`` exists, else one inferred from the
  train statistics (``infer_schema``; stored at ``schema_path`` if given, ready for review)."""
  from google.protobuf import text_format
  from tensorflow_metadata.proto.v0 import schema_pb2
  if schema_path and FileSystems.exists(schema_path):
    try:
      schema = text_format.Parse(_read_text(schema_path), schema_pb2.Schema())
    except text_format.ParseError as error:
      raise ValidationError(f'curated schema {schema_path} is not a valid Schema: {error}') from None
    apply_spec(schema, spec)
    return schema, 'curated'
  schema = infer_schema(train_statistics, spec)
  if schema_path:  # first use: store it, ready to be reviewed
    _write_text(schema_path, text_format.MessageToString(schema))
  return schema, 'inferred'


def infer_schema(train_statistics, spec: spec_lib.DatasetSpec):
  """TFDV's schema of the train statistics, made for data that has gaps: no fixed ``shape``
  (which makes every empty cell an anomaly), and presence as a tolerance: each feature must be
  in at least (the share of rows it was in) - ``presence_tolerance`` of the rows. A sample with
  no empty cell never makes "every row" a rule."""
  schema = _tfdv().infer_schema(train_statistics, infer_feature_shape=False)
  tolerate_absence(schema, train_statistics, spec.presence_tolerance)
  apply_spec(schema, spec)
  return schema


def fold_statistics(schema, statistics: Sequence, spec: spec_lib.DatasetSpec):
  """The schema updated to accept what ``statistics`` show (``tfdv.update_schema``): new
  categorical values join their domains, presence and value counts relax to what was seen. What
  a person accepts: a span's train and eval splits into the schema it was inferred from
  (``ct --write_schema``), or an accepted span into the committed schema (``ct
  --update_schema``)."""
  tfdv = _tfdv()
  for found in statistics:
    schema = tfdv.update_schema(schema, found)
  for feature in schema.feature:
    feature.ClearField('shape')
  apply_spec(schema, spec)
  return schema


def tolerate_absence(schema, statistics, tolerance: float) -> None:
  """Presence as a tolerance around the share of rows each feature was seen in."""
  total = _num_examples(statistics)
  present = _present_counts(statistics)
  for feature in schema.feature:
    feature.ClearField('shape')
    if not feature.HasField('value_count'):
      feature.value_count.min = feature.value_count.max = 1
    share = present.get(feature.name, 0) / total if total else 0.0
    feature.presence.min_fraction = max(0.0, math.floor((share - tolerance) * 1000) / 1000)
    feature.presence.min_count = 1


def apply_spec(schema, spec: spec_lib.DatasetSpec) -> None:
  """What the spec decides over any schema: the label kept out of the SERVING environment. The
  rest of the spec's policy (drift/skew thresholds, new categorical values, presence of whole
  columns) is judged by ``judge`` from the spec, so a committed schema cannot silently override
  it (docs/ml.md, "Schema policy")."""
  tfdv = _tfdv()
  names = {feature.name for feature in schema.feature}
  if not schema.default_environment:
    schema.default_environment.extend([TRAINING_ENV, SERVING_ENV])
    if spec.label in names:
      tfdv.get_feature(schema, spec.label).not_in_environment.append(SERVING_ENV)


def checked_by_tfdv(schema):
  """A copy of the schema for TFDV's own checks (types, presence, value counts, domains of
  numbers): drift/skew comparators and domain mass are judged here instead (``ml.drift``)."""
  probe = type(schema)()
  probe.CopyFrom(schema)
  for feature in probe.feature:
    for field in ('drift_comparator', 'skew_comparator', 'distribution_constraints'):
      feature.ClearField(field)
  return probe


def presence_allowance(schema, rows: int):
  """A copy of the schema whose presence minimums allow for the sampling noise of a split of
  ``rows`` rows: each ``min_fraction`` lowered by its one-sided 95% margin, 1.645 x sqrt(f(1-f)
  / rows), so a 20-row eval split does not stop on the share of a 0.9-present feature drawn by
  chance (a minimum of 1, every row, stays 1)."""
  allowed = type(schema)()
  allowed.CopyFrom(schema)
  for feature in allowed.feature:
    fraction = feature.presence.min_fraction
    if 0 < fraction < 1 and rows > 0:
      margin = 1.6448536269514722 * math.sqrt(fraction * (1 - fraction) / rows)
      feature.presence.min_fraction = max(0.0, fraction - margin)
  return allowed


def _num_examples(statistics) -> int:
  return sum(d.num_examples for d in statistics.datasets)


def _present_counts(statistics) -> Dict[str, int]:
  """Feature -> number of examples with a value (from the common statistics)."""
  counts: Dict[str, int] = {}
  for dataset in statistics.datasets:
    for feature in dataset.features:
      stats = feature.num_stats if feature.HasField('num_stats') else feature.string_stats
      name = feature.path.step[-1] if feature.path.step else feature.name
      counts[name] = counts.get(name, 0) + stats.common_stats.num_non_missing
  return counts


def _domain(schema, feature) -> Optional[List[str]]:
  if feature.HasField('string_domain'):
    return list(feature.string_domain.value)
  if feature.HasField('domain'):
    for domain in schema.string_domain:
      if domain.name == feature.domain:
        return list(domain.value)
  return None


def _percent(count: float, total: float) -> str:
  return f'{100 * count / total:.2g}%' if total else '0%'


def new_value_findings(schema, statistics: Statistics, spec: spec_lib.DatasetSpec
                       ) -> Tuple[List[artifacts.Anomaly], List[artifacts.Anomaly]]:
  """(anomalies, warnings) for categorical values outside the schema's domain, by the spec's
  ``new_values`` policy. A share counts by its 95% lower bound (``drift.wilson_lower_bound``), so
  four singletons in a 400-row split are not "1% of the rows"; a value with real mass is."""
  limit = 1 - spec.min_domain_mass
  anomalies: List[artifacts.Anomaly] = []
  warnings: List[artifacts.Anomaly] = []
  for split in artifacts.SPLITS:
    by_name = drift.feature_statistics(statistics[split])
    for feature in schema.feature:
      domain = _domain(schema, feature)
      stats = by_name.get(feature.name)
      if feature.name not in spec.categorical or domain is None or stats is None:
        continue
      total = drift.non_missing(stats)
      known = set(domain)
      new = {v: c for v, c in drift.value_counts(stats).items()
             if v not in known and v != drift.OTHER}
      if not total or not new:
        continue
      listed = ', '.join(f'{v!r} ({_percent(c, total)})'
                         for v, c in sorted(new.items(), key=lambda i: -i[1])[:8])
      more = f' and {len(new) - 8} more' if len(new) > 8 else ''
      share = f'{_percent(sum(new.values()), total)} of {total:,} rows'
      if spec.new_values == spec_lib.NEW_VALUES_BLOCK:
        heavy = (list(new) if drift.wilson_lower_bound(int(sum(new.values())), total) > limit
                 else [])
      else:
        heavy = [v for v, c in new.items() if drift.wilson_lower_bound(int(c), total) > limit]
      text = (f'{len(new)} value(s) not in the schema\'s domain: {listed}{more}; {share}.')
      if heavy:
        rule = ('together' if spec.new_values == spec_lib.NEW_VALUES_BLOCK else
                f'{", ".join(repr(v) for v in heavy[:5])} alone')
        anomalies.append(artifacts.Anomaly(
            feature=feature.name, split=split, types=['NEW_VALUES_WITH_MASS'],
            description=f'{text} They hold more than {_percent(limit, 1)} of the rows {rule} '
                        f'beyond sampling doubt (min_domain_mass {spec.min_domain_mass}, '
                        f'new_values: {spec.new_values}); add them to the domain if expected.'))
      else:
        warnings.append(artifacts.Anomaly(
            feature=feature.name, split=split, types=['RARE_NEW_VALUES'],
            description=f'{text} Tolerated (new_values: {spec.new_values}, min_domain_mass '
                        f'{spec.min_domain_mass}).'))
  return anomalies, warnings


def _configured_threshold(feature: str, kind: str, spec: spec_lib.DatasetSpec,
                          schema_features: Dict[str, object]) -> Tuple[float, str]:
  """The threshold of a drift or skew check and its source: the spec's, else the schema's
  comparator, else the default of the feature's measure (every feature is watched)."""
  configured = spec.threshold(feature, kind)
  if configured is not None:
    return configured, 'spec'
  found = schema_features.get(feature)
  if found is not None:
    comparator = getattr(found, f'{kind}_comparator')
    for field in _COMPARATOR_FIELD.values():
      if comparator.HasField(field) and getattr(comparator, field).threshold > 0:
        return getattr(comparator, field).threshold, 'schema'
  return drift.DEFAULT_THRESHOLDS[spec.measure(feature)], 'default'


def distances(baseline, current, spec: spec_lib.DatasetSpec, kind: str,
              schema) -> List[artifacts.Distance]:
  """Drift (``kind`` "drift": previous train -> this train) or skew ("skew": train -> serving)
  of every feature, each against its threshold raised to the comparison's noise floor."""
  before, after = drift.feature_statistics(baseline), drift.feature_statistics(current)
  schema_features = {f.name: f for f in schema.feature}
  found: List[artifacts.Distance] = []
  for feature in spec.features:
    if feature not in before or feature not in after:
      continue
    comparison = drift.compare(feature, before[feature], after[feature], spec.measure(feature))
    if comparison is None:
      continue
    configured, source = _configured_threshold(feature, kind, spec, schema_features)
    applied = max(configured, comparison.noise_floor)
    found.append(artifacts.Distance(
        feature=feature, measure=drift.MEASURE_NAMES[comparison.measure],
        value=comparison.value, threshold=round(applied, 6),
        exceeded=comparison.value > applied, noise_floor=comparison.noise_floor,
        configured_threshold=configured, threshold_source=source))
  return found


def label_drift(baseline, current, spec: spec_lib.DatasetSpec) -> Optional[artifacts.LabelDrift]:
  before, after = drift.feature_statistics(baseline), drift.feature_statistics(current)
  if spec.label not in before or spec.label not in after:
    return None
  shift = drift.label_shift(before[spec.label], after[spec.label])
  if shift is None:
    return None
  return artifacts.LabelDrift(baseline_rate=shift.baseline_rate, rate=shift.rate,
                              difference=shift.difference, noise_floor=shift.noise_floor,
                              beyond_noise=shift.beyond_noise)


def noise_floor(statistics: Statistics, schema,
                spec: spec_lib.DatasetSpec) -> Dict[str, artifacts.NoiseFloor]:
  """Each feature's noise floor between two samples the size of the train split (the one
  definition of ``ml.drift``) and a suggested threshold above it that can still fire."""
  train = drift.feature_statistics(statistics[artifacts.TRAIN])
  schema_features = {f.name: f for f in schema.feature}
  floors: Dict[str, artifacts.NoiseFloor] = {}
  for feature in spec.features:
    if feature not in train:
      continue
    comparison = drift.compare(feature, train[feature], train[feature], spec.measure(feature))
    if comparison is None:
      continue
    configured, source = _configured_threshold(feature, 'drift', spec, schema_features)
    floors[feature] = artifacts.NoiseFloor(
        measure=drift.MEASURE_NAMES[comparison.measure], noise_floor=comparison.noise_floor,
        threshold=configured if source != 'default' else None,
        suggested_threshold=drift.suggested_threshold(comparison.noise_floor))
  return floors


def judge(anomalies_by_split: AnomaliesBySplit, statistics: Statistics,
          spec: spec_lib.DatasetSpec, extra_columns: Sequence[str] = (),
          missing_columns: Sequence[str] = (), rows_read: Optional[int] = None,
          rows_dead_lettered: Optional[int] = None,
          findings: Sequence[artifacts.Anomaly] = (),
          drift_found: Sequence[artifacts.Distance] = (),
          skew_found: Sequence[artifacts.Distance] = ()) -> artifacts.VerdictDocument:
  """The verdict: anomalous (schema anomalies, an empty split, a feature without any value, a
  column missing from any CSV file, columns not in the spec, too many dead-lettered rows, and
  ``findings`` such as new values with real mass or a blocking leak) > drift (drift or skew
  above a threshold) > ok."""
  from tensorflow_metadata.proto.v0 import anomalies_pb2
  judged_here = {anomalies_pb2.AnomalyInfo.Type.Value(name) for name in (
      'COMPARATOR_L_INFTY_HIGH', 'COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH',
      'COMPARATOR_NORMALIZED_ABSOLUTE_DIFFERENCE_HIGH', 'ENUM_TYPE_UNEXPECTED_STRING_VALUES')}
  problems: List[artifacts.Anomaly] = []
  for split, anomalies in anomalies_by_split.items():
    for feature, info in sorted(anomalies.anomaly_info.items()):
      types = [anomalies_pb2.AnomalyInfo.Type.Name(r.type) for r in info.reason
               if r.type not in judged_here]
      if types:
        problems.append({'feature': feature, 'split': split, 'types': types,
                         'description': info.description})
    if anomalies.HasField('dataset_anomaly_info'):
      problems.append({'feature': None, 'split': split, 'types': [
          anomalies_pb2.AnomalyInfo.Type.Name(r.type)
          for r in anomalies.dataset_anomaly_info.reason],
          'description': anomalies.dataset_anomaly_info.description})
  problems.extend(findings)
  if _num_examples(statistics[artifacts.EVAL]) == 0:
    problems.append({'feature': None, 'split': artifacts.EVAL, 'types': ['EMPTY_SPLIT'],
                     'description': 'the eval split has no rows'})
  if _num_examples(statistics[artifacts.TRAIN]) == 0:
    problems.append({'feature': None, 'split': artifacts.TRAIN, 'types': ['EMPTY_SPLIT'],
                     'description': 'the train split has no rows'})
  else:
    present = _present_counts(statistics[artifacts.TRAIN])
    flagged = {p['feature'] for p in problems if p['split'] == artifacts.TRAIN}
    for feature in spec.features:
      if not present.get(feature) and feature not in flagged:
        problems.append({'feature': feature, 'split': artifacts.TRAIN, 'types': ['NO_VALUES'],
                         'description': f'{feature!r} has no value in any row (column missing?)'})
  for column in missing_columns:
    problems.append({'feature': column, 'split': None, 'types': ['SCHEMA_MISSING_COLUMN'],
                     'description': f'column {column!r} of the spec is missing from at least one '
                                    f'CSV file of the data validated (each span of a training '
                                    f'window must have every column)'})
  for column in extra_columns:
    problems.append({'feature': column, 'split': None, 'types': ['SCHEMA_NEW_COLUMN'],
                     'description': f'column {column!r} is in the CSV but not in the spec '
                                    '(list it under "ignore" if expected)'})
  if rows_read and rows_dead_lettered is not None:
    share = rows_dead_lettered / rows_read
    if share > spec.max_dead_letter_fraction:
      problems.append({'feature': None, 'split': None, 'types': ['DEAD_LETTER_SHARE'],
                       'description': f'{rows_dead_lettered:,} of {rows_read:,} rows '
                                      f'({_percent(rows_dead_lettered, rows_read)}) were '
                                      f'dead-lettered: above the spec\'s '
                                      f'max_dead_letter_fraction {spec.max_dead_letter_fraction}'})
  drift_list, skew_list = list(drift_found), list(skew_found)
  exceeded = [d for d in drift_list + skew_list if d['exceeded']]
  if problems:
    status = artifacts.VERDICT_ANOMALOUS
    named = sorted({p['feature'] or p['split'] or 'dataset' for p in problems})
    message = f'anomalous: {len(problems)} anomaly(ies) in {named}; training is blocked'
  elif exceeded:
    status = artifacts.VERDICT_DRIFT
    message = 'drift/skew above threshold: ' + ', '.join(
        f"{d['feature']} {d['measure']} {d['value']:.4f} > {d['threshold']}" for d in exceeded)
  else:
    status = artifacts.VERDICT_OK
    message = 'ok: no anomaly, no drift or skew above threshold'
  return {'status': status, 'message': message, 'anomalies': problems,
          'drift': drift_list, 'skew': skew_list,
          'drifted_features': sorted({d['feature'] for d in drift_list if d['exceeded']}),
          'skewed_features': sorted({d['feature'] for d in skew_list if d['exceeded']}),
          'rows': {split: _num_examples(s) for split, s in statistics.items()}}


def leakage_findings(aucs: Dict[str, Optional[float]], spec: spec_lib.DatasetSpec
                     ) -> List[artifacts.Anomaly]:
  """Features that alone predict the label with AUC >= the spec's ``leakage_auc``."""
  return [artifacts.Anomaly(
      feature=feature, split=artifacts.EVAL, types=['LABEL_LEAKAGE'],
      description=f'{feature!r} alone predicts {spec.label!r} with AUC {auc:.3f} (>= '
                  f'leakage_auc {spec.leakage_auc}): a column filled in after the outcome or '
                  f'derived from it? Ignore it in the spec if so (leakage: {spec.leakage}).')
      for feature, auc in sorted(aucs.items()) if auc is not None and auc >= spec.leakage_auc]


def verdict_allows_training(path: str) -> bool:
  """False when validation said "anomalous"; drift alone allows (and may trigger) training."""
  try:
    return artifacts.read_verdict(path)['status'] != artifacts.VERDICT_ANOMALOUS
  except artifacts.ArtifactError as error:
    raise ValidationError(str(error)) from None


def render_report(verdict: artifacts.VerdictDocument, statistics: Statistics,
                  previous=None) -> str:
  """A self-contained page (``beam_pipelines.pages.validation``): verdict, anomalies first,
  distances against thresholds, per-feature distribution charts; nothing loaded from a CDN."""
  return validation_report.render(verdict, statistics, previous)


def validate(features_dir: str, output: str, schema_path: Optional[str] = None,
             previous_statistics: Optional[str] = None, serving_features: Optional[str] = None,
             with_noise_floor: bool = False, spec_path: Optional[str] = None,
             beam_args: Sequence[str] = (), save_main_session: bool = False
             ) -> Union[Verdict, DryRun]:
  """The core: TFDV statistics of ``features_dir``'s splits, then the schema, drift (against
  ``previous_statistics``: a statistics file or a validation directory) and skew (against
  ``serving_features``) checks; writes ``output``'s artifacts and returns the verdict.

  ``schema_path``: a curated schema to check against, or where to store the inferred one when
  it does not exist yet. Raises ``ValidationError`` when validation cannot run.
  """
  from google.protobuf import text_format
  options = runtime.beam_options('validate', beam_args, (features_dir, output), save_main_session)
  try:
    summary = artifacts.read_summary(features_dir)
  except Exception as error:  # noqa: BLE001
    raise ValidationError(f'{features_dir} is not a features directory (no readable '
                          f'{artifacts.SUMMARY_FILE}): {error}') from error
  spec = spec_lib.load(spec_path) if spec_path else spec_lib.from_dict(summary['spec'])
  if not spec.is_resolved:
    raise ValidationError('the spec still holds "all": pass the spec the features were made with')
  previous_path = previous_statistics
  if previous_path and not previous_path.endswith(artifacts.STATISTICS_SUFFIX):
    previous_path = statistics_path(previous_path, artifacts.TRAIN)  # a validation directory
  previous = load_statistics(previous_path) if previous_path else None
  schema_existed = schema_path is not None and bucket.exists(schema_path)

  progress(f'validate: computing statistics of {features_dir} '
           f'({counts(summary["rows_written"], "rows")}) with TFDV')
  tfdv = _tfdv()
  pipeline = runtime.new_pipeline(options)
  paths = build_pipeline(pipeline, features_dir, spec, output, serving_features)
  runtime.run_to_completion(pipeline, options, 'validate')
  if runtime.is_dry_run(options):
    return DRY_RUN
  statistics = {split: load_statistics(path) for split, path in paths.items()}

  schema, source = load_or_infer_schema(schema_path, statistics[artifacts.TRAIN], spec)
  where = {'curated': f' from {schema_path}', 'inferred': f', stored at {schema_path}'}
  progress(f'validate: schema {source}{where[source] if schema_path else ""}; '
           f'checking anomalies{", drift" if previous else ""}'
           f'{", skew" if SERVING in statistics else ""}, leakage')
  probe = checked_by_tfdv(schema)
  anomalies = {split: tfdv.validate_statistics(
      statistics[split], presence_allowance(probe, _num_examples(statistics[split])),
      environment=TRAINING_ENV) for split in artifacts.SPLITS}
  new_values, warnings = new_value_findings(schema, statistics, spec)
  aucs = (guards.single_feature_aucs(features_dir, spec.label, spec.numeric, spec.categorical)
          if spec.leakage != spec_lib.LEAKAGE_OFF else {})
  leaks = leakage_findings(aucs, spec)
  shift = label_drift(previous, statistics[artifacts.TRAIN], spec) if previous else None
  verdict = judge(
      anomalies, statistics, spec, summary.get('extra_columns', ()),
      summary.get('missing_columns', ()), summary.get('rows_read'),
      summary.get('rows_dead_lettered'),
      findings=new_values + (leaks if spec.leakage == spec_lib.LEAKAGE_BLOCK else []),
      drift_found=distances(previous, statistics[artifacts.TRAIN], spec, 'drift', schema)
      if previous else (),
      skew_found=distances(statistics[artifacts.TRAIN], statistics[SERVING], spec, 'skew', schema)
      if SERVING in statistics else ())
  if shift and shift['beyond_noise']:
    warnings.append(artifacts.Anomaly(
        feature=spec.label, split=artifacts.TRAIN, types=['LABEL_DRIFT'],
        description=f'the positive rate of {spec.label!r} moved from {shift["baseline_rate"]:.4f} '
                    f'to {shift["rate"]:.4f} ({shift["difference"]:+.4f}; sampling alone stays '
                    f'within {shift["noise_floor"]:.4f})'))
  if spec.leakage == spec_lib.LEAKAGE_WARN:
    warnings.extend(leaks)
  verdict['warnings'] = warnings
  verdict['label_drift'] = shift
  verdict['leakage'] = aucs
  verdict['noise_floor'] = noise_floor(statistics, schema, spec)
  if with_noise_floor:
    bucket.write_json(FileSystems.join(output, NOISE_FLOOR_FILE), verdict['noise_floor'])
  stored = schema_path if schema_path and not schema_existed and bucket.exists(schema_path) else None
  verdict.update({
      'features': features_dir, 'output': output,
      'report': FileSystems.join(output, artifacts.REPORT_FILE),
      'schema_source': source, 'schema': schema_path,
      'schema_stored_sha256': bucket.sha256_of(stored) if stored else None,
      'previous_statistics': previous_path,
      'serving_features': serving_features, 'statistics': paths,
      'rows_read': summary.get('rows_read'),
      'rows_dead_lettered': summary.get('rows_dead_lettered'),
      'missing_columns': summary.get('missing_columns', [])})

  merged = anomalies[artifacts.TRAIN]
  for feature, info in anomalies[artifacts.EVAL].anomaly_info.items():
    if feature not in merged.anomaly_info:
      merged.anomaly_info[feature].CopyFrom(info)
      merged.anomaly_info[feature].description = f'[eval split] {info.description}'
  _write_text(FileSystems.join(output, artifacts.SCHEMA_FILE), text_format.MessageToString(schema))
  _write_text(FileSystems.join(output, artifacts.ANOMALIES_FILE),
              text_format.MessageToString(merged))
  _write_text(FileSystems.join(output, artifacts.REPORT_FILE),
              render_report(verdict, statistics, previous))
  bucket.write_json(FileSystems.join(output, artifacts.VERDICT_FILE), verdict)
  result = from_json(Verdict, verdict, 'validation verdict')
  _report(result, output, with_noise_floor)
  return result


def run(argv: Optional[Sequence[str]] = None,
        save_main_session: bool = False) -> Union[Verdict, DryRun]:
  """The command line: parses the flags and calls ``validate``."""
  known, beam_args = runtime.parse_arguments('validate', argv, add_validate_arguments)
  return validate(known.features, known.output, known.schema, known.previous_statistics,
                  known.serving_features, known.noise_floor, known.spec, beam_args,
                  save_main_session)


def _report(verdict: Verdict, output: str, with_noise_floor: bool = False) -> None:
  for problem in verdict.anomalies:
    progress(f"validate: ANOMALY {problem.feature or 'dataset'} ({problem.split or 'csv'}): "
             f"{problem.description}")
  for warning in verdict.warnings:
    progress(f"validate: warning {warning.feature} ({warning.split}): {warning.description}")
  for feature, floor in sorted(verdict.noise_floor.items() if with_noise_floor else ()):
    progress(f"validate: noise floor {feature}: {floor.measure} {floor.noise_floor:.4f} "
             f"between samples the size of the train split; threshold {floor.threshold}, "
             f"suggested {floor.suggested_threshold}")
  for d in verdict.drift + verdict.skew:
    if d.exceeded:
      progress(f"validate: {d.feature}: {d.measure} {d.value:.4f} > {d.threshold}")
  progress(f"validate: done: verdict {verdict.status}: {verdict.message}")
  progress(f'validate: outputs: {FileSystems.join(output, artifacts.VERDICT_FILE)}, '
           f'{FileSystems.join(output, artifacts.REPORT_FILE)}, '
           f'{FileSystems.join(output, artifacts.ANOMALIES_FILE)}, '
           f'{FileSystems.join(output, artifacts.SCHEMA_FILE)}, '
           f'{FileSystems.join(output, artifacts.STATISTICS_DIR)}/')


def exit_status(result: Union[Verdict, DryRun]) -> int:
  """1 when the verdict is anomalous (training would be refused), else 0."""
  anomalous = isinstance(result, Verdict) and result.anomalous
  return runtime.EXIT_STOPPED if anomalous else runtime.EXIT_OK


def main(argv: Optional[Sequence[str]] = None) -> int:
  """CLI entry: 0 for ok/drift, 1 for anomalous, 2 when validation could not run."""
  return runtime.main('validate', run, argv, exit_status)


if __name__ == '__main__':
  logging.getLogger().setLevel(logging.WARNING)
  sys.exit(main(sys.argv[1:]))
