"""kill -9 at every named point of a deploy: prod stays on the previous or the new build, complete,
never a mix; the next deploy succeeds (it removes the stale lock, saying whose it was)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys

import pytest

from beam_pipelines.harness.deploy import CRASH_POINTS
from beam_pipelines.store import layout

from .support import invoke, prod_variables

pytestmark = pytest.mark.integration


def assert_complete(bucket, values):
  """The live deployment is whole: wheel bytes match, every workflow definition is there."""
  wheel = values['wheel_file']
  assert hashlib.sha256(open(wheel, 'rb').read()).hexdigest() == values['sha256']
  manifest = json.loads(open(values['manifest_file']).read())
  assert manifest['build_id'] == values['build_id']
  definitions = {n.split('/', 1)[1] for n in manifest['files'] if n.startswith('workflows/')}
  deployed = {p.name for p in (bucket / 'prod' / 'workflows' / values['build_id']).iterdir()}
  assert definitions <= deployed


@pytest.mark.parametrize('point', CRASH_POINTS)
def test_kill_9_during_deploy_leaves_a_whole_deployment_and_the_next_run_succeeds(
    project, bucket_copy, loop, point):
  killed = invoke(project, bucket_copy, 'deploy', '--build-id', loop.a,
                  **{layout.CRASH_ENV_VAR: point})
  assert killed.returncode == -signal.SIGKILL, killed.stderr
  assert f'crash point {point}' in killed.stderr
  values = prod_variables(bucket_copy)
  assert values['build_id'] in (loop.a, loop.b)
  assert values['build_id'] == (loop.b if CRASH_POINTS.index(point) < 4 else loop.a)
  assert_complete(bucket_copy, values)
  assert (bucket_copy / 'prod' / 'deploy.lock').exists()  # the killed run's lock is left behind

  again = invoke(project, bucket_copy, 'deploy', '--build-id', loop.a)
  assert again.returncode == 0, again.stderr
  assert 'removing a stale lock left by' in again.stderr
  values = prod_variables(bucket_copy)
  assert values['build_id'] == loop.a
  assert_complete(bucket_copy, values)
  assert not (bucket_copy / 'prod' / 'deploy.lock').exists()
  events = [json.loads(p.read_text()) for p in sorted((bucket_copy / 'prod' / 'history').iterdir())]
  assert [(e['event'], e['build_id']) for e in events] == [
      ('deploy', loop.a), ('deploy', loop.b), ('deploy', loop.a)]
  assert events[-1].get('recovered', False) == (point == 'committed')


def test_kill_9_from_outside_mid_copy_then_the_next_deploy_succeeds(project, bucket_copy, loop):
  """No hook: the test itself SIGKILLs the deploy once it reports copying, as an operator would."""
  env = dict(os.environ, **{layout.BUCKET_ENV_VAR: str(bucket_copy)})
  env.pop('PYTHONPATH', None)
  process = subprocess.Popen([sys.executable, '-m', 'invoke', 'deploy', '--build-id', loop.a],
                             cwd=project, env=env, stderr=subprocess.PIPE, text=True)
  for line in process.stderr:
    if 'deploy: copying build' in line:
      os.kill(process.pid, signal.SIGKILL)
      break
  # Killed within milliseconds of that line; 0 only if the deploy had already finished by then.
  assert process.wait() in (-signal.SIGKILL, 0)
  values = prod_variables(bucket_copy)
  assert values['build_id'] in (loop.a, loop.b)
  assert_complete(bucket_copy, values)
  again = invoke(project, bucket_copy, 'deploy', '--build-id', loop.a)
  assert again.returncode == 0, again.stderr
  assert prod_variables(bucket_copy)['build_id'] == loop.a
