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
from typing import (
  Any,
  Dict,
  Iterable,
  Iterator,
  List,
  NamedTuple,
  Optional,
  Sequence,
  Tuple,
  TypedDict,
  Union,
)

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
KEY, TIMESTAMP, NUMERIC, CATEGORICAL, LABEL = 'key', 'timestamp', 'numeric', 'categorical', 'label'
_TRUE = frozenset(('1', '1.0', 'true', 'yes', 't', 'y'))
_FALSE = frozenset(('0', '0.0', 'false', 'no', 'f', 'n'))
_LABELS = {**{t: 1 for t in _TRUE}, **{t: 0 for t in _FALSE}}  # the exact-spelling fast path
_UNDECODABLE = re.compile('[\udc80-\udcff]')  # what errors='surrogateescape' makes of bad bytes

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # a long quoted field is data, not an error


SCAN_BYTES = 32 << 20  # bytes scanned at a time
SPLIT_BYTES = 16 << 20  # a range's largest size: files are shared by workers in equal ranges
BLOCK_BYTES = 8 << 20  # bytes of records typed at a time by Arrow (memory: a few times this)


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
    tally = _Tally()
    with readable_file.open(mime_type='application/octet-stream') as handle:
      yield from self.parse_records(path, iter_records(bounded_lines(handle)), tally)
    yield from self.flush()
    yield from self.file_record(path, tally)

  def parse_records(self, path: str, records, tally: '_Tally', line_offset: int = 0
                    ) -> Iterator[Any]:
    """Rows and dead letters of ``iter_records`` output; without ``tally.parser`` the first
    record is the header. Line numbers are moved by ``line_offset``."""
    for line_number, raw, fields, error in records:
      line_number += line_offset
      if tally.parser is None:  # the first record is the header
        tally.header = list(fields or [])
        tally.parser = RowParser(self.spec, tally.header, self.require_label,
                                 self.require_features)
        if error is None:
          continue
      tally.records += 1
      if error is None:
        assert fields is not None  # iter_records: fields are None only with an error
        try:
          values = tally.parser.parse(fields, check_utf8=_UNDECODABLE.search(raw) is not None)
          yield from self.emit(values, fields)
          continue
        except RowError as row_error:
          error = str(row_error)
      tally.dead += 1
      yield TaggedOutput(DEAD_LETTER, dead_letter_record(path, line_number, raw, error))

  def file_record(self, path: str, tally: '_Tally') -> Iterator[Any]:
    """The ``files`` record of a file (or of a range of it: ``merge_file_records`` adds them)."""
    self.rows_read.inc(tally.records)
    self.rows_dead.inc(tally.dead)
    parser = tally.parser
    yield TaggedOutput(FILES, {
        'source': path, 'header': tally.header, 'rows_read': tally.records,
        'rows_dead_lettered': tally.dead,
        'missing_columns': parser.missing_columns if parser else [],
        'extra_columns': parser.extra_columns if parser else []})


class _Tally:
  """What a parse has seen of one file: its header, parser and counts."""

  def __init__(self, header: Optional[List[str]] = None, parser: Optional[RowParser] = None):
    self.header: List[str] = header or []
    self.parser = parser
    self.records = 0
    self.dead = 0


def merge_file_records(files: Iterable[Dict[str, Any]]) -> List[Dict[str, Any]]:
  """One ``files`` record per source: the counts of its ranges added, sorted by source."""
  merged: Dict[str, Dict[str, Any]] = {}
  for record in files:
    known = merged.get(record['source'])
    if known is None:
      merged[record['source']] = dict(record)
    else:
      known['rows_read'] += record['rows_read']
      known['rows_dead_lettered'] += record['rows_dead_lettered']
  return [merged[source] for source in sorted(merged)]


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
  ``batch_size > 0``: ``rows`` are frames of up to that many rows, read in byte ranges by Arrow
  (``ParseCsvRangeBatchesFn``; ``split_bytes`` and ``block_bytes`` as ``ReadCsvRanges`` takes
  them), each cell the value a row dict holds.
  """

  def __init__(self, file_pattern: Patterns, spec: DatasetSpec, require_label: bool = True,
               require_features: bool = False, batch_size: int = 0,
               split_bytes: int = SPLIT_BYTES, block_bytes: int = BLOCK_BYTES):
    super().__init__()
    self.file_pattern = file_pattern
    self.spec = resolve_spec(spec, file_pattern)
    self.require_label = require_label
    self.require_features = require_features
    self.batch_size = batch_size
    self.split_bytes = split_bytes
    self.block_bytes = block_bytes

  def expand(self, root):
    tags = (DEAD_LETTER, FILES)
    if self.batch_size > 0:
      return root | 'ReadCsv' >> ReadCsvRanges(self.file_pattern, ParseCsvRangeBatchesFn(
          self.spec, self.batch_size, self.require_label, self.require_features,
          self.block_bytes), tags, self.split_bytes)
    parse = ParseCsvFileFn(self.spec, self.require_label, self.require_features)
    return root | 'ReadCsv' >> ReadCsvFiles(self.file_pattern, parse, tags)


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


# --- Arrow path: byte ranges of a file, record blocks typed column-wise ---------------------------
#
# A file is cut at record boundaries into byte ranges (``plan_ranges``), so several workers share
# a large file; each range is read in blocks of whole records, tokenised by Arrow's CSV reader and
# typed column by column (``arrow_block``); a record Arrow cannot vouch for (wrong field count,
# invalid UTF-8, a cell the spec's rules refuse or that only Python's ``float`` reads) goes through
# ``RowParser`` alone, so the rows and the dead letters are those of the record parser.
#
# Boundaries are newlines outside quotes: a newline is inside a quoted field exactly when an odd
# number of quotes precede it, provided every quote opens a field (after a comma, a newline or at
# the start) or closes one (before a comma or a line end), alternately. The scan checks that; from
# the first quote that does neither (a quote inside a field, a doubled quote), or a line longer
# than ``max_record_chars()``, the rest of the file is parsed record by record as before.

_QUOTE, _NEWLINE, _COMMA, _CR = 34, 10, 44, 13


class ByteRange(NamedTuple):
  """Part of a file: whole records from ``start`` to ``end`` (bytes); ``line`` is the line number
  of its first byte; ``arrow`` False parses it record by record (see ``plan_ranges``)."""
  path: str
  start: int
  end: int
  line: int
  arrow: bool


def plan_ranges(path: str, size: int, split_bytes: int = SPLIT_BYTES,
                scan_bytes: int = SCAN_BYTES) -> List[ByteRange]:
  """A file's ranges: the fewest of at most about ``split_bytes`` each, of equal size (workers
  get equal shares): cut at the first newline outside quotes at or after every ``size / n``.

  A compressed or empty file is one range, parsed record by record. The ranges after the first
  anomaly (a quote that neither opens nor closes a field, a line longer than
  ``max_record_chars()`` bytes, a blank first line) are one range parsed record by record.
  """
  if size == 0 or CompressionTypes.detect_compression_type(path) != CompressionTypes.UNCOMPRESSED:
    return [ByteRange(path, 0, size, 1, False)]
  max_line = max_record_chars()
  cuts = [(0, 1)]  # (offset, line number)
  anomaly: Optional[int] = None
  offset = parity = lines = 0
  last_newline, previous = -1, _NEWLINE
  step = size / max(1, -(-size // split_bytes))  # size / (the fewest ranges of <= split_bytes)
  target = step
  with FileSystems.open(path, mime_type='application/octet-stream',
                        compression_type=CompressionTypes.UNCOMPRESSED) as handle:
    chunk = handle.read(scan_bytes)
    if chunk[:1] in (b'\n', b'\r'):
      anomaly = 0
    while chunk and anomaly is None:
      following = handle.read(scan_bytes)
      data = np.frombuffer(chunk, dtype=np.uint8)
      quotes = np.flatnonzero(data == _QUOTE)
      newlines = np.flatnonzero(data == _NEWLINE)
      if len(quotes):
        before = np.where(quotes > 0, data[quotes - 1], previous)
        after_index = np.minimum(quotes + 1, len(data) - 1)
        after = np.where(quotes + 1 < len(data), data[after_index],
                         following[0] if following else _NEWLINE)
        opening = (np.arange(len(quotes)) + parity) % 2 == 0
        good = np.where(opening, (before == _COMMA) | (before == _NEWLINE),
                        (after == _COMMA) | (after == _NEWLINE) | (after == _CR))
        if not good.all():
          anomaly = offset + int(quotes[np.argmin(good)])
      ends = np.concatenate((newlines, [len(data)] if not following else []))
      lengths = np.diff(ends, prepend=last_newline - offset) - 1
      if len(lengths) and lengths.max() > max_line:
        long_line = int(np.argmax(lengths > max_line))
        start = offset + (int(ends[long_line - 1]) + 1 if long_line else last_newline + 1 - offset)
        anomaly = start if anomaly is None else min(anomaly, start)
      outside = np.flatnonzero((np.searchsorted(quotes, newlines) + parity) % 2 == 0)
      candidates = offset + newlines[outside] + 1  # the cuts this chunk allows, ascending
      limit = size if anomaly is None else min(size, anomaly + 1)
      while True:  # a few cuts per chunk: look each one up instead of walking every newline
        index = int(np.searchsorted(candidates, target))
        if index == len(candidates) or candidates[index] >= limit:
          break
        cut = int(candidates[index])
        cuts.append((cut, lines + int(outside[index]) + 2))
        target = (cut // step + 1) * step  # the next equal share's start after this cut
      parity = (parity + len(quotes)) % 2
      lines += len(newlines)
      if len(newlines):
        last_newline = offset + int(newlines[-1])
      previous = int(data[-1])
      offset += len(chunk)
      chunk = following
  if parity and anomaly is None:
    anomaly = size  # an unterminated quote: the last range goes record by record
  if anomaly is not None:
    cuts = [cut for cut in cuts if cut[0] <= anomaly]
  ranges = [ByteRange(path, start, end, line, True)
            for (start, line), (end, _) in zip(cuts, cuts[1:] + [(size, 0)])]
  if anomaly is not None:
    ranges[-1] = ranges[-1]._replace(arrow=False)
  return ranges


class PlanRangesFn(beam.DoFn):
  """File metadata -> its ``ByteRange``s (``plan_ranges``)."""

  def __init__(self, split_bytes: int = SPLIT_BYTES):
    super().__init__()
    self.split_bytes = split_bytes

  def process(self, metadata) -> Iterator[ByteRange]:
    yield from plan_ranges(metadata.path, metadata.size_in_bytes, self.split_bytes)


class _LimitedReader:
  """The bytes of a binary stream from its position up to ``limit`` bytes, after ``prefix``."""

  def __init__(self, handle, limit: int, prefix: bytes = b''):
    self.handle = handle
    self.left = limit
    self.prefix = prefix

  def read(self, size: int = -1) -> bytes:
    if self.prefix:
      data, self.prefix = self.prefix, b''
      return data
    if self.left <= 0:
      return b''
    data = self.handle.read(self.left if size < 0 else min(size, self.left))
    self.left -= len(data)
    return data


class _InvalidUtf8Positions:
  """A codec error handler that records where undecodable bytes are."""

  def __init__(self):
    self.positions: List[int] = []

  def __call__(self, error: UnicodeError) -> Tuple[str, int]:
    assert isinstance(error, UnicodeDecodeError)
    self.positions.append(error.start)
    return '', error.end


_UTF8_POSITIONS = _InvalidUtf8Positions()
codecs.register_error('beam_pipelines_utf8_positions', _UTF8_POSITIONS)

_PLAIN_NUMBER = r'^-?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$'
# Characters for which Python's str.isspace() may be true (a superset; each match is checked).
_MAYBE_SPACE = (r'^[\t\n\x0b\x0c\r\x1c-\x1f \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}'
                r'\x{2029}\x{202f}\x{205f}\x{3000}]*$')


class ArrowBlock(NamedTuple):
  """``arrow_block``'s result: typed rows, the records left to ``RowParser`` and the count."""
  table: pa.Table  # good rows, columns in spec order, typed as ``RowParser`` types them
  tokens: Optional[pa.Array]  # without a key: each row's fields joined by '\x1f' (else None)
  by_record: List[Tuple[int, bytes]]  # (line number, raw bytes) of each record left to RowParser
  records: int  # records in the block (blank lines are not records)


def record_bounds(data: bytes) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(starts, ends, newline positions) of the records in ``data``: whole records, starting
  outside quotes; an end is a newline outside quotes or the end of ``data``."""
  array = np.frombuffer(data, dtype=np.uint8)
  newlines = np.flatnonzero(array == _NEWLINE)
  if b'"' in data:
    quotes = np.flatnonzero(array == _QUOTE)
    ends = newlines[np.searchsorted(quotes, newlines) % 2 == 0]
  else:
    ends = newlines
  if not data.endswith(b'\n'):
    ends = np.append(ends, len(data))
  starts = np.concatenate(([0], ends[:-1] + 1)) if len(ends) else np.zeros(0, dtype=np.int64)
  return starts, ends, newlines


def block_cut(data: bytes) -> int:
  """Where the last whole record of ``data`` ends (after its newline), 0 if none does."""
  end = len(data)
  while True:
    end = data.rfind(b'\n', 0, end)
    if end < 0:
      return 0
    if data.count(b'"', 0, end) % 2 == 0:
      return end + 1


def arrow_block(data: bytes, first_line: int, header: Sequence[str], parser: RowParser,
                tokens: bool = False) -> Optional[ArrowBlock]:
  """Whole records of one file (``data``, from a record start, the first on line ``first_line``)
  typed column-wise; None when Arrow cannot take the block (a carriage return alone, a NUL byte,
  a field Arrow reads otherwise), which is then parsed record by record.
  ``tokens``: also each good row's fields joined by '\\x1f' (the split token without a key)."""
  if data.count(b'\r') != data.count(b'\r\n') or b'\0' in data or not data:
    return None
  starts, ends, newlines = record_bounds(data)
  lengths = ends - starts
  blank = (lengths == 0) | ((lengths == 1) & (np.frombuffer(data, np.uint8)[
      np.minimum(starts, max(len(data) - 1, 0))] == _CR))
  starts, ends = starts[~blank], ends[~blank]
  array = np.frombuffer(data, dtype=np.uint8)
  commas = np.flatnonzero(array == _COMMA)
  if b'"' in data:
    commas = commas[np.searchsorted(np.flatnonzero(array == _QUOTE), commas) % 2 == 0]
  widths = np.searchsorted(commas, ends) - np.searchsorted(commas, starts) + 1
  arrow_rows = widths == parser.width
  by_record = ~arrow_rows
  try:
    data.decode('utf-8')
  except UnicodeDecodeError:
    _UTF8_POSITIONS.positions = []
    data.decode('utf-8', 'beam_pipelines_utf8_positions')
    bad = np.searchsorted(ends, np.array(_UTF8_POSITIONS.positions))
    by_record[np.unique(bad[bad < len(ends)])] = True
  body = pa.py_buffer(data)
  try:
    table = pa_csv.read_csv(
        pa.BufferReader(body),
        read_options=pa_csv.ReadOptions(use_threads=False, column_names=list(header),
                                        block_size=max(1 << 20, min(len(data) + 1, 64 << 20))),
        parse_options=pa_csv.ParseOptions(newlines_in_values=b'"' in data,
                                          invalid_row_handler=lambda row: 'skip'),
        convert_options=pa_csv.ConvertOptions(
            column_types={c: pa.string() for c in header}, strings_can_be_null=False,
            quoted_strings_can_be_null=False, check_utf8=False,
            include_columns=None if tokens else [header[i] for _, i, _ in parser.plan
                                                 if i is not None]))
  except pa.ArrowInvalid:
    return None
  if table.num_rows != int(arrow_rows.sum()):
    return None
  keep = ~by_record[arrow_rows]
  if not keep.all():
    table = table.filter(pa.array(keep))
  good = np.ones(table.num_rows, dtype=bool)
  columns: List[pa.Array] = []
  for name, index, role in parser.plan:
    if index is None:
      columns.append(pa.nulls(table.num_rows, type=_ARROW_TYPES[role]))
      continue
    column = table.column(header[index]).combine_chunks()
    if role == NUMERIC:
      values, refused = _typed_numbers(column)
    elif role in (CATEGORICAL, TIMESTAMP):
      values, refused = _typed_strings(column), None
    elif role == KEY:
      blank_keys = _blank(column)
      values, refused = column, blank_keys
    else:
      values, refused = _typed_labels(column, parser, name)
    if refused is not None:
      good &= ~refused
    columns.append(values)
  typed = pa.Table.from_arrays(columns, names=[name for name, _, _ in parser.plan])
  joined = None
  if tokens:
    joined = pc.binary_join_element_wise(*[table.column(c).combine_chunks() for c in header],
                                         '\x1f') if header else pa.array([''] * table.num_rows)
  if not good.all():
    typed = typed.filter(pa.array(good))
    joined = joined.filter(pa.array(good)) if joined is not None else None
    refused_rows = np.flatnonzero(~by_record)[~good]  # records of the rows the typing refused
    by_record[refused_rows] = True
  line_of = np.searchsorted(newlines, starts) + first_line
  left = [(int(line_of[i]), data[starts[i]:ends[i]]) for i in np.flatnonzero(by_record)]
  return ArrowBlock(typed, joined, left, len(starts))


def _typed_numbers(column: pa.Array) -> Tuple[pa.Array, Optional[np.ndarray]]:
  """float64 values (None for a blank cell) and the rows ``RowParser`` refuses (not a finite
  number). Arrow casts the plain decimal cells (correctly rounded, as ``float``); any other cell
  is read by ``float`` as ``RowParser`` reads it."""
  plain = pc.fill_null(pc.match_substring_regex(column, _PLAIN_NUMBER), False)
  numbers: Optional[pa.Array] = None
  refused: Optional[np.ndarray] = None
  if len(column) == 0 or pc.all(plain).as_py():
    try:
      numbers = pc.cast(column, pa.float64())
    except pa.ArrowInvalid:
      plain = pa.array(np.zeros(len(column), dtype=bool))
  if numbers is None:
    plain_mask = plain.to_numpy(zero_copy_only=False)
    values = np.zeros(len(column), dtype=np.float64)
    valid = np.ones(len(column), dtype=bool)
    try:
      values[plain_mask] = pc.cast(pc.filter(column, plain), pa.float64()).to_numpy()
    except pa.ArrowInvalid:
      plain_mask = np.zeros(len(column), dtype=bool)
    refused = np.zeros(len(column), dtype=bool)
    others = np.flatnonzero(~plain_mask)
    for index, text in zip(others, pc.take(column, pa.array(others)).to_pylist()):
      try:
        values[index] = float(text)
      except ValueError:
        valid[index] = False
        refused[index] = bool(text.strip())
    numbers = pa.array(values, mask=~valid)
  finite = pc.fill_null(pc.is_finite(numbers), True).to_numpy(zero_copy_only=False)
  if not finite.all():
    refused = ~finite if refused is None else refused | ~finite
  return numbers, refused


def _blank(column: pa.Array) -> Optional[np.ndarray]:
  """Cells Python's ``not text or text.isspace()`` calls blank (None when there is none)."""
  maybe = pc.fill_null(pc.match_substring_regex(column, _MAYBE_SPACE), False)
  if not pc.any(maybe).as_py():
    return None
  mask = maybe.to_numpy(zero_copy_only=False).copy()
  candidates = np.flatnonzero(mask)
  for index, text in zip(candidates, pc.take(column, pa.array(candidates)).to_pylist()):
    mask[index] = not text or text.isspace()
  return mask if mask.any() else None


def _typed_strings(column: pa.Array) -> pa.Array:
  blank = _blank(column)
  if blank is None:
    return column
  return pc.if_else(pa.array(blank), pa.scalar(None, pa.string()), column)


def _typed_labels(column: pa.Array, parser: RowParser, name: str
                  ) -> Tuple[pa.Array, Optional[np.ndarray]]:
  """int64 labels by ``_LABELS`` (exact spellings), any other cell by ``RowParser._label``."""
  spellings = pa.array(list(_LABELS))
  index = pc.index_in(column, value_set=spellings)
  values = pc.take(pa.array(list(_LABELS.values()), pa.int64()), index)
  unknown = pc.is_null(index).to_numpy(zero_copy_only=False)
  if not unknown.any():
    return values, None
  numbers = values.to_numpy(zero_copy_only=False).astype(object)
  refused = np.zeros(len(column), dtype=bool)
  rows = np.flatnonzero(unknown)
  for row, text in zip(rows, pc.take(column, pa.array(rows)).to_pylist()):
    try:
      numbers[row] = parser._label(name, text)
    except RowError:
      refused[row] = True
      numbers[row] = None
  return pa.array(numbers.tolist(), pa.int64()), refused if refused.any() else None


_ARROW_TYPES = {NUMERIC: pa.float64(), LABEL: pa.int64(), CATEGORICAL: pa.string(),
                KEY: pa.string(), TIMESTAMP: pa.string()}


class ParseCsvRangeFn(ParseCsvFileFn):
  """A ``ByteRange`` -> as ``ParseCsvFileFn`` gives for the records in it: good rows through
  ``emit_block`` (Arrow blocks) or ``emit`` (records ``RowParser`` parsed), dead letters, and one
  ``files`` record per range. ``block_bytes``: bytes of records typed at a time."""

  def __init__(self, spec: DatasetSpec, require_label: bool = True,
               require_features: bool = False, block_bytes: int = BLOCK_BYTES,
               tokens: bool = False):
    super().__init__(spec, require_label, require_features)
    self.block_bytes = block_bytes
    self.tokens = tokens

  def emit_block(self, block: ArrowBlock) -> Iterable[Any]:
    """Good rows of one Arrow block (default: each as ``emit`` gets it)."""
    for row in block.table.to_pylist():
      values = [row[c] for c in self.spec.columns]
      yield from self.emit(values, [])

  def process(self, byte_range: ByteRange) -> Iterator[Any]:
    path = byte_range.path
    with FileSystems.open(path, mime_type='application/octet-stream',
                          compression_type=CompressionTypes.UNCOMPRESSED
                          if byte_range.arrow or byte_range.start else CompressionTypes.AUTO
                          ) as handle:
      tally = _Tally()
      if byte_range.start:
        tally.header = _file_header(path) or []
        tally.parser = RowParser(self.spec, tally.header, self.require_label,
                                 self.require_features)
        handle.seek(byte_range.start)
      arrow = byte_range.arrow and not (tally.parser and tally.parser.header_error)
      if arrow:
        yield from self._arrow(path, handle, byte_range, tally)
      else:
        length = byte_range.end - byte_range.start if byte_range.start or byte_range.arrow else -1
        stream = _LimitedReader(handle, length if length >= 0 else 1 << 62,
                                b'\n' if byte_range.start else b'')
        yield from self.parse_records(path, iter_records(bounded_lines(stream)), tally,
                                      byte_range.line - 1 - (1 if byte_range.start else 0))
    yield from self.flush()
    yield from self.file_record(path, tally)

  def _arrow(self, path: str, handle, byte_range: ByteRange, tally: _Tally) -> Iterator[Any]:
    left = byte_range.end - byte_range.start
    line = byte_range.line
    data = b''
    while True:
      chunk = handle.read(min(self.block_bytes, left)) if left > 0 else b''
      left -= len(chunk)
      data += chunk
      final = not chunk
      cut = len(data) if final else block_cut(data)
      if not cut and not final:
        continue
      block, data = data[:cut], data[cut:]
      if tally.parser is None:  # the range holds the header: its first record
        header_end = _first_record_end(block)
        records = list(iter_records(bounded_lines(io.BytesIO(block[:header_end]))))
        parser = RowParser(self.spec, list(records[0][2] or []) if records else [],
                           self.require_label, self.require_features)
        if not records or records[0][3] is not None or parser.header_error:
          # the row parser judges every record (the header's error, the header's dead letters)
          rest = _LimitedReader(handle, left, block + data)
          yield from self.parse_records(path, iter_records(bounded_lines(rest)), tally,
                                        line - 1)
          return
        tally.header, tally.parser = list(records[0][2] or []), parser
        line += block.count(b'\n', 0, header_end)
        block = block[header_end:]
      yield from self._block(path, block, line, tally)
      line += block.count(b'\n')
      if final:
        return

  def _block(self, path: str, block: bytes, line: int, tally: _Tally) -> Iterator[Any]:
    if not block:
      return
    assert tally.parser is not None
    typed = arrow_block(block, line, tally.header, tally.parser, self.tokens)
    if typed is None:
      yield from self.parse_records(path, iter_records(bounded_lines(_LimitedReader(
          io.BytesIO(block), len(block), b'\n'))), tally, line - 2)
      return
    tally.records += typed.records - len(typed.by_record)
    if typed.table.num_rows:
      yield from self.emit_block(typed)
    for record_line, raw in typed.by_record:
      yield from self.parse_records(path, iter_records(bounded_lines(io.BytesIO(b'\n' + raw))),
                                    tally, record_line - 2)


class ParseCsvRangeBatchesFn(ParseCsvRangeFn):
  """A ``ByteRange`` -> its good rows as pandas frames of up to ``batch_size`` rows (the spec's
  columns, object dtype, each cell the value ``RowParser`` gives: float, int, str or None), dead
  letters and its ``files`` record, as ``ParseCsvFileFn`` gives them for the same records."""

  def __init__(self, spec: DatasetSpec, batch_size: int, require_label: bool = True,
               require_features: bool = False, block_bytes: int = BLOCK_BYTES):
    super().__init__(spec, require_label, require_features, block_bytes)
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

  def emit_block(self, block: ArrowBlock) -> Iterable[Any]:
    columns = list(self.spec.columns)
    for start in range(0, block.table.num_rows, self.batch_size):
      part = block.table.slice(start, self.batch_size)
      cells = np.empty((part.num_rows, len(columns)), dtype=object)
      for position, name in enumerate(columns):
        cells[:, position] = _object_cells(part.column(name).combine_chunks())
      yield pd.DataFrame(cells, columns=columns)


def _object_cells(column: pa.Array) -> np.ndarray:
  """An Arrow column as Python values, as ``RowParser`` types them (None for a missing cell)."""
  if pa.types.is_floating(column.type) or (pa.types.is_integer(column.type)
                                           and not column.null_count):
    cells = column.to_numpy(zero_copy_only=False).astype(object)
    if column.null_count:
      cells[pc.is_null(column).to_numpy(zero_copy_only=False)] = None
    return cells
  cells = np.empty(len(column), dtype=object)
  cells[:] = column.to_pylist() if not pa.types.is_string(column.type) else column.to_numpy(
      zero_copy_only=False)
  return cells


def _first_record_end(data: bytes) -> int:
  """The end of the first record of ``data`` (after its newline), or ``len(data)``."""
  end = -1
  while True:
    end = data.find(b'\n', end + 1)
    if end < 0:
      return len(data)
    if data.count(b'"', 0, end) % 2 == 0:
      return end + 1


class ReadCsvRanges(beam.PTransform):
  """Pipeline root -> the ``ByteRange``s of the files matching a pattern, parsed by ``parse_fn``
  (a ``ParseCsvRangeFn``) after a ``Reshuffle`` that spreads the ranges over workers."""

  def __init__(self, file_pattern: Patterns, parse_fn: ParseCsvRangeFn, tags: Sequence[str],
               split_bytes: int = SPLIT_BYTES):
    super().__init__()
    self.file_pattern = file_pattern
    self.parse_fn = parse_fn
    self.tags = tuple(tags)
    self.split_bytes = split_bytes

  def expand(self, root):
    return (
        root
        | 'Patterns' >> beam.Create(patterns_of(self.file_pattern))
        | 'MatchFiles' >> fileio.MatchAll()
        | 'SpreadFiles' >> beam.Reshuffle()  # each file's scan for cuts on any worker
        | 'PlanRanges' >> beam.ParDo(PlanRangesFn(self.split_bytes))
        | 'Reshuffle' >> beam.Reshuffle()  # spread ranges over workers
        | 'ParseRanges' >> beam.ParDo(self.parse_fn).with_outputs(*self.tags, main=ROWS))
