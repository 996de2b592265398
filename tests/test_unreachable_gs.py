"""Every direct entry point (what Composer and schedulers run) refuses an unreachable gs:// bucket in
seconds and in one line naming it, as the ``invoke`` tasks do, instead of minutes of retries ending
in a traceback. The bucket's endpoint is a closed local port ($STORAGE_EMULATOR_HOST)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from beam_pipelines import runtime
from beam_pipelines.store import bucket

from conftest import REPO

GS = 'gs://beam-unreachable-bucket'
SECONDS = 20  # the check itself takes milliseconds; the rest is the module's imports
ENTRY_POINTS = {
    'ct': ['--bucket', GS],
    'predict': ['--input', f'{GS}/in/*.csv', '--model', f'{GS}/model', '--output', f'{GS}/out'],
    'features': ['--input', f'{GS}/in/*.csv', '--output', f'{GS}/features'],
    'validate': ['--features', f'{GS}/features', '--output', f'{GS}/validation'],
    'train': ['--features', f'{GS}/features', '--output', f'{GS}/model'],
    'evaluate': ['--model', f'{GS}/model', '--features', f'{GS}/features',
                 '--output', f'{GS}/evaluation'],
    'wordcount': [f'--input={GS}/in.txt', f'--output={GS}/counts'],
    'submission': ['--pipeline', 'wordcount', '--input', f'{GS}/in.txt', '--output',
                   f'{GS}/counts'],
}


@pytest.fixture(scope='module')
def closed_port() -> str:
  """``http://127.0.0.1:<port>`` where nothing listens."""
  with socket.socket() as sock:
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
  return f'http://127.0.0.1:{port}'


def run(module: str, args, closed_port: str, **env: str):
  environment = dict(os.environ, PYTHONPATH=str(REPO), STORAGE_EMULATOR_HOST=closed_port, **env)
  started = time.monotonic()
  done = subprocess.run([sys.executable, '-m', f'beam_pipelines.{module}', *args],
                        capture_output=True, text=True, cwd=REPO, env=environment, timeout=300)
  return done, time.monotonic() - started


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize('module', sorted(ENTRY_POINTS))
def test_an_unreachable_gs_bucket_is_one_line_in_seconds(module, closed_port):
  done, elapsed = run(module, ENTRY_POINTS[module], closed_port)
  assert done.returncode == 2, done.stderr[-3000:]
  assert 'Traceback' not in done.stderr
  lines = done.stderr.strip().splitlines()
  assert len(lines) == 1, done.stderr[-3000:]
  assert lines[0].startswith(f'[beam-pipelines] {module}: error: cannot reach 127.0.0.1:')
  assert f'for {GS} within' in lines[0]
  assert elapsed < SECONDS, f'{module} took {elapsed:.1f} s'


@pytest.mark.integration
@pytest.mark.slow
def test_ct_refuses_an_unreachable_bucket_from_the_environment(closed_port):
  done, elapsed = run('ct', [], closed_port, BEAM_PIPELINES_BUCKET=GS)
  assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr[-3000:]
  assert 'ct: error: cannot reach 127.0.0.1:' in done.stderr and GS in done.stderr
  assert elapsed < SECONDS


@pytest.mark.integration
@pytest.mark.slow
def test_submission_refuses_the_unreachable_bucket_of_a_deployed_build(closed_port):
  done, elapsed = run('submission', ['--pipeline', 'wordcount', '--env', 'prod', '--bucket', GS,
                                     '--runner', 'DataflowRunner'], closed_port)
  assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr[-3000:]
  assert done.stderr.startswith('[beam-pipelines] submission: error: cannot reach')
  assert GS in done.stderr
  assert elapsed < SECONDS


def test_the_buckets_named_in_arguments():
  assert bucket.gs_buckets(['--input', 'gs://a/x/*.csv', '--output=gs://b.c/out', 'local',
                             'gs://a/y', ['gs://d_e/1', 'gs://f-g']]) == [
      'gs://a', 'gs://b.c', 'gs://d_e', 'gs://f-g']
  bucket.refuse_unreachable(['--input', '/local/path', 's3://elsewhere/x'])  # nothing to check


def test_the_one_main_refuses_before_running(closed_port, monkeypatch, capsys):
  monkeypatch.setenv('STORAGE_EMULATOR_HOST', closed_port)
  ran = []
  assert runtime.main('wordcount', ran.append, ['--input', f'{GS}/in.txt']) == 2
  assert ran == []
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and 'wordcount: error: cannot reach' in err[0] and GS in err[0]


def test_a_dry_run_contacts_no_bucket_and_is_not_refused(closed_port, monkeypatch):
  monkeypatch.setenv('STORAGE_EMULATOR_HOST', closed_port)
  ran = []
  argv = ['--runner', 'DataflowRunner', '--temp_location', f'{GS}/tmp', '--dry_run', 'True']
  assert runtime.main('wordcount', ran.append, argv) == 0
  assert ran == [argv]
