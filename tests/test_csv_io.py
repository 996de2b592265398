"""Unit tests of the CSV reader: typing, quoting, dead letters, headers (real Beam, real files)."""

from __future__ import annotations

import gzip
import json
import math
import pathlib
import tempfile

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from beam_pipelines.ml import csv_io, input_schema
from beam_pipelines.ml.spec import SpecError, from_dict

SPEC = from_dict({'label': 'y', 'key': 'id', 'numeric': ['x'], 'categorical': ['c']})
HEADER = 'id,x,c,y\n'


def _write(tmp_path, name, text, encoding='utf-8'):
  path = tmp_path / name
  path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
  return str(path)


def _read(pattern, spec=SPEC, require_label=True, batch_size=0, require_features=False,
          **ranges):
  """Runs ReadCsvRows; returns (rows, dead letters, files) as lists, read back from JSON files
  (with ``batch_size``, the rows of each frame)."""
  out = pathlib.Path(tempfile.mkdtemp())
  with TestPipeline() as pipeline:
    parsed = pipeline | csv_io.ReadCsvRows(pattern, spec, require_label, require_features,
                                           batch_size=batch_size, **ranges)
    result = {tag: parsed[tag] for tag in (csv_io.DEAD_LETTER, csv_io.FILES)}
    result[csv_io.ROWS] = parsed[csv_io.ROWS] | 'FrameRows' >> beam.FlatMap(
        lambda frame: frame.to_dict('records')) if batch_size else parsed[csv_io.ROWS]
    for tag in (csv_io.ROWS, csv_io.DEAD_LETTER, csv_io.FILES):
      _ = (result[tag] | f'Json{tag}' >> beam.Map(json.dumps)
           | f'Write{tag}' >> beam.io.WriteToText(str(out / tag)))
  return tuple([json.loads(line) for shard in sorted(out.glob(f'{tag}-*'))
                for line in shard.read_text().splitlines()]
               for tag in (csv_io.ROWS, csv_io.DEAD_LETTER, csv_io.FILES))


class TestReadCsvRows:
  TYPED = HEADER + 'a,1.5,red,1\nb,,,0\nc,2,"blue, dark",true\n'
  EXPECTED = [
      {'id': 'a', 'x': 1.5, 'c': 'red', 'y': 1},
      {'id': 'b', 'x': None, 'c': None, 'y': 0},
      {'id': 'c', 'x': 2.0, 'c': 'blue, dark', 'y': 1},
  ]

  def test_types_values_and_empty_cells_are_missing(self, tmp_path):
    path = _write(tmp_path, 'a.csv', self.TYPED)
    with TestPipeline() as pipeline:
      result = pipeline | csv_io.ReadCsvRows(path, SPEC)
      assert_that(result.rows, equal_to(self.EXPECTED), label='Rows')
      assert_that(result[csv_io.DEAD_LETTER], equal_to([]), label='NoDeadLetter')

  def test_quoted_newline_and_line_numbers(self, tmp_path):
    text = HEADER + 'a,1,"two\nlines, and comma",0\nb,x,red,1\n'
    path = _write(tmp_path, 'q.csv', text)
    rows, dead, _ = _read(path)
    assert rows == [{'id': 'a', 'x': 1.0, 'c': 'two\nlines, and comma', 'y': 0}]
    assert dead == [{'source': path, 'line_number': 4, 'line': 'b,x,red,1',
                     'reason': "column 'x': 'x' is not a number"}]

  def test_malformed_rows_are_dead_lettered_with_reasons(self, tmp_path):
    text = (HEADER + 'a,1,red\n'           # line 2: too few fields
            'b,1,red,1,extra\n'            # line 3: too many
            'c,1,red,maybe\n'              # line 4: bad label
            'd,1,red,\n'                   # line 5: empty label
            ',1,red,1\n'                   # line 6: empty key
            'e,inf,red,1\n'                # line 7: not finite
            'f,1,"multi\nline, comma",1,1\n'  # lines 8-9: quoted comma+newline, wrong count
            '"h"x,1,red,1\n'                # line 10: CSV syntax error
            'g,3,ok,0\n')                  # line 11: good
    path = _write(tmp_path, 'm.csv', text)
    rows, dead, files = _read(path)
    assert rows == [{'id': 'g', 'x': 3.0, 'c': 'ok', 'y': 0}]
    reasons = {d['line_number']: d['reason'] for d in dead}
    assert sorted(reasons) == [2, 3, 4, 5, 6, 7, 8, 10]
    assert 'expected 4 fields' in reasons[2] and 'got 3' in reasons[2]
    assert 'got 5' in reasons[3]
    assert "'maybe' is not a binary label" in reasons[4]
    assert 'the label' in reasons[5] and 'empty' in reasons[5]
    assert 'the key' in reasons[6]
    assert 'not a finite number' in reasons[7]
    assert [d['line'] for d in dead if d['line_number'] == 8] == ['f,1,"multi\nline, comma",1,1']
    assert 'CSV syntax error' in reasons[10]
    assert files[0]['rows_read'] == len(rows) + len(dead) == 9

  def test_header_only_file_is_an_empty_dataset(self, tmp_path):
    path = _write(tmp_path, 'h.csv', HEADER)
    empty = _write(tmp_path, 'e.csv', '')
    assert _read(path)[:2] == ([], [])
    rows, dead, files = _read(str(tmp_path / '*.csv'))
    assert (rows, dead) == ([], [])
    assert sorted(f['rows_read'] for f in files) == [0, 0]
    assert empty in {f['source'] for f in files}

  def test_header_lacking_the_label_dead_letters_every_row(self, tmp_path):
    path = _write(tmp_path, 'n.csv', 'id,x,c\na,1,red\nb,2,blue\n')
    rows, dead, _ = _read(path)
    assert rows == []
    assert [d['line_number'] for d in dead] == [2, 3]
    assert all("header mismatch" in d['reason'] and "'y'" in d['reason'] for d in dead)

  def test_header_lacking_a_feature_keeps_rows_and_names_the_column(self, tmp_path):
    path = _write(tmp_path, 'd.csv', 'y,x,id,new\n1,2,a,z\n')
    rows, dead, files = _read(path)
    assert rows == [{'id': 'a', 'x': 2.0, 'c': None, 'y': 1}]
    assert dead == []
    assert files[0]['missing_columns'] == ['c'] and files[0]['extra_columns'] == ['new']

  def test_no_label_needed_for_inference(self, tmp_path):
    path = _write(tmp_path, 'p.csv', 'id,x,c\na,1,red\n')
    rows, dead, _ = _read(path, require_label=False)
    assert rows == [{'id': 'a', 'x': 1.0, 'c': 'red', 'y': None}] and dead == []

  def test_bom_crlf_gzip_and_bad_utf8(self, tmp_path):
    text = '\ufeff' + HEADER.replace('\n', '\r\n') + 'a,1,red,1\r\n'
    _write(tmp_path, 'w.csv', text)
    (tmp_path / 'z.csv.gz').write_bytes(gzip.compress((HEADER + 'b,2,blue,0\n').encode()))
    _write(tmp_path, 'u.csv', (HEADER + 'c,3,').encode() + b'\xff\xfe' + b',1\n')
    rows, dead, _ = _read(str(tmp_path / '*'))
    assert sorted(r['id'] for r in rows) == ['a', 'b']
    assert len(dead) == 1 and 'invalid UTF-8' in dead[0]['reason']
    json.dumps(dead[0])  # the raw line stays JSON-serialisable

  def test_all_columns_resolved_from_the_header(self, tmp_path):
    path = _write(tmp_path, 'a.csv', 'y,p,q\n1,2,3\n')
    spec = from_dict({'label': 'y', 'numeric': 'all'})
    rows, _, _ = _read(path, spec)
    assert rows == [{'p': 2.0, 'q': 3.0, 'y': 1}]

  def test_no_matching_file_is_a_clear_error(self, tmp_path):
    with pytest.raises(FileNotFoundError, match='no file matches'):
      csv_io.read_header(str(tmp_path / 'none-*.csv'))

  def test_spec_with_a_column_missing_from_the_header_is_a_clear_error(self, tmp_path):
    path = _write(tmp_path, 'a.csv', 'y,p\n1,2\n')
    with pytest.raises(SpecError, match="'label'.*'nope'"):
      csv_io.ReadCsvRows(path, from_dict({'label': 'nope', 'numeric': 'all'}))


def test_read_header_reads_a_quoted_header(tmp_path):
  path = _write(tmp_path, 'a.csv', '"a,b",c\n1,2\n')
  assert csv_io.read_header(path) == ['a,b', 'c']


def test_write_dead_letter_writes_json_lines(tmp_path):
  records = [csv_io.dead_letter_record('s', 2, 'l', 'r')]
  with TestPipeline() as pipeline:
    _ = pipeline | beam.Create(records) | csv_io.WriteDeadLetter(str(tmp_path / 'dl'))
  shards = list((tmp_path / 'dl').glob('part-*.jsonl'))
  assert len(shards) == 1
  assert [json.loads(line) for line in shards[0].read_text().splitlines()] == records


class TestScoringReadsEveryModelColumn:
  """Scoring (require_features=True): a file lacking a model's column is never imputed."""

  SCHEMA = input_schema.from_columns(['x'], ['c'], 'y')
  FULL = HEADER + 'a,1.5,red,1\nb,,,0\n'
  LACKS_C = 'id,x,y\nc,2.5,1\nd,3.5,0\n'

  def test_a_header_lacking_a_model_column_dead_letters_every_row_of_its_file(self, tmp_path):
    _write(tmp_path, 'full.csv', self.FULL)
    lacking = _write(tmp_path, 'lacks_c.csv', self.LACKS_C)
    spec = self.SCHEMA.parsing_spec()
    with TestPipeline() as pipeline:
      result = pipeline | csv_io.ReadCsvRows(str(tmp_path / '*.csv'), spec, require_features=True)
      assert_that(result.rows, equal_to([{'x': 1.5, 'c': 'red', 'y': 1},
                                         {'x': None, 'c': None, 'y': 0}]), label='Rows')
      dead = result[csv_io.DEAD_LETTER] | beam.Map(
          lambda d: (d['source'], d['line_number'], "lacks column(s) ['c']" in d['reason']))
      assert_that(dead, equal_to([(lacking, 2, True), (lacking, 3, True)]), label='DeadLetter')

  def test_without_it_the_column_is_missing_in_every_row(self, tmp_path):
    path = _write(tmp_path, 'lacks_c.csv', self.LACKS_C)
    rows, dead, _ = _read(path, self.SCHEMA.parsing_spec())
    assert [row['c'] for row in rows] == [None, None] and dead == []

  def test_check_input_columns_names_the_file_and_the_columns(self, tmp_path):
    full = _write(tmp_path, 'full.csv', self.FULL)
    lacking = _write(tmp_path, 'lacks_c.csv', self.LACKS_C)
    csv_io.check_input_columns([full], self.SCHEMA)
    with pytest.raises(input_schema.InputSchemaError,
                       match=rf"input file {lacking} lacks column\(s\) \['c'\] that the model"):
      csv_io.check_input_columns([full, lacking], self.SCHEMA)
    no_label = _write(tmp_path, 'no_label.csv', 'x,c\n1,red\n')
    csv_io.check_input_columns([no_label], self.SCHEMA, require_label=False)
    with pytest.raises(input_schema.InputSchemaError, match=r"lacks column\(s\) \['y'\]"):
      csv_io.check_input_columns([no_label], self.SCHEMA)


class TestFramesAreTheRowsOfTheRowParser:
  """Frames (Arrow's tokeniser on clean files, the record parser otherwise) hold exactly the rows
  of the record-by-record parser, with the same dead letters and file records."""

  FILES = {
      'clean.csv': HEADER + 'a,1.5,red,1\nb,,,0\nc, 2 ,  ,true\nd,1e-3,x y,no\n\ne,0.1,z,1\n',
      'crlf.csv': (HEADER + 'a,0.30000000000000004,red,1\nb,123456789.123456789,,0\n').replace(
          '\n', '\r\n'),
      'quoted.csv': HEADER + 'a,1,"two\nlines",0\nb,2,"x, y",1\n',
      'bad_number.csv': HEADER + 'a,1,red,1\nb,nan,red,0\nc,x,red,1\n',
      'bad_label.csv': HEADER + 'a,1,red,maybe\nb,2,red,0\n',
      'short_row.csv': HEADER + 'a,1,red\nb,2,red,0\n',
      'empty_key.csv': HEADER + ' ,1,red,1\nb,2,red,0\n',
      'header_only.csv': HEADER,
      'lone_cr.csv': HEADER + 'a,1,red\r,1\n',
  }

  @pytest.mark.parametrize('name', sorted(FILES))
  def test_same_rows_dead_letters_and_files(self, tmp_path, name):
    path = _write(tmp_path, name, self.FILES[name])
    by_record = _read(path)
    key = lambda r: json.dumps(r, sort_keys=True)  # noqa: E731
    for ranges in ({}, {'split_bytes': 9, 'block_bytes': 8}):  # whole file; ranges of a few records
      by_frame = _read(path, batch_size=2, **ranges)
      assert sorted(by_frame[0], key=key) == sorted(by_record[0], key=key), ranges
      assert by_frame[1] == by_record[1], ranges
      assert csv_io.merge_file_records(by_frame[2]) == by_record[2], ranges

  def test_frames_hold_the_python_values_of_row_dicts(self, tmp_path):
    path = _write(tmp_path, 'clean.csv', self.FILES['clean.csv'])
    rows = _read(path, batch_size=2)[0]
    assert {type(row[c]).__name__ for row in rows for c in ('x', 'y') if row[c] is not None} == {
        'float', 'int'}
    assert {'id': 'b', 'x': None, 'c': None, 'y': 0} in rows

  def test_a_feature_missing_from_the_header_dead_letters_every_record_when_required(
      self, tmp_path):
    path = _write(tmp_path, 'no_c.csv', 'id,x,y\na,1,1\nb,2,0\n')
    for batch_size in (0, 2):
      rows, dead, _ = _read(path, require_features=True, batch_size=batch_size)
      assert rows == [] and [d['line_number'] for d in dead] == [2, 3], batch_size

  def test_a_record_over_the_maximum_is_left_to_the_record_parser(self, tmp_path, monkeypatch):
    monkeypatch.setenv(csv_io.MAX_RECORD_ENV_VAR, '64')
    text = HEADER + 'a,1,red,1\nb,2,' + 'r' * 100 + ',0\n'
    path = _write(tmp_path, 'long.csv', text)
    by_record, by_frame = _read(path), _read(path, batch_size=2)
    assert by_frame == by_record and len(by_record[1]) == 1  # one dead letter, the long record


def test_arrow_cast_numbers_equal_pythons_float_and_other_cells_are_read_by_float():
  import pyarrow as pa
  texts = ['0.1', '1e-7', '123456789.123456789', '-0', '.5', '2.', '007', '', '2.2250738585072014e-308',
           '0.30000000000000004', '1e22', '9007199254740993', '-1.7976931348623157e308']
  values, refused = csv_io._typed_numbers(pa.array(texts))
  assert refused is None or not refused.any()
  assert [v if v is None else float.hex(v) for v in values.to_pylist()] == [
      None if t == '' else float.hex(float(t)) for t in texts]
  values, refused = csv_io._typed_numbers(pa.array([' 3', '1_000', '+4', 'x', ' ']))
  assert values.to_pylist() == [3.0, 1000.0, 4.0, None, None]  # what float() reads, cell by cell
  assert refused.tolist() == [False, False, False, True, False]  # a blank cell is a missing value
  _, refused = csv_io._typed_numbers(pa.array(['1', 'inf']))
  assert refused.tolist() == [False, True]  # not finite: the record parser refuses it


def _reference_cuts(data: bytes, split_bytes: int):
  """The cuts ``plan_ranges`` must give for well-formed quoting: walking byte by byte, the first
  newline outside quotes at or after each of the ``n - 1`` equal shares' starts, ``n`` the fewest
  ranges of at most ``split_bytes`` (with the line number after it)."""
  shares = math.ceil(len(data) / split_bytes)
  starts = [k * len(data) / shares for k in range(1, shares)]
  cuts, inside, line = [(0, 1)], False, 1
  for offset, byte in enumerate(data):
    if byte == ord('"'):
      inside = not inside
    elif byte == ord('\n'):
      line += 1
      cut = offset + 1
      if not inside and starts and cut >= starts[0] and cut < len(data):
        cuts.append((cut, line))
        starts = [start for start in starts if start > cut]
  return cuts


@pytest.mark.parametrize('scan_bytes', [7, 64, 1 << 20])
@pytest.mark.parametrize('split_bytes', [1, 30, 200])
def test_plan_ranges_cuts_at_the_newlines_outside_quotes(tmp_path, scan_bytes, split_bytes):
  """Ranges start at the first record boundary after every ``split_bytes`` (a quoted newline is
  never one), whatever the scan's chunk size, and cover the file without gaps."""
  records = [HEADER]
  for i in range(120):
    cell = f'"line {i}\nstill {i}, quoted"' if i % 3 == 0 else f'plain{i}'
    records.append(f'k{i},{i * 0.5},{cell},{i % 2}\n')
  data = ''.join(records).encode()
  path = _write(tmp_path, 'quoted.csv', data)
  ranges = csv_io.plan_ranges(path, len(data), split_bytes, scan_bytes)
  assert [(r.start, r.line) for r in ranges] == _reference_cuts(data, split_bytes)
  assert all(r.arrow for r in ranges)
  assert [r.end for r in ranges[:-1]] == [r.start for r in ranges[1:]]
  assert ranges[-1].end == len(data)
  if split_bytes == 200:  # ranges of equal shares: within one record of each other
    sizes = [r.end - r.start for r in ranges]
    assert max(sizes) - min(sizes) <= 2 * max(len(record) for record in records)


def test_plan_ranges_parses_from_a_stray_quote_on_record_by_record(tmp_path):
  """A quote inside a field makes the rest of the file one range, parsed record by record."""
  good = ''.join(f'k{i},{i},c{i},1\n' for i in range(50))
  data = (HEADER + good + 'k50,1,ab"c,1\n' + good).encode()
  path = _write(tmp_path, 'stray.csv', data)
  ranges = csv_io.plan_ranges(path, len(data), 40, 16)
  stray = data.index(b'ab"c')
  assert all(r.arrow and r.end <= stray + 1 for r in ranges[:-1])
  assert not ranges[-1].arrow and ranges[-1].start <= stray < ranges[-1].end == len(data)
