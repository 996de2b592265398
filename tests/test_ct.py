"""`python -m beam_pipelines.ct` from the source tree on a temporary bucket: a run killed with
SIGKILL in the middle of a registry push leaves the registry consistent and the next run completes
(reusing every cached step); a re-run changes nothing; --force reuses the cache; lineage."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import types

import pytest

from beam_pipelines.ct import demo, registry
from beam_pipelines.ct.definition import load_definition
from beam_pipelines.ct.paths import CtPaths
from beam_pipelines.store import layout

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def ct(bucket, *args, **env_extra):
  env = dict(os.environ)
  env.pop(layout.CRASH_ENV_VAR, None)
  env.update(env_extra)
  done = subprocess.run([sys.executable, '-m', 'beam_pipelines.ct', '--bucket', str(bucket), *args],
                        env=env, capture_output=True, text=True, timeout=600)
  done.out = done.stdout + done.stderr
  return done


def state(bucket):
  """sha256 of every object of the registry and the span records (what a re-run must not change)."""
  tree = {}
  for part in ('prod/registry', 'prod/ct/taxi/spans'):
    for root, _, files in os.walk(bucket / part):
      for name in files:
        path = os.path.join(root, name)
        with open(path, 'rb') as handle:
          tree[os.path.relpath(path, bucket)] = hashlib.sha256(handle.read()).hexdigest()
  return tree


def lineage_path(output):
  """The lineage record a run printed ("lineage <path>")."""
  return re.findall(r'lineage (\S+/lineage\.json)', output)[-1]


def lineage_of(bucket, output):
  return json.loads(open(lineage_path(output)).read())


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  bucket = tmp_path_factory.mktemp('ct') / 'bucket'
  span = demo.land(CtPaths(str(bucket)).landing, demo.DEMO_SPANS[0])
  killed = ct(bucket, **{layout.CRASH_ENV_VAR: 'registry-files-written'})
  reg = registry.Registry(str(bucket / 'prod' / 'registry' / 'taxi'))
  after_kill = types.SimpleNamespace(numbers=reg.numbers(), aliases=reg.aliases(),
                                     runs=sorted((bucket / 'prod' / 'ct' / 'taxi' / 'runs').iterdir()))
  resumed = ct(bucket)
  before_again = state(bucket)
  again = ct(bucket)
  after_again = state(bucket)
  forced = ct(bucket, '--force', '--predict', '--span', span)
  uncached = ct(bucket, '--force', '--no_cache', '--span', span)
  return types.SimpleNamespace(**locals())


def test_a_run_killed_mid_push_leaves_no_version_and_no_alias(runs):
  assert runs.killed.returncode == -9, runs.killed.out[-2000:]
  assert 'crash point registry-files-written' in runs.killed.out
  assert runs.after_kill.numbers == [] and runs.after_kill.aliases == {}
  assert (runs.bucket / 'prod' / 'registry' / 'taxi' / 'versions' / '1' / 'model.joblib').exists()
  killed_run = json.loads((runs.after_kill.runs[0] / 'lineage.json').read_text())
  assert killed_run['status'] == 'running'  # how far it got: every step done, push not
  assert set(killed_run['steps']) == {'features', 'validation', 'training', 'evaluation',
                                      'holdout_evaluation'}


def test_the_next_run_completes_reusing_every_step(runs):
  assert runs.resumed.returncode == 0, runs.resumed.out[-3000:]
  assert 'removing a stale lock' in runs.resumed.out
  record = lineage_of(runs.bucket, runs.resumed.out)
  assert {name: step['status'] for name, step in record['steps'].items()} == {
      'features': 'cached', 'validation': 'cached', 'training': 'cached', 'evaluation': 'cached',
      'holdout_evaluation': 'cached', 'push': 'pushed'}  # no production yet: no forward step
  assert runs.reg.numbers() == [1]
  assert runs.reg.record(1)['blessing']['rubber_stamped'] is True
  assert runs.reg.aliases() == {'production': 1, 'candidate': 1}
  runs.reg.verified_dir('production')  # every file matches its recorded sha256


def test_a_rerun_on_a_processed_span_says_so_and_changes_nothing(runs):
  assert runs.again.returncode == 0
  assert 'ct: no trigger: span' in runs.again.out and 'nothing to do' in runs.again.out
  assert runs.before_again == runs.after_again


def test_force_retrains_from_the_cache_and_registers_nothing_new(runs):
  assert runs.forced.returncode == 0, runs.forced.out[-3000:]
  record = lineage_of(runs.bucket, runs.forced.out)
  assert record['trigger'] == ['force']
  assert all(record['steps'][s]['status'] == 'cached' for s in ('features', 'validation', 'training'))
  # evaluation's inputs changed: its baseline is now the production model (this very model)
  assert record['steps']['evaluation']['status'] == 'ran'
  # production's level is judged on the fixed holdout: this very model, the same rows, diff 0
  assert 'diff +0 ok' in record['steps']['holdout_evaluation']['summary']
  assert 'already registered: v1' in runs.forced.out
  assert runs.reg.numbers() == [1] and len(runs.reg.history()) == 1


def test_lineage_names_the_source_tree_the_span_hash_and_the_parameters(runs):
  record = lineage_of(runs.bucket, runs.resumed.out)
  assert record['code']['source'] == 'source-tree' and len(record['code']['git_commit']) == 40
  data = (runs.bucket / 'prod' / 'inputs' / 'ct' / 'taxi' / 'span-2026-11-01' /
          'data-00000-of-00001.csv').read_bytes()
  assert record['data']['files'][0]['sha256'] == hashlib.sha256(data).hexdigest()
  assert record['trigger'] == ['new_span']
  assert record['parameters']['train']['classifier'] == 'logistic'
  assert runs.reg.record(1)['lineage'] == lineage_path(runs.resumed.out)


def test_predict_scores_the_span_with_the_production_model(runs):
  record = lineage_of(runs.bucket, runs.forced.out)
  step = record['steps']['predict']
  summary = json.loads(open(os.path.join(step['outputs'], 'summary.json')).read())
  assert step['model_version'] == 1
  assert step['summary'] == f'{summary["predictions_written"]:,} predictions'
  assert summary['model_sha256'] == runs.reg.record(1)['model_sha256']
  assert summary['rows_read'] == summary['predictions_written'] + summary['rows_dead_lettered']


def test_no_cache_runs_every_step_and_the_same_model_comes_out(runs):
  assert runs.uncached.returncode == 0, runs.uncached.out[-3000:]
  record = lineage_of(runs.bucket, runs.uncached.out)
  assert all(record['steps'][s]['status'] == 'ran'
             for s in ('features', 'validation', 'training', 'evaluation'))
  assert 'already registered: v1' in runs.uncached.out  # deterministic: same bytes, same version
  assert runs.reg.numbers() == [1]


# The policy of a pipeline: drift as a trigger on its own, or as a block.

def _policy_pipeline(root, name, policy, train='classifier: logistic, C: 1.0, random_state: 0'):
  folder = root / name
  folder.mkdir(parents=True)
  taxi = load_definition('taxi')
  (folder / 'pipeline.yaml').write_text(
      f'spec: {taxi.spec_path}\ntrain: {{{train}}}\npolicy: {policy}\n')
  return str(folder / 'pipeline.yaml')


@pytest.fixture(scope='module')
def policies(tmp_path_factory):
  root = tmp_path_factory.mktemp('policies')
  on_drift = _policy_pipeline(root, 'ondrift', '{retrain: on_drift, on_drift: retrain}')
  block = _policy_pipeline(root, 'blocking', '{on_drift: block}',  # trains on a sample, too
                           'classifier: logistic, C: 1.0, random_state: 0, max_train_rows: 1000')
  s = types.SimpleNamespace(bucket=root / 'bucket', done={})
  spans = {n: demo.land(CtPaths(str(s.bucket), 'ondrift').landing, demo.DEMO_SPANS[i])
           for n, i in (('first', 0), ('same', 1), ('drifted', 3))}
  for name in ('first', 'same', 'drifted'):
    s.done[f'ondrift_{name}'] = ct(s.bucket, '--pipeline', on_drift, '--span', spans[name])
  s.ondrift = registry.Registry(CtPaths(str(s.bucket), 'ondrift').registry)
  for name in ('first', 'drifted'):
    s.done[f'block_{name}'] = ct(s.bucket, '--pipeline', block, '--span', spans[name])
  s.blocking = registry.Registry(CtPaths(str(s.bucket), 'blocking').registry)
  return s


def test_retrain_on_drift_only_skips_a_span_without_drift(policies):
  first, same = policies.done['ondrift_first'], policies.done['ondrift_same']
  assert first.returncode == 0, first.out[-3000:]
  assert same.returncode == 0, same.out[-3000:]
  assert 'no drift above threshold, and the policy retrains on drift only' in same.out
  assert 'step training' not in same.out


def test_drift_alone_triggers_retraining(policies):
  drifted = policies.done['ondrift_drifted']
  assert drifted.returncode in (0, 3), drifted.out[-3000:]
  assert policies.ondrift.numbers() == [1, 2]
  lineage = json.loads(open(policies.ondrift.record(2)['lineage']).read())
  assert lineage['trigger'] == ['new_span', 'drift']


def test_drift_with_the_block_policy_stops_the_run(policies):
  assert policies.done['block_first'].returncode == 0, policies.done['block_first'].out[-3000:]
  blocked = policies.done['block_drifted']
  assert blocked.returncode == 1, blocked.out[-3000:]
  assert 'STOPPED at validation (drift above threshold (policy on_drift: block))' in blocked.out
  assert policies.blocking.numbers() == [1]


def test_data_that_does_not_match_the_spec_is_a_one_line_error(tmp_path):
  span = tmp_path / 'span'
  span.mkdir()
  (span / 'data.csv').write_text('trip_id,fare\n1,2.5\n')
  done = ct(tmp_path / 'bucket', '--span', str(span))
  assert done.returncode == 2
  assert 'Traceback' not in done.out
  error_lines = [line for line in done.out.splitlines() if 'ct: error:' in line]
  assert len(error_lines) == 1 and "'big_tip'" in error_lines[0]


def test_each_step_that_ran_records_its_own_peak_memory_and_reused_steps_none(runs):
  killed_run = json.loads((runs.after_kill.runs[0] / 'lineage.json').read_text())
  peaks = {name: step.get('peak_rss_bytes') for name, step in killed_run['steps'].items()}
  assert all(isinstance(p, int) and 50 * 2 ** 20 < p < 16 * 2 ** 30 for p in peaks.values()), peaks
  assert re.search(r'ct: step features: ran \(peak RSS \d+\.\d\d GiB\)', runs.killed.out)
  record = lineage_of(runs.bucket, runs.resumed.out)
  assert not any('peak_rss_bytes' in step for step in record['steps'].values())


def test_a_window_over_the_row_budget_trains_on_a_sample_the_records_name(policies):
  """The blocking pipeline's train section sets max_train_rows 1000 (its span has about 2,400
  train rows): the model, the lineage and the run record say which rows were fitted."""
  record = policies.blocking.record(1)
  lineage = json.loads(open(record['lineage']).read())
  trained = lineage['steps']['training']
  result = trained['result']
  assert result['rows'] == 1000 and result['max_train_rows'] == 1000
  assert result['rows_available'] > 1000 and result['sample'].startswith('stratified by label')
  assert trained['summary'].startswith(
      f'1,000 of {result["rows_available"]:,} rows (a stratified sample: max_train_rows 1,000)')
  run = json.loads(open(os.path.join(os.path.dirname(record['lineage']), 'run.json')).read())
  assert run['training'] == {'rows_used': 1000, 'rows_available': result['rows_available'],
                             'max_train_rows': 1000, 'sample': result['sample']}
  data = json.loads(open(os.path.join(trained['outputs'], 'model.json')).read())['data']
  assert data['rows_used'] == 1000 and data['sample']['rule'] == result['sample']
  assert 'over the budget of 1,000: a stratified sample of 1,000' in (
      policies.done['block_first'].out)
