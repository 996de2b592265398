"""CSV files -> typed rows by a dataset spec, with a dead-letter output for every malformed row.

A real CSV parser (Python's ``csv``): quoted fields may hold commas, quotes and newlines, so files
are parsed whole (``MatchFiles`` -> ``ReadMatches`` -> one parse per file, in parallel across
files), never split by line. Each file starts with its header row; columns are found by name.

Typing follows ``DatasetSpec``: numeric -> float (empty cell -> None), categorical -> str (empty
-> None), label -> int 0/1 (``1/0``, ``true/false``, ``yes/no``), key and timestamp -> str.
An empty cell is a missing value, not a malformed row. Blank lines are not records.

Dead letter, one dict per bad record: ``{source, line_number, line, reason}``; reasons are
wrong field count, unparsable number, bad or missing label, empty key, CSV syntax, invalid UTF-8,
or a header that lacks the label/key column (every record of that file) or repeats a column.
A header lacking a *feature* column is not a dead letter: the column is missing (None) in every
row and the ``files`` output names it, so validation flags the dropped column as an anomaly.
Scoring reads with ``require_features=True`` instead: a model's column is never imputed for a
whole file, so a header lacking one dead-letters every record of that file (and
``check_input_columns`` refuses such files before a pipeline starts).
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
import sys
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, TypedDict, Union

import apache_beam as beam
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.pvalue import TaggedOutput

from beam_pipelines.ml import artifacts
from beam_pipelines.ml.input_schema import InputSchema
from beam_pipelines.ml.spec import DatasetSpec, SpecError
from beam_pipelines.store.text_lines import (  # noqa: F401 (MAX_RECORD_ENV_VAR: re-exported)
  MAX_RECORD_ENV_VAR,
  PREVIEW_CHARS,
  OversizedLine,
  Patterns,
  RecordTooLarge,
  bounded_lines,
  match_files,
  max_record_chars,
  patterns_of,
)

ROWS, DEAD_LETTER, FILES = 'rows', 'dead_letter', 'files'
METRICS_NAMESPACE = 'csv_io'
WHOLE_FILE_MAX_BYTES = 256 << 20  # larger files are parsed record by record (ParseCsvBatchesFn)
KEY, TIMESTAMP, NUMERIC, CATEGORICAL, LABEL = 'key', 'timestamp', 'numeric', 'categorical', 'label'
_TRUE = frozenset(('1', '1.0', 'true', 'yes', 't', 'y'))
_FALSE = frozenset(('0', '0.0', 'false', 'no', 'f', 'n'))
_LABELS = {**{t: 1 for t in _TRUE}, **{t: 0 for t in _FALSE}}  # the exact-spelling fast path
_UNDECODABLE = re.compile('[\udc80-\udcff]')  # what errors='surrogateescape' makes of bad bytes

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # a long quoted field is data, not an error


class RowError(ValueError):
  """A record cannot be typed by the spec; the message is the dead-letter reason."""


def read_header(file_pattern: Patterns) -> List[str]:
  """The header row of the first matching file that has one ([] if every file is empty)."""
  for path in match_files(file_pattern):
    header = _file_header(path)
    if header is not None:
      return header
  return []


def _file_header(path: str) -> Optional[List[str]]:
  """The header row of one file, None if the file is empty."""
  with FileSystems.open(path) as handle:
    for _, _, fields, _ in iter_records(bounded_lines(handle)):
      return list(fields or [])
  return None


def check_required_columns(files: Sequence[str], spec: DatasetSpec,
                           require_label: bool = True) -> None:
  """Raises SpecError naming the spec field when its column (label, key) is in no file's header.

  A column missing from only some files dead-letters those files' rows (with the reason); missing
  from every file, it is a spec that does not fit the data, not bad rows: say so up front.
  """
  headers = [h for h in (_file_header(path) for path in files) if h is not None]
  if not headers:
    return  # empty files: an empty dataset
  for field in (('label',) if require_label else ()) + ('key',):
    column = getattr(spec, field)
    if column and not any(column in header for header in headers):
      raise SpecError(f'spec field {field!r}: column {column!r} is in no input file\'s header '
                      f'(first header: {str(headers[0])[:PREVIEW_CHARS]})')


def check_input_columns(files: Sequence[str], schema: InputSchema,
                        require_label: bool = True) -> None:
  """Raises InputSchemaError naming the file and the columns when a file's header lacks a column
  the model reads (or its label, with ``require_label``). Empty files are empty data."""
  for path in files:
    header = _file_header(path)
    if header is not None:
      schema.check_columns(dict.fromkeys(header), f'input file {path}', require_label)


class _LineTap:
  """Iterates physical lines for ``csv.reader`` and keeps the ones its last record consumed."""

  def __init__(self, lines: Iterable[Union[str, OversizedLine]]):
    self._lines = iter(lines)
    self.count = 0
    self._taken: List[str] = []

  def __iter__(self):
    return self

  def __next__(self) -> str:
    line = next(self._lines)
    self.count += 1
    if isinstance(line, OversizedLine):
      self._taken = []
      raise RecordTooLarge(line)
    self._taken.append(line)
    return line

  def take(self) -> str:
    raw, self._taken = ''.join(self._taken), []
    return raw.rstrip('\r\n')


def iter_records(text: Iterable[Union[str, OversizedLine]]
                 ) -> Iterator[Tuple[int, str, Optional[List[str]], Optional[str]]]:
  """(first line number, raw text, fields, syntax error) per CSV record; blank lines skipped.
  Fields are None exactly when there is an error (an ``OversizedLine`` is one)."""
  tap = _LineTap(text)
  reader = csv.reader(tap, strict=True)
  while True:
    start = tap.count + 1
    try:
      fields = next(reader)
    except StopIteration:
      return
    except csv.Error as error:
      yield start, tap.take(), None, f'CSV syntax error: {error}'
      continue
    except RecordTooLarge as error:
      yield tap.count, error.line.preview + '…', None, str(error)
      reader = csv.reader(tap, strict=True)  # whatever it held of that record is dropped
      continue
    raw = tap.take()
    if fields:
      yield start, raw, fields, None


class RowParser:
  """Types the fields of one file's records by a resolved spec, given that file's header."""

  def __init__(self, spec: DatasetSpec, header: Sequence[str], require_label: bool = True,
               require_features: bool = False):
    self.columns = spec.columns
    self.width = len(header)
    roles = ([(spec.key, KEY)] if spec.key else []) + (
        [(spec.timestamp, TIMESTAMP)] if spec.timestamp else []) + [
        (c, NUMERIC) for c in spec.numeric] + [(c, CATEGORICAL) for c in spec.categorical] + [
        (spec.label, LABEL)]
    position = {name: i for i, name in enumerate(header)}
    self.plan = [(name, position.get(name), role) for name, role in roles]
    by_role: Dict[str, List[Tuple[int, int, str]]] = {}
    for output_position, (name, index, role) in enumerate(self.plan):
      if index is not None:
        by_role.setdefault(role, []).append((output_position, index, name))
    self.numeric = by_role.get(NUMERIC, [])
    self.strings = by_role.get(CATEGORICAL, []) + by_role.get(TIMESTAMP, [])
    self.keys = by_role.get(KEY, [])
    self.labels = by_role.get(LABEL, [])
    self.require_label = require_label
    self.missing_columns = [c for c, i, role in self.plan
                            if i is None and (role != LABEL or require_label)]
    self.extra_columns = [c for c in header if c not in self.columns and c not in spec.ignore]
    repeated = sorted({c for c in header if list(header).count(c) > 1})
    required = [c for c, i, role in self.plan
                if i is None and (role == KEY or (role == LABEL and require_label)
                                  or (role in (NUMERIC, CATEGORICAL) and require_features))]
    self.header_error: Optional[str] = None
    if repeated:
      self.header_error = f'header mismatch: the header repeats column(s) {repeated}'
    elif required:
      self.header_error = (f'header mismatch: the header lacks column(s) {required} '
                           f'required by the spec (header: {list(header)})')

  def parse(self, fields: Sequence[str], check_utf8: bool = True) -> List[Any]:
    """Typed values in ``spec.columns`` order; raises RowError with the reason.

    ``check_utf8=False`` skips the per-field check of undecodable bytes (the caller checked the
    whole record: one regex search per record instead of one per field).
    """
    if self.header_error:
      raise RowError(self.header_error)
    if len(fields) != self.width:
      raise RowError(f'wrong column count: expected {self.width} fields (as in the header), '
                     f'got {len(fields)}')
    if check_utf8:
      for name, index, _ in self.plan:
        if index is not None and _UNDECODABLE.search(fields[index]):
          raise RowError(f'column {name!r}: invalid UTF-8 bytes')
    values: List[Any] = [None] * len(self.plan)
    for position, index, name in self.numeric:
      text = fields[index]
      try:
        number = float(text)
      except ValueError:
        if text.strip():
          raise RowError(f'column {name!r}: {text!r} is not a number') from None
        continue  # an empty cell: a missing value
      if number - number != 0:  # inf or nan
        raise RowError(f'column {name!r}: {text!r} is not a finite number')
      values[position] = number
    for position, index, _ in self.strings:
      text = fields[index]
      if text and not text.isspace():
        values[position] = text
    for position, index, name in self.keys:
      text = fields[index]
      if not text or text.isspace():
        raise RowError(f'column {name!r} (the key) is empty')
      values[position] = text
    for position, index, name in self.labels:
      values[position] = self._label(name, fields[index])
    return values

  def _label(self, name: str, text: str) -> Optional[int]:
    known = _LABELS.get(text)
    if known is not None:
      return known
    if not text or text.isspace():
      if self.require_label:
        raise RowError(f'column {name!r} (the label) is empty')
      return None
    folded = text.strip().lower()
    if folded in _TRUE:
      return 1
    if folded in _FALSE:
      return 0
    if self.require_label:
      raise RowError(f'column {name!r} (the label): {text!r} is not a binary label (0/1)')
    return None


class DeadLetter(TypedDict):
  """A row that could not be typed: one line of ``dead_letter/part-*.jsonl``."""
  source: str
  line_number: int
  line: str
  reason: str


def dead_letter_record(source: str, line_number: int, line: str, reason: str) -> DeadLetter:
  if _UNDECODABLE.search(line):  # keep bad bytes visible as \\xNN, and the record encodable
    line = line.encode('utf-8', 'surrogateescape').decode('utf-8', 'backslashreplace')
  return {'source': source, 'line_number': line_number, 'line': line, 'reason': reason}


class ParseCsvFileFn(beam.DoFn):
  """A whole CSV file -> typed rows (dicts), dead letters and one ``files`` record per file.

  Subclasses override ``emit`` (one good row) and ``flush`` (end of file) to batch rows.
  """

  def __init__(self, spec: DatasetSpec, require_label: bool = True,
               require_features: bool = False):
    super().__init__()
    self.spec = spec
    self.require_label = require_label
    self.require_features = require_features
    self.rows_read = Metrics.counter(METRICS_NAMESPACE, 'rows_read')
    self.rows_dead = Metrics.counter(METRICS_NAMESPACE, 'rows_dead_lettered')

  def emit(self, values: List[Any], fields: List[str]) -> Iterable[Any]:
    yield dict(zip(self.spec.columns, values))

  def flush(self) -> Iterable[Any]:
    return ()

  def process(self, readable_file) -> Iterator[Any]:
    path = readable_file.metadata.path
    records = dead = 0
    parser = None
    header: List[str] = []
    with readable_file.open(mime_type='application/octet-stream') as handle:
      for line_number, raw, fields, error in iter_records(bounded_lines(handle)):
        if parser is None:  # the first record is the header
          header = list(fields or [])
          parser = RowParser(self.spec, header, self.require_label, self.require_features)
          if error is None:
            continue
        records += 1
        if error is None:
          assert fields is not None  # iter_records: fields are None only with an error
          try:
            values = parser.parse(fields, check_utf8=_UNDECODABLE.search(raw) is not None)
            yield from self.emit(values, fields)
            continue
          except RowError as row_error:
            error = str(row_error)
        dead += 1
        yield TaggedOutput(DEAD_LETTER, dead_letter_record(path, line_number, raw, error))
    yield from self.flush()
    self.rows_read.inc(records)
    self.rows_dead.inc(dead)
    yield TaggedOutput(FILES, {
        'source': path, 'header': header, 'rows_read': records, 'rows_dead_lettered': dead,
        'missing_columns': parser.missing_columns if parser else [],
        'extra_columns': parser.extra_columns if parser else []})


class ParseCsvBatchesFn(ParseCsvFileFn):
  """As ``ParseCsvFileFn``, but good rows leave as frames of up to ``batch_size`` rows: pandas
  DataFrames with the spec's columns, object dtype, each cell the value a row dict would hold.

  An uncompressed file of at most ``WHOLE_FILE_MAX_BYTES`` with no quote character, no record
  longer than ``max_record_chars()`` and only ``\\n`` or ``\\r\\n`` line ends is first tokenised
  whole by Arrow's CSV reader (every column as text) and typed column by column with the same
  rules as ``RowParser``; at the first cell those rules would refuse (a dead letter), a wrong
  field count or bad UTF-8, the file is parsed again record by record by ``ParseCsvFileFn``, which
  says which records are bad and why. So the rows and dead letters are the same either way.
  """

  def __init__(self, spec: DatasetSpec, batch_size: int, require_label: bool = True,
               require_features: bool = False):
    super().__init__(spec, require_label, require_features)
    self.batch_size = batch_size
    self._buffer: List[List[Any]] = []

  def emit(self, values: List[Any], fields: List[str]) -> Iterable[Any]:
    self._buffer.append(values)
    if len(self._buffer) >= self.batch_size:
      yield from self.flush()

  def flush(self) -> Iterable[Any]:
    if self._buffer:
      cells = np.empty((len(self._buffer), len(self.spec.columns)), dtype=object)
      cells[:] = self._buffer
      self._buffer = []
      yield pd.DataFrame(cells, columns=list(self.spec.columns))

  def process(self, readable_file) -> Iterator[Any]:
    metadata = readable_file.metadata
    typed = None
    if (metadata.size_in_bytes <= WHOLE_FILE_MAX_BYTES and CompressionTypes.detect_compression_type(
        metadata.path) == CompressionTypes.UNCOMPRESSED):  # else memory is bounded per record
      with readable_file.open(mime_type='application/octet-stream') as handle:
        typed = self._typed_columns(handle.read())
    if typed is None:
      yield from super().process(readable_file)
      return
    header, parser, cells = typed
    for start in range(0, len(cells), self.batch_size):
      yield pd.DataFrame(cells[start:start + self.batch_size], columns=list(self.spec.columns))
    self.rows_read.inc(len(cells))
    yield TaggedOutput(FILES, {
        'source': readable_file.metadata.path, 'header': header, 'rows_read': len(cells),
        'rows_dead_lettered': 0, 'missing_columns': parser.missing_columns,
        'extra_columns': parser.extra_columns})

  def _typed_columns(self, data: bytes) -> Optional[Tuple[List[str], RowParser, np.ndarray]]:
    """(header, parser, object cells) of a file every record of which types cleanly, else None."""
    if b'"' in data or data.count(b'\r') != data.count(b'\r\n'):
      return None
    line_ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == ord('\n'))
    if np.diff(line_ends, prepend=-1, append=len(data)).max(initial=0) > max_record_chars():
      return None  # an oversized record: the record parser dead-letters it
    data = data[len(codecs.BOM_UTF8):] if data.startswith(codecs.BOM_UTF8) else data
    try:
      header = data.split(b'\n', 1)[0].decode('utf-8').rstrip('\r').split(',')
      parser = RowParser(self.spec, header, self.require_label, self.require_features)
      if parser.header_error or parser.missing_columns or not data.strip():
        return None
      table = pa_csv.read_csv(
          io.BytesIO(data), read_options=pa_csv.ReadOptions(use_threads=False),
          parse_options=pa_csv.ParseOptions(quote_char=False),
          convert_options=pa_csv.ConvertOptions(
              column_types={c: pa.string() for c in header}, strings_can_be_null=False,
              include_columns=[c for c, i, _ in parser.plan if i is not None]))
      cells = np.empty((table.num_rows, len(parser.plan)), dtype=object)
      typing = [(parser.numeric, lambda column, _: _numbers_of(column)),
                (parser.strings, lambda column, _: _strings(column.to_numpy())),
                (parser.keys, lambda column, _: _keys(column.to_numpy())),
                (parser.labels, lambda column, name: [parser._label(name, t)
                                                      for t in column.to_numpy().tolist()])]
      for columns, to_values in typing:
        for position, index, name in columns:
          values = to_values(table.column(header[index]), name)
          if values is None:
            return None
          column = np.empty(len(values), dtype=object)
          column[:] = values
          cells[:, position] = column
      return header, parser, cells
    except (pa.ArrowInvalid, UnicodeDecodeError, ValueError):  # RowError is a ValueError
      return None


def _numbers_of(column: pa.ChunkedArray) -> Optional[np.ndarray]:
  """``_numbers`` of a text column, cast by Arrow when it takes every cell: Arrow's text to
  float64 and Python's ``float`` both round correctly, so the values are the same; a column Arrow
  refuses (a cell with spaces, ``1_000``, a word) goes through ``_numbers``."""
  present = pc.not_equal(column, '')
  try:
    numbers = pc.cast(pc.filter(column, present), pa.float64()).to_numpy()
  except pa.ArrowInvalid:
    return _numbers(column.to_numpy())
  return _boxed(present.to_numpy(), numbers)


def _numbers(texts: np.ndarray) -> Optional[np.ndarray]:
  """``RowParser``'s numbers (a blank cell: None) or None when a cell is not a finite number.

  numpy's cast of ``str`` objects to float64 calls Python's ``float`` on each, so the values are
  those of ``RowParser``; a cell it refuses (blank with spaces, or not a number) is looked at one
  by one.
  """
  present = texts != ''
  try:
    numbers = texts[present].astype(np.float64)
  except ValueError:
    present = np.array([bool(text.strip()) for text in texts.tolist()], dtype=bool)
    numbers = np.array([float(text) for text in texts[present].tolist()], dtype=np.float64)
  return _boxed(present, numbers)


def _boxed(present: np.ndarray, numbers: np.ndarray) -> Optional[np.ndarray]:
  """The numbers in the cells ``present`` marks, None in the others; None if one is not finite."""
  if not np.isfinite(numbers).all():
    return None
  values = np.full(len(present), None, dtype=object)
  values[present] = numbers
  return values


def _strings(texts: np.ndarray) -> List[Optional[str]]:
  return [text if text and not text.isspace() else None for text in texts.tolist()]


def _keys(texts: np.ndarray) -> Optional[List[str]]:
  keys = texts.tolist()
  return None if any(not key or key.isspace() for key in keys) else keys


def count_rows(elements) -> int:
  """Rows in a PCollection's element: a frame's length, else 1 (a row dict)."""
  return len(elements) if isinstance(elements, pd.DataFrame) else 1


def resolve_spec(spec: DatasetSpec, file_pattern: Patterns) -> DatasetSpec:
  """The spec with "all" expanded against the first file's header (already-resolved specs pass)."""
  return spec if spec.is_resolved else spec.resolve(read_header(file_pattern))


class ReadCsvFiles(beam.PTransform):
  """Pipeline root -> files matching a pattern (or patterns), parsed by ``parse_fn`` (tagged)."""

  def __init__(self, file_pattern: Patterns, parse_fn: ParseCsvFileFn, tags: Sequence[str]):
    super().__init__()
    self.file_pattern = file_pattern
    self.parse_fn = parse_fn
    self.tags = tuple(tags)

  def expand(self, root):
    return (
        root
        | 'Patterns' >> beam.Create(patterns_of(self.file_pattern))
        | 'MatchFiles' >> fileio.MatchAll()
        | 'ReadMatches' >> fileio.ReadMatches()
        | 'Reshuffle' >> beam.Reshuffle()  # spread files over workers
        | 'ParseFiles' >> beam.ParDo(self.parse_fn).with_outputs(*self.tags, main=ROWS))


class ReadCsvRows(beam.PTransform):
  """Pipeline root -> tagged ``rows`` (typed dicts), ``dead_letter`` and ``files`` (per-file info).

  ``spec`` may hold "all": it is resolved against the first file's header at construction.
  ``require_label=False`` reads data without (or with unusable) labels, e.g. for inference.
  ``require_features=True`` dead-letters every record of a file whose header lacks a feature
  column (scoring: a model's input is never imputed for a whole file).
  ``batch_size > 0``: ``rows`` are frames of up to that many rows (``ParseCsvBatchesFn``).
  """

  def __init__(self, file_pattern: Patterns, spec: DatasetSpec, require_label: bool = True,
               require_features: bool = False, batch_size: int = 0):
    super().__init__()
    self.file_pattern = file_pattern
    self.spec = resolve_spec(spec, file_pattern)
    self.require_label = require_label
    self.require_features = require_features
    self.batch_size = batch_size

  def expand(self, root):
    if self.batch_size > 0:
      parse = ParseCsvBatchesFn(self.spec, self.batch_size, self.require_label,
                                self.require_features)
    else:
      parse = ParseCsvFileFn(self.spec, self.require_label, self.require_features)
    return root | 'ReadCsv' >> ReadCsvFiles(self.file_pattern, parse, (DEAD_LETTER, FILES))


class WriteDeadLetter(beam.PTransform):
  """Dead-letter dicts -> JSON lines under ``directory`` (``part-SSSSS-of-NNNNN.jsonl``)."""

  def __init__(self, directory: str, num_shards: int = 0):
    super().__init__()
    self.directory = directory
    self.num_shards = num_shards

  def expand(self, dead_letters):
    return (
        dead_letters
        | 'ToJson' >> beam.Map(json.dumps, sort_keys=True)
        | 'WriteJsonLines' >> beam.io.WriteToText(
            FileSystems.join(self.directory, artifacts.SHARD_PREFIX),
            file_name_suffix=artifacts.DEAD_LETTER_SUFFIX, num_shards=self.num_shards))
