"""Feature extraction: hashed split, Parquet per split, dead letter, reconciled counts (real Beam)."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys

import apache_beam as beam
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from beam_pipelines import features, taxi_data
from beam_pipelines.ml import artifacts
from beam_pipelines.ml.spec import from_dict

SPAN_ROWS = 4000
MALFORMED = 10


def _split_table(output, split):
  return pq.read_table(str(output / split))


def _dead_letters(output):
  return [json.loads(line) for shard in sorted((output / artifacts.DEAD_LETTER_DIR).glob('part-*'))
          for line in shard.read_text().splitlines()]


@pytest.fixture(scope='module')
def span(tmp_path_factory):
  """One synthetic span in two CSV files, with malformed rows of every kind."""
  root = tmp_path_factory.mktemp('span')
  taxi_data.write_span(str(root), datetime.date(2026, 11, 2), SPAN_ROWS, seed=3,
                       knobs=taxi_data.Knobs(malformed=MALFORMED), shards=2)
  return str(root / 'span-2026-11-02' / '*.csv')


@pytest.fixture(scope='module')
def two_runs(span, tmp_path_factory):
  """The same span extracted twice: in-memory, then on 2 worker processes."""
  first = tmp_path_factory.mktemp('run1')
  second = tmp_path_factory.mktemp('run2')
  summaries = (
      features.run(['--input', span, '--output', str(first)]),
      features.run(['--input', span, '--output', str(second), '--batch_size', '700',
                    '--direct_running_mode=multi_processing', '--direct_num_workers=2']))
  return (first, second), summaries


@pytest.mark.integration  # the whole pipeline, twice (in memory and 2 processes)
class TestFeatures:

  def test_counts_reconcile(self, two_runs):
    (output, _), (summary, _) = two_runs
    written = {split: _split_table(output, split).num_rows for split in artifacts.SPLITS}
    dead = _dead_letters(output)
    assert summary.rows_read == SPAN_ROWS
    assert summary.rows_written == written
    assert summary.rows_dead_lettered == len(dead) == MALFORMED
    assert summary.rows_read == sum(written.values()) + len(dead)
    assert summary.reconciled is True
    assert sum(f['rows_read'] for f in artifacts.read_summary(str(output))['files']) == SPAN_ROWS

  def test_malformed_rows_are_dead_lettered_with_reasons(self, two_runs):
    (output, _), _ = two_runs
    reasons = [d['reason'] for d in _dead_letters(output)]
    assert sum('wrong column count' in r for r in reasons) == 6  # too few, too many, newline
    assert sum("'twelve dollars' is not a number" in r for r in reasons) == 2
    assert sum("'maybe' is not a binary label" in r for r in reasons) == 2
    multiline = [d for d in _dead_letters(output) if 'Broken\nCab, Inc.' in d['line']]
    assert multiline and all(d['line_number'] > 1 and d['source'].endswith('.csv')
                             for d in multiline)

  def test_split_is_identical_across_runs_and_runner_modes(self, two_runs):
    (first, second), _ = two_runs
    for split in artifacts.SPLITS:
      ids = [sorted(_split_table(out, split).column('trip_id').to_pylist())
             for out in (first, second)]
      assert ids[0] == ids[1] and ids[0]
    eval_share = _split_table(first, artifacts.EVAL).num_rows / (SPAN_ROWS - MALFORMED)
    assert 0.17 < eval_share < 0.23  # the spec's eval_fraction is 0.2

  def test_parquet_schema_follows_the_spec(self, two_runs):
    (output, _), _ = two_runs
    table = _split_table(output, artifacts.TRAIN)
    types = {field.name: str(field.type) for field in table.schema}
    assert types['fare'] == 'double' and types['payment_type'] == 'string'
    assert types['big_tip'] == 'int64' and types['trip_id'] == 'string'
    assert table.column('trip_seconds').null_count > 0  # empty cells are missing values

  def test_rerun_removes_stale_shards(self, span, tmp_path):
    stale = tmp_path / artifacts.TRAIN / 'part-00002-of-00003.parquet'
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b'old')
    features.run(['--input', span, '--output', str(tmp_path)])
    assert not stale.exists()


def test_eval_hash_is_stable():
  """Golden values: the split must not change between processes, runners or versions."""
  assert features.eval_hash('20261101-0000000') == pytest.approx(0.11410437808309606)
  assert features.assign_split('20261101-0000000', 0.2) == artifacts.EVAL
  assert features.assign_split('20261101-0000000', 0.1) == artifacts.TRAIN
  assert features.eval_hash('') == pytest.approx(0.8894159948913374)


class TestExtractFeatures:
  SPEC = from_dict({'label': 'y', 'numeric': ['x'], 'categorical': ['c'], 'eval_fraction': 0.5})

  def test_rows_without_key_split_by_row_hash(self, tmp_path):
    path = tmp_path / 'a.csv'
    path.write_text('x,c,y\n1,"a\nb",1\n2,,0\nbad,c,1\n')
    expected = {}
    for fields, x in ((['1', 'a\nb', '1'], 1.0), (['2', '', '0'], 2.0)):
      split = features.assign_split('\x1f'.join(fields), 0.5)
      expected.setdefault(split, []).append(x)
    with TestPipeline() as pipeline:
      result = pipeline | features.ExtractFeatures(str(path), self.SPEC)
      for split in artifacts.SPLITS:
        assert_that(
            result[split] | f'X{split}' >> beam.FlatMap(lambda t: t.column('x').to_pylist()),
            equal_to(expected.get(split, [])), label=f'Check{split}')
      assert_that(result['dead_letter'] | beam.Map(lambda d: d['line_number']),
                  equal_to([5]), label='CheckDead')  # the quoted newline spans lines 2-3


def test_header_only_file_is_an_empty_dataset(tmp_path):
  source = tmp_path / 'h.csv'
  source.write_text(','.join(taxi_data.COLUMNS) + '\n')
  summary = features.run(['--input', str(source), '--output', str(tmp_path / 'out')])
  assert (summary.rows_read, summary.rows_dead_lettered) == (0, 0)
  assert summary.rows_written == {'train': 0, 'eval': 0}
  table = pq.read_table(str(tmp_path / 'out' / 'train'))
  assert table.num_rows == 0 and 'fare' in table.column_names


def test_bad_spec_is_a_clear_error(tmp_path, capsys):
  spec = tmp_path / 'spec.yaml'
  spec.write_text('label: big_tip\nnumeric: [fare]\neval_fraction: 2\n')
  assert features.main(['--spec', str(spec), '--output', str(tmp_path / 'o')]) == 2
  error = capsys.readouterr().err
  assert 'eval_fraction' in error and str(spec) in error


def test_label_in_no_header_is_a_spec_error_not_dead_letters(tmp_path, capsys):
  spec = tmp_path / 'spec.yaml'
  spec.write_text('label: tipped\nnumeric: [fare]\n')
  assert features.main(['--spec', str(spec), '--output', str(tmp_path / 'o')]) == 2
  error = capsys.readouterr().err
  assert "spec field 'label'" in error and "'tipped'" in error
  assert not (tmp_path / 'o').exists()


def test_missing_input_is_a_clear_error(tmp_path, capsys):
  assert features.main(['--input', str(tmp_path / 'none*.csv'),
                        '--output', str(tmp_path / 'o')]) == 2
  assert 'no file matches' in capsys.readouterr().err


@pytest.mark.integration
class TestFeaturesCli:

  def _cli(self, *args):
    done = subprocess.run([sys.executable, '-m', 'beam_pipelines.features', *map(str, args)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stderr

  def test_bundled_sample(self, tmp_path):
    log = self._cli('--output', tmp_path)
    assert 'features: reading 1 file(s)' in log and 'taxi_sample.csv' in log
    assert 'features: done: 3,000 rows read from 1 file(s) =' in log
    assert '+ 5 dead-lettered' in log and str(tmp_path) in log
    summary = json.loads((tmp_path / artifacts.SUMMARY_FILE).read_text())
    assert summary['reconciled'] and summary['rows_dead_lettered'] == 5

  def test_user_csv_and_spec(self, tmp_path):
    (tmp_path / 'iris.csv').write_text(
        'sepal,petal,colour,is_big\n5.1,1.4,"red, dark",1\n4.9,,blue,0\n6.2,4.3,"multi\nline",1\n')
    (tmp_path / 'spec.json').write_text(json.dumps(
        {'label': 'is_big', 'categorical': ['colour'], 'numeric': 'all'}))
    log = self._cli('--input', tmp_path / 'iris.csv', '--spec', tmp_path / 'spec.json',
                    '--output', tmp_path / 'out')
    assert '3 rows read from 1 file(s)' in log and '+ 0 dead-lettered' in log
    table = pq.read_table(str(tmp_path / 'out' / 'train')).to_pylist() + pq.read_table(
        str(tmp_path / 'out' / 'eval')).to_pylist()
    assert sorted(table, key=lambda r: r['sepal']) == [
        {'sepal': 4.9, 'petal': None, 'colour': 'blue', 'is_big': 0},
        {'sepal': 5.1, 'petal': 1.4, 'colour': 'red, dark', 'is_big': 1},
        {'sepal': 6.2, 'petal': 4.3, 'colour': 'multi\nline', 'is_big': 1}]

  def test_help_answers_without_beam(self):
    done = subprocess.run([sys.executable, '-X', 'importtime', '-m', 'beam_pipelines.features',
                           '--help'], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and '--spec' in done.stdout
    assert 'apache_beam' not in done.stderr


TIME_SPEC = {'label': 'y', 'key': 'id', 'timestamp': 'ts', 'numeric': ['x'],
             'split': {'by': 'time', 'eval_fraction': 0.25}}


class TestTimeSplit:
  """``split: time``: the eval split is the latest rows by the timestamp (after the cutoff, the
  timestamp at the 1 - eval_fraction quantile); untimed rows train; unreadable ones dead-letter."""

  def test_rows_after_the_cutoff_go_to_eval(self, tmp_path):
    lines = ['id,ts,x,y']
    # 12 timed rows out of order (hours 0..11 of one day, ISO with and without a zone), one
    # without a timestamp, one unreadable, and one as seconds since the epoch (hour 12).
    for hour in (5, 11, 0, 7, 3, 9, 1, 10, 2, 8, 4, 6):
      stamp = f'2026-03-01T{hour:02d}:00:00' + ('+00:00' if hour % 2 else '')
      lines.append(f'r{hour},{stamp},{hour},1')
    epoch = datetime.datetime(2026, 3, 1, 12, tzinfo=datetime.timezone.utc).timestamp()
    lines += ['untimed,,99,0', 'bad,yesterday,98,0', f'epoch,{epoch:.0f},12,1']
    path = tmp_path / 'a.csv'
    path.write_text('\n'.join(lines) + '\n')
    spec = from_dict(TIME_SPEC)
    with TestPipeline() as pipeline:
      result = pipeline | features.ExtractFeatures(str(path), spec)
      for split, expected in ((artifacts.EVAL, [10.0, 11.0, 12.0]),
                              (artifacts.TRAIN, [float(h) for h in range(10)] + [99.0])):
        assert_that(
            result[split] | f'X{split}' >> beam.FlatMap(lambda t: t.column('x').to_pylist()),
            equal_to(expected), label=f'Check{split}')
      assert_that(result['dead_letter'] | beam.Map(lambda d: d['reason']),
                  equal_to(["column 'ts' (the timestamp): 'yesterday' is not a time (ISO 8601 "
                            "or a number)"]), label='CheckDead')
      assert_that(result[features.SPLIT] | beam.Map(
          lambda s: (s['cutoff_utc'], s['rows_timed'], s['rows_without_timestamp'])),
          equal_to([('2026-03-01T09:00:00+00:00', 13, 1)]), label='CheckCutoff')

  def test_timestamps_read_as_the_spec_types_them(self):
    assert features.timestamp_seconds(None) is None
    assert features.timestamp_seconds('1767225600') == 1767225600.0
    assert features.timestamp_seconds('2026-01-01') == 1767225600.0
    assert features.timestamp_seconds('2026-01-01 02:00:00+02:00') == 1767225600.0
    assert features.timestamp_seconds('2026-01-01T00:00:00Z') == 1767225600.0
    with pytest.raises(ValueError, match="'nan' is not a time"):
      features.timestamp_seconds('nan', 'ts')

  def test_no_timed_row_puts_every_row_in_train(self):
    split = features.make_time_split([], 3, 0, from_dict(TIME_SPEC))
    assert (split['cutoff'], split['rows_without_timestamp']) == (None, 3)


@pytest.mark.integration
def test_a_time_split_run_evaluates_on_exactly_the_latest_rows(tmp_path):
  """End to end: 400 trips written in shuffled order across two files; the eval split holds
  exactly the latest 20% by trip_start_timestamp, and summary.json records the rule and cutoff."""
  import numpy as np
  import pandas as pd
  rng = np.random.default_rng(5)
  stamps = pd.date_range('2026-05-01', periods=400, freq='17min')
  frame = pd.DataFrame({
      'trip_id': [f't{i:04d}' for i in range(400)],
      'trip_start_timestamp': stamps.strftime('%Y-%m-%d %H:%M:%S'),
      'fare': rng.gamma(2, 5, 400).round(2), 'payment_type': rng.choice(['Cash', 'Card'], 400),
      'big_tip': rng.integers(0, 2, 400)}).sample(frac=1, random_state=6)
  (tmp_path / 'in').mkdir()
  for index, part in enumerate(np.array_split(frame, 2)):
    part.to_csv(tmp_path / 'in' / f'part{index}.csv', index=False)
  spec = tmp_path / 'spec.yaml'
  spec.write_text('label: big_tip\nkey: trip_id\ntimestamp: trip_start_timestamp\n'
                  'numeric: [fare]\ncategorical: [payment_type]\nsplit: time\n')
  result = features.run(['--input', str(tmp_path / 'in' / '*.csv'), '--spec', str(spec),
                         '--output', str(tmp_path / 'out')])
  assert result.rows_written == {artifacts.TRAIN: 320, artifacts.EVAL: 80}
  latest = sorted(frame.sort_values('trip_start_timestamp')['trip_id'][-80:])
  assert sorted(_split_table(tmp_path / 'out', artifacts.EVAL).column('trip_id').to_pylist()
                ) == latest
  summary = artifacts.read_summary(str(tmp_path / 'out'))
  cutoff = stamps[319].tz_localize('UTC')
  assert summary['split'] == {
      'by': 'time', 'timestamp': 'trip_start_timestamp', 'eval_fraction': 0.2,
      'cutoff': cutoff.timestamp(), 'cutoff_utc': cutoff.isoformat(), 'rows_timed': 400,
      'rows_without_timestamp': 0}
  assert summary['spec']['split'] == 'time'


HOSTILE_HEADER = 'id,x,c,y,extra\n'
HOSTILE = {  # name -> bytes: every CSV oddity the readers meet, each in its own file
    'clean.csv': HOSTILE_HEADER + 'a,1.5,red,1,e\nb,,,0,\nc, 2 ,  ,true,\nd,1e-3,x y,no,z\n',
    'quoted_newlines.csv': HOSTILE_HEADER + 'a,1,"two\nlines, comma",0,\nb,2,"x, y",1,"q\n"\n'
                           'c,3,"",0,""\n',
    'ragged.csv': HOSTILE_HEADER + 'a,1,red\nb,2,red,0,,,\nc,3,"multi\nline",1,1,1\nd,4,ok,1,\n',
    'bad_utf8.csv': (HOSTILE_HEADER + 'a,1,r\xe9d,1,\n').encode() + b'b,2,\xff\xfe,0,\n'
                    b'c,3,ok,1,\xff\nd,4,ok,0,\n',
    'empty_cells.csv': HOSTILE_HEADER + ',,,,\na,,,1,\nb, ,\t,0,\nc,\xa0,\u2003,1,\n',
    'bom_crlf.csv': ('\ufeff' + HOSTILE_HEADER + 'a,1,red,1,\nb,2,"x\r\ny",0,\n').replace(
        '\n', '\r\n').replace('\r\r\n', '\r\n'),
    'lone_cr.csv': HOSTILE_HEADER + 'a,1,red\r,1,\nb,2,blue,0,\n',
    'huge_fields.csv': HOSTILE_HEADER + 'a,1,' + 'r' * 1500 + ',1,\nb,2,"' + 's' * 3000
                       + '",0,\nc,3,ok,1,\n',
    'header_only.csv': HOSTILE_HEADER,
    'empty.csv': '',
    'missing_feature.csv': 'id,y,x\na,1,2\nb,0,\n',
    'missing_label.csv': 'id,x,c\na,1,red\n',
    'repeated_column.csv': 'id,x,x,c,y\na,1,2,red,1\n',
    'numbers.csv': HOSTILE_HEADER + 'a,+4,r,1,\nb,1_000,r,0,\nc,nan,r,1,\nd,inf,r,1,\ne,1e400,r,0,\n'
                   'f,0x10,r,1,\ng,.5,r,1,\nh,2.,r,0,\ni,-0,r,1,\nj,0.30000000000000004,r,0,\n',
    'labels.csv': HOSTILE_HEADER + 'a,1,r, 1 ,\nb,1,r,TRUE,\nc,1,r,maybe,\nd,1,r,,\ne,1,r,Y,\n',
    'doubled_quotes.csv': HOSTILE_HEADER + 'a,1,"say ""hi""",1,\nb,2,red,0,\n',
    'stray_quote.csv': HOSTILE_HEADER + 'a,1,re"d,1,\nb,2,"x"y,0,\nc,3,blue,1,\n',
    'unterminated.csv': HOSTILE_HEADER + 'a,1,red,1,\nb,2,"open,0,\nc,3,x,1,\n',
    'blank_lines.csv': HOSTILE_HEADER + '\na,1,red,1,\n\r\n\nb,2,blue,0,\n \n',
    'no_final_newline.csv': HOSTILE_HEADER + 'a,1,red,1,\nb,2,"blue\nsky",0,',
    'leading_blank.csv': '\n' + HOSTILE_HEADER + 'a,1,red,1,\n',
    'nul.csv': HOSTILE_HEADER + 'a,1,r\0d,1,\nb,2,x,0,\n',
}
HOSTILE_SPECS = {
    'key': from_dict({'label': 'y', 'key': 'id', 'numeric': ['x'], 'categorical': ['c'],
                      'eval_fraction': 0.5}),
    'no_key': from_dict({'label': 'y', 'numeric': ['x'], 'categorical': ['c'],
                         'eval_fraction': 0.5}),
}


def _extract(pattern, spec, output, **options):
  with TestPipeline() as pipeline:
    features.build_pipeline(pipeline, pattern, spec, str(output), batch_size=3, **options)
  tables = {}
  for split in artifacts.SPLITS:
    rows = [row for shard in sorted((output / split).glob('part-*'))
            for row in pq.read_table(str(shard)).to_pylist()]
    tables[split] = sorted(rows, key=lambda row: json.dumps(row, sort_keys=True))
  dead = sorted(line for shard in (output / artifacts.DEAD_LETTER_DIR).glob('part-*')
                for line in shard.read_text().splitlines())
  summary = artifacts.read_summary(str(output))
  return tables, dead, {k: v for k, v in summary.items() if k != 'output'}


@pytest.mark.parametrize('spec_name', sorted(HOSTILE_SPECS))
def test_the_arrow_path_gives_the_rows_and_dead_letters_of_the_row_path(
    tmp_path, monkeypatch, spec_name):
  """Every hostile CSV, read by Arrow in byte ranges (whole files, then ranges of a few records
  and blocks of a few bytes) gives the Parquet rows, dead letters and counts of the row path."""
  monkeypatch.setenv('BEAM_PIPELINES_MAX_RECORD_BYTES', '2000')
  data = tmp_path / 'in'
  data.mkdir()
  for name, text in HOSTILE.items():
    (data / name).write_bytes(text.encode() if isinstance(text, str) else text)
  pattern, spec = str(data / '*.csv'), HOSTILE_SPECS[spec_name]
  reference = _extract(pattern, spec, tmp_path / 'rows', row_path=True)
  assert sum(len(rows) for rows in reference[0].values()) > 40 and len(reference[1]) > 15
  for label, options in (('whole', {}), ('ranges', {'split_bytes': 20, 'block_bytes': 16})):
    tables, dead, summary = _extract(pattern, spec, tmp_path / label, **options)
    assert tables == reference[0], label
    assert dead == reference[1], label
    assert summary == reference[2], label


def test_eval_hashes_of_an_arrow_column_equal_eval_hash_of_each_key():
  """The column-wise split hash (from Arrow's buffers) is the row path's, key by key, for any
  text, for a slice of a column and for a chunked column."""
  import pyarrow as pa
  keys = ['', 'a', 'trip-000001', 'Zürich ☕', 'x' * 300] + [f'{i:016x}' for i in range(500)]
  expected = [features.eval_hash(key) for key in keys]
  assert features.eval_hashes(pa.array(keys)).tolist() == expected
  assert features.eval_hashes(pa.array(keys).slice(3, 100)).tolist() == expected[3:103]
  chunked = pa.chunked_array([pa.array(keys[:7]), pa.array(keys[7:])])
  assert features.eval_hashes(chunked).tolist() == expected
