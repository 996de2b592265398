"""Bucket I/O, the deploy lock and the golden-counts check, on real files in a temporary bucket."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from beam_pipelines.harness import deploy, golden
from beam_pipelines.harness.deploy import rollback_target
from beam_pipelines.harness.errors import HarnessError
from beam_pipelines.store import bucket, layout, lock
from beam_pipelines.store.errors import LockedError, StorageError


class TestBucketIO:

  def test_atomic_write_replaces_and_leaves_no_temporary_object(self, tmp_path):
    path = str(tmp_path / 'env' / 'variables.json')
    bucket.write_json(path, {'build_id': 'one'})
    bucket.write_json(path, {'build_id': 'two'})
    assert bucket.read_json(path) == {'build_id': 'two'}
    assert os.listdir(tmp_path / 'env') == ['variables.json']

  def test_gz_names_are_written_byte_for_byte(self, tmp_path):
    path = str(tmp_path / 'pkg.tar.gz')
    bucket.write_bytes(path, b'not gzip at all')
    assert (tmp_path / 'pkg.tar.gz').read_bytes() == b'not gzip at all'
    assert bucket.read_bytes(path) == b'not gzip at all'

  def test_invalid_json_is_refused_with_path_and_advice(self, tmp_path):
    path = tmp_path / 'variables.json'
    path.write_text('{"build_id": ')
    with pytest.raises(StorageError, match=r'variables.json is not valid JSON .*Nothing was changed'):
      bucket.read_json(str(path), 'prod variables')

  def test_verify_refuses_missing_empty_and_changed_objects(self, tmp_path):
    path = tmp_path / 'a.whl'
    with pytest.raises(StorageError, match='missing'):
      bucket.verify(str(path), bucket.sha256_bytes(b'x'))
    path.write_bytes(b'')
    with pytest.raises(StorageError, match='empty'):
      bucket.verify(str(path), bucket.sha256_bytes(b''))
    path.write_bytes(b'y')
    with pytest.raises(StorageError, match='bytes changed'):
      bucket.verify(str(path), bucket.sha256_bytes(b'x'))
    bucket.verify(str(path), bucket.sha256_bytes(b'y'))

  def test_copy_verified_checks_both_sides(self, tmp_path):
    source = tmp_path / 'src' / 'w.whl'
    source.parent.mkdir()
    source.write_bytes(b'wheel bytes')
    target = str(tmp_path / 'dst' / 'w.whl')
    bucket.copy_verified(str(source), target, bucket.sha256_bytes(b'wheel bytes'), 'wheel')
    assert bucket.sha256_of(target) == bucket.sha256_bytes(b'wheel bytes')
    with pytest.raises(StorageError, match='bytes changed'):
      bucket.copy_verified(str(source), str(tmp_path / 'other'), bucket.sha256_bytes(b'x'), 'w')
    assert not (tmp_path / 'other').exists()

  def test_list_files_lists_direct_children_only(self, tmp_path):
    (tmp_path / 'p' / 'sub').mkdir(parents=True)
    for name in ('p/b.json', 'p/a.json', 'p/sub/c.json'):
      (tmp_path / name).write_text('{}')
    assert bucket.list_files(str(tmp_path / 'p')) == [
        str(tmp_path / 'p' / 'a.json'), str(tmp_path / 'p' / 'b.json')]
    assert bucket.list_files(str(tmp_path / 'absent')) == []

  def test_create_exclusive_creates_once(self, tmp_path):
    path = str(tmp_path / 'lock')
    assert bucket.create_exclusive(path, b'first')
    assert not bucket.create_exclusive(path, b'second')
    assert (tmp_path / 'lock').read_bytes() == b'first'

  def test_resolve_bucket_prefers_flag_then_environment_then_repo(self, tmp_path, monkeypatch):
    monkeypatch.delenv(layout.BUCKET_ENV_VAR, raising=False)
    assert bucket.resolve_bucket(None, tmp_path) == str(tmp_path / 'bucket')
    monkeypatch.setenv(layout.BUCKET_ENV_VAR, 'gs://team-bucket/')
    assert bucket.resolve_bucket(None, tmp_path) == 'gs://team-bucket'
    assert bucket.resolve_bucket(str(tmp_path / 'x'), tmp_path) == str(tmp_path / 'x')


def _write_lock(env, **holder):
  os.makedirs(os.path.dirname(env.lock), exist_ok=True)
  with open(env.lock, 'w') as handle:
    json.dump(dict({'user': 'ana', 'since': '2026-11-26T10:00:00+00:00',
                    'operation': 'deploy'}, **holder), handle)


class TestBucketLock:

  def test_lock_records_its_holder_and_is_released(self, tmp_path):
    env = layout.Env(str(tmp_path), layout.PROD)
    with deploy.prod_lock(env, 'deploy'):
      holder = json.loads(open(env.lock).read())
      assert holder['pid'] == os.getpid() and holder['host'] == socket.gethostname()
      assert holder['operation'] == 'deploy' and holder['since']
    assert not os.path.exists(env.lock)

  def test_a_lock_held_by_a_live_process_is_refused_and_explained(self, tmp_path):
    env = layout.Env(str(tmp_path), layout.PROD)
    _write_lock(env, host=socket.gethostname(), pid=os.getpid(),
                pid_start=lock.process_start_time(os.getpid()))
    with pytest.raises(LockedError, match=r'prod is locked: .* held by ana@.*pid \d+, deploy\) '
                       r'since 2026-11-26T10:00:00.*invoke unlock'):
      with deploy.prod_lock(env, 'deploy'):
        pass
    assert json.loads(open(env.lock).read())['user'] == 'ana'  # not broken

  def test_a_lock_from_another_host_is_not_broken(self, tmp_path):
    env = layout.Env(str(tmp_path), layout.PROD)
    _write_lock(env, host='build-server-7', pid=1)
    with pytest.raises(LockedError, match='ana@build-server-7'):
      with deploy.prod_lock(env, 'rollback'):
        pass

  def test_a_stale_lock_of_a_dead_process_is_removed_with_an_explanation(self, tmp_path, capsys):
    env = layout.Env(str(tmp_path), layout.PROD)
    dead = subprocess.Popen([sys.executable, '-c', 'pass'])
    dead.wait()
    _write_lock(env, host=socket.gethostname(), pid=dead.pid, pid_start='1')
    with deploy.prod_lock(env, 'deploy'):
      assert json.loads(open(env.lock).read())['pid'] == os.getpid()
    err = capsys.readouterr().err
    assert f'removing a stale lock left by ana@{socket.gethostname()} (pid {dead.pid}' in err
    assert 'no longer exists' in err

  def test_unlock_says_whose_lock_it_removed(self, tmp_path):
    env = layout.Env(str(tmp_path), layout.PROD)
    _write_lock(env, host='build-server-7', pid=1)
    assert lock.unlock(env.lock)['host'] == 'build-server-7'
    assert lock.unlock(env.lock) is None

  def test_unlock_refuses_a_lock_whose_holder_is_running_unless_forced(self, tmp_path):
    env = layout.Env(str(tmp_path), layout.PROD)
    _write_lock(env, host=socket.gethostname(), pid=os.getpid(),
                pid_start=lock.process_start_time(os.getpid()))
    with pytest.raises(LockedError, match=r'held by a running process .*unlock --force'):
      lock.unlock(env.lock)
    assert os.path.exists(env.lock)
    assert lock.unlock(env.lock, force=True)['pid'] == os.getpid()
    assert not os.path.exists(env.lock)

  def test_exclusive_create_never_shows_a_partial_object(self, tmp_path):
    path = str(tmp_path / 'd' / 'obj')
    assert bucket.create_exclusive(path, b'first')
    assert not bucket.create_exclusive(path, b'second')
    assert open(path, 'rb').read() == b'first'
    assert os.listdir(tmp_path / 'd') == ['obj']  # no scratch file left behind


class TestGoldenCountsCheck:
  """The test workflow's check on real shard files: every failure mode reaches the message."""

  def _run(self, tmp_path, shards, reference='a: 1\nb: 2\n'):
    (tmp_path / 'ref.txt').write_text(reference)
    for index, text in enumerate(shards):
      (tmp_path / f'counts-{index:05d}-of-{len(shards):05d}').write_text(text)
    return golden.golden_counts({'output': str(tmp_path / 'counts'),
                                    'reference': str(tmp_path / 'ref.txt')})

  def test_matching_shards_pass(self, tmp_path):
    result = self._run(tmp_path, ['a: 1\n', 'b: 2\n'])
    assert result.passed and result.details['shards'] == 2

  def test_differences_fail_naming_each_word(self, tmp_path):
    result = self._run(tmp_path, ['a: 3\n', 'c: 1\n'])
    assert not result.passed
    assert result.message == ('outputs differ from the reference: 1 missing: b; '
                              '1 wrong: a (expected 1, got 3); 1 unexpected: c')

  def test_no_shards_fail(self, tmp_path):
    result = self._run(tmp_path, [])
    assert not result.passed and 'no output shards' in result.message

  def test_a_malformed_shard_fails(self, tmp_path):
    result = self._run(tmp_path, ['a 1\n'])
    assert not result.passed and 'not a "key: value" line' in result.message

  def test_a_word_in_two_shards_fails(self, tmp_path):
    result = self._run(tmp_path, ['a: 1\n', 'a: 1\nb: 2\n'])
    assert not result.passed and 'appears in two shards' in result.message


class TestRollbackTarget:
  A, B, C = ('20260101T000000Z-aaaaaaa-000001', '20260102T000000Z-bbbbbbb-000002',
             '20260103T000000Z-ccccccc-000003')

  def _events(self, *pairs):
    return [{'event': event, 'build_id': build} for event, build in pairs]

  def test_goes_to_the_build_deployed_before_the_live_one(self):
    events = self._events(('deploy', self.A), ('deploy', self.B), ('deploy', self.C))
    assert rollback_target(events, self.C) == self.B

  def test_repeated_rollbacks_walk_back(self):
    events = self._events(('deploy', self.A), ('deploy', self.B), ('deploy', self.C),
                          ('rollback', self.B))
    assert rollback_target(events, self.B) == self.A

  def test_nothing_before_the_first_deploy(self):
    with pytest.raises(HarnessError, match='nothing to roll back to'):
      rollback_target(self._events(('deploy', self.A)), self.A)
