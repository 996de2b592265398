"""An experiment's winner delivered to production through the real harness, in a frozen copy of the
project: build A (logistic) deployed; a 40,000-trip span lands and `invoke ct` makes production v1;
`invoke experiment` tries four gbt variants on that window (holding CT's lock: a `ct` meanwhile is
refused; CT's cache, spans and registry untouched); `invoke experiment-adopt` writes the best into
pipeline.yaml, committed; `invoke build test deploy` runs the level-2 check on it (BLESSED, recorded
with the adopted parameters) and deploys build B; a new span and `invoke ct` train the adopted
configuration with B's wheel and push it; `invoke lineage` names the experiment run.

One scenario (module fixture), many tests asserting on it. The commands' output is kept in
outputs/experiment-delivery/ (gitignored) for a person to read."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import pathlib
import subprocess
import sys
import time
import types

import pytest
import yaml

from beam_pipelines.ct import demo, registry
from beam_pipelines.ct.paths import CtPaths
from beam_pipelines.store import layout, lock
from beam_pipelines.taxi_data import Knobs

from harness.support import commit_all, logged_runs, make_project

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = pathlib.Path(__file__).resolve().parents[1]
ROWS = 40_000  # about 8,200 eval rows: gbt's gain over logistic (about +0.003 AUC) is beyond noise
FIRST = demo.DemoSpan('first day', datetime.date(2026, 11, 1), Knobs(malformed=5))
SECOND = demo.DemoSpan('second day', datetime.date(2026, 11, 2), Knobs(malformed=5))
GRID = 'classifier: [gbt]\nmax_depth: [2, 3]\nlearning_rate: [0.05, 0.1]\n'
# scikit-learn's gradient boosting runs OpenMP threads: on a shared two-core machine a busy core
# makes them spin (a 16,000-row fit took 7 s with two threads, 0.5 s with one). Same models.
ENV = {'OMP_NUM_THREADS': '1'}


def out(done) -> str:
  return done.stdout + done.stderr


def tree_state(root: pathlib.Path) -> dict:
  """sha256 of every file under ``root``."""
  return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
          for p in sorted(root.rglob('*')) if p.is_file()}


def ct_state(bucket: pathlib.Path) -> dict:
  """What an experiment must leave as it is: CT's registry, span records and step cache."""
  ct = bucket / 'prod' / 'ct' / 'taxi'
  return {name: tree_state(root) for name, root in (
      ('registry', bucket / 'prod' / 'registry' / 'taxi'), ('spans', ct / 'spans'),
      ('cache', ct / 'cache'))}


def start_invoke(project: pathlib.Path, bucket: pathlib.Path, *args: str) -> subprocess.Popen:
  """`invoke ARGS` in the background, as ``harness.support.invoke`` runs it."""
  env = dict(os.environ, **{layout.BUCKET_ENV_VAR: str(bucket)}, **ENV)
  env.pop('PYTHONPATH', None)
  return subprocess.Popen([sys.executable, '-m', 'invoke', *args], cwd=project, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_holder(path: str, process: subprocess.Popen, timeout: float = 300.0) -> dict:
  """The holder of the lock at ``path`` once ``process`` has taken it."""
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline and process.poll() is None:
    holder = lock.holder_of(path)
    if holder and holder.get('pid') == process.pid:
      return holder
    time.sleep(0.05)
  raise AssertionError(f'the experiment never held {path} (exit status {process.poll()})')


@pytest.fixture(scope='module')
def s(tmp_path_factory):
  root = tmp_path_factory.mktemp('experiment-delivery')
  s = types.SimpleNamespace(project=make_project(root / 'project'), bucket=root / 'bucket',
                            done={}, started=time.monotonic())
  s.paths = CtPaths(str(s.bucket), 'taxi')
  s.registry = registry.Registry(s.paths.registry)
  s.pipeline_yaml = s.project / 'beam_pipelines' / 'pipelines' / 'taxi' / 'pipeline.yaml'
  logs = REPO / 'outputs' / 'experiment-delivery'
  run = logged_runs(s.project, s.bucket, s.done, logs, **ENV)

  run('loop_a', 'build', '--no-checks', 'test', 'deploy')
  s.a = json.loads((s.project / 'dist' / 'manifest.json').read_text())
  s.first = demo.land(s.paths.landing, FIRST, ROWS)
  run('ct1', 'ct', '--pipeline', 'taxi')
  s.after_ct1 = s.registry.aliases()

  grid = root / 'grid.yaml'  # outside the project: not part of the pipeline change
  grid.write_text(GRID)
  s.before = ct_state(s.bucket)
  experiment = start_invoke(s.project, s.bucket, 'experiment', '--pipeline', 'taxi', '--grid',
                            str(grid), '--json')
  s.holder = wait_for_holder(s.paths.lock, experiment)
  run('ct_during_experiment', 'ct', '--pipeline', 'taxi')
  stdout, stderr = experiment.communicate(timeout=1800)
  s.experiment = types.SimpleNamespace(returncode=experiment.returncode, stdout=stdout,
                                       stderr=stderr)
  (logs / 'experiment.log').write_text(f'$ invoke experiment --pipeline taxi --grid grid.yaml '
                                       f'--json\n{stdout}{stderr}(exit status '
                                       f'{experiment.returncode})\n')
  assert experiment.returncode == 0, out(s.experiment)[-4000:]
  s.after = ct_state(s.bucket)
  s.lock_after_experiment = lock.holder_of(s.paths.lock)
  s.ranked = json.loads(stdout.strip().splitlines()[-1])
  s.best = s.ranked['runs'][0]

  run('adopt', 'experiment-adopt', '--pipeline', 'taxi', '--run', s.best['run_id'])
  s.diff = subprocess.run(['git', 'diff'], cwd=s.project, capture_output=True, text=True).stdout
  (logs / 'adopt.diff').write_text(s.diff)
  commit_all(s.project, f'taxi: adopt experiment run {s.best["run_id"]}')
  s.adopted = yaml.safe_load(s.pipeline_yaml.read_text())

  run('loop_b', 'build', '--no-checks', 'test', 'deploy')
  s.b = json.loads((s.project / 'dist' / 'manifest.json').read_text())
  s.second = demo.land(s.paths.landing, SECOND, ROWS)
  run('ct2', 'ct', '--pipeline', 'taxi')
  s.after_ct2 = s.registry.aliases()
  run('lineage', 'lineage', '--pipeline', 'taxi', '--model', 'production')
  run('lineage_json', 'lineage', '--pipeline', 'taxi', '--model', 'production', '--json')
  run('runs', 'runs', '--pipeline', 'taxi')
  s.seconds = time.monotonic() - s.started
  return s


def passed_record(bucket: pathlib.Path, build_id: str) -> dict:
  return json.loads((bucket / 'test' / 'passed' / f'{build_id}.json').read_text())


def completed(settings: dict) -> dict:
  from beam_pipelines import train
  return train.parameters(settings)


def test_production_v1_is_logistic(s):
  assert s.done['loop_a'].returncode == 0, out(s.done['loop_a'])[-4000:]
  assert s.done['ct1'].returncode == 0, out(s.done['ct1'])[-4000:]
  assert s.after_ct1['production'] == 1
  directory, _ = s.registry.verified_dir(1)
  assert json.loads((pathlib.Path(directory) / 'model.json').read_text())['hyperparameters'][
      'classifier'] == 'logistic'


def test_the_experiment_holds_cts_lock_and_a_ct_meanwhile_is_refused(s):
  assert s.holder['operation'] == 'experiment'
  refused = s.done['ct_during_experiment']
  assert refused.returncode == 2, out(refused)[-3000:]
  assert 'is locked' in out(refused) and 'experiment' in out(refused)
  assert s.lock_after_experiment is None  # released


def test_the_experiment_leaves_cts_cache_spans_and_registry_as_they_were(s):
  assert s.before == s.after
  assert s.before['cache'] and s.before['registry']  # CT had written them: a real comparison
  own = s.bucket / 'prod' / 'ct' / 'taxi' / 'experiments' / s.ranked['runs'][0]['experiment_id']
  for run in s.ranked['runs']:
    for name in ('model_dir', 'evaluation_dir'):
      assert pathlib.Path(run['artifacts'][name]).is_relative_to(own / 'cache')


def test_four_gbt_variants_and_the_best_is_better_than_production_beyond_noise(s):
  runs = s.ranked['runs']
  assert len(runs) == 4 and {r['params']['classifier'] for r in runs} == {'gbt'}
  auc = s.best['comparison']['auc']
  assert auc['difference'] == pytest.approx(auc['candidate'] - auc['baseline'])
  assert s.best['baseline']['version'] == 1
  assert auc['ci_lower'] > 0, auc  # the paired 95% interval of gbt - logistic excludes 0
  assert s.best['blessing']['status'] == 'BLESSED'


def test_adopt_writes_the_classifier_and_the_non_default_parameters_only(s):
  assert s.done['adopt'].returncode == 0, out(s.done['adopt'])
  assert s.adopted['experiment_run'] == s.best['run_id']
  train = s.adopted['train']
  assert train['classifier'] == 'gbt'
  assert completed(train) == s.best['params']
  defaults = completed({'classifier': 'gbt'})
  assert all(train[k] != defaults[k] for k in train if k != 'classifier')
  changed = [line for line in s.diff.splitlines()
             if line[:1] in '+-' and not line.startswith(('+++', '---'))]
  assert all(line[1:].startswith(('train:', '  ', 'experiment_run:')) for line in changed), changed


def test_the_level2_check_of_build_b_ran_on_the_adopted_configuration_and_blessed_it(s):
  assert s.done['loop_b'].returncode == 0, out(s.done['loop_b'])[-4000:]
  ml = passed_record(s.bucket, s.b['build_id'])['ml']['taxi']
  assert ml['status'] == 'BLESSED', ml['message']
  assert ml['baseline_source'] == (f'the model of prod build {s.a["build_id"]} on the same '
                                   f'integration data')
  model = json.loads((pathlib.Path(ml['model_dir']) / 'model.json').read_text())
  assert model['hyperparameters'] == s.best['params']
  checks = [json.loads(p.read_text()) for p in
            (s.bucket / 'test' / 'results' / s.b['build_id']).rglob('ml_check.json')]
  (check,) = [c for c in checks if c['pipeline'] == 'taxi']
  assert check['parameters']['train'] == s.adopted['train']
  assert check['parameters']['experiment_run'] == s.best['run_id']
  assert json.loads((s.bucket / 'prod' / 'variables.json').read_text())['build_id'] == \
      s.b['build_id']


def test_ct_with_build_b_trains_the_adopted_configuration_and_pushes_it(s):
  assert s.done['ct2'].returncode == 0, out(s.done['ct2'])[-4000:]
  assert s.after_ct2['production'] == 2
  directory, record = s.registry.verified_dir(registry.PRODUCTION)
  model = json.loads((pathlib.Path(directory) / 'model.json').read_text())
  assert model['hyperparameters'] == s.best['params']
  lineage = json.loads(pathlib.Path(record['lineage']).read_text())
  assert lineage['code']['build_id'] == s.b['build_id']
  assert lineage['code']['source'] == 'deployed-wheel'


def test_invoke_lineage_names_the_experiment_run_and_the_adopted_parameters(s):
  assert s.done['lineage'].returncode == 0, out(s.done['lineage'])
  lines = s.done['lineage'].stdout.splitlines()
  assert any(line.split() == ['experiment_run', s.best['run_id']] for line in lines), lines
  assert f'deployed build {s.b["build_id"]}' in s.done['lineage'].stdout
  view = json.loads(s.done['lineage_json'].stdout)
  assert view['version'] == 2
  parameters = view['lineage']['parameters']
  assert parameters['experiment_run'] == s.best['run_id']
  assert parameters['train'] == s.adopted['train']
  assert completed(parameters['train']) == s.best['params']


def test_the_ct_run_record_links_back_to_the_experiment_run(s):
  from beam_pipelines.ct import runs
  view = json.loads(s.done['lineage_json'].stdout)
  record = runs.find_run(s.paths, view['lineage']['run_id'])
  assert record['kind'] == 'ct' and record['status'] == 'pushed'
  assert record['experiment_run'] == s.best['run_id'] and record['params'] == s.best['params']
  assert s.done['runs'].returncode == 0, out(s.done['runs'])
  (listed,) = [line for line in s.done['runs'].stdout.splitlines() if record['run_id'] in line]
  assert listed.split()[2:4] == ['ct', 'pushed'] and 'classifier=gbt' in listed
  print(f'scenario: {s.seconds:.0f} s')
