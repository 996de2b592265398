"""Evaluates a candidate model (and a baseline) on the eval split in Beam, then blesses it or not.

ReadFromParquet(eval split), or every row of a CSV span (``--input``, parsed by the models' input
schema, bad rows dead-lettered) -> RunInference with the sha256-checking scikit-learn handler (the
candidate and, if given, the baseline, on the same frames, their scores joined per row) -> metric
combiners per slice (overall and each value of every slicing spec: a categorical feature or a cross
of them) and, with a baseline, the paired comparison of both AUCs on the same rows (DeLong's
standard error of the difference, on a bounded deterministic sample) and the permutation feature
importance of each model on a bounded sample (``beam_pipelines.ml.importance``) -> metrics.json,
blessing.json, a BLESSED / NOT_BLESSED marker and report.html (see ``beam_pipelines.ml.artifacts``
and ``beam_pipelines.ml.blessing``).

    python -m beam_pipelines.evaluate (--features DIR | --input 'CSV_GLOB') --model MDIR \\
        --output EDIR [--baseline_model BDIR] [--blessing_config PATH] \\
        [--slice_feature company] [--slice_feature payment_type,company] [--threshold 0.5]

Data lacking a column a model reads (or the label) is refused before anything runs.

Any other flag is a Beam pipeline option (``--runner``, ``--direct_num_workers`` ...).
"""

from __future__ import annotations

import argparse
import sys

from beam_pipelines import runtime


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
  """evaluate's own flags (plain argparse: --help needs no Beam import, and Beam merges every
  PipelineOptions subclass's flags into one parser, where a second --output would clash)."""
  parser.add_argument('--features', default=None,
                      help='Feature extraction output directory: its eval split is scored.')
  parser.add_argument('--input', default=None,
                      help='CSV file or glob instead of --features: every row is scored (label '
                           'required; rows that cannot be typed go to EDIR/dead_letter/).')
  parser.add_argument('--model', required=True, help='Candidate model directory.')
  parser.add_argument('--model_sha256', default=None,
                      help="The candidate model file's sha256 as the step that trained it "
                           'recorded it (checked before loading, besides the metadata).')
  parser.add_argument('--baseline_model', default=None,
                      help='Baseline (e.g. production) model directory; none: rubber stamp.')
  parser.add_argument('--baseline_sha256', default=None,
                      help="The baseline model file's sha256 as a registry recorded it (checked "
                           'before loading, besides the metadata beside the file).')
  parser.add_argument('--blessing_config', default=None,
                      help='Blessing thresholds, YAML/JSON (default: AUC >= 0.6, not worse than '
                           "the baseline, at most 0.05 below the baseline's registered AUC).")
  parser.add_argument('--baseline_record', default=None,
                      help="The baseline's registry record (version.json): its registered metrics "
                           'are checked against the config\'s registered_change thresholds.')
  parser.add_argument('--slice_feature', action='append', default=None,
                      help='Categorical feature to slice by; repeat it for several slicings; '
                           'A,B slices by the cross of A and B (default: the first categorical '
                           'feature).')
  parser.add_argument('--threshold', type=float, default=None,
                      help='Decision threshold of precision, recall, F1 and the confusion matrix '
                           '(p >= threshold is positive; default: the one maximising F1 on the '
                           'eval rows, per model).')
  parser.add_argument('--importance_rows', type=int, default=20_000,
                      help='Rows of the permutation feature importance sample (0: none).')
  parser.add_argument('--output', required=True, help='Evaluation output directory.')


# Answers --help before importing Beam (~2 s).
runtime.answer_help_early(__name__, 'evaluate', __doc__, add_evaluate_arguments)

import json
import logging
import math
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, TypedDict, Union, cast

import apache_beam as beam
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

from beam_pipelines.ml import (
  artifacts,
  blessing,
  counting,
  csv_io,
  importance,
  inference,
  model_io,
  tabular,
)
from beam_pipelines.ml import metrics as metrics_lib
from beam_pipelines.ml.input_schema import InputSchema
from beam_pipelines.ml.metrics import (
  DEFAULT_PAIRED_ROWS,
  BinaryMetricsCombineFn,
  MetricsAndCurves,
  PairedMetricsCombineFn,
  PairedRows,
)
from beam_pipelines.ml.results import (
  DRY_RUN,
  AucComparison,
  DryRun,
  Evaluation,
  ModelRef,
  Number,
  ReconciliationError,
)
from beam_pipelines.pages import evaluation as report
from beam_pipelines.store import bucket
from beam_pipelines.store.console import progress
from beam_pipelines.store.errors import Refusal

METRICS_NAMESPACE = 'Evaluate'
CANDIDATE, BASELINE = 'candidate', 'baseline'
OVERALL = 'Overall'
MISSING_VALUE = '<missing>'
BATCH_SIZE = 10_000  # CSV rows per scored frame


class EvaluationError(Refusal, ValueError):
  """An evaluation that cannot run as asked (no data given, an unknown slice feature)."""


SliceKey = Tuple[str, str, str]  # (model, slicing spec name or 'Overall', value)
SlicingSpec = Tuple[str, ...]  # a feature, or the features of a cross
CROSS, VALUES = ' × ', ' | '  # how a cross's name and its slice values are joined


def spec_name(spec: SlicingSpec) -> str:
  return CROSS.join(spec)


def parse_slicing(values: Union[None, str, Sequence[str]]) -> List[SlicingSpec]:
  """--slice_feature values ('a', or 'a,b' for the cross of a and b) -> slicing specs, in order,
  each once."""
  if isinstance(values, str):
    values = [values]
  specs: List[SlicingSpec] = []
  for value in values or ():
    spec = tuple(part.strip() for part in value.split(',') if part.strip())
    if spec and spec not in specs:
      specs.append(spec)
  return specs


ScoredFrame = Tuple[pd.DataFrame, Dict[str, np.ndarray]]  # rows, {model: P(label = 1) per row}


class ScoreModel(beam.PTransform):
  """(frame, {model: probabilities}) -> the same with this model's probabilities added.

  RunInference runs keyed by the scores so far, so every model scores the very same frame and the
  scores of all models stay joined per row (one ``predict_proba`` call per frame and model; the
  loaded model is shared per worker)."""

  def __init__(self, model_name: str, model_dir: str, expected_sha256: Optional[str] = None):
    super().__init__()
    self._name = model_name
    self._handler: KeyedModelHandler = KeyedModelHandler(
        inference.VerifiedSklearnModelHandler(model_dir, expected_sha256))

  def expand(self, scored):
    name = self._name
    return (scored
            | 'KeyByScores' >> beam.Map(lambda frame_scores: (frame_scores[1], frame_scores[0]))
            | 'RunInference' >> RunInference(self._handler)
            | 'AddScores' >> beam.Map(
                lambda keyed: (keyed[1].example, {**keyed[0], name: keyed[1].inference})))


def slice_values(frame: pd.DataFrame, spec: SlicingSpec) -> np.ndarray:
  """Each row's slice of ``spec``: its value (a cross: the values joined by ' | '), a missing
  value as '<missing>'."""
  keys = None
  for feature in spec:
    values = frame[feature]
    text = values.astype(object).where(values.notna(), MISSING_VALUE).map(str)
    keys = text if keys is None else keys + VALUES + text
  return keys.to_numpy() if keys is not None else np.array([], dtype=object)


def to_slices(scored: ScoredFrame, label: str,
              slicing: Union[None, str, Sequence[SlicingSpec]]
              ) -> Iterable[Tuple[SliceKey, Tuple[np.ndarray, np.ndarray]]]:
  """A scored frame -> ((model, slicing spec name, value), (labels, probabilities)) per model,
  overall and per slice of each spec: arrays, which the metric combiners take whole."""
  frame, scores = scored
  labels = frame[label].to_numpy(dtype=np.int64)
  specs = parse_slicing(slicing) if slicing is None or isinstance(slicing, str) else slicing
  groups: List[Tuple[str, Dict[str, np.ndarray]]] = []
  for spec in specs:
    keys = slice_values(frame, spec)
    groups.append((spec_name(spec), pd.Series(keys).groupby(keys, sort=False).indices))
  for name, probabilities in scores.items():
    yield (name, OVERALL, ''), (labels, probabilities)
    for spec_key, indices in groups:
      for value, rows in indices.items():
        yield (name, spec_key, value), (labels[rows], probabilities[rows])


def row_keys(frame: pd.DataFrame) -> np.ndarray:
  """A uint64 hash per row of its content (every column) and its occurrence among identical rows
  of the frame: the same rows get the same keys in every run, whatever the order of the frames."""
  content = pd.util.hash_pandas_object(frame, index=False).to_numpy(dtype=np.uint64)
  occurrence = pd.Series(content).groupby(content, sort=False).cumcount().to_numpy()
  return pd.util.hash_pandas_object(pd.DataFrame({'content': content, 'occurrence': occurrence}),
                                    index=False).to_numpy(dtype=np.uint64)


def paired_rows(scored: ScoredFrame, label: str) -> PairedRows:
  """A frame scored by both models -> (row keys, labels, candidate scores, baseline scores)."""
  frame, scores = scored
  return (row_keys(frame), frame[label].to_numpy(dtype=np.int64), scores[CANDIDATE],
          scores[BASELINE])


class LabelledFrames(beam.DoFn):
  """Arrow record batches -> pandas frames of the rows that have a label; counts the others
  (they cannot be scored against a label)."""

  def __init__(self, label: str):
    super().__init__()
    self._label = label
    self.labelled = Metrics.counter(METRICS_NAMESPACE, 'labelled_rows')
    self.unlabelled = Metrics.counter(METRICS_NAMESPACE, 'unlabelled_rows')

  def process(self, table: pa.Table):
    labelled = table.filter(pc.is_valid(table[self._label]))
    self.unlabelled.inc(table.num_rows - labelled.num_rows)
    if labelled.num_rows:
      self.labelled.inc(labelled.num_rows)
      yield labelled.to_pandas()


def metric_map(metrics: artifacts.SliceMetrics) -> Dict[str, Number]:
  """A slice's metrics as a plain map of numbers (what the blessing and the registry record)."""
  return {name: value for name, value in metrics.items()
          if value is None or isinstance(value, (int, float))}


def _number(value: float) -> Optional[float]:
  return None if math.isnan(value) else value


_COUNTS = ('example_count', 'positive_count', 'true_positives', 'false_positives',
           'true_negatives', 'false_negatives')


def _clean(metrics: MetricsAndCurves) -> artifacts.SliceMetrics:
  """The metrics of ``metrics.METRIC_NAMES``; NaN (undefined) metrics become null in JSON, which
  the blessing treats as missing."""
  return cast(artifacts.SliceMetrics, {
      name: int(metrics[name]) if name in _COUNTS else _number(float(metrics[name]))  # type: ignore
      for name in metrics_lib.METRIC_NAMES if name in metrics})


THRESHOLD_RULES = {
    metrics_lib.MAX_F1: 'the threshold maximising F1 on the overall eval rows of each model, a '
                        'score histogram edge k/10,000 (the middle of the tied ones); 0.5 without '
                        'a positive row; every slice of the model uses it',
    metrics_lib.FIXED: 'fixed by --threshold, for every model and slice',
}


def assemble(slice_metrics: List[Tuple[SliceKey, MetricsAndCurves]],
             models: Dict[str, artifacts.ModelDescription],
             slicing: Union[None, str, Sequence[SlicingSpec]],
             comparison: Optional[Dict[str, artifacts.MetricComparison]] = None,
             importances: Optional[Dict[str, artifacts.Importance]] = None,
             threshold: Optional[float] = None) -> artifacts.MetricsDocument:
  """[(slice key, metrics)] (the paired comparisons, with a baseline; each model's permutation
  importance) -> metrics.json. Without a fixed ``threshold``, every slice's decision metrics are
  read at the threshold of its model's overall rows."""
  specs = parse_slicing(slicing) if slicing is None or isinstance(slicing, str) else list(slicing)
  thresholds: Dict[str, float] = {}
  for (name, feature, _), metrics in slice_metrics:
    if feature == OVERALL:
      thresholds[name] = metrics['threshold'] if threshold is None else threshold
  entries = {name: artifacts.ModelMetrics(
      **info, overall=artifacts.SliceMetrics(), slices={},
      slicings=[artifacts.Slicing(name=spec_name(s), features=list(s), slices={}) for s in specs])
      for name, info in models.items()}
  names = [spec_name(s) for s in specs]
  for (name, feature, value), metrics in sorted(slice_metrics, key=lambda kv: kv[0]):
    entry = entries[name]
    if threshold is None and name in thresholds:
      metrics = metrics_lib.at_threshold(metrics, thresholds[name])
    if feature == OVERALL:
      entry['overall'] = _clean(metrics)
      entry['curves'] = metrics['curves']  # ROC, PR and calibration points of the report's charts
    else:
      entry['slicings'][names.index(feature)]['slices'][value] = _clean(metrics)
  for name, entry in entries.items():
    if specs:
      entry['slices'] = entry['slicings'][0]['slices']
    entry['importance'] = (importances or {}).get(name)
  document = artifacts.MetricsDocument(
      slice_feature=names[0] if names else None, models=entries,
      slicing_specs=[artifacts.SlicingSpec(name=spec_name(s), features=list(s)) for s in specs],
      threshold=artifacts.ThresholdChoice(
          rule=metrics_lib.MAX_F1 if threshold is None else metrics_lib.FIXED,
          description=THRESHOLD_RULES[metrics_lib.MAX_F1 if threshold is None
                                      else metrics_lib.FIXED],
          values=thresholds))
  if comparison is not None:
    document['comparison'] = comparison
  return document


def name_the_rows(comparison: Dict[str, artifacts.MetricComparison],
                  data: str) -> Dict[str, artifacts.MetricComparison]:
  """Each paired comparison with the data its rows came from (eval split files or input)."""
  return {metric: artifacts.MetricComparison(**entry, data=data)
          for metric, entry in comparison.items()}


def write_outputs(document: artifacts.MetricsDocument, rule: blessing.BlessingRule,
                  output: str) -> artifacts.BlessingDocument:
  """Judges the candidate, writes metrics, report, blessing and marker (marker last)."""
  models = document['models']
  baseline = models[BASELINE]['overall'] if BASELINE in models else None
  comparison = document.get('comparison')
  result = rule.judge(models[CANDIDATE]['overall'], baseline, comparison)
  record = artifacts.BlessingDocument(
      **result.to_dict(), candidate=models[CANDIDATE]['model_dir'],
      baseline=models[BASELINE]['model_dir'] if BASELINE in models else None,
      thresholds=rule.describe())
  if comparison:
    record['comparison'] = comparison
  join = FileSystems.join
  bucket.write_bytes(join(output, artifacts.METRICS_FILE),
                        (json.dumps(document, indent=2, sort_keys=True) + '\n').encode())
  bucket.write_bytes(join(output, artifacts.REPORT_FILE),
                        report.render(document, record).encode('utf-8'))
  bucket.write_bytes(join(output, artifacts.BLESSING_FILE),
                        (json.dumps(record, indent=2, sort_keys=True) + '\n').encode())
  stale = join(output, artifacts.NOT_BLESSED if result.blessed else artifacts.BLESSED)
  if FileSystems.exists(stale):
    FileSystems.delete([stale])
  bucket.write_bytes(join(output, result.status), b'')
  return record


class EvaluationSummary(TypedDict):
  """``summary.json`` of an evaluation on CSV: rows read = scored + dead-lettered."""
  input: str
  rows_read: int
  rows_scored: int
  rows_dead_lettered: int
  reconciled: bool


def make_summary(totals: Dict[str, int], input_pattern: str) -> EvaluationSummary:
  """The counts of an evaluation on CSV; they reconcile when every row was scored or rejected."""
  return EvaluationSummary(
      input=input_pattern, rows_read=totals['rows_read'], rows_scored=totals['rows_scored'],
      rows_dead_lettered=totals['rows_dead_lettered'],
      reconciled=totals['rows_read'] == totals['rows_scored'] + totals['rows_dead_lettered'])


def write_summary(summary: EvaluationSummary, path: str) -> None:
  bucket.write_bytes(path, (json.dumps(summary, indent=2, sort_keys=True) + '\n').encode())


class ReadLabelledCsv(beam.PTransform):
  """Pipeline root -> frames of typed, labelled rows of every CSV file matching a pattern; rows that cannot
  be typed -> ``output/dead_letter/``; counts -> ``output/summary.json``."""

  def __init__(self, input_pattern: str, schema: InputSchema, output: str,
               batch_size: int = BATCH_SIZE):
    super().__init__()
    self._batch_size = batch_size
    self._pattern = input_pattern
    self._spec = schema.parsing_spec()
    self._output = output

  def expand(self, root):
    parsed = root | 'ReadCsv' >> csv_io.ReadCsvRows(
        self._pattern, self._spec, require_label=True, require_features=True,
        batch_size=self._batch_size)
    rows, dead_letters = parsed[csv_io.ROWS], parsed[csv_io.DEAD_LETTER]
    _ = dead_letters | 'WriteDeadLetter' >> csv_io.WriteDeadLetter(
        FileSystems.join(self._output, artifacts.DEAD_LETTER_DIR))
    totals = {
        'rows_read': parsed[csv_io.FILES] | 'RowsPerFile' >> beam.Map(lambda info: info['rows_read']),
        'rows_scored': rows | 'RowsPerFrame' >> beam.Map(csv_io.count_rows),
        'rows_dead_lettered': dead_letters | 'OnePerDeadLetter' >> beam.Map(lambda _: 1),
    } | 'Totals' >> counting.SumCounts()
    _ = (totals
         | 'MakeSummary' >> beam.Map(make_summary, self._pattern)
         | 'WriteSummary' >> beam.Map(
             write_summary, FileSystems.join(self._output, artifacts.SUMMARY_FILE)))
    return rows


def build_pipeline(pipeline: beam.Pipeline, features_dir: Optional[str],
                   models: Dict[str, artifacts.ModelDescription], label: str,
                   slicing: Union[None, str, Sequence[SlicingSpec]],
                   rule: blessing.BlessingRule, output: str, input_pattern: Optional[str] = None,
                   schema: Optional[InputSchema] = None,
                   max_paired_rows: int = DEFAULT_PAIRED_ROWS, threshold: Optional[float] = None,
                   importance_rows: int = importance.DEFAULT_ROWS):
  """Adds read -> score (each model, the same frames) -> combine per slice of each slicing spec
  (a feature name, or a list of specs, each a tuple of features: one feature or a cross; and,
  with a baseline, the paired AUC comparison on at most ``max_paired_rows`` rows; the permutation
  importance on at most ``importance_rows`` rows, 0: none) -> write to ``pipeline``.

  Reads the eval split of ``features_dir``, or with ``input_pattern`` every row of those CSV
  files, typed by ``schema`` (the models' input schema).
  """
  specs = parse_slicing(slicing) if slicing is None or isinstance(slicing, str) else list(slicing)
  if input_pattern:
    if schema is None:
      raise TypeError('build_pipeline() needs the schema that types input_pattern')
    rows = pipeline | 'ReadLabelledCsv' >> ReadLabelledCsv(input_pattern, schema, output)
  elif features_dir is None:
    raise TypeError('build_pipeline() needs features_dir or input_pattern')
  else:
    rows = (pipeline
            | 'ReadEvalSplit' >> beam.io.ReadFromParquetBatched(
                artifacts.split_pattern(features_dir, artifacts.EVAL))
            | 'DropUnlabelled' >> beam.ParDo(LabelledFrames(label)))
  scored = rows | 'Unscored' >> beam.Map(lambda frame: (frame, {}))
  for name, info in models.items():
    scored = scored | f'Score{name.title()}' >> ScoreModel(
        name, info['model_dir'], info.get('expected_sha256'))
  slice_to_metrics = (
      scored
      | 'ToSlices' >> beam.FlatMap(to_slices, label, specs)
      | 'MetricsPerSlice' >> beam.CombinePerKey(BinaryMetricsCombineFn(threshold=threshold)))
  comparison = None
  if BASELINE in models:  # both models scored the same rows: compare them row by row
    data = input_pattern or artifacts.split_pattern(cast(str, features_dir), artifacts.EVAL)
    comparison = beam.pvalue.AsSingleton(
        scored
        | 'PairRows' >> beam.Map(paired_rows, label)
        | 'CompareOnSameRows' >> beam.CombineGlobally(PairedMetricsCombineFn(max_paired_rows))
        | 'NameTheRows' >> beam.Map(name_the_rows, data))
  importances = None
  if importance_rows > 0:
    columns = [label] + sorted({f for info in models.values() for f in info['features']})
    importances = beam.pvalue.AsSingleton(
        rows | 'PermutationImportance' >> importance.PermutationImportance(
            models, label, columns, row_keys, importance_rows))
  return (slice_to_metrics
          | 'Gather' >> beam.combiners.ToList()
          | 'Assemble' >> beam.Map(assemble, models, specs, comparison, importances, threshold)
          | 'WriteOutputs' >> beam.Map(write_outputs, rule, output))


def describe_model(model_dir: str, expected_sha256: Optional[str] = None) -> artifacts.ModelDescription:
  """What metrics.json records about a model (its metadata; the file's sha256 is checked now, to
  fail early and clearly, and again by the handler on every worker that loads it)."""
  metadata = model_io.read_metadata(model_dir)
  model_io.read_verified_bytes(model_dir, expected_sha256)
  schema = model_io.input_schema_from_metadata(metadata)
  return artifacts.ModelDescription(
      model_dir=model_dir, model_sha256=metadata['model_sha256'],
      expected_sha256=expected_sha256, label=schema.label, features=list(schema.features),
      categorical=list(schema.categorical), data_fingerprint=metadata.get('data_fingerprint'),
      hyperparameters=metadata.get('hyperparameters'))


def check_input(schema: InputSchema, features_dir: Optional[str],
                input_pattern: Optional[str]) -> None:
  """Refuses (InputSchemaError) data lacking a column the models read or the label, or typing one
  otherwise; FileNotFoundError / FeaturesError when there is no data at all."""
  if input_pattern:
    csv_io.check_input_columns(csv_io.match_files(input_pattern), schema, require_label=True)
    return
  if features_dir is None:
    raise TypeError('check_input() needs features_dir or input_pattern')
  for path, types in tabular.split_column_types(features_dir, artifacts.EVAL).items():
    schema.check_columns(types, f'eval features {path}', require_label=True)
  summary_path = FileSystems.join(features_dir, artifacts.SUMMARY_FILE)
  if bucket.exists(summary_path):  # a column absent from the CSV was written as all-null
    absent = artifacts.read_summary(features_dir).get('missing_columns') or []
    schema.check_columns({c: None for c in schema.features + [schema.label] if c not in absent},
                         f'the CSV behind features {features_dir} (summary.json: missing_columns)')


def evaluate(model: ModelRef, output: str, features: Optional[str] = None,
             input_pattern: Optional[str] = None, baseline: Optional[ModelRef] = None,
             rule: Optional[blessing.BlessingRule] = None,
             slice_feature: Union[None, str, Sequence[str]] = None,
             beam_args: Sequence[str] = (), save_main_session: bool = False,
             threshold: Optional[float] = None,
             importance_rows: int = importance.DEFAULT_ROWS) -> Union[Evaluation, DryRun]:
  """The core: scores ``model`` (and ``baseline``, on the same rows) on the eval split of
  ``features`` or on every row of ``input_pattern``, judges it by ``rule`` (default: the default
  blessing config) and writes ``output``'s metrics, blessing, marker and report. ``slice_feature``:
  one or more slicing specs ('a', or 'a,b' for a cross; default: the first categorical feature);
  ``threshold``: the decision threshold (default: the rule max_f1).

  Raises ``EvaluationError``, ``ModelIntegrityError``, ``InputSchemaError`` or
  ``ReconciliationError`` (rows read != scored + dead-lettered).
  """
  if input_pattern and not features:
    source = input_pattern
  elif features and not input_pattern:
    source = artifacts.split_pattern(features, artifacts.EVAL)
  else:
    raise EvaluationError('give one of --features DIR (its eval split) or --input CSV_GLOB '
                          '(every row)')
  rule = rule or blessing.BlessingRule.load()
  paths = [p for p in (features, input_pattern, output) if p]
  options = runtime.beam_options('evaluate', beam_args, paths, save_main_session)
  models = {CANDIDATE: describe_model(model.directory, model.sha256)}
  schema = model_io.read_input_schema(model.directory)
  if baseline:
    models[BASELINE] = describe_model(baseline.directory, baseline.sha256)
    schema = schema.merge(model_io.read_input_schema(baseline.directory), (CANDIDATE, BASELINE))
  label = schema.label
  check_input(schema, features, input_pattern)
  categorical = [c for name in models for c in models[name]['categorical']]
  specs = parse_slicing(slice_feature) or parse_slicing(next(iter(categorical), None))
  for spec in specs:
    for feature in spec:
      if feature not in categorical:
        raise EvaluationError(f'--slice_feature {feature} is not a categorical feature of the '
                              f'model(s): {", ".join(sorted(set(categorical)))}')
  if threshold is not None and not 0 <= threshold <= 1:
    raise EvaluationError(f'--threshold {threshold} is not a probability between 0 and 1')
  progress(f'evaluate: {", ".join(models)} on {source}'
           f', sliced by {"; ".join(spec_name(s) for s in specs) or "nothing"}'
           + ('' if baseline else '; no baseline: value thresholds only (rubber stamp)'))
  pipeline = runtime.new_pipeline(options)
  build_pipeline(pipeline, features, models, label, specs, rule, output,
                 input_pattern, schema, threshold=threshold, importance_rows=importance_rows)
  result = runtime.run_to_completion(pipeline, options, 'evaluate')
  if runtime.is_dry_run(options):
    return DRY_RUN
  record = cast(artifacts.BlessingDocument, bucket.read_json(
      FileSystems.join(output, artifacts.BLESSING_FILE), 'blessing record'))
  document = cast(artifacts.MetricsDocument, bucket.read_json(
      FileSystems.join(output, artifacts.METRICS_FILE), 'metrics'))
  summary: Optional[EvaluationSummary] = None
  if input_pattern:
    summary = cast(EvaluationSummary, bucket.read_json(
        FileSystems.join(output, artifacts.SUMMARY_FILE), 'evaluation summary'))
  _report(result, document, record, output, summary)
  if summary and not summary['reconciled']:
    raise ReconciliationError(f'rows read {summary["rows_read"]} != scored '
                              f'{summary["rows_scored"]} + dead-lettered '
                              f'{summary["rows_dead_lettered"]}')
  return Evaluation(
      status=record['status'], message=record['message'],
      rubber_stamped=record['rubber_stamped'], output=output,
      metrics=metric_map(document['models'][CANDIDATE]['overall']),
      baseline_metrics=(metric_map(document['models'][BASELINE]['overall'])
                        if BASELINE in document['models'] else None),
      baseline=baseline.directory if baseline else None,
      rows_read=summary['rows_read'] if summary else None,
      rows_scored=summary['rows_scored'] if summary else None,
      rows_dead_lettered=summary['rows_dead_lettered'] if summary else None,
      auc_comparison=_comparison(document))


def _comparison(document: artifacts.MetricsDocument) -> Optional[AucComparison]:
  """The paired AUC comparison metrics.json holds (with a baseline), as a typed record."""
  comparison = document.get('comparison', {}).get('auc')
  if not comparison:
    return None
  fields = AucComparison.__dataclass_fields__  # older fields only: the record has more
  kept: dict = {k: v for k, v in comparison.items() if k in fields}
  return AucComparison(**kept)


def run(argv: Optional[Sequence[str]] = None,
        save_main_session: bool = False) -> Union[Evaluation, DryRun]:
  """The command line: parses the flags and calls ``evaluate``."""
  known, beam_args = runtime.parse_arguments('evaluate', argv, add_evaluate_arguments)
  registered = None
  if known.baseline_record:
    registered = bucket.read_json(known.baseline_record, 'baseline registry record').get('metrics')
  baseline = (ModelRef(known.baseline_model, known.baseline_sha256) if known.baseline_model
              else None)
  return evaluate(ModelRef(known.model, known.model_sha256), known.output, known.features,
                  known.input, baseline, blessing.BlessingRule.load(known.blessing_config,
                                                                    registered),
                  known.slice_feature, beam_args, save_main_session, known.threshold,
                  known.importance_rows)


def _report(result, document: artifacts.MetricsDocument, record: artifacts.BlessingDocument,
            output: str, summary: Optional[EvaluationSummary] = None) -> None:
  """Prints rows scored, the overall metrics of each model, the verdict and where outputs are."""
  if summary:
    progress(f'evaluate: {summary["rows_read"]} rows read = {summary["rows_scored"]} scored + '
             f'{summary["rows_dead_lettered"]} dead-lettered '
             f'({FileSystems.join(output, artifacts.DEAD_LETTER_DIR)}/)')
  try:
    counters = {c.key.metric.name: c.committed for c in result.metrics().query()['counters']
                if c.key.metric.namespace == METRICS_NAMESPACE}
    if 'labelled_rows' in counters or not summary:
      progress(f'evaluate: {counters.get("labelled_rows", 0)} labelled eval rows scored '
               f'({counters.get("unlabelled_rows", 0)} without a label skipped)')
  except NotImplementedError:
    pass
  for name, entry in document['models'].items():
    overall = entry['overall']
    progress(f'evaluate: {name}: ' + ', '.join(
        f'{k} {v:.4f}' if isinstance(v, float) else f'{k} {v}' for k, v in overall.items()
        if k in _REPORTED))
  for metric, comparison in sorted(document.get('comparison', {}).items()):
    compared = blessing.measured(comparison)
    if compared is not None:
      progress(f'evaluate: {compared.describe(metric)}')
  progress(f'evaluate: {record["message"]}')
  progress(f'evaluate: done: {record["status"]}; metrics, blessing and report.html in {output}')


_REPORTED = ('example_count', 'positive_count', 'auc', 'average_precision', 'log_loss',
             'brier_score', 'accuracy', 'threshold', 'precision', 'recall', 'f1')


def exit_status(result: Union[Evaluation, DryRun]) -> int:
  """3 when the candidate is NOT_BLESSED, else 0."""
  not_blessed = isinstance(result, Evaluation) and not result.blessed
  return runtime.EXIT_NOT_BLESSED if not_blessed else runtime.EXIT_OK


def main(argv: Optional[Sequence[str]] = None) -> int:
  """CLI entry: 0 BLESSED, 3 NOT_BLESSED, 2 when the evaluation could not run."""
  return runtime.main('evaluate', run, argv, exit_status)


if __name__ == '__main__':
  logging.getLogger().setLevel(logging.WARNING)
  sys.exit(main())
