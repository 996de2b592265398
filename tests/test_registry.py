"""The model registry, the step cache and lineage identity, on real files in a temporary bucket."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import pathlib
import socket
import subprocess
import threading

import pytest

from beam_pipelines.ct import lineage, loop, registry, steps
from beam_pipelines.ct.cache import CACHED, MARKER, RAN, StepCache, step_key
from beam_pipelines.ct.records import Readmission, SpanRecord
from beam_pipelines.ct.registry import RegistryError
from beam_pipelines.ml import artifacts, model_io
from beam_pipelines.ml.results import TrainedModel
from beam_pipelines.store.errors import LockedError, Refusal, StorageError


def save(directory, weights):
  """A small picklable 'model' saved with real metadata (no training needed)."""
  model_io.save_model({'weights': weights}, str(directory), numeric=['a'], categorical=[],
                      label='y', spec_fingerprint='spec', data={'fingerprint': 'data'},
                      hyperparameters={'C': 1.0})
  return str(directory)


@pytest.fixture
def reg(tmp_path):
  return registry.Registry(str(tmp_path / 'registry' / 'taxi'))


@pytest.fixture
def models(tmp_path):
  return [save(tmp_path / f'model{i}', [i, i + 1]) for i in range(3)]


class TestPush:

  def test_versions_are_numbered_with_files_sha256_and_facts(self, reg, models):
    first, created = reg.push(models[0], metrics={'auc': 0.8}, run_id='r1')
    second, _ = reg.push(models[1], metrics={'auc': 0.9}, run_id='r2')
    assert created and (first['version'], second['version']) == (1, 2)
    assert reg.numbers() == [1, 2]
    assert set(first['files']) == {artifacts.MODEL_FILE, artifacts.MODEL_METADATA_FILE}
    assert first['metrics'] == {'auc': 0.8} and first['run_id'] == 'r1'
    assert reg.load(1) == {'weights': [0, 1]}

  def test_the_same_model_is_not_registered_twice(self, reg, models):
    reg.push(models[0])
    again, created = reg.push(models[0])
    assert not created and again['version'] == 1 and reg.numbers() == [1]

  def test_a_version_without_its_commit_marker_is_invisible_and_reused(self, reg, models, tmp_path):
    reg.push(models[0])
    half = tmp_path / 'registry' / 'taxi' / 'versions' / '2'
    half.mkdir(parents=True)
    (half / artifacts.MODEL_FILE).write_bytes(b'half-written by a killed push')
    assert reg.numbers() == [1]
    with pytest.raises(RegistryError, match='version 2 does not exist'):
      reg.resolve(2)
    record, created = reg.push(models[1])
    assert created and record['version'] == 2
    assert reg.load(2) == {'weights': [1, 2]}

  def test_a_push_killed_holding_the_lock_is_completed_by_the_next(self, reg, models, tmp_path,
                                                                   capsys):
    pid = subprocess.Popen(['true'])
    pid.wait()
    lock = tmp_path / 'registry' / 'taxi' / registry.LOCK_FILE
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text(json.dumps({'host': socket.gethostname(), 'pid': pid.pid, 'pid_start': None,
                                'operation': 'registry push', 'since': 'earlier'}))
    record, created = reg.push(models[0])
    assert created and record['version'] == 1 and not lock.exists()
    assert 'stale lock' in capsys.readouterr().err

  def test_a_push_while_another_holds_the_lock_waits_then_is_refused(self, models, tmp_path):
    reg = registry.Registry(str(tmp_path / 'registry' / 'taxi'), lock_wait=0.2)
    lock = tmp_path / 'registry' / 'taxi' / registry.LOCK_FILE
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text(json.dumps({'host': socket.gethostname(), 'pid': os.getppid(),
                                'operation': 'registry push', 'since': 'now'}))
    with pytest.raises(LockedError, match='locked'):
      reg.push(models[0])
    assert reg.numbers() == []

  def test_concurrent_pushes_are_serialised(self, reg, models, capsys):
    holder = registry.Registry(reg.root)
    entered, release = threading.Event(), threading.Event()

    def hold():
      with holder._locked('registry push'):
        entered.set()
        release.wait(10)
    thread = threading.Thread(target=hold)
    thread.start()
    entered.wait(10)
    threading.Timer(0.3, release.set).start()
    record, created = reg.push(models[0])  # waits for the holder, then pushes
    thread.join()
    assert created and record['version'] == 1
    assert 'waiting up to' in capsys.readouterr().err

  def test_an_unfinished_model_directory_is_refused(self, reg, tmp_path):
    (tmp_path / 'empty').mkdir()
    with pytest.raises(model_io.ModelIntegrityError):
      reg.push(str(tmp_path / 'empty'))


class TestAliases:

  def test_moves_are_one_write_and_recorded_in_history(self, reg, models):
    for model in models[:2]:
      reg.push(model)
    reg.move({registry.CANDIDATE: 1, registry.PRODUCTION: 1}, registry.EVENT_PUSH, 'first')
    event = reg.move({registry.CANDIDATE: 2, registry.PRODUCTION: 2}, registry.EVENT_PUSH, 'better')
    assert reg.aliases() == {'candidate': 2, 'production': 2}
    assert event['moves'] == {'candidate': {'from': 1, 'to': 2}, 'production': {'from': 1, 'to': 2}}
    assert [e['reason'] for e in reg.history()] == ['first', 'better']
    assert reg.move({registry.PRODUCTION: 2}, registry.EVENT_PROMOTE) is None  # nothing moved

  def test_only_committed_versions_and_known_aliases(self, reg, models):
    reg.push(models[0])
    with pytest.raises(RegistryError, match='version 7 does not exist'):
      reg.promote(7)
    with pytest.raises(RegistryError, match='unknown alias'):
      reg.move({'staging': 1}, registry.EVENT_PROMOTE)
    with pytest.raises(RegistryError, match="no model is 'production'"):
      reg.resolve('production')

  def test_promote_then_rollback_walks_back_and_stops(self, reg, models):
    for model in models:
      reg.push(model, blessing={'status': 'BLESSED'})
    reg.promote(1)
    reg.promote(3, 'manual')
    event = reg.rollback('bad predictions')
    assert reg.aliases()[registry.PRODUCTION] == 1
    assert event['event'] == registry.EVENT_ROLLBACK and event['reason'] == 'bad predictions'
    with pytest.raises(RegistryError, match='nothing to roll back to'):
      reg.rollback()

  def test_promote_refuses_a_version_not_blessed_unless_overridden_and_records_why(self, reg,
                                                                                   models):
    reg.push(models[0], blessing={'status': 'NOT_BLESSED'})
    with pytest.raises(RegistryError, match='v1 is NOT_BLESSED, not BLESSED'):
      reg.promote(1)
    assert reg.aliases() == {}
    event = reg.promote(1, override_blessing='hotfix: the old model is broken')
    assert reg.aliases()[registry.PRODUCTION] == 1
    assert event[registry.BLESSING_OVERRIDE] == 'hotfix: the old model is broken'

  def test_promote_and_rollback_refuse_a_model_file_that_fails_its_sha256(self, reg, models):
    for model in models[:2]:
      reg.push(model, blessing={'status': 'BLESSED'})
    reg.promote(1)
    reg.promote(2)
    model_file = pathlib.Path(reg.version_dir(1)) / 'model.joblib'
    model_file.write_bytes(model_file.read_bytes() + b'payload')
    with pytest.raises(Refusal, match='bytes changed'):
      reg.promote(1)
    with pytest.raises(Refusal, match='bytes changed'):
      reg.rollback()
    assert reg.aliases()[registry.PRODUCTION] == 2

  def test_version_numbers_are_ascii_digits_only(self, reg, models):
    reg.push(models[0])
    for ref in ('³', '٣', '1.0', '-1'):
      with pytest.raises(RegistryError, match='unknown model reference'):
        reg.resolve(ref)

  def test_rollback_target_ignores_rollbacks(self):
    def event(kind, to):
      return {'event': kind, 'moves': {registry.PRODUCTION: {'to': to}}}
    events = [event('push', 1), event('push', 2), event('push', 3), event('rollback', 2)]
    assert registry.rollback_target(events, 3) == 2
    assert registry.rollback_target(events, 2) == 1

  def test_a_move_killed_before_its_history_is_recorded_by_the_next(self, reg, models, tmp_path):
    reg.push(models[0], blessing={'status': 'BLESSED'})
    event = reg.promote(1)
    history = tmp_path / 'registry' / 'taxi' / registry.HISTORY / f'{event["event_id"]}.json'
    history.unlink()
    reg.push(models[1])
    assert json.loads(history.read_text())['recovered'] is True


class TestVerifiedLoad:

  def test_a_changed_byte_is_refused_before_unpickling(self, reg, models, tmp_path):
    reg.push(models[0])
    path = tmp_path / 'registry' / 'taxi' / 'versions' / '1' / artifacts.MODEL_FILE
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(StorageError, match='bytes changed'):
      reg.load(1)

  def test_model_list_line_names_aliases_and_blessing(self, reg, models):
    record, _ = reg.push(models[0], metrics={'auc': 0.91234}, blessing={'status': 'BLESSED'})
    reg.promote(1)
    line = registry.describe(record, reg.aliases())
    assert line.startswith('v1') and 'BLESSED' in line and 'auc 0.9123' in line
    assert line.endswith('<- production')


@dataclasses.dataclass(frozen=True)
class Rows:
  """A step result for the cache's own tests."""
  rows: int


class TestStepCache:

  def test_miss_runs_hit_reuses_no_cache_reruns(self, tmp_path):
    calls = []

    def step(directory):
      calls.append(directory)
      return Rows(3)
    cache = StepCache(str(tmp_path / 'cache'))
    key = step_key('features', data='abc', code='c1')
    assert cache.run('features', key, step, Rows)[:2] == (Rows(3), RAN)
    assert cache.run('features', key, step, Rows)[:2] == (Rows(3), CACHED)
    disabled = StepCache(str(tmp_path / 'cache'), enabled=False)
    assert disabled.run('features', key, step, Rows)[1] == RAN
    assert len(calls) == 2

  def test_any_input_change_is_a_new_key(self):
    base = step_key('training', features='k', train={'C': 1.0}, code='c1')
    assert base == step_key('training', code='c1', train={'C': 1.0}, features='k')
    assert base != step_key('training', features='k', train={'C': 0.5}, code='c1')
    assert base != step_key('training', features='k', train={'C': 1.0}, code='c2')

  def test_an_entry_without_its_marker_runs_again(self, tmp_path):
    cache = StepCache(str(tmp_path / 'cache'))
    key = step_key('features', data='abc')
    directory = cache.run('features', key, lambda d: Rows(1), Rows)[2]
    os.remove(os.path.join(directory, MARKER))
    assert cache.run('features', key, lambda d: Rows(2), Rows)[:2] == (Rows(2), RAN)

  def test_a_marker_holding_another_shape_runs_again(self, tmp_path):
    """A marker of an older format (or edited by hand) is never read as the step's result."""
    cache = StepCache(str(tmp_path / 'cache'))
    key = step_key('features', data='abc')
    directory = cache.run('features', key, lambda d: Rows(1), Rows)[2]
    marker = pathlib.Path(directory) / MARKER
    done = json.loads(marker.read_text())
    done['result'] = {'rows': 'three'}
    marker.write_text(json.dumps(done))
    assert cache.get('features', key, Rows) is None
    assert cache.run('features', key, lambda d: Rows(2), Rows)[:2] == (Rows(2), RAN)


class Poison:
  """Unpickling this creates a file: the proof that a pickle from the bucket was executed."""

  def __init__(self, proof):
    self.proof = proof

  def __reduce__(self):
    return (open, (self.proof, 'w'))


def poison_model_dir(directory, proof):
  """Replaces the model file AND its metadata, consistently, as an attacker with write access
  to the cache would: only a sha256 recorded elsewhere can tell."""
  import joblib
  buffer = io.BytesIO()
  joblib.dump(Poison(str(proof)), buffer)
  (pathlib.Path(directory) / artifacts.MODEL_FILE).write_bytes(buffer.getvalue())
  meta_path = pathlib.Path(directory) / artifacts.MODEL_METADATA_FILE
  metadata = json.loads(meta_path.read_text())
  metadata['model_sha256'] = hashlib.sha256(buffer.getvalue()).hexdigest()
  meta_path.write_text(json.dumps(metadata))


class TestPoisonedCache:

  def train(self, calls):
    def step(directory):
      calls.append(directory)
      sha256 = model_io.save_model(
          {'weights': [1]}, directory, numeric=['a'], categorical=[], label='y',
          spec_fingerprint='spec', data={'fingerprint': 'data'},
          hyperparameters={})['model_sha256']
      return TrainedModel(directory, sha256, rows=1, positives=1, data_fingerprint='data',
                          hyperparameters={})
    return step

  def test_a_replaced_cached_model_is_retrained_never_unpickled_or_registered(self, tmp_path,
                                                                               reg):
    calls, proof = [], tmp_path / 'payload-ran'
    cache = StepCache(str(tmp_path / 'cache'))
    key = step_key(steps.TRAINING, features='k', code='c1')
    first, status, directory = cache.run(steps.TRAINING, key, self.train(calls), TrainedModel,
                                        steps.verify_model)
    assert status == RAN
    poison_model_dir(directory, proof)
    with pytest.raises(model_io.ModelIntegrityError, match='refusing to unpickle'):
      reg.push(directory, first.model_sha256)  # the registry checks the step's record
    assert reg.numbers() == []
    again, status, _ = cache.run(steps.TRAINING, key, self.train(calls), TrainedModel,
                                        steps.verify_model)
    assert status == RAN and len(calls) == 2  # the poisoned entry was not reused
    model_io.load_model(directory, again.model_sha256)
    assert not proof.exists()

  def test_an_intact_cached_model_is_reused(self, tmp_path):
    calls = []
    cache = StepCache(str(tmp_path / 'cache'))
    key = step_key(steps.TRAINING, features='k', code='c1')
    cache.run(steps.TRAINING, key, self.train(calls), TrainedModel,
                                        steps.verify_model)
    assert cache.run(steps.TRAINING, key, self.train(calls), TrainedModel,
                                        steps.verify_model)[1] == CACHED
    assert len(calls) == 1


class TestLineage:

  def test_the_source_tree_is_identified_by_its_git_commit(self):
    identity = lineage.code_identity(build_id=None)
    assert identity['source'] == 'source-tree'
    assert len(identity['git_commit']) == 40 and len(identity['fingerprint']) == 64

  def test_span_hash_is_independent_of_where_the_span_sits(self, tmp_path):
    for where in ('a', 'b'):
      (tmp_path / where).mkdir()
      (tmp_path / where / 'data.csv').write_text('x,y\n1,0\n')
    one, two = (lineage.file_entries([str(tmp_path / w / 'data.csv')]) for w in 'ab')
    assert one[0]['sha256'] == two[0]['sha256'] and one[0]['size'] == 8
    assert lineage.data_sha256(one) == lineage.data_sha256(two)


class TestSpanOrder:
  """Drift is measured against the span before in time; a window is the spans before in time."""

  RECORDS = [  # processed out of order: March landed before February
      SpanRecord('in/2013-01', 'a', statistics='a.pb'),
      SpanRecord('in/2013-03', 'c', statistics='c.pb'),
      SpanRecord('in/2013-02', 'b', statistics='b.pb'),
  ]

  def test_the_drift_baseline_is_the_chronological_predecessor(self):
    assert loop.chronological_previous(self.RECORDS, 'in/2013-03', 'c').span == 'in/2013-02'
    assert loop.chronological_previous(self.RECORDS, 'in/2013-02', 'b').span == 'in/2013-01'
    assert loop.chronological_previous(self.RECORDS, 'in/2013-01', 'a') is None

  def test_a_window_is_the_span_and_the_ones_before_it(self):
    landed = ['in/2013-01', 'in/2013-02', 'in/2013-03', 'in/2013-04']
    assert loop.window_spans(landed, 'in/2013-03', 2) == ['in/2013-02', 'in/2013-03']
    assert loop.window_spans(landed, 'in/2013-02', 5) == ['in/2013-01', 'in/2013-02']
    assert loop.window_spans(landed, 'in/2013-04', 1) == ['in/2013-04']


class TestRefusedSpans:
  """A span stopped, failed or NOT_BLESSED is in no later window and no drift baseline, unless a
  person re-admitted it; a stopped or failed span runs again once the schema, spec or code
  changed."""

  READMISSION = Readmission('someone@host', '2026-11-05T00:00:00Z', 'known gap')
  RECORDS = [
      SpanRecord('in/2013-01', 'a', statistics='a.pb', outcome='pushed'),
      SpanRecord('in/2013-02', 'b', statistics='b.pb', outcome='not_blessed'),
      SpanRecord('in/2013-03', 'c', outcome='stopped'),
      SpanRecord('in/2013-04', 'd', outcome='failed', error='ValueError: x'),
  ]

  def test_a_refused_span_is_never_the_drift_baseline(self):
    assert loop.chronological_previous(self.RECORDS, 'in/2013-05', 'e').span == 'in/2013-01'
    readmitted = [dataclasses.replace(self.RECORDS[1], readmitted=self.READMISSION)]
    assert loop.chronological_previous(self.RECORDS + readmitted, 'in/2013-05',
                                       'e').span == 'in/2013-02'

  def test_the_latest_record_of_a_span_decides(self):
    refused_later = self.RECORDS + [SpanRecord('in/2013-01', 'a2', statistics='a2.pb',
                                               outcome='not_blessed')]
    assert loop.chronological_previous(refused_later, 'in/2013-05', 'e') is None

  def test_only_accepted_spans_are_accepted(self):
    assert [loop.accepted(r) for r in self.RECORDS] == [True, False, False, False]
    assert loop.accepted(SpanRecord('s', 'x', outcome='no_trigger'))
    assert loop.accepted(dataclasses.replace(self.RECORDS[3], readmitted=self.READMISSION))

  def test_a_change_of_schema_spec_or_code_is_named(self):
    current = {'schema_sha256': 's', 'spec_fingerprint': 'p', 'code_fingerprint': 'c'}
    same = SpanRecord('in/x', 'x', outcome='stopped', **current)
    assert loop.changes(same, current) == []
    assert loop.changes(dataclasses.replace(same, schema_sha256='t'), current) == ['schema']
    assert loop.changes(dataclasses.replace(same, spec_fingerprint=None,
                                            code_fingerprint='d'), current) == ['spec', 'code']
    older_build = SpanRecord('in/x', 'x', outcome='stopped')  # written before the fingerprint
    assert loop.changes(older_build, current) == ['schema', 'spec', 'code']

  def test_records_of_older_builds_still_read(self, tmp_path):
    path = tmp_path / 'a.json'
    path.write_text(json.dumps({'span': 'in/2013-01', 'sha256': 'a', 'outcome': 'stopped',
                                'run_id': 'r', 'at': '2013'}))
    record = loop.read_span_record(str(path))
    assert record.readmitted is None and record.code_fingerprint is None


class TestReevaluation:
  """The registry never contradicts itself: a re-evaluation of registered bytes updates the
  version's record before any alias moves; an alias moves only to a BLESSED version."""

  def test_a_different_blessing_of_the_same_bytes_is_appended_and_becomes_current(self, reg,
                                                                                  models):
    reg.push(models[0], run_id='r1', blessing={'status': 'NOT_BLESSED', 'message': 'worse'})
    record, created = reg.push(models[0], run_id='r2', metrics={'auc': 0.9},
                               blessing={'status': 'BLESSED', 'message': 'better'})
    assert not created and registry.blessing_status(record) == 'BLESSED'
    stored = reg.record(1)
    assert stored == record and stored['run_id'] == 'r1'
    assert [(e['run_id'], e['blessing']['status']) for e in stored['evaluations']] == [
        ('r1', 'NOT_BLESSED'), ('r2', 'BLESSED')]
    reg.move({registry.PRODUCTION: 1}, registry.EVENT_PUSH, 'blessed')  # allowed now
    assert stored['metrics'] == {'auc': 0.9}  # the metrics beside the blessing are its own

  def test_the_same_blessing_again_leaves_the_record_as_it_is(self, reg, models):
    first, _ = reg.push(models[0], run_id='r1', blessing={'status': 'BLESSED'})
    again, _ = reg.push(models[0], run_id='r2', blessing={'status': 'BLESSED'})
    assert again == first == reg.record(1) and 'evaluations' not in again

  def test_an_alias_never_moves_to_a_version_not_blessed(self, reg, models):
    reg.push(models[0], blessing={'status': 'BLESSED'})
    reg.move({registry.PRODUCTION: 1}, registry.EVENT_PUSH, 'blessed')
    reg.push(models[0], run_id='r2', blessing={'status': 'NOT_BLESSED'})  # re-evaluated
    reg.push(models[1], blessing={'status': 'NOT_BLESSED'})
    for number in (1, 2):
      with pytest.raises(RegistryError, match=f'v{number} is NOT_BLESSED'):
        reg.move({registry.CANDIDATE: number}, registry.EVENT_PUSH, 'no')
    assert reg.aliases() == {registry.PRODUCTION: 1}
    event = reg.move({registry.CANDIDATE: 2}, registry.EVENT_PROMOTE, 'by hand',
                     **{registry.BLESSING_OVERRIDE: 'a person decided'})
    assert event['moves'] == {'candidate': {'from': None, 'to': 2}}

  def test_promote_accepts_the_version_that_is_live(self, reg, models):
    reg.push(models[0], blessing={'status': 'BLESSED'})
    reg.promote(1)
    reg.push(models[0], run_id='r2', blessing={'status': 'NOT_BLESSED'})  # re-evaluated
    assert reg.promote(1) is None and reg.aliases()[registry.PRODUCTION] == 1
