"""A user on a bad day: huge lines, odd bucket paths, garbled locks, dead writers' temp files, an
unreachable bucket, mistyped flags. Each is handled in bounded time, or refused in one line with
an exit status, never a traceback."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from beam_pipelines import runtime
from beam_pipelines.ml import csv_io
from beam_pipelines.store import bucket
from beam_pipelines.store.errors import LockedError, StorageError
from beam_pipelines.store.lock import BucketLock, holder_of, unlock

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def dead_pid() -> int:
  """The pid of a process that has exited (and been reaped)."""
  child = subprocess.Popen(['true'])
  child.wait()
  return child.pid


def records_of(data: bytes, **kwargs):
  return list(csv_io.iter_records(csv_io.bounded_lines(io.BytesIO(data), **kwargs)))


class TestBoundedRecords:

  def test_a_50_mb_line_is_one_dead_record_in_linear_time(self):
    data = b'a,b,y\n1,2,0\n' + b'9,' * 25_000_000 + b'1\n3,4,1\n'
    started = time.monotonic()
    records = records_of(data)
    assert time.monotonic() - started < 10
    assert [fields for _, _, fields, _ in records] == [['a', 'b', 'y'], ['1', '2', '0'], None,
                                                       ['3', '4', '1']]
    number, preview, _, error = records[2]
    assert number == 3 and len(preview) <= csv_io.PREVIEW_CHARS + 1
    assert error == ('record of 50000002 characters exceeds the maximum of 1048576 '
                     '($BEAM_PIPELINES_MAX_RECORD_BYTES)')

  def test_the_maximum_is_configurable(self, monkeypatch):
    monkeypatch.setenv(csv_io.MAX_RECORD_ENV_VAR, '10')
    records = records_of(b'a,b\n1,2\n' + b'x' * 11 + b'\n3,4\n')
    assert [e for _, _, _, e in records] == [
        None, None, 'record of 12 characters exceeds the maximum of 10 '
                    '($BEAM_PIPELINES_MAX_RECORD_BYTES)', None]


class TestCounts:

  @pytest.mark.parametrize('text', ['-3', '٣', '³', '1.5', '', 'x'])
  def test_only_ascii_whole_numbers_at_or_above_the_minimum(self, text):
    with pytest.raises(Exception, match='expected a whole number >= 0'):
      runtime.count(0)(text)

  def test_a_valid_count(self):
    assert runtime.count(1)('12') == 12


class TestOddPaths:

  def test_glob_characters_in_a_bucket_path_are_literal(self, tmp_path):
    root = tmp_path / 'runs[1]' / 'b*?'
    bucket.write_bytes(str(root / 'a.json'), b'{}')
    bucket.write_bytes(str(root / 'sub' / 'c.json'), b'{"c": 1}')
    assert bucket.list_files(str(root)) == [str(root / 'a.json')]
    assert bucket.list_tree(str(root)) == [str(root / 'a.json'), str(root / 'sub' / 'c.json')]
    assert bucket.size(str(root / 'sub' / 'c.json')) == 8
    bucket.verify(str(root / 'a.json'), bucket.sha256_bytes(b'{}'))

  def test_temp_files_of_dead_writers_are_removed_and_live_ones_kept(self, tmp_path):
    dead, live = dead_pid(), os.getpid()
    stale = [tmp_path / f'.beam-pipelines-tmp-{dead}-0a1b2c3d4e5f6a7b',
             tmp_path / 'sub' / f'.beam-pipelines-tmp-{dead}-00000000ffffffff',
             tmp_path / f'.beam-pipelines-tmp-{dead}-0123456789abcdef.site']
    kept = [tmp_path / f'.beam-pipelines-tmp-{live}-0a1b2c3d4e5f6a7b', tmp_path / 'variables.json',
            tmp_path / 'notes.tmp-old']
    for path in stale + kept:
      path.parent.mkdir(parents=True, exist_ok=True)
      if path.name.endswith('.site'):
        (path / 'beam_pipelines').mkdir(parents=True)
      else:
        path.write_text('x')
    removed = bucket.remove_stale_temps(str(tmp_path), 'test')
    assert sorted(removed) == sorted(str(p) for p in stale)
    assert not any(p.exists() for p in stale) and all(p.exists() for p in kept)

  def test_user_files_that_look_like_temp_names_are_never_removed(self, tmp_path):
    dead = dead_pid()
    folder = tmp_path / 'landing' / f'site-{dead}-east'
    folder.mkdir(parents=True)
    (folder / 'data.csv').write_text('a\n1\n')
    users = [folder, folder / 'data.csv', tmp_path / f'notes.tmp-{dead}-v2',
             tmp_path / f'.create-{dead}-draft', tmp_path / f'.fetch-{dead}-x1y2',
             tmp_path / f'variables.json.tmp-{dead}-0a1b2c3d',
             tmp_path / f'.beam-pipelines-tmp-{dead}-0a1b2c3d',  # too short a token
             tmp_path / f'.beam-pipelines-tmp-{dead}-0a1b2c3d4e5f6a7b.txt']
    for path in users[2:]:
      path.write_text('mine')
    dir_named_as_file = tmp_path / f'.beam-pipelines-tmp-{dead}-0a1b2c3d4e5f6a7b'
    (dir_named_as_file / 'keep').mkdir(parents=True)  # only a '.site' name is a staging folder
    assert bucket.remove_stale_temps(str(tmp_path), 'test') == []
    assert all(p.exists() for p in users + [dir_named_as_file / 'keep'])
    assert bucket.list_files(str(tmp_path)) == sorted(str(p) for p in users[2:])

  def test_the_writers_leave_only_their_own_temp_names(self, tmp_path):
    for name in (bucket.temp_name(), bucket.temp_name(directory=True)):
      assert bucket.is_temp_name(name) and bucket.TEMP_NAME.fullmatch(name).group(1) == str(
          os.getpid())
    assert bucket.create_exclusive(str(tmp_path / 'a.json'), b'{}')
    bucket.write_bytes(str(tmp_path / 'b.json'), b'{}')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['a.json', 'b.json']

  def test_an_unreachable_gs_bucket_is_refused_in_seconds(self, monkeypatch):
    monkeypatch.setenv('STORAGE_EMULATOR_HOST', 'http://127.0.0.1:9')
    started = time.monotonic()
    with pytest.raises(StorageError, match='cannot reach 127.0.0.1:9 for gs://b'):
      bucket.check_reachable('gs://b')
    assert time.monotonic() - started < 6


class TestGarbledLocks:

  @pytest.mark.parametrize('content', ['null', '[1, 2]', '"x"', '{"host": "HOST", "pid": -1}',
                                       '{"host": "HOST", "pid": 99999999999999999999}',
                                       '{"host": "HOST", "pid": true}'])
  def test_a_garbled_lock_is_refused_in_one_line_and_unlock_removes_it(self, tmp_path, content):
    path = tmp_path / 'deploy.lock'
    path.write_text(content.replace('HOST', socket.gethostname()))
    with pytest.raises(LockedError, match='is locked') as refused:
      with BucketLock(str(path), 'deploy', guards='prod'):
        pass
    assert '\n' not in str(refused.value)
    assert unlock(str(path)) is not None
    assert holder_of(str(path)) is None

  def test_racers_on_a_stale_lock_never_crash_and_never_hold_it_together(self, tmp_path):
    path = tmp_path / 'deploy.lock'
    for round_number in range(10):
      path.write_text(json.dumps({'host': socket.gethostname(), 'pid': dead_pid(), 'since': 'x'}))
      spans = tmp_path / f'spans-{round_number}'
      spans.mkdir()
      children = []
      for racer in range(4):
        pid = os.fork()
        if pid == 0:
          status = 3
          try:
            sys.stderr = open(os.devnull, 'w')
            with BucketLock(str(path), 'deploy', guards='prod'):
              start = time.monotonic()
              time.sleep(0.05)
              (spans / str(racer)).write_text(f'{start} {time.monotonic()}')
            status = 0
          except LockedError:
            status = 1
          finally:
            os._exit(status)
        children.append(pid)
      statuses = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children]
      assert set(statuses) <= {0, 1} and 0 in statuses, statuses
      held = sorted(tuple(map(float, f.read_text().split())) for f in spans.iterdir())
      assert all(a[1] <= b[0] for a, b in zip(held, held[1:])), held  # never two holders at once
      assert not path.exists()

  def test_a_lock_removed_between_two_reads_is_free(self, tmp_path):
    path = tmp_path / 'deploy.lock'
    path.write_text(json.dumps({'host': 'h', 'pid': 1}))
    path.unlink()
    assert holder_of(str(path)) is None
    bucket.delete(str(path))  # already gone: no error


@pytest.mark.integration
class TestCommandLines:

  def cli(self, *args, env=None):
    return subprocess.run([sys.executable, '-m', *args], capture_output=True, text=True,
                          cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO, **(env or {})),
                          timeout=300)

  def test_a_mistyped_flag_is_an_error_and_existing_output_stays(self, tmp_path):
    output = tmp_path / 'counts-00000-of-00001'
    output.write_text('mine: 1\n')
    done = self.cli('beam_pipelines.wordcount', '--inptu', 'X', '--output', str(tmp_path / 'counts'))
    assert done.returncode == 2 and 'Traceback' not in done.stderr
    assert 'unknown flag --inptu; did you mean --input?' in done.stderr
    assert output.read_text() == 'mine: 1\n'

  @pytest.mark.parametrize('args,message', [
      (('beam_pipelines.wordcount', '--num_shards', '-3'), "--num_shards: expected a whole number"),
      (('beam_pipelines.wordcount', '--num_shards', '٣'), "--num_shards: expected a whole number"),
      (('beam_pipelines.train', '--max_iter', '-5', '--features', 'x', '--output', 'y'),
       '--max_iter: expected a whole number >= 1')])
  def test_counts_out_of_range_are_errors(self, args, message):
    done = self.cli(*args)
    assert done.returncode == 2 and 'Traceback' not in done.stderr
    assert message in done.stderr

  def test_invoke_on_an_unreachable_gs_bucket_fails_fast_in_one_line(self):
    started = time.monotonic()
    done = subprocess.run([sys.executable, '-m', 'invoke', 'status'], capture_output=True,
                          text=True, cwd=REPO, timeout=120,
                          env=dict(os.environ, PYTHONPATH=REPO, BEAM_PIPELINES_BUCKET='gs://b-x',
                                   STORAGE_EMULATOR_HOST='http://127.0.0.1:9'))
    assert time.monotonic() - started < 15
    assert done.returncode == 2 and 'Traceback' not in done.stderr
    assert done.stderr.strip().count('\n') == 0 and 'cannot reach' in done.stderr

  def test_an_input_directory_and_an_output_below_a_file_are_errors(self, tmp_path):
    blocker = tmp_path / 'file'
    blocker.write_text('x')
    for args, message in (
        (('--input', str(tmp_path), '--output', str(tmp_path / 'out')),
         f'argument --input: {tmp_path} is a directory'),
        (('--output', str(blocker / 'counts')), f'argument --output: {blocker} is a file')):
      done = self.cli('beam_pipelines.wordcount', *args)
      assert done.returncode == 2 and 'Traceback' not in done.stderr
      assert message in done.stderr

  def test_a_bucket_that_is_a_file_is_refused_in_one_line(self, tmp_path):
    blocker = tmp_path / 'bucket'
    blocker.write_text('x')
    done = subprocess.run([sys.executable, '-m', 'invoke', 'deploy'], capture_output=True,
                          text=True, cwd=REPO, timeout=120,
                          env=dict(os.environ, PYTHONPATH=REPO, BEAM_PIPELINES_BUCKET=str(blocker)))
    assert done.returncode == 2 and 'Traceback' not in done.stderr
    assert f'the bucket {blocker} is a file' in done.stderr
