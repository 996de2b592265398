"""Data validation with TFDV: statistics per split, schema, anomalies, drift, skew, a verdict.

    python -m beam_pipelines.validate [--features DIR] [--output VDIR] [--spec SPEC]
        [--schema PATH] [--previous_statistics PATH] [--serving_features DIR] [--noise_floor]

``tfdv.GenerateStatistics`` runs inside the Beam pipeline over the Parquet splits written by
``beam_pipelines.features``. The schema is the curated one when ``--schema`` names an existing
file; otherwise it is inferred from the train statistics (and stored at ``--schema`` if given,
ready to be curated: first use). Drift is checked against ``--previous_statistics`` (a previous
span's ``statistics/train.pb``: L-infinity for categorical, Jensen-Shannon for numeric features,
thresholds from the spec), skew against the statistics of ``--serving_features``.

Outputs (``ml/artifacts.py``): ``statistics/{train,eval[,serving]}.pb``, ``schema.pbtxt``,
``anomalies.pbtxt``, ``verdict.json`` (``ok`` | ``drift`` | ``anomalous``, naming features and
distances) and ``report.html``. "anomalous" blocks training (``verdict_allows_training``); drift
or skew alone is reported and can trigger retraining. Categorical values outside the schema's
domain that hold less than ``1 - min_domain_mass`` of the rows (the spec's, default 1%) are
warnings, not anomalies: real data has rare values that fall in one split and not the other.
``--noise_floor`` measures each feature's distance between two random halves of the train split
(what a threshold must stay above) and suggests thresholds (``noise_floor.json``). Any other flag
is a Beam pipeline option.
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
                      help="Measure each feature's drift distance between two random halves of "
                      'the train split and suggest thresholds above it (noise_floor.json).')


# Answers --help before importing Beam (~2 s).
runtime.answer_help_early(__name__, 'validate', __doc__, add_validate_arguments)

import contextlib
import io
import logging
import math
from typing import TYPE_CHECKING, Dict, Iterator, List, Optional, Sequence, Union

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems

from beam_pipelines.ml import artifacts
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
MEASURE_NAMES = {1: 'L_INFTY', 2: 'JENSEN_SHANNON_DIVERGENCE', 3: 'NORMALIZED_ABSOLUTE_DIFFERENCE'}


NOISE_FLOOR_FILE = 'noise_floor.json'
HALVES = ('train_half_a', 'train_half_b')
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


def half_of(table: pa.Table, half: int, seed: int = 0) -> pa.Table:
  """One of two random halves of a table's rows (seeded: the same rows every run)."""
  chosen = np.random.RandomState(seed + table.num_rows).rand(table.num_rows) < 0.5
  return table.filter(pa.array(chosen if half == 0 else ~chosen))


class ComputeStatistics(beam.PTransform):
  """Pipeline root -> one DatasetFeatureStatisticsList of the Parquet files matching a pattern
  (or of one random half of their rows, for the noise floor)."""

  def __init__(self, file_pattern: str, columns: Sequence[str], half: Optional[int] = None):
    super().__init__()
    self.file_pattern = file_pattern
    self.columns = list(columns)
    self.half = half

  def expand(self, root):
    tfdv = _tfdv()
    tables = root | 'ReadParquet' >> beam.io.ReadFromParquetBatched(
        self.file_pattern, columns=self.columns)
    if self.half is not None:
      tables = tables | 'Half' >> beam.Map(half_of, self.half)
    return (
        tables
        | 'ToRecordBatches' >> beam.FlatMap(_record_batches)
        | 'GenerateStatistics' >> tfdv.GenerateStatistics(tfdv.StatsOptions()))


def statistics_path(output: str, split: str) -> str:
  return FileSystems.join(output, artifacts.STATISTICS_DIR, f'{split}{artifacts.STATISTICS_SUFFIX}')


def build_pipeline(pipeline: beam.Pipeline, features_dir: str, spec: spec_lib.DatasetSpec,
                   output: str, serving_features: Optional[str] = None,
                   noise_floor: bool = False) -> Dict[str, str]:
  """Adds statistics of each split (and of serving data, and of two random halves of the train
  split for the noise floor); returns split -> statistics path."""
  tfdv = _tfdv()
  columns = spec.features + [spec.label]
  patterns = {split: artifacts.split_pattern(features_dir, split) for split in artifacts.SPLITS}
  if serving_features:
    patterns[SERVING] = FileSystems.join(
        serving_features, '*', f'{artifacts.SHARD_PREFIX}-*{artifacts.FEATURES_SUFFIX}')
  halves = {name: (patterns[artifacts.TRAIN], index)
            for index, name in enumerate(HALVES)} if noise_floor else {}
  paths = {}
  for split, (pattern, half) in {**{k: (v, None) for k, v in patterns.items()}, **halves}.items():
    label = ''.join(part.title() for part in split.split('_'))
    paths[split] = statistics_path(output, split)
    _ = (pipeline
         | f'Statistics{label}' >> ComputeStatistics(pattern, columns, half)
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
  train statistics with the spec applied (and stored at ``schema_path``, ready for review)."""
  from google.protobuf import text_format
  from tensorflow_metadata.proto.v0 import schema_pb2
  if schema_path and FileSystems.exists(schema_path):
    try:
      schema = text_format.Parse(_read_text(schema_path), schema_pb2.Schema())
    except text_format.ParseError as error:
      raise ValidationError(f'curated schema {schema_path} is not a valid Schema: {error}') from None
    apply_spec(schema, spec)
    return schema, 'curated'
  schema = _tfdv().infer_schema(train_statistics)
  apply_spec(schema, spec)
  if schema_path:  # first use: store it, ready to be reviewed
    _write_text(schema_path, text_format.MessageToString(schema))
  return schema, 'inferred'


def set_threshold(comparator, measure: str, threshold: float) -> None:
  """Sets one FeatureComparator's distance (the spec's measure) and threshold."""
  getattr(comparator, _COMPARATOR_FIELD[measure]).threshold = threshold


def apply_spec(schema, spec: spec_lib.DatasetSpec) -> None:
  """From the spec: drift/skew thresholds with each feature's measure, the minimum domain mass of
  categorical features whose schema sets none, and the label kept out of the SERVING environment."""
  tfdv = _tfdv()
  names = {feature.name for feature in schema.feature}
  for feature, kinds in spec.thresholds.items():
    if feature not in names:
      continue
    target = tfdv.get_feature(schema, feature)
    for kind, threshold in kinds.items():
      comparator = target.drift_comparator if kind == 'drift' else target.skew_comparator
      set_threshold(comparator, spec.measure(feature), threshold)
  for feature in schema.feature:
    has_domain = feature.HasField('domain') or feature.HasField('string_domain')
    if (feature.name in spec.categorical and has_domain
        and not feature.distribution_constraints.HasField('min_domain_mass')):
      feature.distribution_constraints.min_domain_mass = spec.min_domain_mass
  if not schema.default_environment:
    schema.default_environment.extend([TRAINING_ENV, SERVING_ENV])
    if spec.label in names:
      tfdv.get_feature(schema, spec.label).not_in_environment.append(SERVING_ENV)


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


def rare_value_warnings(schema, statistics: Statistics,
                        anomalies_by_split: AnomaliesBySplit) -> List[artifacts.Anomaly]:
  """Values outside a categorical feature's domain that the minimum domain mass tolerates: the
  same check with a strict domain, minus what already is an anomaly. One entry per feature/split."""
  from tensorflow_metadata.proto.v0 import anomalies_pb2
  strict = type(schema)()
  strict.CopyFrom(schema)
  for feature in strict.feature:
    feature.ClearField('distribution_constraints')
  unexpected = anomalies_pb2.AnomalyInfo.Type.Value('ENUM_TYPE_UNEXPECTED_STRING_VALUES')
  warnings = []
  for split in artifacts.SPLITS:
    found = _tfdv().validate_statistics(statistics[split], strict, environment=TRAINING_ENV)
    for feature, info in sorted(found.anomaly_info.items()):
      if (any(r.type == unexpected for r in info.reason)
          and feature not in anomalies_by_split[split].anomaly_info):
        warnings.append(artifacts.Anomaly(
            feature=feature, split=split, types=['RARE_NEW_VALUES'],
            description=f'{info.description.strip()} Tolerated: under the minimum domain mass '
                        f'of the spec.'))
  return warnings


def noise_floor(statistics: Statistics, schema,
                spec: spec_lib.DatasetSpec) -> Dict[str, artifacts.NoiseFloor]:
  """Each feature's drift distance between two random halves of the train split (its noise
  floor, with the spec's measure) and a suggested threshold above it."""
  probe = type(schema)()
  probe.CopyFrom(schema)
  for feature in probe.feature:
    if feature.name in spec.features:
      feature.ClearField('drift_comparator')
      set_threshold(feature.drift_comparator, spec.measure(feature.name), 1e-9)
  found = _tfdv().validate_statistics(statistics[HALVES[0]], probe, environment=TRAINING_ENV,
                                      previous_statistics=statistics[HALVES[1]])
  floors: Dict[str, artifacts.NoiseFloor] = {}
  for info in found.drift_skew_info:
    for m in info.drift_measurements:
      floor = float(m.value)
      floors['.'.join(info.path.step)] = artifacts.NoiseFloor(
          measure=MEASURE_NAMES.get(m.type, str(m.type)), noise_floor=round(floor, 6),
          threshold=spec.threshold('.'.join(info.path.step), 'drift'),
          suggested_threshold=suggested_threshold(floor))
  return floors


def suggested_threshold(floor: float) -> float:
  """A drift threshold comfortably above a noise floor: twice it plus 0.02, rounded up to 0.01."""
  return math.ceil((2 * floor + 0.02) * 100) / 100


def judge(anomalies_by_split: AnomaliesBySplit, statistics: Statistics,
          spec: spec_lib.DatasetSpec,
          extra_columns: Sequence[str] = ()) -> artifacts.VerdictDocument:
  """The verdict: anomalous (schema anomalies, an empty split, a feature without any value,
  columns not in the spec) > drift (drift or skew above a threshold) > ok."""
  from tensorflow_metadata.proto.v0 import anomalies_pb2
  comparators = {anomalies_pb2.AnomalyInfo.Type.Value(name) for name in (
      'COMPARATOR_L_INFTY_HIGH', 'COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH',
      'COMPARATOR_NORMALIZED_ABSOLUTE_DIFFERENCE_HIGH')}
  problems: List[artifacts.Anomaly] = []
  drift: List[artifacts.Distance] = []
  skew: List[artifacts.Distance] = []
  for split, anomalies in anomalies_by_split.items():
    for feature, info in sorted(anomalies.anomaly_info.items()):
      types = [anomalies_pb2.AnomalyInfo.Type.Name(r.type) for r in info.reason
               if r.type not in comparators]
      if types:
        problems.append({'feature': feature, 'split': split, 'types': types,
                         'description': info.description})
    if anomalies.HasField('dataset_anomaly_info'):
      problems.append({'feature': None, 'split': split, 'types': [
          anomalies_pb2.AnomalyInfo.Type.Name(r.type)
          for r in anomalies.dataset_anomaly_info.reason],
          'description': anomalies.dataset_anomaly_info.description})
    for info in anomalies.drift_skew_info:
      feature = '.'.join(info.path.step)
      for kind, measurements in (('drift', info.drift_measurements),
                                 ('skew', info.skew_measurements)):
        for m in measurements:
          entry = artifacts.Distance(
              feature=feature, measure=MEASURE_NAMES.get(m.type, str(m.type)),
              value=round(m.value, 6), threshold=m.threshold, exceeded=m.value > m.threshold)
          (drift if kind == 'drift' else skew).append(entry)
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
  for column in extra_columns:
    problems.append({'feature': column, 'split': None, 'types': ['SCHEMA_NEW_COLUMN'],
                     'description': f'column {column!r} is in the CSV but not in the spec '
                                    '(list it under "ignore" if expected)'})
  exceeded = [d for d in drift + skew if d['exceeded']]
  if problems:
    status = artifacts.VERDICT_ANOMALOUS
    named = sorted({p['feature'] or p['split'] or '' for p in problems})
    message = f'anomalous: {len(problems)} anomaly(ies) in {named}; training is blocked'
  elif exceeded:
    status = artifacts.VERDICT_DRIFT
    message = 'drift/skew above threshold: ' + ', '.join(
        f"{d['feature']} {d['measure']} {d['value']:.4f} > {d['threshold']}" for d in exceeded)
  else:
    status = artifacts.VERDICT_OK
    message = 'ok: no anomaly, no drift or skew above threshold'
  return {'status': status, 'message': message, 'anomalies': problems,
          'drift': drift, 'skew': skew,
          'drifted_features': sorted({d['feature'] for d in drift if d['exceeded']}),
          'skewed_features': sorted({d['feature'] for d in skew if d['exceeded']}),
          'rows': {split: _num_examples(s) for split, s in statistics.items()}}


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
  paths = build_pipeline(pipeline, features_dir, spec, output, serving_features,
                         with_noise_floor)
  runtime.run_to_completion(pipeline, options, 'validate')
  if runtime.is_dry_run(options):
    return DRY_RUN
  statistics = {split: load_statistics(path) for split, path in paths.items()}

  schema, source = load_or_infer_schema(schema_path, statistics[artifacts.TRAIN], spec)
  where = {'curated': f' from {schema_path}', 'inferred': f', stored at {schema_path}'}
  progress(f'validate: schema {source}{where[source] if schema_path else ""}; '
           f'checking anomalies{", drift" if previous else ""}'
           f'{", skew" if SERVING in statistics else ""}')
  anomalies = {
      artifacts.TRAIN: tfdv.validate_statistics(
          statistics[artifacts.TRAIN], schema, environment=TRAINING_ENV,
          previous_statistics=previous, serving_statistics=statistics.get(SERVING)),
      artifacts.EVAL: tfdv.validate_statistics(
          statistics[artifacts.EVAL], schema, environment=TRAINING_ENV)}
  verdict = judge(anomalies, statistics, spec, summary.get('extra_columns', ()))
  verdict['warnings'] = rare_value_warnings(schema, statistics, anomalies)
  if with_noise_floor:
    verdict['noise_floor'] = noise_floor(statistics, schema, spec)
    bucket.write_json(FileSystems.join(output, NOISE_FLOOR_FILE), verdict['noise_floor'])
  stored = schema_path if schema_path and not schema_existed and bucket.exists(schema_path) else None
  verdict.update({
      'features': features_dir, 'output': output,
      'report': FileSystems.join(output, artifacts.REPORT_FILE),
      'schema_source': source, 'schema': schema_path,
      'schema_stored_sha256': bucket.sha256_of(stored) if stored else None,
      'previous_statistics': previous_path,
      'serving_features': serving_features, 'statistics': paths,
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
  _report(result, output)
  return result


def run(argv: Optional[Sequence[str]] = None,
        save_main_session: bool = False) -> Union[Verdict, DryRun]:
  """The command line: parses the flags and calls ``validate``."""
  known, beam_args = runtime.parse_arguments('validate', argv, add_validate_arguments)
  return validate(known.features, known.output, known.schema, known.previous_statistics,
                  known.serving_features, known.noise_floor, known.spec, beam_args,
                  save_main_session)


def _report(verdict: Verdict, output: str) -> None:
  for problem in verdict.anomalies:
    progress(f"validate: ANOMALY {problem.feature or 'dataset'} ({problem.split or 'csv'}): "
             f"{problem.description}")
  for warning in verdict.warnings:
    progress(f"validate: warning {warning.feature} ({warning.split}): {warning.description}")
  for feature, floor in sorted(verdict.noise_floor.items()):
    progress(f"validate: noise floor {feature}: {floor.measure} {floor.noise_floor:.4f} "
             f"between random halves of train; threshold {floor.threshold}, suggested "
             f"{floor.suggested_threshold}")
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
