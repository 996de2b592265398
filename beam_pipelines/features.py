"""Feature extraction: CSV -> typed, deterministically split Parquet features + a dead letter.

    python -m beam_pipelines.features [--input GLOB] [--spec SPEC] [--output DIR]

Reads CSV files with a real CSV parser (``ml.csv_io``), types every column by the dataset spec,
assigns each row to train or eval by a sha256 of its key (of the whole row without a key) against
``eval_fraction`` (stable across runs and runners) or, with the spec's ``split: time``, by time
(``TimeSplit``: eval = the rows after the cutoff, the timestamp at the ``1 - eval_fraction``
quantile, computed by a first pass), and writes, as ``ml/artifacts.py`` says,
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
  parser.add_argument('--row_path', action='store_true',
                      help='Parse every record with Python\'s csv (the reference the Arrow path '
                      'must equal; slower).')
  parser.add_argument('--split_bytes', type=runtime.count(1), default=16 << 20,  # csv_io.SPLIT_BYTES
                      help='Files are shared by workers in equal byte ranges of at most about '
                      'this size, cut at record boundaries.')


# Answers --help before importing Beam (~2 s).
runtime.answer_help_early(__name__, 'features', __doc__, add_features_arguments)

import datetime
import gc
import hashlib
import logging
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, TypedDict, Union, cast

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.io import fileio
from apache_beam.io.filesystems import FileSystems
from apache_beam.pvalue import AsSingleton, TaggedOutput
from apache_beam.transforms.stats import ApproximateQuantilesCombineFn

from beam_pipelines.ml import artifacts, csv_io
from beam_pipelines.ml import spec as spec_lib
from beam_pipelines.ml.results import DRY_RUN, DryRun, FeaturesResult, ReconciliationError
from beam_pipelines.store import bucket
from beam_pipelines.store.console import counts, progress

_HASH_SCALE = float(2 ** 64)
try:  # CPython's own SHA-256: on short keys 20-40% faster than OpenSSL's (its per-call set-up)
  from _sha256 import sha256 as _key_sha256  # Python 3.11
except ImportError:  # pragma: no cover - other Pythons: hashlib's, the same digests
  _key_sha256 = hashlib.sha256
SPLIT = 'split'  # ExtractFeatures' output of a time split: its rule and cutoff (``TimeSplit``)


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


def eval_hashes(tokens: Union[pa.Array, pa.ChunkedArray]) -> np.ndarray:
  """``eval_hash`` of each (valid UTF-8) string of an Arrow column, read from its buffers: the
  first 8 bytes of each sha256, big-endian, as float64 over 2**64 (as ``eval_hash`` rounds)."""
  column = tokens.combine_chunks() if isinstance(tokens, pa.ChunkedArray) else tokens
  if pa.types.is_large_string(column.type) or pa.types.is_large_binary(column.type):
    column = column.cast(pa.string())
  if not len(column):
    return np.zeros(0)
  offsets = np.frombuffer(column.buffers()[1], dtype=np.int32)[
      column.offset:column.offset + len(column) + 1].tolist()
  data = column.buffers()[2].to_pybytes() if column.buffers()[2] is not None else b''
  sha256 = _key_sha256
  prefixes = b''.join([sha256(data[start:end]).digest()[:8]
                       for start, end in zip(offsets, offsets[1:])])
  return np.frombuffer(prefixes, dtype='>u8').astype(np.float64) / _HASH_SCALE


def assign_split(token: str, eval_fraction: float) -> str:
  """'eval' for a stable ``eval_fraction`` of keys, else 'train'."""
  return artifacts.EVAL if eval_hash(token) < eval_fraction else artifacts.TRAIN


QUANTILE_STEPS = 1000  # the cutoff's quantile is read on a grid of 0.1% of the rows


class TimeSplit(TypedDict):
  """summary.json's ``split`` of a time split: the rule and the cutoff the first pass found."""
  by: str  # 'time'
  timestamp: str  # the column
  eval_fraction: float
  cutoff: Optional[float]  # seconds since the epoch (UTC); null when no row has a timestamp
  cutoff_utc: Optional[str]  # the same as an ISO 8601 time
  rows_timed: int  # rows with a timestamp, over which the quantile was taken
  rows_without_timestamp: int  # written to train


def timestamp_seconds(text: Optional[str], column: str = 'timestamp') -> Optional[float]:
  """A timestamp cell as seconds since the epoch: a number as written (already seconds, or any
  ordered number), else an ISO 8601 date/time (``2026-01-01``, ``2026-01-01 10:28:33``,
  ``2026-01-01T10:28:33+02:00``; without a zone it is UTC); None for a missing cell. Anything
  else raises ``csv_io.RowError`` (the row is dead-lettered)."""
  if text is None:
    return None
  try:
    number = float(text)
  except ValueError:
    pass
  else:
    if number - number == 0:  # finite
      return number
  try:
    moment = datetime.datetime.fromisoformat(text.strip())
  except ValueError:
    raise csv_io.RowError(f'column {column!r} (the timestamp): {text!r} is not a time (ISO 8601 '
                          'or a number)') from None
  if moment.tzinfo is None:
    moment = moment.replace(tzinfo=datetime.timezone.utc)
  return moment.timestamp()


class TimestampsFn(csv_io.ParseCsvFileFn):
  """The first pass of a time split: a CSV file -> (seconds of its timed rows, rows without a
  timestamp) per batch. Rows are parsed as ``ExtractFeaturesFn`` parses them, so the cutoff is over
  exactly the rows written; only one float per row leaves."""

  def __init__(self, spec: spec_lib.DatasetSpec, batch_size: int = 50000):
    super().__init__(spec, require_label=True)
    self.batch_size = batch_size
    self.time_index = spec.columns.index(str(spec.timestamp))

  def setup(self) -> None:
    self.seconds: List[float] = []
    self.untimed = 0

  def emit(self, values: List[Any], fields: List[str]) -> Iterable[Any]:
    seconds = timestamp_seconds(values[self.time_index], str(self.spec.timestamp))
    if seconds is None:
      self.untimed += 1
    else:
      self.seconds.append(seconds)
    if len(self.seconds) >= self.batch_size:
      yield from self.flush()

  def flush(self) -> Iterable[Any]:
    if self.seconds or self.untimed:
      yield self.seconds, self.untimed
    self.seconds, self.untimed = [], 0


def make_time_split(quantiles: List[float], untimed: int, timed: int,
                    spec: spec_lib.DatasetSpec) -> TimeSplit:
  """The rule and the cutoff: the timestamp at the ``1 - eval_fraction`` quantile (of
  ``QUANTILE_STEPS + 1`` approximate quantiles, min to max), or None without timed rows."""
  cutoff = None
  if quantiles:
    cutoff = float(quantiles[round((1 - spec.eval_fraction) * (len(quantiles) - 1))])
  return TimeSplit(
      by=spec_lib.SPLIT_TIME, timestamp=str(spec.timestamp), eval_fraction=spec.eval_fraction,
      cutoff=cutoff, cutoff_utc=None if cutoff is None else datetime.datetime.fromtimestamp(
          cutoff, datetime.timezone.utc).isoformat(),
      rows_timed=int(timed), rows_without_timestamp=int(untimed))


class ComputeTimeSplit(beam.PTransform):
  """Readable CSV files -> one ``TimeSplit`` (the first pass): each file's timestamps go, in
  batches, into Beam's ``ApproximateQuantiles`` sketch (bounded memory, mergeable; exact while
  the rows fit one of its buffers, thousands of rows; beyond, within 0.1% of the rows in rank)."""

  def __init__(self, spec: spec_lib.DatasetSpec, batch_size: int = 50000):
    super().__init__()
    self.spec = spec
    self.batch_size = batch_size

  def expand(self, files):
    batches = files | 'ParseTimestamps' >> beam.ParDo(
        TimestampsFn(self.spec, self.batch_size)).with_outputs(
            csv_io.DEAD_LETTER, csv_io.FILES, main=csv_io.ROWS)
    timed = batches[csv_io.ROWS]
    quantiles = (timed
                 | 'Seconds' >> beam.Map(lambda batch: batch[0])
                 | 'Quantiles' >> beam.CombineGlobally(ApproximateQuantilesCombineFn.create(
                     num_quantiles=QUANTILE_STEPS + 1, input_batched=True)))
    untimed = (timed | 'Untimed' >> beam.Map(lambda batch: batch[1])
               | 'SumUntimed' >> beam.CombineGlobally(sum))
    count = (timed | 'Timed' >> beam.Map(lambda batch: len(batch[0]))
             | 'SumTimed' >> beam.CombineGlobally(sum))
    return quantiles | 'Cutoff' >> beam.Map(make_time_split, AsSingleton(untimed),
                                            AsSingleton(count), self.spec)


class ExtractFeaturesFn(csv_io.ParseCsvFileFn):
  """A CSV file -> Arrow tables per split (tagged 'train'/'eval'), dead letters, file info.

  Hash split: by ``assign_split`` of the key (or row). Time split: ``process`` is given the
  first pass's ``TimeSplit``; a row goes to eval when its timestamp is after the cutoff, to train
  otherwise or when it has none; an unreadable timestamp is a dead letter."""

  def __init__(self, spec: spec_lib.DatasetSpec, batch_size: int = 50000):
    super().__init__(spec, require_label=True)
    self.batch_size = batch_size
    self.key_index = spec.columns.index(spec.key) if spec.key else None
    self.time_index = (spec.columns.index(str(spec.timestamp))
                       if spec.split == spec_lib.SPLIT_TIME else None)
    self.cutoff: Optional[float] = None

  def process(self, readable_file, time_split: Optional[TimeSplit] = None):
    if time_split is not None:
      self.cutoff = time_split['cutoff']
    yield from super().process(readable_file)

  def time_split(self, values: List[Any]) -> str:
    seconds = timestamp_seconds(values[cast(int, self.time_index)], str(self.spec.timestamp))
    late = seconds is not None and self.cutoff is not None and seconds > self.cutoff
    return artifacts.EVAL if late else artifacts.TRAIN

  def setup(self) -> None:
    self.schema = feature_schema(self.spec)
    self.buffers: Dict[str, List[Tuple[Any, ...]]] = {s: [] for s in artifacts.SPLITS}

  def emit(self, values: List[Any], fields: List[str]) -> Iterable[Any]:
    if self.time_index is not None:
      split = self.time_split(values)
    else:
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


class ExtractRangeFeaturesFn(ExtractFeaturesFn, csv_io.ParseCsvRangeFn):
  """A ``csv_io.ByteRange`` -> as ``ExtractFeaturesFn`` gives for its records (hash split): Arrow
  blocks are split column-wise, the records left to ``RowParser`` as ``ExtractFeaturesFn`` does."""

  def __init__(self, spec: spec_lib.DatasetSpec, batch_size: int = 50000,
               block_bytes: int = csv_io.BLOCK_BYTES):
    super().__init__(spec, batch_size)
    self.block_bytes = block_bytes
    self.tokens = spec.key is None

  def emit_block(self, block: csv_io.ArrowBlock) -> Iterable[Any]:
    table = block.table
    if table.schema != self.schema:
      table = table.cast(self.schema)
    tokens = table.column(str(self.spec.key)) if self.spec.key else block.tokens
    late = eval_hashes(cast(Any, tokens)) < self.spec.eval_fraction
    for split, mask in ((artifacts.EVAL, late), (artifacts.TRAIN, ~late)):
      part = table.filter(pa.array(mask)) if not mask.all() else table
      for start in range(0, part.num_rows, self.batch_size):
        yield TaggedOutput(split, part.slice(start, self.batch_size))


class ExtractFeatures(beam.PTransform):
  """Pipeline root -> tagged Arrow tables 'train'/'eval', 'dead_letter' and 'files'.

  Hash split: files are read in byte ranges by Arrow (``ExtractRangeFeaturesFn``), unless
  ``row_path`` (every record by Python's csv, the reference). Time split: the row path."""

  def __init__(self, file_pattern: csv_io.Patterns, spec: spec_lib.DatasetSpec,
               batch_size: int = 50000, row_path: bool = False,
               split_bytes: int = csv_io.SPLIT_BYTES, block_bytes: int = csv_io.BLOCK_BYTES):
    super().__init__()
    self.file_pattern = file_pattern
    self.spec = csv_io.resolve_spec(spec, file_pattern)
    self.batch_size = batch_size
    self.row_path = row_path
    self.split_bytes = split_bytes
    self.block_bytes = block_bytes

  def expand(self, root):
    tags = (csv_io.DEAD_LETTER, csv_io.FILES) + artifacts.SPLITS
    if self.spec.split != spec_lib.SPLIT_TIME and not self.row_path:
      return root | 'ReadCsv' >> csv_io.ReadCsvRanges(
          self.file_pattern, ExtractRangeFeaturesFn(self.spec, self.batch_size, self.block_bytes),
          tags, self.split_bytes)
    if self.spec.split != spec_lib.SPLIT_TIME:
      return root | 'ReadCsv' >> csv_io.ReadCsvFiles(
          self.file_pattern, ExtractFeaturesFn(self.spec, self.batch_size), tags)
    # Time split: two passes over the files; the second gets one small record (the cutoff).
    files = (root
             | 'Patterns' >> beam.Create(csv_io.patterns_of(self.file_pattern))
             | 'MatchFiles' >> fileio.MatchAll()
             | 'ReadMatches' >> fileio.ReadMatches()
             | 'Reshuffle' >> beam.Reshuffle())
    time_split = files | 'TimeSplit' >> ComputeTimeSplit(self.spec, self.batch_size)
    parsed = files | 'ParseFiles' >> beam.ParDo(
        ExtractFeaturesFn(self.spec, self.batch_size), AsSingleton(time_split)).with_outputs(
            *tags, main=csv_io.ROWS)
    return {**{tag: parsed[tag] for tag in tags}, SPLIT: time_split}


def make_summary(_, files, written, dead, input_pattern, spec,
                 output, split: Optional[TimeSplit] = None) -> artifacts.FeaturesSummary:
  """The run's counts, per file and in total; ``reconciled`` says whether they add up; with a
  time split, its rule and cutoff."""
  files = csv_io.merge_file_records(files)  # a file read in ranges has one record per range
  rows_read = sum(f['rows_read'] for f in files)
  rows_written = {split: int(written.get(split, 0)) for split in artifacts.SPLITS}
  summary: artifacts.FeaturesSummary = {
      'input': input_pattern, 'output': output, 'spec': spec.to_dict(),
      'spec_fingerprint': spec.fingerprint(), 'files': files,
      'rows_read': rows_read, 'rows_written': rows_written,
      'rows_dead_lettered': int(dead),
      'reconciled': rows_read == sum(rows_written.values()) + dead,
      'missing_columns': sorted({c for f in files for c in f['missing_columns']}),
      'extra_columns': sorted({c for f in files for c in f['extra_columns']}),
  }
  if split is not None:
    summary['split'] = dict(split)
  return summary


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
                   spec: spec_lib.DatasetSpec, output: str, batch_size: int = 50000,
                   row_path: bool = False, split_bytes: int = csv_io.SPLIT_BYTES,
                   block_bytes: int = csv_io.BLOCK_BYTES) -> spec_lib.DatasetSpec:
  """Adds read -> split -> write Parquet/dead letter/summary; returns the resolved spec."""
  extract = ExtractFeatures(input_pattern, spec, batch_size, row_path, split_bytes, block_bytes)
  extracted = pipeline | 'ExtractFeatures' >> extract
  schema = feature_schema(extract.spec)
  for split in artifacts.SPLITS:
    _ = extracted[split] | f'Write{split.title()}' >> beam.io.WriteToParquetBatched(
        FileSystems.join(output, split, artifacts.SHARD_PREFIX), schema, codec='snappy',
        file_name_suffix=artifacts.FEATURES_SUFFIX)
  _ = extracted[csv_io.DEAD_LETTER] | 'WriteDeadLetter' >> csv_io.WriteDeadLetter(
      FileSystems.join(output, artifacts.DEAD_LETTER_DIR))
  time_split = ({'split': AsSingleton(extracted[SPLIT])}
                if extract.spec.split == spec_lib.SPLIT_TIME else {})
  _ = ((extracted[csv_io.FILES], extracted[csv_io.DEAD_LETTER])
       + tuple(extracted[split] for split in artifacts.SPLITS)
       | 'WriteSummary' >> WriteSummary(
           FileSystems.join(output, artifacts.SUMMARY_FILE), input_pattern=input_pattern,
           spec=extract.spec, output=output, **time_split))
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
            batch_size: int = 50000, save_main_session: bool = False, row_path: bool = False,
            split_bytes: int = csv_io.SPLIT_BYTES) -> Union[FeaturesResult, DryRun]:
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
  build_pipeline(pipeline, input_pattern, spec, output, batch_size, row_path, split_bytes)
  runtime.run_to_completion(pipeline, options, 'features')
  if runtime.is_dry_run(options):
    return DRY_RUN
  summary = artifacts.read_summary(output)
  result = result_of(summary, output)
  _report(result, len(summary['files']))
  if 'split' in summary:
    split = cast(TimeSplit, summary['split'])
    progress(f"features: time split: eval = the {result.rows_written[artifacts.EVAL]:,} rows after "
             f"{split['cutoff_utc']} (the {1 - split['eval_fraction']:.0%} quantile of "
             f"{split['timestamp']}); {split['rows_without_timestamp']:,} without a timestamp in "
             'train')
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
                 known.batch_size, save_main_session, known.row_path, known.split_bytes)


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
