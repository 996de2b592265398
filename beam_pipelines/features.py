"""Feature extraction: CSV -> typed, deterministically split Parquet features + a dead letter.

    python -m beam_pipelines.features [--input GLOB] [--spec SPEC] [--output DIR]

Reads CSV files with a real CSV parser (``ml.csv_io``), types every column by the dataset spec,
assigns each row to train or eval by a sha256 of its key (of the whole row without a key) against
``eval_fraction`` (stable across runs and runners), and writes, as ``ml/artifacts.py`` says,
``DIR/{train,eval}/part-*.parquet``, ``DIR/dead_letter/part-*.jsonl`` and ``DIR/summary.json``
(rows read = rows written + rows dead-lettered, checked). Defaults: the bundled taxi sample and
spec, output ``outputs/features``. Any other flag is a Beam pipeline option.
"""

from __future__ import annotations

import argparse
import sys

from beam_pipelines import runtime


def add_features_arguments(parser: argparse.ArgumentParser) -> None:
  """The pipeline's own flags (plain argparse, so --help needs no Beam import)."""
  parser.add_argument('--input', default=None, action='append',
                      help='CSV file or glob; repeat it to read several (e.g. the spans of a '
                      'training window). Default: the bundled taxi sample.')
  parser.add_argument('--spec', default=None,
                      help='Dataset spec, YAML or JSON (default: the bundled taxi spec).')
  parser.add_argument('--output', default='outputs/features', help='Output directory.')
  parser.add_argument('--batch_size', type=runtime.count(1), default=50000,
                      help='Rows per Arrow batch handed to the Parquet writer.')


# Answers --help before importing Beam (~2 s).
runtime.answer_help_early(__name__, 'features', __doc__, add_features_arguments)

import gc
import hashlib
import logging
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import apache_beam as beam
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems
from apache_beam.pvalue import AsSingleton, TaggedOutput

from beam_pipelines.ml import artifacts, csv_io
from beam_pipelines.ml import spec as spec_lib
from beam_pipelines.ml.results import DRY_RUN, DryRun, FeaturesResult, ReconciliationError
from beam_pipelines.store import bucket
from beam_pipelines.store.console import counts, progress

_HASH_SCALE = float(2 ** 64)


def feature_schema(spec: spec_lib.DatasetSpec) -> pa.Schema:
  """The Parquet schema of a resolved spec (see ``ml/artifacts.py``)."""
  types = {spec.label: pa.int64()}
  types.update({c: pa.float64() for c in spec.numeric})
  types.update({c: pa.string() for c in spec.categorical})
  types.update({c: pa.string() for c in (spec.key, spec.timestamp) if c})
  return pa.schema([pa.field(c, types[c]) for c in spec.columns])


def eval_hash(token: str) -> float:
  """A row's stable position in [0, 1): sha256 of its key (or row), independent of process."""
  digest = hashlib.sha256(token.encode('utf-8', 'surrogateescape')).digest()
  return int.from_bytes(digest[:8], 'big') / _HASH_SCALE


def assign_split(token: str, eval_fraction: float) -> str:
  """'eval' for a stable ``eval_fraction`` of keys, else 'train'."""
  return artifacts.EVAL if eval_hash(token) < eval_fraction else artifacts.TRAIN


class ExtractFeaturesFn(csv_io.ParseCsvFileFn):
  """A CSV file -> Arrow tables per split (tagged 'train'/'eval'), dead letters, file info."""

  def __init__(self, spec: spec_lib.DatasetSpec, batch_size: int = 50000):
    super().__init__(spec, require_label=True)
    self.batch_size = batch_size
    self.key_index = spec.columns.index(spec.key) if spec.key else None

  def setup(self) -> None:
    self.schema = feature_schema(self.spec)
    self.buffers: Dict[str, List[Tuple[Any, ...]]] = {s: [] for s in artifacts.SPLITS}

  def emit(self, values: List[Any], fields: List[str]) -> Iterable[Any]:
    token = values[self.key_index] if self.key_index is not None else '\x1f'.join(fields)
    split = assign_split(token, self.spec.eval_fraction)
    buffer = self.buffers[split]
    buffer.append(tuple(values))  # tuples of atoms leave the GC's tracking: cheaper collections
    if len(buffer) >= self.batch_size:
      yield TaggedOutput(split, self._table(buffer))
      self.buffers[split] = []

  def flush(self) -> Iterable[Any]:
    for split, buffer in self.buffers.items():
      if buffer:
        yield TaggedOutput(split, self._table(buffer))
      self.buffers[split] = []

  def _table(self, rows: List[Tuple[Any, ...]]) -> pa.Table:
    enabled = gc.isenabled()
    gc.disable()  # transposing creates no cycles; collections here only cost (5x measured)
    try:
      columns = list(zip(*rows))
      return pa.Table.from_arrays(
          [pa.array(column, type=field.type) for column, field in zip(columns, self.schema)],
          schema=self.schema)
    finally:
      if enabled:
        gc.enable()


class ExtractFeatures(beam.PTransform):
  """Pipeline root -> tagged Arrow tables 'train'/'eval', 'dead_letter' and 'files'."""

  def __init__(self, file_pattern: csv_io.Patterns, spec: spec_lib.DatasetSpec, batch_size: int = 50000):
    super().__init__()
    self.file_pattern = file_pattern
    self.spec = csv_io.resolve_spec(spec, file_pattern)
    self.batch_size = batch_size

  def expand(self, root):
    return root | 'ReadCsv' >> csv_io.ReadCsvFiles(
        self.file_pattern, ExtractFeaturesFn(self.spec, self.batch_size),
        (csv_io.DEAD_LETTER, csv_io.FILES) + artifacts.SPLITS)


def make_summary(_, files, written, dead, input_pattern, spec,
                 output) -> artifacts.FeaturesSummary:
  """The run's counts, per file and in total; ``reconciled`` says whether they add up."""
  files = sorted(files, key=lambda f: f['source'])
  rows_read = sum(f['rows_read'] for f in files)
  rows_written = {split: int(written.get(split, 0)) for split in artifacts.SPLITS}
  return {
      'input': input_pattern, 'output': output, 'spec': spec.to_dict(),
      'spec_fingerprint': spec.fingerprint(), 'files': files,
      'rows_read': rows_read, 'rows_written': rows_written,
      'rows_dead_lettered': int(dead),
      'reconciled': rows_read == sum(rows_written.values()) + dead,
      'missing_columns': sorted({c for f in files for c in f['missing_columns']}),
      'extra_columns': sorted({c for f in files for c in f['extra_columns']}),
  }


class WriteSummary(beam.PTransform):
  """(files, dead letters, train tables, eval tables) -> summary.json with the counts."""

  def __init__(self, path: str, **context):
    super().__init__()
    self.path = path
    self.context = context

  def expand(self, inputs):
    files, dead_letters = inputs[:2]
    split_to_table = dict(zip(artifacts.SPLITS, inputs[2:]))
    all_files = files | 'ListFiles' >> beam.combiners.ToList()
    counts = [
        split_to_table[split]
        | f'RowsOf{split.title()}' >> beam.Map(lambda table, s=split: (s, table.num_rows))
        for split in artifacts.SPLITS]
    written = (
        counts | 'FlattenCounts' >> beam.Flatten()
        | 'SumPerSplit' >> beam.CombinePerKey(sum)
        | 'ToDict' >> beam.combiners.ToDict())
    dead = dead_letters | 'CountDead' >> beam.combiners.Count.Globally()
    return (
        files.pipeline
        | 'Once' >> beam.Create([None])
        | 'Summarise' >> beam.Map(make_summary, AsSingleton(all_files), AsSingleton(written),
                                  AsSingleton(dead), **self.context)
        | 'WriteJson' >> beam.Map(lambda summary: bucket.write_json(self.path, summary) or summary))


def build_pipeline(pipeline: beam.Pipeline, input_pattern: csv_io.Patterns,
                   spec: spec_lib.DatasetSpec,
                   output: str, batch_size: int = 50000) -> spec_lib.DatasetSpec:
  """Adds read -> split -> write Parquet/dead letter/summary; returns the resolved spec."""
  extract = ExtractFeatures(input_pattern, spec, batch_size)
  extracted = pipeline | 'ExtractFeatures' >> extract
  schema = feature_schema(extract.spec)
  for split in artifacts.SPLITS:
    _ = extracted[split] | f'Write{split.title()}' >> beam.io.WriteToParquetBatched(
        FileSystems.join(output, split, artifacts.SHARD_PREFIX), schema, codec='snappy',
        file_name_suffix=artifacts.FEATURES_SUFFIX)
  _ = extracted[csv_io.DEAD_LETTER] | 'WriteDeadLetter' >> csv_io.WriteDeadLetter(
      FileSystems.join(output, artifacts.DEAD_LETTER_DIR))
  _ = ((extracted[csv_io.FILES], extracted[csv_io.DEAD_LETTER])
       + tuple(extracted[split] for split in artifacts.SPLITS)
       | 'WriteSummary' >> WriteSummary(
           FileSystems.join(output, artifacts.SUMMARY_FILE), input_pattern=input_pattern,
           spec=extract.spec, output=output))
  return extract.spec


def clear_outputs(output: str) -> None:
  """Deletes a previous run's shards, so a smaller shard count leaves no stale file behind."""
  patterns = [artifacts.split_pattern(output, s) for s in artifacts.SPLITS] + [
      FileSystems.join(output, artifacts.DEAD_LETTER_DIR, f'{artifacts.SHARD_PREFIX}-*'),
      FileSystems.join(output, artifacts.SUMMARY_FILE)]
  stale = [m.path for result in FileSystems.match(patterns) for m in result.metadata_list]
  if stale:
    FileSystems.delete(stale)



def extract(inputs: Sequence[str], spec_path: str, output: str, beam_args: Sequence[str] = (),
            batch_size: int = 50000, save_main_session: bool = False
            ) -> Union[FeaturesResult, DryRun]:
  """The core: CSV files matching ``inputs`` -> ``output``'s splits, dead letter and summary.

  Raises ``NoInputError`` when a pattern matches nothing, ``SpecError`` for a bad spec and
  ``ReconciliationError`` when rows read != written + dead-lettered.
  """
  patterns = list(inputs)
  input_pattern: csv_io.Patterns = patterns[0] if len(patterns) == 1 else patterns
  spec = spec_lib.load(spec_path)
  options = runtime.beam_options('features', beam_args, (*patterns, output), save_main_session)
  files = csv_io.match_files(input_pattern)
  csv_io.check_required_columns(files, spec)

  progress(f'features: reading {len(files)} file(s) matching {input_pattern} '
           f'with spec {spec_path}')
  if not runtime.is_dry_run(options):  # a dry run writes nothing, so it removes nothing either
    clear_outputs(output)
  pipeline = runtime.new_pipeline(options)
  build_pipeline(pipeline, input_pattern, spec, output, batch_size)
  runtime.run_to_completion(pipeline, options, 'features')
  if runtime.is_dry_run(options):
    return DRY_RUN
  summary = artifacts.read_summary(output)
  result = result_of(summary, output)
  _report(result, len(summary['files']))
  if not result.reconciled:
    raise ReconciliationError(
        f'counts do not reconcile: read {result.rows_read} != written '
        f'{counts(result.rows_written, "")} + dead-lettered {result.rows_dead_lettered}')
  return result


def result_of(summary: artifacts.FeaturesSummary, output: str) -> FeaturesResult:
  """The result of a finished extraction, from its ``summary.json``."""
  return FeaturesResult(
      output=output, rows_read=summary['rows_read'], rows_written=summary['rows_written'],
      rows_dead_lettered=summary['rows_dead_lettered'], reconciled=summary['reconciled'],
      spec_fingerprint=summary['spec_fingerprint'],
      missing_columns=tuple(summary['missing_columns']),
      extra_columns=tuple(summary['extra_columns']))


def run(argv: Optional[Sequence[str]] = None,
        save_main_session: bool = False) -> Union[FeaturesResult, DryRun]:
  """The command line: parses the flags and calls ``extract``."""
  known, beam_args = runtime.parse_arguments('features', argv, add_features_arguments)
  return extract(known.input or [spec_lib.default_sample_path()],
                 known.spec or spec_lib.default_spec_path(), known.output, beam_args,
                 known.batch_size, save_main_session)


def _report(result: FeaturesResult, files: int) -> None:
  """Prints the run's summary: counts per split, dead letters, where everything is."""
  if result.missing_columns:
    progress(f"features: WARNING: column(s) {', '.join(result.missing_columns)} missing from "
             'some file header(s): written as missing values (validation flags them)')
  if result.extra_columns:
    progress(f"features: note: column(s) {', '.join(result.extra_columns)} not in the spec: "
             'ignored')
  progress(
      f'features: done: {result.rows_read:,} rows read from {files} file(s) = '
      f'{counts(result.rows_written, "")} + {result.rows_dead_lettered:,} dead-lettered'
      f"{'' if result.reconciled else ' (DO NOT RECONCILE)'}")
  output = result.output
  progress(f'features: outputs: {FileSystems.join(output, "{train,eval}")}/*.parquet, '
           f'{FileSystems.join(output, artifacts.DEAD_LETTER_DIR)}/, '
           f'{FileSystems.join(output, artifacts.SUMMARY_FILE)}')


def main(argv: Optional[Sequence[str]] = None) -> int:
  """CLI entry: the project's exit statuses (``runtime.main``)."""
  return runtime.main('features', run, argv)


if __name__ == '__main__':
  logging.getLogger().setLevel(logging.WARNING)
  sys.exit(main(sys.argv[1:]))
