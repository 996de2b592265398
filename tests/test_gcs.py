"""The storage floor on gs://, against local GCS servers (tests/gcs.py): exclusive create and the
lock under races, stale-lock removal conditional on the generation read, no credential retries."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading

import pytest

from beam_pipelines.store import bucket, lock
from beam_pipelines.store.errors import LockedError

from conftest import REPO
from gcs import fake_gcs_server, storage_emulator

pytestmark = pytest.mark.integration  # local GCS servers: left out of the fast gate

RACERS, ROUNDS = 4, 10


@pytest.fixture(scope='module')
def gcs():
  with fake_gcs_server() as server:
    yield server


def _race(target, count: int) -> list:
  """Runs ``target(i)`` in ``count`` threads released together; returns their results."""
  barrier = threading.Barrier(count)
  found = [None] * count

  def run(i):
    barrier.wait()
    try:
      found[i] = target(i)
    except Exception as error:  # noqa: BLE001 - the race's outcome, asserted by the caller
      found[i] = error

  threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
  for thread in threads:
    thread.start()
  for thread in threads:
    thread.join()
  return found


def test_exclusive_create_has_exactly_one_winner_per_race(gcs):
  for round_ in range(ROUNDS):
    path = gcs.path('races', f'{round_}.lock')
    won = _race(lambda i: bucket.create_exclusive(path, f'racer {i}'.encode()), RACERS)
    assert sorted(won) == [False] * (RACERS - 1) + [True], won
    assert bucket.read_bytes(path) == f'racer {won.index(True)}'.encode()


def test_the_deploy_lock_admits_one_writer_and_is_released(gcs):
  path = gcs.path('prod', 'deploy.lock')
  refusals = threading.Semaphore(0)

  def deploy(i):
    try:
      with lock.BucketLock(path, f'deploy {i}', guards='prod'):
        for _ in range(RACERS - 1):  # hold it until every other racer was refused
          assert refusals.acquire(timeout=30)
        return 'won'
    except LockedError:
      refusals.release()
      raise

  for _ in range(3):
    outcome = _race(deploy, RACERS)
    assert outcome.count('won') == 1, outcome
    assert all(isinstance(r, LockedError) and 'prod is locked' in str(r)
               for r in outcome if r != 'won')
    assert not bucket.exists(path)  # released by its holder


def _stale_holder() -> bytes:
  """A lock left by a process of this host that no longer exists (as after kill -9)."""
  dead = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'],
                        capture_output=True, text=True, check=True)
  return json.dumps({'user': 'someone', 'host': socket.gethostname(),
                     'pid': int(dead.stdout), 'pid_start': '1', 'since': '2026-01-01T00:00:00Z',
                     'operation': 'deploy'}).encode()


def test_a_stale_lock_is_taken_over_only_if_it_is_the_object_read(gcs):
  path = gcs.path('prod', 'stale.lock')
  assert bucket.create_exclusive(path, _stale_holder())
  stale, generation = bucket.read_versioned(path)
  # Another writer finds the same stale lock and takes it over first: a new generation.
  assert bucket.replace_if_unchanged(path, generation, stale, b'{"first": true}')
  # The late one's take-over, conditional on the generation it read, must not overwrite it.
  assert not bucket.replace_if_unchanged(path, generation, stale, b'{"late": true}')
  assert bucket.read_bytes(path) == b'{"first": true}'


def test_stale_lock_take_over_races_have_one_winner(gcs):
  for round_ in range(ROUNDS):
    path = gcs.path('prod', f'stale-{round_}.lock')
    assert bucket.create_exclusive(path, _stale_holder())
    stale, generation = bucket.read_versioned(path)
    won = _race(lambda i: bucket.replace_if_unchanged(path, generation, stale, b'%d' % i), RACERS)
    assert won.count(True) == 1, won
    assert bucket.read_bytes(path) == b'%d' % won.index(True)


def test_a_stale_lock_on_gcs_is_removed_with_a_message_and_taken(gcs, capsys):
  path = gcs.path('prod', 'deploy-stale.lock')
  assert bucket.create_exclusive(path, _stale_holder())
  with lock.BucketLock(path, 'deploy', guards='prod') as held:
    assert bucket.read_bytes(path) == held.content
  assert 'removing a stale lock left by someone@' in capsys.readouterr().err
  assert not bucket.exists(path)


@pytest.mark.parametrize('server', [fake_gcs_server, storage_emulator])
def test_no_credential_retries_before_reaching_a_local_gcs_server(server, tmp_path):
  """Without Google credentials, Beam would retry their look-up for ~20 s first."""
  code = ('import time; import apache_beam.io.gcp.gcsio; from beam_pipelines.store import bucket; '
          't = time.monotonic(); '
          'bucket.write_bytes("{path}", b"x"); assert bucket.read_bytes("{path}") == b"x"; '
          'print(round(time.monotonic() - t, 2))')
  with server() as gcs:
    env = dict(gcs.env, HOME=str(tmp_path), PYTHONPATH=str(REPO))
    env.pop('CLOUDSDK_CONFIG', None)
    done = subprocess.run([sys.executable, '-c', code.format(path=gcs.path('speed', 'x'))],
                          env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
  assert done.returncode == 0, done.stderr[-2000:]
  # Beam's retries sleep 1.3 + 3.5 + 5.6 + 9.5 s; the requests themselves take well under 1 s.
  assert float(done.stdout.split()[-1]) < 10, done.stdout


def test_the_emulator_for_pipelines_serves_beams_batched_rename_and_delete():
  """gcp-storage-emulator: what the harness loop on gs:// needs of it (tests/harness)."""
  with storage_emulator() as gcs:
    env = dict(gcs.env, PYTHONPATH=str(REPO))
    code = ('from apache_beam.io.filesystems import FileSystems as fs; from beam_pipelines.store '
            'import bucket; a, b = "{a}", "{b}"; bucket.write_bytes(a, b"1"); fs.rename([a], [b]); '
            'assert bucket.read_bytes(b) == b"1" and not bucket.exists(a); bucket.delete(b); '
            'assert not bucket.exists(b)')
    done = subprocess.run([sys.executable, '-c', code.format(a=gcs.path('a'), b=gcs.path('b'))],
                          env=env, capture_output=True, text=True, timeout=120)
  assert done.returncode == 0, done.stderr[-2000:]


def test_local_buckets_do_not_look_up_credentials(tmp_path):
  env = dict(os.environ, PYTHONPATH=str(REPO))
  code = ('from beam_pipelines.store import bucket; bucket.write_bytes("{p}", b"x"); '
          'print(bucket._credentials_checked)')
  done = subprocess.run([sys.executable, '-c', code.format(p=tmp_path / 'x')], env=env,
                        capture_output=True, text=True, timeout=120)
  assert done.stdout.split()[-1] == 'False', done.stderr[-2000:]
