"""A seeded kill -9 loop over deploy, rollback, model promote/rollback and continuous training.

One bucket (a copy of the loop's, plus one real CT run and two more registered versions) is shared
by every iteration. Each iteration forks a child that runs one operation of the real code and is
killed with a real SIGKILL, either by the $BEAM_PIPELINES_CRASH_AT hook at a named point or by the
test at a random moment. After each kill, prod and the registry must be whole (every pointer
verifies); after the next run of the same step, no lock and no temporary file of a dead writer
remains. Forking a process that has already imported Beam keeps an iteration in milliseconds
(except the CT steps, which are cached after the first run). $BEAM_PIPELINES_KILL_SEED and
$BEAM_PIPELINES_KILL_ITERATIONS replay or lengthen the loop.
"""

from __future__ import annotations

import os
import pathlib
import random
import shutil
import signal
import sys
import time
import traceback
import types

import pytest

from beam_pipelines.ct.loop import ContinuousTraining, CtOptions
from beam_pipelines.ct.paths import CtPaths, model_registry
from beam_pipelines.ct.registry import CRASH_POINTS as REGISTRY_CRASH_POINTS
from beam_pipelines.harness import deploy
from beam_pipelines.harness.deploy import CRASH_POINTS as DEPLOY_CRASH_POINTS
from beam_pipelines.ml import model_io
from beam_pipelines.store import bucket, layout, records
from beam_pipelines.store.errors import Refusal

from .support import REPO

pytestmark = pytest.mark.integration

SEED = int(os.environ.get('BEAM_PIPELINES_KILL_SEED', '20261127'))
ITERATIONS = int(os.environ.get('BEAM_PIPELINES_KILL_ITERATIONS', '60'))
OPERATIONS = ('deploy', 'rollback', 'promote', 'model-rollback', 'ct')
CRASH_POINTS = {'deploy': DEPLOY_CRASH_POINTS, 'rollback': DEPLOY_CRASH_POINTS,
                'promote': REGISTRY_CRASH_POINTS, 'model-rollback': REGISTRY_CRASH_POINTS,
                'ct': REGISTRY_CRASH_POINTS + ('ct-registered',)}
EXIT_DONE, EXIT_REFUSED, EXIT_BROKEN = 0, 1, 3


def fork_run(operation, log: pathlib.Path, crash_at=None, kill_after=None) -> int:
  """Runs ``operation()`` in a forked child; returns its exit status or -SIGKILL."""
  pid = os.fork()
  if pid == 0:  # the child: never returns into pytest
    status = EXIT_BROKEN
    try:
      fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
      os.dup2(fd, 2)
      sys.stderr = os.fdopen(2, 'w', buffering=1)
      if crash_at:
        os.environ[layout.CRASH_ENV_VAR] = crash_at
      operation()
      status = EXIT_DONE
    except Refusal as error:
      print(f'REFUSED: {error}', file=sys.stderr)
      status = EXIT_REFUSED
    except BaseException:  # noqa: BLE001 - anything else is what this test exists to catch
      traceback.print_exc()
    finally:
      os._exit(status)
  if kill_after is not None:
    time.sleep(kill_after)
    try:
      os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
      pass
  _, status = os.waitpid(pid, 0)
  return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def extra_version(reg, directory: pathlib.Path, number: int) -> str:
  """Version 1's fitted model with one extra attribute: the same predictions, other bytes."""
  source, record = reg.verified_dir(1)
  model = model_io.load_model(source, record['model_sha256'])
  model.beam_pipelines_copy = number
  metadata = model_io.read_metadata(source)
  model_io.save_model(model, str(directory), numeric=metadata['numeric'],
                      categorical=metadata['categorical'], label=metadata['label'],
                      spec_fingerprint=metadata['spec_fingerprint'], data=metadata['data'],
                      hyperparameters=metadata['hyperparameters'])
  return str(directory)


@pytest.fixture(scope='module')
def world(loop, tmp_path_factory):
  """The loop's bucket (prod on B, A and B passed and deployed), one CT run, versions 1-3."""
  root = tmp_path_factory.mktemp('killloop')
  copy = root / 'bucket'
  shutil.copytree(loop.bucket, copy)
  for record in copy.rglob('*.json'):
    if not {'artifacts', 'workflows'} & set(record.relative_to(copy).parts):
      record.write_text(record.read_text().replace(str(loop.bucket), str(copy)))
  url = str(copy)
  span = pathlib.Path(CtPaths(url).landing) / 'span-2026-11-01'
  span.mkdir(parents=True)
  shutil.copy(REPO / 'beam_pipelines' / 'data' / 'taxi_sample.csv', span / 'data.csv')
  first = fork_run(lambda: ContinuousTraining(url, CtOptions()).run([str(span)]),
                   root / 'first-ct.log')
  assert first == EXIT_DONE, (root / 'first-ct.log').read_text()[-3000:]
  reg = model_registry(url)
  for number in (2, 3):
    reg.push(extra_version(reg, root / f'model{number}', number),
             blessing={'status': 'BLESSED', 'message': 'copy', 'rubber_stamped': False})
  assert reg.numbers() == [1, 2, 3]
  return types.SimpleNamespace(url=url, bucket=copy, span=str(span), root=root, reg=reg,
                               a=loop.a, b=loop.b)


def operation(world, name: str, rng: random.Random):
  url = world.url
  if name == 'deploy':
    live = records.read_variables(layout.Env(url, layout.PROD)).build_id
    target = world.a if live == world.b else world.b
    return lambda: deploy.deploy(url, target)
  if name == 'rollback':
    return lambda: deploy.rollback(url)
  if name == 'promote':
    version = rng.choice([1, 2, 3])
    return lambda: model_registry(url).promote(version, 'kill loop')
  if name == 'model-rollback':
    return lambda: model_registry(url).rollback('kill loop')
  return lambda: ContinuousTraining(url, CtOptions()).run([world.span], force=True)


def assert_whole(world) -> None:
  """Prod runs a complete build that verifies; each alias names a committed version that does."""
  prod = layout.Env(world.url, layout.PROD)
  live = records.read_variables(prod)
  assert live.build_id in (world.a, world.b)
  assert deploy.live_deployment_ok(prod) is None
  reg = model_registry(world.url)
  for alias, number in reg.aliases().items():
    reg.verified_dir(number)


def stale_temps(prefix: str):
  """Temporary files under ``prefix`` whose writer is gone (what the next run must clean)."""
  return [os.path.join(root, name) for root, dirs, files in os.walk(prefix)
          for name in files + dirs
          if bucket.TEMP_NAME.fullmatch(name) and not bucket._pid_running(
              int(bucket.TEMP_NAME.fullmatch(name).group(1)))]


def area_of(world, name: str):
  """(what the step cleans, the lock it holds): the next run of that step must leave neither."""
  prod = layout.Env(world.url, layout.PROD)
  reg = model_registry(world.url)
  if name in ('deploy', 'rollback'):
    return prod.root, prod.lock
  if name in ('promote', 'model-rollback'):
    return reg.root, reg.lock
  return CtPaths(world.url).root, CtPaths(world.url).lock


def test_seeded_kill_9_loop_keeps_prod_and_the_registry_whole(world):
  rng = random.Random(SEED)
  kills, outcomes = 0, []
  for iteration in range(ITERATIONS):
    name = rng.choice(OPERATIONS)
    log = world.root / f'iteration-{iteration:03d}-{name}.log'
    if rng.random() < 0.5:
      point = rng.choice(CRASH_POINTS[name])
      status = fork_run(operation(world, name, rng), log, crash_at=point)
      how = f'hook {point}'
    else:
      delay = rng.uniform(0.0, 2.0 if name == 'ct' else 0.15)
      status = fork_run(operation(world, name, rng), log, kill_after=delay)
      how = f'SIGKILL after {delay:.3f} s'
    context = f'iteration {iteration} (seed {SEED}): {name}, {how}, status {status}; {log}'
    assert status in (-signal.SIGKILL, EXIT_DONE, EXIT_REFUSED), context + '\n' + log.read_text()
    kills += status == -signal.SIGKILL
    outcomes.append((name, how, status))
    assert_whole(world)

    recovery = world.root / f'iteration-{iteration:03d}-{name}-next.log'
    again = fork_run(operation(world, name, rng), recovery)
    assert again in (EXIT_DONE, EXIT_REFUSED), context + '\n' + recovery.read_text()
    if again == EXIT_REFUSED:  # a refusal must be a reason, never a leftover of the kill
      assert 'locked' not in recovery.read_text(), recovery.read_text()
    assert_whole(world)
    area, lock = area_of(world, name)
    assert not stale_temps(area), context
    assert not bucket.exists(lock), context
  assert kills >= ITERATIONS // 3, outcomes  # most iterations did kill a process mid-operation
