"""Experiments: variants of the training parameters on the same window and eval rows against
production (run records, ranking, intervals, production untouched), adopting one into
pipeline.yaml (the lineage of the next CT model names it), the runs and compare pages."""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import types

import pytest
from browser import assert_clean, browser

from beam_pipelines import experiment, train
from beam_pipelines.ct import demo, registry, runs, views
from beam_pipelines.ct.definition import definition_path, load_definition
from beam_pipelines.ct.loop import ContinuousTraining, CtOptions
from beam_pipelines.ct.paths import CtPaths
from beam_pipelines.harness.site import build_site
from beam_pipelines.pages import runs as runs_pages
from beam_pipelines.store.console import number
from beam_pipelines.store.lock import BucketLock

REPO = pathlib.Path(__file__).resolve().parents[1]
GRID = 'classifier: [gbt]\nmax_depth: [2, 4]\nlearning_rate: [0.05, 0.2]\n'


def tree_state(root: pathlib.Path) -> dict:
  """sha256 of every file under ``root`` (what an experiment must not change)."""
  return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
          for p in sorted(root.rglob('*')) if p.is_file()}


# Units: no pipeline runs -----------------------------------------------------------------------

class TestVariants:
  def test_a_param_is_read_as_a_yaml_scalar(self):
    assert experiment.parse_param('max_depth=4') == ('max_depth', 4)
    assert experiment.parse_param('classifier=gbt') == ('classifier', 'gbt')
    assert experiment.parse_param('early_stopping=false') == ('early_stopping', False)

  def test_a_param_without_a_value_or_with_a_list_is_refused(self):
    with pytest.raises(experiment.UsageError, match='NAME=VALUE'):
      experiment.parse_param('max_depth')
    with pytest.raises(experiment.UsageError, match='one number'):
      experiment.parse_param('max_depth=[1, 2]')

  def test_a_grid_is_every_combination_with_the_fixed_params(self):
    grid = {'max_depth': [2, 4], 'learning_rate': [0.05, 0.2]}
    assert experiment.variants({'classifier': 'gbt'}, grid) == [
        {'classifier': 'gbt', 'max_depth': 2, 'learning_rate': 0.05},
        {'classifier': 'gbt', 'max_depth': 2, 'learning_rate': 0.2},
        {'classifier': 'gbt', 'max_depth': 4, 'learning_rate': 0.05},
        {'classifier': 'gbt', 'max_depth': 4, 'learning_rate': 0.2}]
    assert experiment.variants({'C': 2.0}, None) == [{'C': 2.0}]

  def test_an_override_the_classifier_does_not_use_is_refused(self):
    with pytest.raises(experiment.ExperimentError, match='max_depth do not apply to classifier '
                                                         'logistic'):
      experiment.completed({'classifier': 'logistic'}, {'max_depth': 4})
    assert experiment.completed({'classifier': 'logistic', 'C': 1.0},
                                {'classifier': 'gbt', 'max_depth': 4})['max_depth'] == 4

  def test_an_experiment_is_refused_while_ct_holds_the_pipelines_lock(self, tmp_path, capsys):
    paths = CtPaths(str(tmp_path), 'taxi')
    with BucketLock(paths.lock, 'continuous training run', guards='continuous training'):
      status = experiment.main(['--bucket', str(tmp_path), '--pipeline', 'taxi',
                                '--param', 'classifier=gbt'])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1, err
    assert f'continuous training of {paths.root} is locked: {paths.lock}' in err[0]
    assert 'continuous training run)' in err[0] and 'Nothing was changed' in err[0]
    assert [p.name for p in tmp_path.rglob('*')] == ['prod', 'ct', 'taxi']  # nothing written

  def test_a_bad_param_is_refused_in_one_line_with_status_2(self, tmp_path, capsys):
    status = experiment.main(['--bucket', str(tmp_path), '--pipeline', 'taxi',
                              '--param', 'depth=4'])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert err == ['[beam-pipelines] experiment: error: unknown training parameter(s) '
                   '--depth 4'], err

  def test_a_failed_variant_that_cannot_be_recorded_is_said_and_its_error_kept(self, tmp_path,
                                                                               capsys):
    paths = CtPaths(str(tmp_path), 'taxi')
    blocker = pathlib.Path(runs.experiments_dir(paths))
    blocker.parent.mkdir(parents=True)
    blocker.write_text('a file where the experiments folder goes')  # no record can be written
    record = runs.RunDocument(run_id='E-01', kind=runs.EXPERIMENT, pipeline='taxi',
                              status=runs.FAILED, error='OSError: the variant\'s own error')
    experiment._record_failed(paths, record)  # returns: the caller raises the variant's error
    err = capsys.readouterr().err
    assert 'experiment: run E-01 could not be recorded as failed: ' in err, err
    assert blocker.read_text() == 'a file where the experiments folder goes'


class TestRewriteTrain:
  TEXT = ('# a comment\nspec: spec.yaml\ntrain:    # flags\n  classifier: logistic\n\n  C: 1.0\n'
          'window: 1  # kept\nexperiment_run: OLD\npolicy:\n  retrain: every_span\n')

  def test_only_the_train_block_and_experiment_run_change(self, tmp_path):
    params = experiment.completed({'classifier': 'logistic', 'C': 1.0},
                                  {'classifier': 'gbt', 'max_depth': 4})
    out = experiment.rewrite_train(self.TEXT, experiment.settings_of(params), 'RUN-1')
    assert out == ('# a comment\nspec: spec.yaml\ntrain:    # flags\n  classifier: gbt\n'
                   '  max_depth: 4\nexperiment_run: RUN-1  # the experiment run this train '
                   'section came from\nwindow: 1  # kept\npolicy:\n  retrain: every_span\n')
    (tmp_path / 'spec.yaml').write_text('')
    (tmp_path / 'pipeline.yaml').write_text(out)
    assert train.parameters(load_definition(str(tmp_path / 'pipeline.yaml')).train) == params

  def test_adopted_settings_are_the_classifier_and_what_differs_from_the_defaults(self):
    params = train.parameters({'classifier': 'gbt', 'learning_rate': 0.05, 'max_depth': 2,
                               'max_iter': 1000, 'random_state': 0, 'max_leaf_nodes': 31})
    assert experiment.settings_of(params) == {'classifier': 'gbt', 'learning_rate': 0.05,
                                              'max_iter': 1000, 'max_depth': 2}
    assert experiment.settings_of(train.parameters({'classifier': 'logistic'})) == {
        'classifier': 'logistic'}
    for settings in ({'classifier': 'gbt', 'early_stopping': False, 'random_state': 7},
                     {'classifier': 'logistic', 'C': 0.5, 'max_iter': 200}):
      params = train.parameters(settings)
      assert train.parameters(experiment.settings_of(params)) == params
      assert experiment.settings_of(params) == settings

  def test_the_bundled_pipeline_reads_back_with_the_new_parameters(self, tmp_path):
    folder = shutil.copytree(pathlib.Path(definition_path('taxi')).parent, tmp_path / 'taxi')
    path = folder / 'pipeline.yaml'
    before = path.read_text()
    path.write_text(experiment.rewrite_train(before, {'classifier': 'gbt', 'max_depth': 3,
                                                      'early_stopping': True}, 'R'))
    written, original = load_definition(str(path)), load_definition(str(REPO / 'beam_pipelines' /
                                                                         'pipelines' / 'taxi' /
                                                                         'pipeline.yaml'))
    assert written.train == {'classifier': 'gbt', 'max_depth': 3, 'early_stopping': True}
    assert written.experiment_run == 'R' and written.parameters()['experiment_run'] == 'R'
    assert (written.blessing, written.policy, written.model_card, written.window) == (
        original.blessing, original.policy, original.model_card, original.window)
    assert 'experiment_run' not in original.parameters()


class TestRanking:
  RUNS = [{'run_id': 'a', 'metrics': {'auc': 0.8, 'log_loss': 0.3}, 'started_at': '1'},
          {'run_id': 'b', 'metrics': {'auc': 0.9, 'log_loss': 0.4}, 'started_at': '2'},
          {'run_id': 'c', 'metrics': {'accuracy': 0.7}, 'started_at': '3'}]

  def test_higher_is_better_and_losses_lower_and_runs_without_the_metric_last(self):
    assert [r['run_id'] for r in runs.ranked(self.RUNS, 'auc')] == ['b', 'a', 'c']
    assert [r['run_id'] for r in runs.ranked(self.RUNS, 'log_loss')] == ['a', 'b', 'c']

  def test_the_variants_of_an_experiment_get_every_pair(self):
    members = [dict(r, experiment_id='E', kind='experiment') for r in self.RUNS]
    assert runs_pages.compare_pairs(members, 'auc') == [('a', 'b'), ('a', 'c'), ('b', 'c')]

  def test_a_failed_variant_gets_no_compare_page(self):
    failed = {'run_id': 'd', 'status': runs.FAILED, 'metrics': {}, 'started_at': '4',
              'error': 'OSError: [Errno 28] No space left on device'}
    members = [dict(r, experiment_id='E', kind='experiment') for r in [*self.RUNS, failed]]
    assert runs_pages.compare_pairs(members, 'auc') == [('a', 'b'), ('a', 'c'), ('b', 'c')]


# One real experiment, shared -------------------------------------------------------------------

@pytest.fixture(scope='module')
def done(tmp_path_factory):
  root = tmp_path_factory.mktemp('experiment')
  bucket = root / 'bucket'
  span = demo.land(CtPaths(str(bucket)).landing, demo.DEMO_SPANS[0])
  first = ContinuousTraining(str(bucket)).run([span])
  reg_dir = bucket / 'prod' / 'registry' / 'taxi'
  before = tree_state(reg_dir)
  spans_before = tree_state(bucket / 'prod' / 'ct' / 'taxi' / 'spans')
  cache_before = tree_state(bucket / 'prod' / 'ct' / 'taxi' / 'cache')
  grid = root / 'grid.yaml'
  grid.write_text(GRID)
  result = experiment.run(['--bucket', str(bucket), '--pipeline', 'taxi', '--grid', str(grid)])
  after = tree_state(reg_dir)
  spans_after = tree_state(bucket / 'prod' / 'ct' / 'taxi' / 'spans')
  cache_after = tree_state(bucket / 'prod' / 'ct' / 'taxi' / 'cache')
  listed = subprocess.run([sys.executable, '-m', 'invoke', 'runs', '--pipeline', 'taxi',
                           '--bucket', str(bucket), '--experiment', result.experiment_id,
                           '--json'], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
  folder = shutil.copytree(pathlib.Path(definition_path('taxi')).parent, root / 'taxi')
  best = result.runs[0]
  experiment.run(['--bucket', str(bucket), '--pipeline', str(folder / 'pipeline.yaml'),
                  '--adopt', best['run_id']])
  adopted = ContinuousTraining(str(bucket), CtOptions(pipeline=str(folder / 'pipeline.yaml'))
                               ).run([span], force=True)
  return types.SimpleNamespace(**locals())


@pytest.mark.integration
@pytest.mark.slow
class TestExperiment:
  def test_four_variants_have_four_run_records_ranked_with_intervals(self, done):
    records, _ = runs.list_runs(CtPaths(str(done.bucket), 'taxi'), done.result.experiment_id)
    assert len(records) == 4 == len(done.result.runs)
    by_id = {r['run_id']: r for r in records}
    aucs = [r['metrics']['auc'] for r in done.result.runs]
    assert aucs == sorted(aucs, reverse=True)
    for run in done.result.runs:
      stored = by_id[run['run_id']]
      assert stored == json.loads(json.dumps(run))
      assert stored['kind'] == 'experiment' and stored['status'] == 'evaluated'
      assert stored['params']['classifier'] == 'gbt'
      training = stored['training']  # under the default budget: every row of the window
      assert training['rows_used'] == training['rows_available'] > 0
      assert training['max_train_rows'] == 2_000_000 and training['sample'] is None
      interval = stored['comparison']['auc']
      assert interval['ci_lower'] < interval['difference'] < interval['ci_upper']
      assert interval['difference'] == pytest.approx(interval['candidate'] - interval['baseline'])
      assert stored['baseline']['version'] == 1
      assert stored['blessing']['status'] in ('BLESSED', 'NOT_BLESSED')
      assert stored['artifacts']['model_sha256'] == hashlib.sha256(
          (pathlib.Path(stored['artifacts']['model_dir']) / 'model.joblib').read_bytes()
      ).hexdigest()
    assert len({r['params']['max_depth'] for r in records}) == 2
    assert len({r['data']['eval_sha256'] for r in records}) == 1  # the same eval rows
    assert len({json.dumps(r['baseline']['metrics'], sort_keys=True) for r in records}) == 1

  def test_production_the_registry_and_cts_cache_are_untouched(self, done):
    assert done.after == done.before and done.spans_after == done.spans_before
    assert done.cache_after == done.cache_before and done.cache_before
    own = done.bucket / 'prod' / 'ct' / 'taxi' / 'experiments' / done.result.experiment_id
    for run in done.result.runs:
      for name in ('model_dir', 'evaluation_dir'):
        assert pathlib.Path(run['artifacts'][name]).is_relative_to(own / 'cache')
    assert done.first[0].outcome == 'pushed'

  def test_the_ct_run_has_a_run_record_in_the_same_format(self, done):
    record = runs.find_run(CtPaths(str(done.bucket), 'taxi'), done.first[0].run_id)
    assert record['kind'] == 'ct' and record['status'] == 'pushed' and record['model_version'] == 1
    assert record['params']['classifier'] == 'logistic'
    assert record['training']['rows_used'] == done.result.runs[0]['training']['rows_used']
    assert record['data']['eval_sha256'] == done.result.runs[0]['data']['eval_sha256']

  def test_invoke_runs_lists_the_experiment_ranked_as_json(self, done):
    assert done.listed.returncode == 0, done.listed.stderr[-2000:]
    listed = json.loads(done.listed.stdout)
    assert listed['metric'] == 'auc'
    assert [r['run_id'] for r in listed['runs']] == [r['run_id'] for r in done.result.runs]

  def test_adopt_writes_pipeline_yaml_and_the_ct_lineage_names_the_run(self, done):
    run_id = done.best['run_id']
    written = load_definition(str(done.folder / 'pipeline.yaml'))
    assert written.experiment_run == run_id
    assert written.train == experiment.settings_of(done.best['params'])
    outcome = done.adopted[0]
    lineage = json.loads(pathlib.Path(outcome.lineage).read_text())
    assert lineage['parameters']['experiment_run'] == run_id
    assert runs.find_run(CtPaths(str(done.bucket), 'taxi'), outcome.run_id)['experiment_run'] \
        == run_id
    reg = registry.Registry(str(done.bucket / 'prod' / 'registry' / 'taxi'))
    lines = views.lineage_lines(views.lineage(reg, 'taxi', outcome.version))
    assert any(line.split() == ['experiment_run', run_id] for line in lines), lines

  def test_the_compare_page_shows_two_experiment_runs_as_their_run_json(self, done):
    build_site(str(done.bucket))
    site = done.bucket / 'site'
    left, right = sorted(r['run_id'] for r in done.result.runs[:2])
    records = {r: runs.find_run(CtPaths(str(done.bucket), 'taxi'), r) for r in (left, right)}
    with browser() as opened:
      view = opened.open(site / runs_pages.compare_runs_name('taxi', left, right),
                         'experiment-compare')
      assert_clean(view, ['roc-compare-runs'])
      table = opened.open(site / runs_pages.runs_page_name('taxi'), 'experiment-runs')
      assert_clean(table, [])
    assert view.chart('roc-compare-runs')['marks'] >= 2
    assert (view.values['run.left'], view.values['run.right']) == (left, right)
    assert 'rows.same' in view.values
    for side, run_id in (('left', left), ('right', right)):
      metrics = records[run_id]['metrics']
      for metric in ('auc', 'accuracy', 'log_loss'):
        assert view.values[f'metric.{metric}.{side}'] == number(metrics[metric])
      assert view.values[f'{side}.interval'] == runs.interval_text(
          records[run_id]['comparison']['auc'])
      for param, value in records[run_id]['params'].items():
        if f'param.{param}.{side}' in view.values:
          assert view.values[f'param.{param}.{side}'] == number(value) or \
              view.values[f'param.{param}.{side}'] == f'{value:g}'
    for run in done.result.runs:
      assert table.values[f'run.{run["run_id"]}.auc'] == number(run['metrics']['auc'])
