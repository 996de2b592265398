"""Batch inference: new CSV rows -> keyed predictions, with Beam RunInference and a verified model.

CSV (real parser, labels optional) -> (key, row) -> RunInference(KeyedModelHandler(sha256-checking
scikit-learn handler)) -> ``PDIR/predictions/part-*.jsonl`` lines ``{"key", "probability",
"prediction"}``; malformed rows -> ``PDIR/dead_letter/`` with the reason; ``PDIR/summary.json``
with the counts (rows read = predictions + dead-lettered).

    python -m beam_pipelines.predict --input 'new/*.csv' --model MDIR --output PDIR [--spec SPEC]

The model's input schema (``model.json``) says which columns are read and how they are typed; a
file lacking one of them is refused before anything runs (never imputed as all-missing). The key
is the spec's key column; without one, a sha256 of the row's values. The spec defaults to the one
recorded with the model. Any other flag is a Beam pipeline option.
"""

from __future__ import annotations

import argparse
import sys

from beam_pipelines import runtime


def add_predict_arguments(parser: argparse.ArgumentParser) -> None:
  """predict's own flags (plain argparse: --help needs no Beam import, and Beam merges every
  PipelineOptions subclass's flags into one parser, where a second --output would clash)."""
  parser.add_argument('--input', required=True, help='CSV file or glob of new rows.')
  parser.add_argument('--model', required=True, help='Model directory (sha256-checked).')
  parser.add_argument('--spec', default=None,
                      help='Dataset spec (default: the spec recorded with the model).')
  parser.add_argument('--model_sha256', default=None,
                      help="The model file's sha256 as a registry recorded it (checked before "
                           'loading, besides the metadata beside the file).')
  parser.add_argument('--output', required=True, help='Output directory.')
  parser.add_argument('--num_shards', type=runtime.count(0), default=0,
                      help='Prediction shards (0: runner).')


# Answers --help before importing Beam (~2 s).
runtime.answer_help_early(__name__, 'predict', __doc__, add_predict_arguments)

import hashlib
import json
import logging
from json.encoder import encode_basestring_ascii  # what json.dumps does to a str
from typing import Dict, List, Optional, Sequence, Tuple, TypedDict, Union

import apache_beam as beam
import numpy as np
import pandas as pd
from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference import base as inference_base
from apache_beam.ml.inference.base import RunInference

from beam_pipelines.ml import artifacts, counting, csv_io, inference, model_io
from beam_pipelines.ml import spec as spec_lib
from beam_pipelines.ml.results import (
  DRY_RUN,
  DryRun,
  ModelRef,
  PredictionResult,
  ReconciliationError,
)
from beam_pipelines.store import bucket
from beam_pipelines.store.console import progress

DECISION_THRESHOLD = 0.5
BATCH_SIZE = 50_000  # CSV rows per scored frame
PREDICTIONS_SUFFIX = artifacts.DEAD_LETTER_SUFFIX  # JSON lines too
Row = Dict[str, object]  # a typed CSV row: column -> value
LINE = '{{"key": {}, "prediction": {}, "probability": {}}}'  # json.dumps(..., sort_keys=True)


def row_key(key_column: Optional[str]):
  """row -> (key, row): the key column's value, or a sha256 of the row's values."""
  def key_row(row: Row) -> Tuple[str, Row]:
    if key_column:
      return str(row[key_column]), row
    canonical = json.dumps(row, sort_keys=True, default=str).encode('utf-8')
    return hashlib.sha256(canonical).hexdigest()[:32], row
  return key_row


def frame_keys(frame: pd.DataFrame, key_column: Optional[str]) -> List[str]:
  """The key of each row of a frame, as ``row_key`` gives it for the row's dict."""
  if key_column:
    return [str(value) for value in frame[key_column].tolist()]
  key_row = row_key(None)
  columns = list(frame.columns)
  return [key_row(dict(zip(columns, values)))[0] for values in frame.itertuples(index=False)]


class Prediction(TypedDict):
  """One line of ``predictions/part-*.jsonl``."""
  key: str
  probability: float
  prediction: int


def to_prediction(keyed: Tuple[str, inference_base.PredictionResult]) -> Prediction:
  key, result = keyed
  probability = float(result.inference)  # type: ignore[arg-type]  # Beam types it as an unbound TypeVar
  return Prediction(key=key, probability=probability,
                    prediction=int(probability >= DECISION_THRESHOLD))


def prediction_lines(result: inference_base.PredictionResult, key_column: Optional[str]) -> Tuple[str, int]:
  """A scored frame -> (its predictions as JSON lines joined by newlines, how many): each line is
  ``json.dumps(to_prediction(...), sort_keys=True)``, written without a dict per row."""
  probabilities = np.asarray(result.inference, dtype=np.float64)
  keys = map(encode_basestring_ascii, frame_keys(result.example, key_column))
  decisions = (probabilities >= DECISION_THRESHOLD).astype(np.int8).tolist()
  lines = list(map(LINE.format, keys, decisions, map(float.__repr__, probabilities.tolist())))
  return '\n'.join(lines), len(lines)


class PredictRows(beam.PTransform):
  """Frames of typed rows -> (JSON lines of their predictions, how many), via RunInference with
  the verified handler: one ``predict_proba`` call per frame, the model shared per worker."""

  def __init__(self, model_dir: str, key_column: Optional[str],
               expected_sha256: Optional[str] = None):
    super().__init__()
    self._handler = inference.VerifiedSklearnModelHandler(model_dir, expected_sha256)
    self._key_column = key_column

  def expand(self, frames):
    return (frames
            | 'RunInference' >> RunInference(self._handler)
            | 'ToJsonLines' >> beam.Map(prediction_lines, self._key_column))


class PredictSummary(TypedDict):
  """``summary.json``: what was scored with which model, and rows read = predictions +
  dead-lettered."""
  input: str
  model: str
  model_sha256: str
  output: str
  rows_read: int
  predictions_written: int
  rows_dead_lettered: int
  reconciled: bool


def make_summary(totals: Dict[str, int], context: Dict[str, str]) -> PredictSummary:
  """The counts record; they reconcile when every row read was predicted or dead-lettered."""
  return PredictSummary(
      input=context['input'], model=context['model'], model_sha256=context['model_sha256'],
      output=context['output'], rows_read=totals['rows_read'],
      predictions_written=totals['predictions_written'],
      rows_dead_lettered=totals['rows_dead_lettered'],
      reconciled=totals['rows_read'] == (totals['predictions_written']
                                         + totals['rows_dead_lettered']))


def write_summary(summary: PredictSummary, path: str) -> None:
  bucket.write_bytes(path, (json.dumps(summary, indent=2, sort_keys=True) + '\n').encode())


def build_pipeline(pipeline: beam.Pipeline, input_pattern: str, spec: spec_lib.DatasetSpec,
                   model_dir: str, output: str, num_shards: int = 0,
                   context: Optional[Dict[str, str]] = None,
                   expected_sha256: Optional[str] = None):
  """Adds read -> predict -> write predictions, dead letters and the summary to ``pipeline``.

  Rows are typed by the model's input schema (``spec`` gives the key); a file lacking one of the
  model's columns has every row dead-lettered.
  """
  parse_spec = model_io.read_input_schema(model_dir).parsing_spec(spec.key, spec.name)
  parsed = pipeline | 'ReadCsv' >> csv_io.ReadCsvRows(
      input_pattern, parse_spec, require_label=False, require_features=True,
      batch_size=BATCH_SIZE)
  predictions = parsed[csv_io.ROWS] | 'Predict' >> PredictRows(model_dir, spec.key, expected_sha256)
  _ = (predictions
       | 'Lines' >> beam.Map(lambda lines_and_count: lines_and_count[0])
       | 'WritePredictions' >> beam.io.WriteToText(
           FileSystems.join(output, artifacts.PREDICTIONS_DIR, artifacts.SHARD_PREFIX),
           file_name_suffix=PREDICTIONS_SUFFIX, num_shards=num_shards))
  dead_letters = parsed[csv_io.DEAD_LETTER]
  _ = dead_letters | 'WriteDeadLetter' >> csv_io.WriteDeadLetter(
      FileSystems.join(output, artifacts.DEAD_LETTER_DIR))
  totals = {
      'rows_read': parsed[csv_io.FILES] | 'RowsPerFile' >> beam.Map(lambda info: info['rows_read']),
      'predictions_written': predictions | 'Counts' >> beam.Map(lambda lines_and_count: lines_and_count[1]),
      'rows_dead_lettered': dead_letters | 'OnePerDeadLetter' >> beam.Map(lambda _: 1),
  } | 'Totals' >> counting.SumCounts()
  return (totals
          | 'MakeSummary' >> beam.Map(make_summary, context or {
              'input': input_pattern, 'model': model_dir,
              'model_sha256': expected_sha256 or '', 'output': output})
          | 'WriteSummary' >> beam.Map(write_summary,
                                       FileSystems.join(output, artifacts.SUMMARY_FILE)))


def load_spec(spec_path: Optional[str],
              metadata: model_io.ModelMetadata) -> spec_lib.DatasetSpec:
  """The given spec, else the one saved with the model, else the bundled taxi spec."""
  if spec_path:
    return spec_lib.load(spec_path)
  if metadata.get('spec'):
    return spec_lib.from_dict(metadata['spec'])
  return spec_lib.load(spec_lib.default_spec_path())


def predict(input_pattern: str, model: ModelRef, output: str, spec_path: Optional[str] = None,
            num_shards: int = 0, beam_args: Sequence[str] = (), save_main_session: bool = False
            ) -> Union[PredictionResult, DryRun]:
  """The core: scores every row of the CSV files matching ``input_pattern`` with ``model``;
  writes ``output``'s predictions, dead letter and summary.

  Raises ``ModelIntegrityError``, ``SpecError``, ``InputSchemaError``, ``NoInputError`` or
  ``ReconciliationError`` (rows read != predictions + dead-lettered).
  """
  options = runtime.beam_options('predict', beam_args, (input_pattern, output), save_main_session)
  metadata = model_io.read_metadata(model.directory)
  # Fail early and clearly; every worker checks again when it loads the model.
  model_io.read_verified_bytes(model.directory, model.sha256)
  schema = model_io.input_schema_from_metadata(metadata)
  spec = csv_io.resolve_spec(load_spec(spec_path, metadata), input_pattern)
  missing = [f for f in schema.features if f not in spec.features]
  if missing:
    raise spec_lib.SpecError(f'the model needs feature(s) {", ".join(missing)} that the spec '
                             f'does not read')
  files = csv_io.match_files(input_pattern)
  csv_io.check_input_columns(files, schema, require_label=False)
  progress(f'predict: {len(files)} file(s) matching {input_pattern} with model {model.directory} '
           f'(sha256 {metadata["model_sha256"][:12]}…), key {spec.key or "sha256 of the row"}')
  context = {'input': input_pattern, 'model': model.directory,
             'model_sha256': metadata['model_sha256'], 'output': output}
  pipeline = runtime.new_pipeline(options)
  build_pipeline(pipeline, input_pattern, spec, model.directory, output, num_shards, context,
                 model.sha256)
  runtime.run_to_completion(pipeline, options, 'predict')
  if runtime.is_dry_run(options):
    return DRY_RUN
  summary = bucket.read_json(FileSystems.join(output, artifacts.SUMMARY_FILE), 'predict summary')
  result = PredictionResult(
      output=output, rows_read=summary['rows_read'],
      predictions_written=summary['predictions_written'],
      rows_dead_lettered=summary['rows_dead_lettered'], reconciled=summary['reconciled'])
  progress(f'predict: done: {result.rows_read:,} rows read = {result.predictions_written:,} '
           f'predictions + {result.rows_dead_lettered:,} dead-lettered'
           f'{"" if result.reconciled else " (DO NOT RECONCILE)"}')
  progress(f'predict: outputs: {FileSystems.join(output, artifacts.PREDICTIONS_DIR)}/, '
           f'{FileSystems.join(output, artifacts.DEAD_LETTER_DIR)}/, '
           f'{FileSystems.join(output, artifacts.SUMMARY_FILE)}')
  if not result.reconciled:
    raise ReconciliationError(f'rows read {result.rows_read} != predictions '
                              f'{result.predictions_written} + dead-lettered '
                              f'{result.rows_dead_lettered}')
  return result


def run(argv: Optional[Sequence[str]] = None,
        save_main_session: bool = False) -> Union[PredictionResult, DryRun]:
  """The command line: parses the flags and calls ``predict``."""
  known, beam_args = runtime.parse_arguments('predict', argv, add_predict_arguments)
  return predict(known.input, ModelRef(known.model, known.model_sha256), known.output,
                 known.spec, known.num_shards, beam_args, save_main_session)


def main(argv: Optional[Sequence[str]] = None) -> int:
  """CLI entry: the project's exit statuses (``runtime.main``)."""
  return runtime.main('predict', run, argv)


if __name__ == '__main__':
  logging.getLogger().setLevel(logging.WARNING)
  sys.exit(main())
