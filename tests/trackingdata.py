"""A real local MLflow tracking server (from .venv-mlflow, scripts/install-mlflow.sh) and one CT
scenario tracked into it and into an OpenLineage events file, shared by tests/test_mlflow_mirror.py
and tests/test_openlineage.py (test modules import the fixtures; the results are cached here so
the scenario runs once per session whichever module asks first).

The scenario, each step one ``python -m beam_pipelines.ct`` on a temporary bucket with
``$MLFLOW_TRACKING_URI`` and ``$BEAM_PIPELINES_OPENLINEAGE_FILE`` set: spans 1 and 2 of the demo
(v1 pushed, then v2), span 3 (a column missing: stopped at validation), span 5 whose training
raises (a full disk: failed); then production is moved by hand (``model-rollback`` or
``model-promote``) and mirrored; then one ``python -m beam_pipelines.experiment`` on span 2, a grid
of three logistic variants (``C``) whose third one's training raises: the experiment fails after
recording two variants evaluated and the third failed, which the mirror brings to MLflow all the
same (the third as a FAILED run).
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import socket
import subprocess
import sys
import time
import types
import urllib.request
from typing import Dict

import pytest
from test_ct import ct

from beam_pipelines.ct import demo, registry
from beam_pipelines.ct.paths import CtPaths
from beam_pipelines.store import layout
from beam_pipelines.taxi_data import Knobs
from beam_pipelines.tracking import mlflow_mirror, openlineage_events

REPO = pathlib.Path(__file__).resolve().parent.parent
MLFLOW_VENV = pathlib.Path(os.environ.get('MLFLOW_VENV') or REPO / '.venv-mlflow')
MISSING = demo.DEMO_SPANS[2]
FAILING = demo.DemoSpan('its training errors', datetime.date(2026, 11, 5), Knobs(malformed=5))
FULL_DISK_HOOK = """
from beam_pipelines import train

def fit(*args, **kwargs):
  raise OSError(28, 'No space left on device')

train.fit = fit
"""
FAILING_VARIANT_HOOK = """
from beam_pipelines import train

_fit = train.fit

def fit(features_dir, output, params, *args, **kwargs):
  if params.get('C') == 4.0:
    raise OSError(28, 'No space left on device')
  return _fit(features_dir, output, params, *args, **kwargs)

train.fit = fit
"""
EXPERIMENT_GRID = 'C: [0.5, 2.0, 4.0]\n'  # the third variant's training raises
_CACHE: Dict[str, types.SimpleNamespace] = {}


def mlflow_python() -> pathlib.Path:
  """.venv-mlflow's interpreter; a clear failure (not a skip) when it is not installed."""
  python = MLFLOW_VENV / 'bin' / 'python'
  if not python.exists():
    pytest.fail(f'{MLFLOW_VENV} is missing: the MLflow mirror is tested against a real MLflow '
                f'tracking server from its own venv. Run scripts/install-mlflow.sh (or '
                f'scripts/install.sh), then the tests again.', pytrace=False)
  return python


def free_port() -> int:
  with socket.socket() as probe:
    probe.bind(('127.0.0.1', 0))
    return probe.getsockname()[1]


def start_server(root: pathlib.Path) -> types.SimpleNamespace:
  """``mlflow server`` on a free port of 127.0.0.1 (sqlite store, artifacts proxied), healthy."""
  python = mlflow_python()
  port = free_port()
  log = open(root / 'mlflow-server.log', 'w')
  process = subprocess.Popen(
      [str(python.parent / 'mlflow'), 'server', '--backend-store-uri',
       f'sqlite:///{root / "mlflow.db"}', '--artifacts-destination', str(root / 'artifacts'),
       '--host', '127.0.0.1', '--port', str(port), '--workers', '1'],
      stdout=log, stderr=subprocess.STDOUT, cwd=root)
  uri = f'http://127.0.0.1:{port}'
  deadline = time.monotonic() + 180
  while time.monotonic() < deadline:
    if process.poll() is not None:
      pytest.fail(f'mlflow server exited with {process.returncode}: '
                  f'{(root / "mlflow-server.log").read_text()[-2000:]}', pytrace=False)
    try:
      with urllib.request.urlopen(f'{uri}/health', timeout=2) as response:
        if response.status == 200:
          return types.SimpleNamespace(uri=uri, process=process, log=log, python=python)
    except OSError:
      time.sleep(0.5)
  process.kill()
  pytest.fail(f'mlflow server not healthy after 180 s: '
              f'{(root / "mlflow-server.log").read_text()[-2000:]}', pytrace=False)


def read_back(python: pathlib.Path, uri: str, script: str, *args: str) -> dict:
  """Runs ``script`` (printing one JSON object) with MLflow's Python client in .venv-mlflow."""
  done = subprocess.run([str(python), '-c', script, uri, *args], capture_output=True, text=True,
                        timeout=300, env=dict(os.environ, MLFLOW_TRACKING_URI=uri))
  assert done.returncode == 0, done.stderr[-3000:]
  return json.loads(done.stdout.strip().splitlines()[-1])


def _scenario(factory) -> types.SimpleNamespace:
  root = factory.mktemp('tracking')
  server = start_server(root)
  s = types.SimpleNamespace(root=root, server=server, bucket=root / 'bucket',
                            events=root / 'openlineage.jsonl', done={})
  s.paths = CtPaths(str(s.bucket), 'taxi')
  s.registry = registry.Registry(s.paths.registry)
  env = {mlflow_mirror.TRACKING_ENV_VAR: server.uri,
         openlineage_events.FILE_ENV_VAR: str(s.events)}
  s.env = env
  hook, variant_hook = root / 'hook', root / 'variant-hook'
  for folder, text in ((hook, FULL_DISK_HOOK), (variant_hook, FAILING_VARIANT_HOOK)):
    folder.mkdir()
    (folder / 'sitecustomize.py').write_text(text)

  s.spans = [demo.land(s.paths.landing, span) for span in demo.DEMO_SPANS[:2]]
  s.done['first_two'] = ct(s.bucket, '--json', **env)
  s.missing = demo.land(s.paths.landing, MISSING)
  s.done['stopped'] = ct(s.bucket, '--json', '--span', s.missing, **env)
  s.failing = demo.land(s.paths.landing, FAILING)
  s.done['failed'] = ct(s.bucket, '--json', '--span', s.failing,
                        PYTHONPATH=f'{hook}{os.pathsep}{REPO}', **env)
  s.aliases_before_move = s.registry.aliases()
  os.environ[mlflow_mirror.TRACKING_ENV_VAR] = server.uri
  try:
    if s.aliases_before_move.get(registry.PRODUCTION) == 2:
      s.registry.rollback('tracking test: back to v1')
    else:
      s.registry.promote(2, 'tracking test: v2 by hand', override_blessing='tracking test')
    mlflow_mirror.mirror_after(s.paths)
  finally:
    os.environ.pop(mlflow_mirror.TRACKING_ENV_VAR)
  s.aliases = s.registry.aliases()
  grid = root / 'grid.yaml'
  grid.write_text(EXPERIMENT_GRID)
  s.done['experiment'] = subprocess.run(
      [sys.executable, '-m', 'beam_pipelines.experiment', '--bucket', str(s.bucket),
       '--pipeline', 'taxi', '--span', s.spans[1], '--grid', str(grid)],
      capture_output=True, text=True, timeout=600,
      env=dict({k: v for k, v in os.environ.items() if k != layout.CRASH_ENV_VAR},
               PYTHONPATH=f'{variant_hook}{os.pathsep}{REPO}', **env))
  return s


@pytest.fixture(scope='session')
def tracked(tmp_path_factory):
  """The scenario above, run once; the MLflow server stops at the end of the session."""
  if 'scenario' not in _CACHE:
    _CACHE['scenario'] = _scenario(tmp_path_factory)
  s = _CACHE['scenario']
  yield s
  if s.server.process.poll() is None:
    s.server.process.terminate()
    try:
      s.server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
      s.server.process.kill()
  s.server.log.close()
