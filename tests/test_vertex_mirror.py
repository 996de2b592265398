"""The opt-in Vertex AI Model Registry mirror, on a real bucket registry, against a recording
stand-in of the two SDK calls (Vertex AI itself cannot run here; ``AiPlatformApi`` makes the same
calls through ``google.cloud.aiplatform``)."""

from __future__ import annotations

import json
from typing import Dict, List, Optional

import pytest

from beam_pipelines.ct import registry, vertex
from beam_pipelines.ml import model_io

BLESSED = {'status': 'BLESSED', 'message': 'ok', 'rubber_stamped': False}
DATA_SHA = 'ab' * 32


class RecordingVertex:
  """Answers as Vertex does: the first upload creates the model, each upload is version n."""

  def __init__(self, fail_on_upload: Optional[int] = None):
    self.uploads: List[dict] = []
    self.alias_moves: List[tuple] = []
    self._fail_on = fail_on_upload

  def upload(self, **kwargs) -> str:
    if self._fail_on is not None and len(self.uploads) + 1 == self._fail_on:
      raise RuntimeError('503 Vertex AI unavailable')
    model = kwargs['parent_model'] or 'projects/p/locations/us-central1/models/123'
    self.uploads.append(kwargs)
    return f'{model}@{len(self.uploads)}'

  def add_version_aliases(self, model: str, version: str, aliases: List[str]) -> None:
    self.alias_moves.append((model, version, tuple(aliases)))


@pytest.fixture
def reg(tmp_path) -> registry.Registry:
  """A registry of two blessed versions, production on v1, each from a run with lineage."""
  reg = registry.Registry(str(tmp_path / 'registry' / 'taxi'))
  for i in (1, 2):
    lineage = tmp_path / f'lineage{i}.json'
    lineage.write_text(json.dumps({'code': {'build_id': f'20261126T15300{i}Z-5bea069-3f9a1c'},
                                   'data': {'sha256': DATA_SHA}}))
    model_io.save_model({'weights': [i]}, str(tmp_path / f'm{i}'), numeric=['a'], categorical=[],
                        label='y', spec_fingerprint='s', data={'fingerprint': 'd'},
                        hyperparameters={})
    reg.push(str(tmp_path / f'm{i}'), blessing=BLESSED, lineage=str(lineage), run_id=f'r{i}')
  reg.promote(1, 'first')
  return reg


def test_each_version_is_uploaded_once_under_one_model_with_its_identity(reg):
  api = RecordingVertex()
  mirror = vertex.sync(reg, 'taxi', api, serving_image='sklearn:1')
  first, second = api.uploads
  assert first['parent_model'] is None  # creates the model
  assert second['parent_model'] == 'projects/p/locations/us-central1/models/123'
  assert first['artifact_uri'] == reg.version_dir(1) and first['is_default_version'] is True
  assert first['version_aliases'] == ['v1', 'production'] and second['version_aliases'] == ['v2']
  labels: Dict[str, str] = first['labels']
  assert labels['build_id'] == '20261126t153001z-5bea069-3f9a1c'
  assert labels['data_sha256'] == DATA_SHA[:63] and len(labels['model_sha256']) == 63
  assert reg.record(1)['model_sha256'].startswith(labels['model_sha256'])
  assert mirror['versions'] == {'1': 'projects/p/locations/us-central1/models/123@1',
                                '2': 'projects/p/locations/us-central1/models/123@2'}
  again = RecordingVertex()
  vertex.sync(reg, 'taxi', again)
  assert again.uploads == [] and again.alias_moves == []  # in line: nothing to do


def test_an_alias_moved_in_the_bucket_is_moved_in_vertex(reg):
  vertex.sync(reg, 'taxi', RecordingVertex())
  reg.promote(2, 'better')
  api = RecordingVertex()
  mirror = vertex.sync(reg, 'taxi', api)
  assert api.alias_moves == [('projects/p/locations/us-central1/models/123', '2', ('production',))]
  assert mirror['aliases']['production'] == 2
  reg.rollback('worse than it looked')
  api = RecordingVertex()
  vertex.sync(reg, 'taxi', api)
  assert api.alias_moves == [('projects/p/locations/us-central1/models/123', '1', ('production',))]


def test_a_failed_call_leaves_the_record_as_it_was_and_the_next_sync_resumes(reg):
  with pytest.raises(RuntimeError, match='503'):
    vertex.sync(reg, 'taxi', RecordingVertex(fail_on_upload=2))
  assert vertex.read_mirror(reg)['versions'] == {
      '1': 'projects/p/locations/us-central1/models/123@1'}
  api = RecordingVertex()
  api.uploads.append({})  # Vertex already holds version 1
  vertex.sync(reg, 'taxi', api)
  assert [u.get('version_aliases') for u in api.uploads[1:]] == [['v2']]


def test_the_mirror_is_opt_in(reg, monkeypatch):
  monkeypatch.delenv(vertex.REGISTRY_ENV_VAR, raising=False)
  assert vertex.sync_if_configured(reg, 'taxi') is None
  monkeypatch.setenv(vertex.REGISTRY_ENV_VAR, 'my-project')
  with pytest.raises(ValueError, match='projects/PROJECT/locations/REGION'):
    vertex.sync_if_configured(reg, 'taxi')


def test_a_local_registry_is_not_mirrored_and_a_failure_changes_nothing(reg, monkeypatch, capsys):
  monkeypatch.setenv(vertex.REGISTRY_ENV_VAR, 'projects/p/locations/us-central1')
  before = reg.aliases()
  vertex.mirror_after(reg, 'taxi')  # a local registry: refused in one line, nothing raised
  said = capsys.readouterr()
  assert 'mirror NOT updated' in said.out + said.err and 'not on GCS' in said.out + said.err
  assert reg.aliases() == before and not vertex.read_mirror(reg)['versions']
