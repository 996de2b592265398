"""The MLflow mirror against a real local MLflow tracking server (started from .venv-mlflow): real
CT runs and a real experiment with ``$MLFLOW_TRACKING_URI`` set are read back through MLflow's own
Python client (CT runs with their kind, status, params, metrics and lineage artifact; the variants
of an experiment whose last variant failed, with their kind, experiment, params, metrics,
comparison to production and run.json, the failed one as a FAILED run with its error, which
``--adopt`` refuses; registered versions with their identity tags; the
``production`` alias, moved by hand after the runs). A re-sync creates nothing, a lost mirror
record makes no duplicate, a CT run mirrored without its kind gets it, an unreachable server is
one line and the next sync resumes."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest
from trackingdata import REPO, free_port, read_back, tracked  # noqa: F401 - tracked: a session fixture

from beam_pipelines.ct import registry, runs
from beam_pipelines.ct.definition import definition_path
from beam_pipelines.tracking import mlflow_mirror

pytestmark = [pytest.mark.integration, pytest.mark.slow]

READ = """
import json, sys
from mlflow.tracking import MlflowClient
client = MlflowClient(tracking_uri=sys.argv[1])
name = sys.argv[2]
experiment = client.get_experiment_by_name(name)
runs = client.search_runs([experiment.experiment_id], max_results=1000)
versions = client.search_model_versions(f"name='{name}'")
production = client.get_model_version_by_alias(name, 'production')
print(json.dumps({
    'count': len(runs),
    'runs': {r.data.tags['beam_pipelines.run_id']: {
        'mlflow_run_id': r.info.run_id, 'name': r.info.run_name, 'status': r.info.status,
        'params': r.data.params, 'metrics': r.data.metrics, 'tags': r.data.tags,
        'artifacts': [a.path for a in client.list_artifacts(r.info.run_id)]} for r in runs},
    'versions': {v.tags['registry_version']: {'version': v.version, 'source': v.source,
                                              'run_id': v.run_id, 'tags': v.tags}
                 for v in versions},
    'production': {'version': production.version, 'tags': production.tags}}))
"""


@pytest.fixture(scope='module')
def mlflow_view(tracked):  # noqa: F811
  return read_back(tracked.server.python, tracked.server.uri, READ, 'taxi')


def lineage_records(tracked):  # noqa: F811
  folder = pathlib.Path(tracked.paths.root) / 'runs'
  return {p.parent.name: json.loads(p.read_text()) for p in folder.glob('*/lineage.json')}


def variant_records(tracked):  # noqa: F811
  folder = pathlib.Path(tracked.paths.root) / runs.EXPERIMENTS
  return {p.parent.name: json.loads(p.read_text()) for p in folder.glob('*/run.json')}


def of_kind(mlflow_view, kind):
  return {run_id: run for run_id, run in mlflow_view['runs'].items()
          if run['tags'].get('beam_pipelines.kind') == kind}


def test_every_ct_run_is_an_mlflow_run_with_its_status(tracked, mlflow_view):  # noqa: F811
  records = lineage_records(tracked)
  assert set(of_kind(mlflow_view, 'ct')) == set(records)
  assert set(mlflow_view['runs']) == set(records) | set(variant_records(tracked))
  statuses = {run_id: run['tags']['beam_pipelines.status']
              for run_id, run in of_kind(mlflow_view, 'ct').items()}
  assert statuses == {run_id: record['status'] for run_id, record in records.items()}
  assert sorted(statuses.values())[:2] == ['failed', 'pushed']
  assert 'stopped' in statuses.values()
  for run_id, run in of_kind(mlflow_view, 'ct').items():
    assert run['name'] == run_id
    assert run['status'] == ('FAILED' if statuses[run_id] == 'failed' else 'FINISHED')
    assert 'lineage.json' in run['artifacts']


def test_a_run_carries_params_metrics_data_and_code_identity(tracked, mlflow_view):  # noqa: F811
  records = lineage_records(tracked)
  first = min(records)
  record, run = records[first], mlflow_view['runs'][first]
  assert run['params']['train.classifier'] == 'logistic' and run['params']['train.C'] == '1.0'
  assert run['metrics']['evaluation.auc'] == pytest.approx(
      record['steps']['evaluation']['result']['metrics']['auc'])
  assert 'holdout_evaluation.auc' in run['metrics'] and 'features.rows_read' in run['metrics']
  tags = run['tags']
  assert tags['beam_pipelines.data_sha256'] == record['data']['sha256']
  assert tags['beam_pipelines.code.fingerprint'] == record['code']['fingerprint']
  assert tags['mlflow.source.git.commit'] == record['code']['git_commit']
  assert tags['beam_pipelines.lineage'].endswith(f'/runs/{first}/lineage.json')
  failed = next(r for r in of_kind(mlflow_view, 'ct').values()
                if r['tags']['beam_pipelines.status'] == 'failed')
  assert failed['tags']['beam_pipelines.error'] == 'OSError: [Errno 28] No space left on device'


def test_a_ct_run_against_production_carries_the_comparison_as_a_variant_does(tracked,  # noqa: F811
                                                                              mlflow_view):
  records = lineage_records(tracked)
  compared = {run_id: runs.comparison(r['steps']['evaluation']['outputs'])
              for run_id, r in records.items() if 'evaluation' in r.get('steps', {})}
  compared = {run_id: c for run_id, c in compared.items() if c}  # the runs with a production
  assert compared, 'no CT run of the scenario was compared with production'
  for run_id, comparison in compared.items():
    metrics = mlflow_view['runs'][run_id]['metrics']
    for key in ('difference', 'ci_lower', 'ci_upper', 'candidate', 'baseline'):
      assert metrics[f'comparison.auc.{key}'] == pytest.approx(comparison['auc'][key]), key
  first = min(records)  # v1: no production to compare with
  assert not any(k.startswith('comparison.') for k in mlflow_view['runs'][first]['metrics'])


def test_an_experiment_that_failed_has_its_recorded_variants_mirrored(tracked, mlflow_view):  # noqa: F811
  done = tracked.done['experiment']
  assert done.returncode != 0 and 'No space left on device' in done.stderr, done.stderr[-3000:]
  records = variant_records(tracked)
  assert sorted((r['params']['C'], r['status']) for r in records.values()) == [
      (0.5, 'evaluated'), (2.0, 'evaluated'), (4.0, 'failed')]  # C=4.0's training raised
  assert len({r['experiment_id'] for r in records.values()}) == 1
  variants = of_kind(mlflow_view, 'experiment')
  assert set(variants) == set(records)
  for run_id, record in records.items():
    assert f'mlflow: experiment run {run_id} ({record["status"]})' in done.stderr


def test_a_variant_that_raised_is_a_failed_mlflow_run_with_its_params_and_error(tracked,  # noqa: F811
                                                                                 mlflow_view):
  run_id, record = next((k, r) for k, r in variant_records(tracked).items()
                        if r['status'] == 'failed')
  assert record['error'] == 'OSError: [Errno 28] No space left on device'
  assert record['data']['sha256'] and not record['metrics']
  run = mlflow_view['runs'][run_id]
  assert (run['name'], run['status']) == (run_id, 'FAILED')
  assert run['tags']['beam_pipelines.error'] == record['error']
  assert run['tags']['beam_pipelines.data_sha256'] == record['data']['sha256']
  assert json.loads(run['params']['train.C']) == 4.0
  assert not any(k.startswith(('evaluation.', 'comparison.')) for k in run['metrics'])


def test_a_failed_variant_cannot_be_adopted(tracked, tmp_path):  # noqa: F811
  run_id = next(k for k, r in variant_records(tracked).items() if r['status'] == 'failed')
  folder = shutil.copytree(pathlib.Path(definition_path('taxi')).parent, tmp_path / 'taxi')
  before = (folder / 'pipeline.yaml').read_bytes()
  done = subprocess.run(
      [sys.executable, '-m', 'beam_pipelines.experiment', '--bucket', str(tracked.bucket),
       '--pipeline', str(folder / 'pipeline.yaml'), '--adopt', run_id],
      capture_output=True, text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(REPO)))
  assert done.returncode == 2, done.stderr[-2000:]
  assert f'run {run_id} is failed (OSError' in done.stderr
  assert (folder / 'pipeline.yaml').read_bytes() == before


def test_a_variant_carries_params_metrics_comparison_and_identity(tracked, mlflow_view):  # noqa: F811
  evaluated = {k: r for k, r in variant_records(tracked).items() if r['status'] == 'evaluated'}
  assert len(evaluated) == 2
  for run_id, record in evaluated.items():
    run = mlflow_view['runs'][run_id]
    assert (run['name'], run['status']) == (run_id, 'FINISHED')
    tags = run['tags']
    assert tags['beam_pipelines.experiment_id'] == record['experiment_id']
    assert tags['beam_pipelines.status'] == 'evaluated'
    assert json.loads(tags['beam_pipelines.overrides']) == record['overrides']
    params = {k: v for k, v in record['params'].items() if v is not None}  # None: not logged
    assert set(run['params']) == {f'train.{k}' for k in params}
    for key, value in params.items():  # text as is, the rest as JSON
      got = run['params'][f'train.{key}']
      assert (got if isinstance(value, str) else json.loads(got)) == value, key
    metrics, interval = run['metrics'], record['comparison']['auc']
    for key in ('difference', 'ci_lower', 'ci_upper', 'candidate', 'baseline'):
      assert metrics[f'comparison.auc.{key}'] == pytest.approx(interval[key])
    assert metrics['comparison.auc.ci_lower'] < metrics['comparison.auc.ci_upper']
    assert metrics['evaluation.auc'] == pytest.approx(record['metrics']['auc'])
    assert metrics['evaluation.production.auc'] == pytest.approx(
        record['baseline']['metrics']['auc'])
    assert tags['beam_pipelines.baseline_version'] == str(tracked.aliases[registry.PRODUCTION])
    assert tags['beam_pipelines.data_sha256'] == record['data']['sha256']
    assert tags['beam_pipelines.eval_sha256'] == record['data']['eval_sha256']
    assert tags['beam_pipelines.code.fingerprint'] == record['code']['fingerprint']
    assert tags['beam_pipelines.run_record'].endswith(f'/experiments/{run_id}/run.json')
    assert 'run.json' in run['artifacts']


def test_registered_versions_carry_their_identity_and_run(tracked, mlflow_view):  # noqa: F811
  assert sorted(mlflow_view['versions']) == [str(n) for n in tracked.registry.numbers()]
  mirrored_runs = {r['tags']['beam_pipelines.run_id']: r['mlflow_run_id']
                   for r in mlflow_view['runs'].values()}
  for number, version in mlflow_view['versions'].items():
    record = tracked.registry.record(int(number))
    assert version['tags']['model_sha256'] == record['model_sha256']
    assert version['tags']['bucket_source'] == tracked.registry.version_dir(int(number))
    assert version['run_id'] == mirrored_runs[record['run_id']]
    data = json.loads(pathlib.Path(record['lineage']).read_text())['data']
    assert version['tags']['data_sha256'] == data['sha256']
    # a local bucket's version files are uploaded to its run (the server refuses local paths)
    assert version['source'].endswith(f'/artifacts/registry/v{number}')


def test_the_production_alias_follows_the_bucket_after_a_move_by_hand(tracked, mlflow_view):  # noqa: F811
  assert tracked.aliases[registry.PRODUCTION] != tracked.aliases_before_move[registry.PRODUCTION]
  assert mlflow_view['production']['tags']['registry_version'] == str(
      tracked.aliases[registry.PRODUCTION])


def test_a_resync_or_a_lost_record_creates_nothing(tracked, mlflow_view, monkeypatch):  # noqa: F811
  monkeypatch.setenv(mlflow_mirror.TRACKING_ENV_VAR, tracked.server.uri)
  record = pathlib.Path(tracked.paths.root) / mlflow_mirror.MIRROR_FILE
  before = json.loads(record.read_text())
  mlflow_mirror.mirror_after(tracked.paths)
  assert json.loads(record.read_text()) == before
  record.unlink()
  mlflow_mirror.mirror_after(tracked.paths)  # found again by their tags
  assert json.loads(record.read_text()) == before
  again = read_back(tracked.server.python, tracked.server.uri, READ, 'taxi')
  assert again['runs'].keys() == mlflow_view['runs'].keys()
  assert again['count'] == mlflow_view['count'] == len(mlflow_view['runs'])  # no duplicate
  assert {r['kind'] for r in before[tracked.server.uri]['runs'].values()} == {'ct', 'experiment'}
  assert {n: v['version'] for n, v in again['versions'].items()} == {
      n: v['version'] for n, v in mlflow_view['versions'].items()}


def test_a_ct_run_mirrored_without_its_kind_gets_it(tracked, mlflow_view, monkeypatch):  # noqa: F811
  monkeypatch.setenv(mlflow_mirror.TRACKING_ENV_VAR, tracked.server.uri)
  path = pathlib.Path(tracked.paths.root) / mlflow_mirror.MIRROR_FILE
  record = json.loads(path.read_text())
  run_id = min(lineage_records(tracked))
  mirrored = record[tracked.server.uri]['runs'][run_id]
  del mirrored['kind']  # as a sync before runs carried their kind left it
  path.write_text(json.dumps(record))
  api = mlflow_mirror.MlflowRest(tracked.server.uri)
  api.call('POST', 'runs/delete-tag', {'run_id': mirrored['run_id'], 'key': 'beam_pipelines.kind'})
  assert 'beam_pipelines.kind' not in read_back(
      tracked.server.python, tracked.server.uri, READ, 'taxi')['runs'][run_id]['tags']
  mlflow_mirror.mirror_after(tracked.paths)
  again = read_back(tracked.server.python, tracked.server.uri, READ, 'taxi')
  assert again['runs'][run_id]['tags']['beam_pipelines.kind'] == 'ct'
  assert again['count'] == mlflow_view['count']
  assert json.loads(path.read_text())[tracked.server.uri]['runs'][run_id]['kind'] == 'ct'


def test_an_unreachable_server_is_one_line_and_changes_nothing(tracked, monkeypatch, capsys):  # noqa: F811
  record = pathlib.Path(tracked.paths.root) / mlflow_mirror.MIRROR_FILE
  before = record.read_bytes()
  monkeypatch.setenv(mlflow_mirror.TRACKING_ENV_VAR, f'http://127.0.0.1:{free_port()}')
  mlflow_mirror.mirror_after(tracked.paths)
  said = capsys.readouterr().err.strip().splitlines()
  assert len(said) == 1 and 'mlflow: mirror NOT updated (URLError' in said[0]
  assert 'the next run or move resumes the sync' in said[0]
  assert record.read_bytes() == before


def test_a_tracking_uri_that_is_not_a_server_is_refused_in_one_line(tracked, monkeypatch, capsys):  # noqa: F811
  monkeypatch.setenv(mlflow_mirror.TRACKING_ENV_VAR, 'file:///tmp/mlruns')
  mlflow_mirror.mirror_after(tracked.paths)
  said = capsys.readouterr().err.strip().splitlines()
  assert len(said) == 1 and 'must be an http(s) tracking server URL' in said[0]
