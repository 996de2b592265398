"""The recovery commands on a registry and a deploy history holding garbage: `model-list`,
`model-rollback`, `status` and `rollback` skip a malformed entry, naming its file in one line, and
never crash."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

from beam_pipelines.ct import registry, views
from beam_pipelines.ct.paths import CtPaths
from beam_pipelines.harness import deploy, status
from beam_pipelines.store import layout
from beam_pipelines.store.errors import Refusal

from ctdata import build_bucket

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture
def reg(tmp_path):
  """A registry with v1 then v2 pushed (v2 production), and a third push of v1 again so that a
  rollback has somewhere to go."""
  build_bucket(tmp_path / 'bucket')
  reg = registry.Registry(CtPaths(str(tmp_path / 'bucket'), 'taxi').registry)
  return reg


def history_dir(reg) -> pathlib.Path:
  return pathlib.Path(reg.root) / registry.HISTORY


@pytest.mark.parametrize('content', ['garbage', '[1, 2]', '{"event": "push"}',
                                     '{"event": "push", "moves": {"production": 3}}'])
def test_a_malformed_history_event_is_skipped_and_named(reg, content):
  bad = history_dir(reg) / '20260101T000000000000Z-push.json'
  bad.write_text(content)
  view = views.model_list(reg, 'taxi')
  assert [v['version'] for v in view['versions']] == [1, 2]
  assert len(view['skipped']) == 1 and str(bad) in view['skipped'][0]
  lines = views.model_list_lines(view)
  assert sum('SKIPPED' in line and str(bad) in line for line in lines) == 1
  event = reg.rollback('back to v1')
  assert event is not None and reg.aliases()[registry.PRODUCTION] == 1


@pytest.mark.parametrize('field', ['model_sha256', 'files', 'version'])
def test_a_version_record_without_a_field_is_one_line_never_a_key_error(reg, field):
  path = pathlib.Path(reg.record_path(1))
  record = json.loads(path.read_text())
  del record[field]
  path.write_text(json.dumps(record))
  view = views.model_list(reg, 'taxi')
  assert [v['version'] for v in view['versions']] == [2]
  assert len(view['skipped']) == 1 and str(path) in view['skipped'][0]
  views.model_list_lines(view)
  with pytest.raises(Refusal, match=f'{path} is not a model version record .*{field}') as refused:
    reg.rollback('back to v1')
  assert '\n' not in str(refused.value)
  assert reg.aliases()[registry.PRODUCTION] == 2


def test_an_alias_event_without_an_event_id_is_left_alone(reg):
  aliases = pathlib.Path(reg.root) / registry.ALIASES_FILE
  content = json.loads(aliases.read_text())
  del content['event']['event_id']
  aliases.write_text(json.dumps(content))
  assert reg.rollback('back') is not None


def deploy_history(bucket: pathlib.Path) -> pathlib.Path:
  path = pathlib.Path(layout.Env(str(bucket), layout.PROD).history)
  path.mkdir(parents=True, exist_ok=True)
  return path


@pytest.mark.parametrize('event', [{'build_id': '20260101T000000Z-abcdef0-123456'},
                                   {'event': 'deploy'}, {'event': 'deploy', 'build_id': 7}])
def test_a_deploy_history_entry_without_its_fields_is_skipped_by_status_and_rollback(tmp_path,
                                                                                      event):
  bucket = tmp_path / 'bucket'
  good = {'event': 'deploy', 'build_id': '20260101T000000Z-abcdef0-111111',
          'deployed_at': '2026-01-01T00:00:00+00:00'}
  later = dict(good, build_id='20260102T000000Z-abcdef0-222222')
  history = deploy_history(bucket)
  (history / '20260101T000000000000Z-deploy.json').write_text(json.dumps(good))
  bad = history / '20260101T120000000000Z-deploy.json'
  bad.write_text(json.dumps(event))
  (history / '20260102T000000000000Z-deploy.json').write_text(json.dumps(later))
  events, skipped = deploy.history_with_skipped(str(bucket))
  assert [e['build_id'] for e in events] == [good['build_id'], later['build_id']]
  assert len(skipped) == 1 and str(bad) in skipped[0]
  assert deploy.rollback_target(events, later['build_id']) == good['build_id']
  lines = status.status_lines(str(bucket), pipelines=[])
  assert sum('SKIPPED' in line and str(bad) in line for line in lines) == 1


@pytest.mark.integration
def test_model_list_and_model_rollback_on_a_garbage_history_file(reg, tmp_path):
  (history_dir(reg) / '20260101T000000000000Z-push.json').write_text('{"at": 1}')
  env = dict(os.environ, **{layout.BUCKET_ENV_VAR: str(tmp_path / 'bucket')})
  env.pop('PYTHONPATH', None)
  for task in (['model-list'], ['model-rollback', '--reason', 'back'], ['status']):
    done = subprocess.run([sys.executable, '-m', 'invoke', *task, '--pipeline', 'taxi'], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert 'Traceback' not in done.stderr
  assert reg.aliases()[registry.PRODUCTION] == 1


def test_lineage_of_a_version_without_its_lineage_path_is_one_line(reg):
  path = pathlib.Path(reg.record_path(2))
  record = json.loads(path.read_text())
  del record['lineage']
  path.write_text(json.dumps(record))
  with pytest.raises(Refusal, match='names no lineage record') as refused:
    views.lineage(reg, 'taxi', 'production')
  assert '\n' not in str(refused.value) and str(path) in str(refused.value)
