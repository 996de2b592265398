"""OpenLineage events of continuous training: every event of real CT runs (file transport) validates
against the official OpenLineage JSON schema (tests/openlineage/, with the facets' own schemas);
each step starts before it completes; a stopped span has validation COMPLETE and no training
events; a run whose training raises has a FAIL with the error. The HTTP transport POSTs the same
JSON to a real local HTTP server; a transport that fails is said in one line and the run goes on."""

from __future__ import annotations

import http.server
import json
import pathlib
import threading
from collections import defaultdict
from typing import Dict, List

import jsonschema
import pytest
import referencing
from trackingdata import tracked  # noqa: F401 - the shared scenario (a session fixture)

from beam_pipelines.ct import lineage
from beam_pipelines.ct.definition import load_definition
from beam_pipelines.ct.paths import CtPaths
from beam_pipelines.ct.registry import Registry
from beam_pipelines.tracking import openlineage_events as ol

SPEC_DIR = pathlib.Path(__file__).resolve().parent / 'openlineage'
FACET_FILES = {'parent': 'ParentRunFacet.json', 'errorMessage': 'ErrorMessageRunFacet.json',
               'jobType': 'JobTypeJobFacet.json', 'schema': 'SchemaDatasetFacet.json',
               'dataSource': 'DatasourceDatasetFacet.json'}


def _schemas():
  documents = {p.name: json.loads(p.read_text()) for p in SPEC_DIR.glob('*.json')}
  registry = referencing.Registry().with_resources(
      (doc['$id'], referencing.Resource.from_contents(doc)) for doc in documents.values())
  core = documents['OpenLineage.json']
  run_event = {'$schema': core['$schema'], '$ref': f'{core["$id"]}#/$defs/RunEvent'}
  return documents, registry, run_event


DOCUMENTS, REGISTRY, RUN_EVENT = _schemas()


def validate(event: dict) -> None:
  """The event against RunEvent of OpenLineage.json, and each facet against its own schema."""
  checker = jsonschema.FormatChecker()
  jsonschema.Draft202012Validator(RUN_EVENT, registry=REGISTRY,
                                  format_checker=checker).validate(event)
  facets = [event['run'].get('facets', {}), event['job'].get('facets', {})]
  facets += [d.get('facets', {}) for d in event.get('inputs', []) + event.get('outputs', [])]
  for group in facets:
    for key, value in group.items():
      document = DOCUMENTS[FACET_FILES[key]]
      assert value['_schemaURL'].startswith(document['$id']), (key, value['_schemaURL'])
      jsonschema.Draft202012Validator(document, registry=REGISTRY,
                                      format_checker=checker).validate({key: value})


def by_run(events: List[dict]) -> Dict[str, List[dict]]:
  runs: Dict[str, List[dict]] = defaultdict(list)
  for event in events:
    runs[event['run']['runId']].append(event)
  return runs


def step_events(events: List[dict], ct_run_id: str) -> Dict[str, List[str]]:
  """{step: [event types in order]} of one CT run's steps."""
  parent = ol.run_uuid(ct_run_id)
  steps: Dict[str, List[str]] = defaultdict(list)
  for event in events:
    facet = event['run']['facets'].get('parent')
    if facet and facet['run']['runId'] == parent:
      steps[event['job']['name'].split('.', 1)[1]].append(event['eventType'])
  return dict(steps)


@pytest.fixture(scope='module')
def events(tracked):  # noqa: F811
  return [json.loads(line) for line in tracked.events.read_text().splitlines()]


def ct_run_ids(tracked, name):  # noqa: F811
  result = json.loads(tracked.done[name].stdout.strip().splitlines()[-1])
  return [o['run_id'] for o in result['outcomes'] if o.get('run_id')]


@pytest.mark.integration
@pytest.mark.slow
def test_every_event_of_real_ct_runs_validates_against_the_openlineage_schema(tracked, events):  # noqa: F811
  assert tracked.done['first_two'].returncode in (0, 3), tracked.done['first_two'].out[-3000:]
  assert len(events) > 20
  for event in events:
    validate(event)
  assert {e['schemaURL'] for e in events} == {ol.RUN_EVENT_SCHEMA}
  assert DOCUMENTS['OpenLineage.json']['$id'] in ol.RUN_EVENT_SCHEMA


@pytest.mark.integration
@pytest.mark.slow
def test_each_step_starts_then_completes_under_its_ct_run(tracked, events):  # noqa: F811
  first, second = ct_run_ids(tracked, 'first_two')
  assert step_events(events, first) == {
      s: ['START', 'COMPLETE'] for s in ('features', 'validation', 'training', 'evaluation',
                                         'holdout_evaluation', 'push')}
  assert step_events(events, second)['forward_evaluation'] == ['START', 'COMPLETE']
  for run_events in by_run(events).values():
    types = [e['eventType'] for e in run_events]
    assert types[0] == 'START' and types[-1] in ('COMPLETE', 'FAIL') and len(types) == 2, types
    assert run_events[0]['eventTime'] <= run_events[1]['eventTime']
  ct_runs = [e for e in events if e['job']['name'] == 'taxi']
  assert [e['eventType'] for e in ct_runs if e['run']['runId'] == ol.run_uuid(first)] == [
      'START', 'COMPLETE']


@pytest.mark.integration
@pytest.mark.slow
def test_datasets_name_the_span_files_features_model_and_registry_version(tracked, events):  # noqa: F811
  first = ct_run_ids(tracked, 'first_two')[0]
  done = {e['job']['name']: e for e in events if e['eventType'] == 'COMPLETE'
          and e['run']['runId'] in {ol.run_uuid(first, s) for s in lineage.STEP_ORDER}}
  features = done['taxi.features']
  assert [d['name'] for d in features['inputs']] == [
      str(tracked.paths.landing) + '/span-2026-11-01/data-00000-of-00001.csv']
  assert features['inputs'][0]['namespace'] == 'file'
  schema = features['outputs'][0]['facets']['schema']['fields']
  assert {'name': 'fare', 'type': 'DOUBLE'} in schema and {'name': 'big_tip',
                                                           'type': 'INTEGER'} in schema
  record = json.loads(pathlib.Path(CtPaths(str(tracked.bucket)).run(first), 'lineage.json')
                      .read_text())
  assert features['outputs'][0]['name'] == record['steps']['features']['outputs']
  training = done['taxi.training']
  assert training['inputs'][0]['name'] == record['steps']['features']['outputs']
  assert training['outputs'][0]['name'] == record['steps']['training']['outputs']
  push = done['taxi.push']
  assert push['outputs'][0]['name'] == tracked.registry.version_dir(1)
  assert push['outputs'][0]['facets']['dataSource']['uri'] == 'file://' + push['outputs'][0]['name']


@pytest.mark.integration
@pytest.mark.slow
def test_a_stopped_span_completes_validation_and_has_no_training_events(tracked, events):  # noqa: F811
  assert tracked.done['stopped'].returncode == 1, tracked.done['stopped'].out[-3000:]
  (run_id,) = ct_run_ids(tracked, 'stopped')
  steps = step_events(events, run_id)
  assert steps['validation'] == ['START', 'COMPLETE']
  assert not {'training', 'evaluation', 'push'} & set(steps)
  # production cannot score a span missing a column: its forward evaluation did not complete
  assert steps['forward_evaluation'] == ['START', 'FAIL']
  (skipped,) = [e for e in events if e['eventType'] == 'FAIL'
                and e['run']['runId'] == ol.run_uuid(run_id, 'forward_evaluation')]
  assert skipped['run']['facets']['errorMessage']['message'].startswith(
      'forward_evaluation skipped: production v')
  ct_run = [e['eventType'] for e in events if e['run']['runId'] == ol.run_uuid(run_id)]
  assert ct_run == ['START', 'COMPLETE']


@pytest.mark.integration
@pytest.mark.slow
def test_a_step_that_raises_fails_with_the_error_and_so_does_its_ct_run(tracked, events):  # noqa: F811
  assert tracked.done['failed'].returncode == 2, tracked.done['failed'].out[-3000:]
  (run_id,) = [p.parent.name for p in pathlib.Path(tracked.paths.root).glob('runs/*/lineage.json')
                if json.loads(p.read_text())['status'] == 'failed']
  steps = step_events(events, run_id)
  assert steps == {'features': ['START', 'COMPLETE'], 'validation': ['START', 'COMPLETE'],
                   'forward_evaluation': ['START', 'COMPLETE'], 'training': ['START', 'FAIL']}
  failed = [e for e in events if e['eventType'] == 'FAIL' and e['run']['runId'] in (
      ol.run_uuid(run_id), ol.run_uuid(run_id, 'training'))]
  assert [e['job']['name'] for e in failed] == ['taxi.training', 'taxi']
  for event in failed:
    assert event['run']['facets']['errorMessage']['message'] == (
        'OSError: [Errno 28] No space left on device')


class Collector(http.server.BaseHTTPRequestHandler):
  """A lineage endpoint: keeps each POSTed body."""
  received: List[tuple] = []

  def do_POST(self):
    body = self.rfile.read(int(self.headers['Content-Length']))
    Collector.received.append((self.path, self.headers.get('Authorization'), json.loads(body)))
    self.send_response(201)
    self.end_headers()

  def log_message(self, *args):
    pass


@pytest.fixture
def endpoint():
  server = http.server.HTTPServer(('127.0.0.1', 0), Collector)
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  Collector.received = []
  yield f'http://127.0.0.1:{server.server_address[1]}'
  server.shutdown()
  server.server_close()


def recorded_run(tmp_path, listeners) -> lineage.RunRecord:
  """A run record told to ``listeners``: features ran, training raised."""
  run = lineage.RunRecord(
      str(tmp_path / 'lineage.json'), run_id='20261101T000000Z-abcdef', trigger=['new_span'],
      code={'source': 'source-tree', 'version': '0.1.0', 'fingerprint': 'f' * 64},
      data={'span': str(tmp_path / 'span'), 'sha256': 'd' * 64,
            'files': [{'path': str(tmp_path / 'span' / 'a.csv'), 'sha256': 'e' * 64, 'size': 1}]},
      parameters={}, listeners=listeners)
  run.started('features')
  run.step('features', 'ran', outputs=str(tmp_path / 'features'), summary='1 row')
  run.started('training')
  run.finish('failed', error='ValueError: no rows')
  return run


def test_the_http_transport_posts_each_event_to_the_lineage_endpoint(tmp_path, endpoint,
                                                                     monkeypatch):
  monkeypatch.setenv(ol.URL_ENV_VAR, endpoint)
  monkeypatch.setenv(ol.API_KEY_ENV_VAR, 'secret')
  monkeypatch.delenv(ol.FILE_ENV_VAR, raising=False)
  listeners = ol.listeners(load_definition('taxi'), Registry(str(tmp_path / 'registry')))
  recorded_run(tmp_path, listeners)
  assert [(p, a) for p, a, _ in Collector.received] == [('/api/v1/lineage', 'Bearer secret')] * 6
  events = [e for _, _, e in Collector.received]
  for event in events:
    validate(event)
  assert [(e['job']['name'], e['eventType']) for e in events] == [
      ('taxi', 'START'), ('taxi.features', 'START'), ('taxi.features', 'COMPLETE'),
      ('taxi.training', 'START'), ('taxi.training', 'FAIL'), ('taxi', 'FAIL')]
  assert events[1]['run']['runId'] == events[2]['run']['runId'] == ol.run_uuid(
      '20261101T000000Z-abcdef', 'features')


def test_no_variable_no_events(monkeypatch, tmp_path):
  for name in (ol.URL_ENV_VAR, ol.FILE_ENV_VAR):
    monkeypatch.delenv(name, raising=False)
  assert ol.listeners(load_definition('taxi'), Registry(str(tmp_path))) == []


def test_a_transport_that_fails_is_said_once_and_the_run_goes_on(tmp_path, monkeypatch, capsys):
  monkeypatch.setenv(ol.URL_ENV_VAR, 'http://127.0.0.1:9')  # the discard port: nothing listens
  monkeypatch.setenv(ol.FILE_ENV_VAR, str(tmp_path / 'events.jsonl'))
  listeners = ol.listeners(load_definition('taxi'), Registry(str(tmp_path / 'registry')))
  run = recorded_run(tmp_path, listeners)
  said = [line for line in capsys.readouterr().err.splitlines() if 'openlineage' in line]
  assert len(said) == 1 and 'events NOT sent to http://127.0.0.1:9/api/v1/lineage' in said[0]
  assert run.record['status'] == 'failed'
  assert len((tmp_path / 'events.jsonl').read_text().splitlines()) == 6  # the file still has all


def test_a_url_that_is_not_http_is_said_and_sends_nothing(tmp_path, monkeypatch, capsys):
  monkeypatch.setenv(ol.URL_ENV_VAR, 'marquez:5000')
  monkeypatch.delenv(ol.FILE_ENV_VAR, raising=False)
  assert ol.listeners(load_definition('taxi'), Registry(str(tmp_path))) == []
  assert 'openlineage: no events sent over HTTP: $OPENLINEAGE_URL must be an http(s) URL' in (
      capsys.readouterr().err)
