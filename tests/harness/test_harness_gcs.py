"""README command 1 on gs://: `invoke build test deploy`, a second build, kill -9 mid-deploy, run
and status, against a local GCS server (gcp-storage-emulator: it serves the batch API Beam's
rename/delete use; generation preconditions are tested on fake-gcs-server in tests/test_gcs.py)."""

from __future__ import annotations

import signal
import time
import types

import pytest

from beam_pipelines.harness.deploy import CRASH_POINTS
from beam_pipelines.store import bucket, layout

from .support import invoke, make_project
from gcs import EMULATOR_ENV_VAR, storage_emulator

pytestmark = pytest.mark.integration


@pytest.fixture(scope='module')
def gcs_loop(tmp_path_factory):
  """Two builds through `invoke build test deploy` on gs:// (own project copy: dist/ is its own)."""
  project = make_project(tmp_path_factory.mktemp('gcs') / 'project')
  with storage_emulator() as gcs, pytest.MonkeyPatch.context() as patch:
    patch.setenv(EMULATOR_ENV_VAR, gcs.url)  # this process reads the bucket too
    url, extra = gcs.path(), {EMULATOR_ENV_VAR: gcs.url}
    started = time.monotonic()
    first = invoke(project, url, 'build', '--no-checks', 'test', 'deploy', **extra)
    assert first.returncode == 0, first.stdout + first.stderr[-4000:]
    seconds = time.monotonic() - started
    a = bucket.read_json(layout.Env(url, layout.PROD).variables)['build_id']
    second = invoke(project, url, 'build', '--no-checks', 'test', **extra)
    assert second.returncode == 0, second.stdout + second.stderr[-4000:]
    b = bucket.read_json(layout.Env(url, layout.TEST).variables)['build_id']
    yield types.SimpleNamespace(project=project, url=url, extra=extra, a=a, b=b, first=first,
                                seconds=seconds)


def _prod(loop) -> dict:
  return bucket.read_json(layout.Env(loop.url, layout.PROD).variables)


def _assert_whole(values: dict) -> None:
  bucket.verify(values['wheel_file'], values['sha256'], 'deployed wheel')
  manifest = bucket.read_json(values['manifest_file'])
  assert manifest['build_id'] == values['build_id']
  for name in (n for n in manifest['files'] if n.startswith('workflows/')):
    assert bucket.exists(f'{values["workflows_dir"]}/{name.split("/", 1)[1]}'), name


def test_the_loop_deploys_on_gcs(gcs_loop):
  values = _prod(gcs_loop)
  assert values['build_id'] == gcs_loop.a and values['wheel_file'].startswith('gs://')
  _assert_whole(values)
  assert values['event'] == 'deploy'
  print(f'first loop on gs:// took {gcs_loop.seconds:.0f} s')


@pytest.mark.parametrize('point', ['copied-artifacts', 'committed'])
def test_kill_9_mid_deploy_on_gcs_leaves_a_whole_deployment(gcs_loop, point):
  before = _prod(gcs_loop)['build_id']
  target = gcs_loop.b if before == gcs_loop.a else gcs_loop.a
  killed = invoke(gcs_loop.project, gcs_loop.url, 'deploy', '--build-id', target,
                  **gcs_loop.extra, **{layout.CRASH_ENV_VAR: point})
  assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
  values = _prod(gcs_loop)
  expected = target if CRASH_POINTS.index(point) >= CRASH_POINTS.index('committed') else before
  assert values['build_id'] == expected
  _assert_whole(values)
  again = invoke(gcs_loop.project, gcs_loop.url, 'deploy', '--build-id', target, **gcs_loop.extra)
  assert again.returncode == 0, again.stderr[-2000:]
  assert _prod(gcs_loop)['build_id'] == target
  _assert_whole(_prod(gcs_loop))


def test_run_and_status_on_gcs(gcs_loop):
  done = invoke(gcs_loop.project, gcs_loop.url, 'run', 'wordcount', **gcs_loop.extra)
  assert done.returncode == 0, done.stderr[-2000:]
  status = invoke(gcs_loop.project, gcs_loop.url, 'status', **gcs_loop.extra)
  assert status.returncode == 0 and f'prod: build {_prod(gcs_loop)["build_id"]}' in status.stdout
