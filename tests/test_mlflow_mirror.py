"""The MLflow mirror against a real local MLflow tracking server (started from .venv-mlflow): real
CT runs with ``$MLFLOW_TRACKING_URI`` set are read back through MLflow's own Python client (runs
with their status, params, metrics and lineage artifact; registered versions with their identity
tags; the ``production`` alias, moved by hand after the runs). A re-sync creates nothing, a lost
mirror record makes no duplicate, an unreachable server is one line and the next sync resumes."""

from __future__ import annotations

import json
import pathlib

import pytest
from trackingdata import free_port, read_back, tracked  # noqa: F401 - tracked: a session fixture

from beam_pipelines.ct import registry
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
  runs = pathlib.Path(tracked.paths.root) / 'runs'
  return {p.parent.name: json.loads(p.read_text()) for p in runs.glob('*/lineage.json')}


def test_every_ct_run_is_an_mlflow_run_with_its_status(tracked, mlflow_view):  # noqa: F811
  records = lineage_records(tracked)
  assert set(mlflow_view['runs']) == set(records)
  statuses = {run_id: run['tags']['beam_pipelines.status']
              for run_id, run in mlflow_view['runs'].items()}
  assert statuses == {run_id: record['status'] for run_id, record in records.items()}
  assert sorted(statuses.values())[:2] == ['failed', 'pushed']
  assert 'stopped' in statuses.values()
  for run_id, run in mlflow_view['runs'].items():
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
  failed = next(r for r in mlflow_view['runs'].values()
                if r['tags']['beam_pipelines.status'] == 'failed')
  assert failed['tags']['beam_pipelines.error'] == 'OSError: [Errno 28] No space left on device'


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
  assert {n: v['version'] for n, v in again['versions'].items()} == {
      n: v['version'] for n, v in mlflow_view['versions'].items()}


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
