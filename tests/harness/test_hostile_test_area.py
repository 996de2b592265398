"""An attacker who can write only the bucket's `test/` prefix, with signing on: a swapped baselines
file, a seeded report, poisoned step-cache markers. Each plants a pickle payload (it writes a
marker file holding the environment it sees) where that path would unpickle it; the payload never
runs, and nothing it named is signed. Real `invoke` runs on a fresh bucket per case."""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import pickle
import threading

import pytest

from beam_pipelines.store import signing

from .support import invoke, make_project

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KEY = 'hostile-test-area-key'


class Payload:
  """Unpickling it writes ``marker`` with the environment of the process that unpickled it."""

  def __init__(self, marker: str):
    self.marker = marker

  def __reduce__(self):
    code = (f'import json, os, pathlib; '
            f'pathlib.Path({self.marker!r}).write_text(json.dumps(dict(os.environ)))')
    return (exec, (code,))


class Attack:
  """A fresh bucket, `invoke` with the signing key, and the payload to plant."""

  def __init__(self, project: pathlib.Path, root: pathlib.Path, metadata: dict):
    self.project, self.bucket = project, root / 'bucket'
    self.marker = root / 'payload-ran.json'
    self.payload = pickle.dumps(Payload(str(self.marker)))
    self.sha256 = hashlib.sha256(self.payload).hexdigest()
    self.metadata = dict(metadata, model_sha256=self.sha256)

  def invoke(self, *args: str):
    done = invoke(self.project, self.bucket, *args, **{signing.SIGNING_KEY_ENV_VAR: KEY})
    self.check_payload_never_ran()
    return done

  def build_id(self) -> str:
    return json.loads((self.project / 'dist' / 'manifest.json').read_text())['build_id']

  def plant(self, model_dir: pathlib.Path) -> str:
    """The payload as a model (its metadata valid, its sha256 recorded) in ``model_dir``."""
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / 'model.joblib').write_bytes(self.payload)
    (model_dir / 'model.json').write_text(json.dumps(self.metadata))
    return str(model_dir)

  def check_payload_never_ran(self) -> None:
    if self.marker.exists():
      seen = json.loads(self.marker.read_text())
      pytest.fail(f'the payload ran (signing key in its environment: '
                  f'{seen.get(signing.SIGNING_KEY_ENV_VAR) == KEY})')

  def signed_records(self):
    for path in sorted((self.bucket / 'test' / 'passed').glob('*.json')):
      record = json.loads(path.read_text())
      assert record.get('signature') == signing.signature(record, KEY.encode()), path
      yield record

  def check_nothing_of_the_payload_signed(self) -> None:
    for record in self.signed_records():
      text = json.dumps(record)
      assert self.sha256 not in text and 'attacker' not in text, text[:2000]


def out(done) -> str:
  return (done.stdout + done.stderr)[-4000:]


@pytest.fixture(scope='module')
def project(tmp_path_factory):
  return make_project(tmp_path_factory.mktemp('hostile-test-area') / 'project')


@pytest.fixture(scope='module')
def reference(project, tmp_path_factory):
  """A real test run (signing on): the metadata of its model and its ML verdict."""
  bucket = tmp_path_factory.mktemp('reference') / 'bucket'
  done = invoke(project, bucket, 'build', '--no-checks', 'test', **{signing.SIGNING_KEY_ENV_VAR: KEY})
  assert done.returncode == 0, out(done)
  metadata = next((bucket / 'test').rglob('training/*/model.json'))
  passed = next((bucket / 'test' / 'passed').glob('*.json'))
  return json.loads(metadata.read_text()), json.loads(passed.read_text())['ml']['taxi']


@pytest.fixture
def attack(project, reference, tmp_path):
  return Attack(project, tmp_path, reference[0])


def test_a_baselines_file_swapped_in_test_during_the_run_is_never_read(attack):
  first = attack.invoke('build', '--no-checks', 'test', 'deploy')  # prod: build A, a real model
  assert first.returncode == 0, out(first)
  assert attack.invoke('build', '--no-checks').returncode == 0
  build_b = attack.build_id()
  swapped = attack.bucket / 'test' / 'results' / build_b / 'ml_baselines.json'
  hostile = json.dumps({'taxi': {'model_dir': attack.plant(attack.bucket / 'test' / 'attacker'),
                                 'model_sha256': attack.sha256, 'source': 'attacker'}})
  stop = threading.Event()

  def swap():  # rewrites the file continuously, atomically, while `invoke test` runs
    while not stop.is_set():
      swapped.parent.mkdir(parents=True, exist_ok=True)
      temporary = swapped.with_name('swap.partial')
      temporary.write_text(hostile)
      os.replace(temporary, swapped)
      stop.wait(0.005)

  thread = threading.Thread(target=swap, daemon=True)
  thread.start()
  try:
    done = attack.invoke('test')
  finally:
    stop.set()
    thread.join()
  assert done.returncode == 0, out(done)
  ml = json.loads((attack.bucket / 'test' / 'passed' / f'{build_b}.json').read_text())['ml']['taxi']
  assert ml['baseline_source'].startswith('the model of prod build'), ml
  attack.check_nothing_of_the_payload_signed()


def test_a_seeded_blessed_report_is_not_merged_signed_or_unpickled_later(attack, reference):
  assert attack.invoke('build', '--no-checks').returncode == 0
  build_a = attack.build_id()
  manifest = json.loads((attack.project / 'dist' / 'manifest.json').read_text())
  wheel = manifest['wheel']
  verdict = dict(reference[1], model_dir=attack.plant(attack.bucket / 'test' / 'attacker'),
                 model_sha256=attack.sha256, message='attacker', baseline_source='attacker')
  report = attack.bucket / 'test' / 'results' / build_a / 'report.json'
  report.parent.mkdir(parents=True)
  report.write_text(json.dumps({
      'build_id': build_a, 'sha256': manifest['files'][wheel]['sha256'],
      'wheel_file': str(attack.bucket / 'test' / 'artifacts' / build_a / wheel),
      'status': 'passed', 'tested_at': '2026-01-01T00:00:00+00:00', 'tested_by': 'attacker',
      'manifest_sha256': None, 'module_origins': {},
      'results': [{'check': 'ml_model', 'passed': True, 'message': 'attacker', 'details': {}}],
      'ml': {'taxi': verdict}}))
  done = attack.invoke('test', 'deploy')
  assert done.returncode == 0, out(done)
  recorded = report.read_text()
  # the next test judges against build A's recorded model: the real one, not the payload
  again = attack.invoke('build', '--no-checks', 'test')
  assert 'attacker' not in recorded
  attack.check_nothing_of_the_payload_signed()
  assert again.returncode == 0, out(again)
  assert 'against the model of prod build' in out(again)


def test_poisoned_step_cache_markers_in_test_are_ignored(attack):
  first = attack.invoke('build', '--no-checks', 'test')
  assert first.returncode == 0, out(first)
  markers = sorted((attack.bucket / 'test').rglob('taxi/training/*/done.json'))
  assert markers, 'the run left no training step to copy the key of'
  for marker in markers:  # in place, and where a step cache in test/ would be read
    entry = marker.parent
    for target in {entry, attack.bucket / 'test' / 'ct' / 'cache' / 'taxi' / 'training' / entry.name}:
      done_json = json.loads(marker.read_text())
      done_json['result']['model_sha256'] = attack.sha256
      attack.plant(target)
      (target / 'done.json').write_text(json.dumps(done_json))
  again = attack.invoke('test')  # the same build, the same step keys
  assert again.returncode == 0, out(again)
  attack.check_nothing_of_the_payload_signed()
