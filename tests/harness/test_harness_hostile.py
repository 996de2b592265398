"""Hostile inputs, on the real harness and a private copy of a real bucket: an attacker with write
access to the bucket (edited definitions, redirected variables, forged records, a poisoned install
cache) and a user on a bad day (odd paths, corrupt records and locks). Each is refused with one
line and no traceback, or handled, and nothing runs that the build did not ship."""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
import socket
import subprocess
import time

import pytest

from beam_pipelines.harness import deploy, install, run
from beam_pipelines.harness.errors import HarnessError
from beam_pipelines.store import bucket, layout, signing
from beam_pipelines.store.errors import Refusal

from .support import invoke, prod_variables

pytestmark = pytest.mark.integration


def prod_state(bucket: pathlib.Path) -> dict:
  return {str(p.relative_to(bucket)): p.read_bytes()
          for p in sorted((bucket / 'prod').rglob('*')) if p.is_file()}


def one_line_refusal(done, *fragments):
  """Exit status 2, a REFUSED line naming every fragment, and no traceback."""
  assert done.returncode == 2, done.stdout + done.stderr
  assert 'Traceback' not in done.stderr, done.stderr
  assert 'REFUSED' in done.stderr
  for fragment in fragments:
    assert fragment in done.stderr, done.stderr


def run_prod(project, bucket, pipeline='wordcount'):
  return run.run_pipeline(project, str(bucket), pipeline, layout.PROD, [])


def sha256(path: pathlib.Path) -> str:
  return hashlib.sha256(path.read_bytes()).hexdigest()


# Workflow definitions come from the verified build ---------------------------------------------

def test_ct_refuses_a_deployed_definition_edited_to_run_another_module(project, bucket_copy, loop,
                                                                       tmp_path):
  proof = tmp_path / 'payload-ran'
  evil = tmp_path / 'evil.py'
  evil.write_text(f'open({str(proof)!r}, "w").write("ran")\n')
  definition = bucket_copy / 'prod' / 'workflows' / loop.b / 'ct.json'
  raw = json.loads(definition.read_text())
  definition.write_text(json.dumps(dict(raw, module='cProfile', args=[str(evil)])))
  done = invoke(project, bucket_copy, 'ct')
  one_line_refusal(done, f'{definition} was changed after build {loop.b}')
  assert not proof.exists()


def test_run_refuses_a_definition_edited_within_the_package(project, bucket_copy, loop, tmp_path):
  definition = bucket_copy / 'prod' / 'workflows' / loop.b / 'wordcount.json'
  raw = json.loads(definition.read_text())
  definition.write_text(json.dumps(dict(raw, args=['--output', str(tmp_path / 'elsewhere')])))
  with pytest.raises(HarnessError, match='was changed after build'):
    run_prod(project, bucket_copy)
  assert not list(tmp_path.glob('elsewhere*'))


def test_a_definition_the_manifest_does_not_list_is_never_run(project, bucket_copy, loop):
  extra = bucket_copy / 'prod' / 'workflows' / loop.b / 'evil.json'
  extra.write_text(json.dumps({'name': 'evil', 'pipeline': 'evil', 'env': 'prod',
                               'module': 'beam_pipelines.wordcount', 'args': []}))
  with pytest.raises(HarnessError, match="no deployed workflow for pipeline 'evil'"):
    run_prod(project, bucket_copy, 'evil')


# variables.json pointers are checked against the build they name --------------------------------

def redirections(bucket: pathlib.Path, loop, outside: pathlib.Path):
  """Each rewrite of one pointer of prod's variables, as an attacker would make it."""
  values = prod_variables(bucket)
  wheel = loop.manifest_b['wheel']
  outside.mkdir(exist_ok=True)
  shutil.copy(values['wheel_file'], outside / wheel)
  return {
      'build id of another build': {'build_id': loop.a},
      'wheel in the test area': {'wheel_file': str(bucket / 'test' / 'artifacts' / loop.b / wheel)},
      'wheel outside the bucket': {'wheel_file': str(outside / wheel)},
      'workflows in the test area': {'workflows_dir': str(bucket / 'test' / 'workflows' / loop.b)},
      'manifest of another build': {
          'manifest_file': str(bucket / 'prod' / 'artifacts' / loop.a / 'manifest.json')},
      'outputs outside the bucket': {'output_location': str(outside)},
  }


@pytest.mark.parametrize('case', ['build id of another build', 'wheel in the test area',
                                  'wheel outside the bucket', 'workflows in the test area',
                                  'manifest of another build', 'outputs outside the bucket'])
def test_run_refuses_redirected_variables_and_deploy_repairs_them(project, bucket_copy, loop,
                                                                  tmp_path, case, capsys):
  change = redirections(bucket_copy, loop, tmp_path / 'outside')[case]
  path = bucket_copy / 'prod' / 'variables.json'
  path.write_text(json.dumps(dict(prod_variables(bucket_copy), **change)))
  with pytest.raises(Refusal, match='point outside build'):
    run_prod(project, bucket_copy)
  deploy.deploy(str(bucket_copy), loop.b)
  assert 'nothing to do' not in capsys.readouterr().err
  values = prod_variables(bucket_copy)
  assert values['build_id'] == loop.b and values['wheel_file'].startswith(str(bucket_copy / 'prod'))
  assert deploy.live_deployment_ok(layout.Env(str(bucket_copy), layout.PROD)) is None


def test_deploy_of_the_live_build_re_verifies_it(bucket_copy, loop, capsys):
  definition = bucket_copy / 'prod' / 'workflows' / loop.b / 'wordcount.json'
  definition.write_text(definition.read_text().replace('wordcount', 'wordcount '))
  deploy.deploy(str(bucket_copy), loop.b)
  assert 'does not verify' in capsys.readouterr().err
  assert deploy.live_deployment_ok(layout.Env(str(bucket_copy), layout.PROD)) is None


def test_the_passed_record_and_prod_pin_the_manifest(loop):
  manifest = loop.bucket / 'test' / 'artifacts' / loop.b / 'manifest.json'
  passed = json.loads((loop.bucket / 'test' / 'passed' / f'{loop.b}.json').read_text())
  assert passed['manifest_sha256'] == sha256(manifest)
  assert prod_variables(loop.bucket)['manifest_sha256'] == sha256(manifest)


def test_deploy_refuses_a_consistent_rewrite_of_wheel_manifest_and_wheel_sha(bucket_copy, loop):
  artifacts = bucket_copy / 'test' / 'artifacts' / loop.a
  wheel = artifacts / loop.manifest_a['wheel']
  wheel.write_bytes(wheel.read_bytes() + b'\0')
  manifest = json.loads((artifacts / 'manifest.json').read_text())
  manifest['files'][loop.manifest_a['wheel']] = {'sha256': sha256(wheel),
                                                 'size': wheel.stat().st_size}
  (artifacts / 'manifest.json').write_text(json.dumps(manifest))
  record = bucket_copy / 'test' / 'passed' / f'{loop.a}.json'
  record.write_text(json.dumps(dict(json.loads(record.read_text()), sha256=sha256(wheel))))
  before = prod_state(bucket_copy)
  with pytest.raises(Refusal, match=f'manifest of build {loop.a} in test bytes changed'):
    deploy.deploy(str(bucket_copy), loop.a)
  assert prod_state(bucket_copy) == before


# Deploy reports honestly; history is never a blocker ---------------------------------------------

def test_a_corrupt_history_entry_is_skipped_and_reported_never_blocks(project, bucket_copy, loop):
  (bucket_copy / 'prod' / 'history' / '20990101T000000000000Z-deploy-x.json').write_text('{half')
  done = invoke(project, bucket_copy, 'deploy', '--build-id', loop.a)
  assert done.returncode == 0, done.stderr
  assert 'REFUSED' not in done.stderr and 'Traceback' not in done.stderr
  assert prod_variables(bucket_copy)['build_id'] == loop.a
  status = invoke(project, bucket_copy, 'status')
  assert status.returncode == 0, status.stderr
  assert 'SKIPPED an unreadable entry' in status.stdout
  assert f'prod: build {loop.a}' in status.stdout


# Gates wherever a build moves ------------------------------------------------------------------

def test_deploy_without_a_build_id_refuses_when_the_newest_build_failed(bucket_copy, loop):
  newer = f'{time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() + 3600))}-0000000-abcdef'
  report = json.loads((bucket_copy / 'test' / 'results' / loop.b / 'report.json').read_text())
  failed = bucket_copy / 'test' / 'results' / newer / 'report.json'
  failed.parent.mkdir(parents=True)
  failed.write_text(json.dumps(dict(report, build_id=newer, status='failed')))
  (bucket_copy / 'prod' / 'variables.json').write_text(
      json.dumps(dict(prod_variables(bucket_copy), build_id=loop.b)))
  before = prod_state(bucket_copy)
  with pytest.raises(HarnessError, match=f'newest tested build {newer} did not pass .* '
                                         f'--build-id {loop.b}'):
    deploy.deploy(str(bucket_copy))
  assert prod_state(bucket_copy) == before


def test_rollback_to_a_not_blessed_build_needs_a_recorded_override(bucket_copy, loop):
  record = bucket_copy / 'test' / 'passed' / f'{loop.a}.json'
  passed = json.loads(record.read_text())
  passed['ml'] = dict(passed.get('ml') or {}, status='NOT_BLESSED', message='auc 0.41 < 0.52')
  record.write_text(json.dumps(passed))
  before = prod_state(bucket_copy)
  with pytest.raises(HarnessError, match='NOT_BLESSED.*invoke rollback --override-blessing'):
    deploy.rollback(str(bucket_copy), loop.a)
  assert prod_state(bucket_copy) == before
  deploy.rollback(str(bucket_copy), loop.a, override_blessing='B breaks the report')
  values = prod_variables(bucket_copy)
  assert values['build_id'] == loop.a and values['blessing_override'] == 'B breaks the report'
  event = json.loads((bucket_copy / 'prod' / 'history' / f'{values["event_id"]}.json').read_text())
  assert event['blessing_override'] == 'B breaks the report'


def test_the_installed_wheel_is_checked_before_each_use(loop, tmp_path, capsys):
  values = prod_variables(loop.bucket)
  site = install.install(values['wheel_file'], values['sha256'], tmp_path)
  module = site / 'beam_pipelines' / 'wordcount.py'
  original = module.read_bytes()
  module.write_bytes(original + b'\nopen("/tmp/pwned", "w")\n')
  (site / 'sitecustomize.py').write_text('raise SystemExit("pwned")\n')
  again = install.install(values['wheel_file'], values['sha256'], tmp_path)
  assert 'is not the wheel\'s (beam_pipelines/wordcount.py was changed)' in capsys.readouterr().err
  assert again == site and module.read_bytes() == original
  assert not (site / 'sitecustomize.py').exists()
  assert install.site_problem(site, next((tmp_path / 'wheels' / values['sha256']).glob('*.whl'))) is None


def test_with_a_signing_key_a_forged_or_unsigned_passed_record_is_refused(bucket_copy, loop,
                                                                          monkeypatch):
  monkeypatch.setenv(signing.SIGNING_KEY_ENV_VAR, 'ci-secret')
  record = bucket_copy / 'test' / 'passed' / f'{loop.a}.json'
  passed = json.loads(record.read_text())
  before = prod_state(bucket_copy)
  with pytest.raises(Refusal, match='is not signed'):
    deploy.deploy(str(bucket_copy), loop.a)
  record.write_text(json.dumps(dict(passed, signature=signing.signature(passed, b'guessed'))))
  with pytest.raises(Refusal, match='signed with another key'):
    deploy.deploy(str(bucket_copy), loop.a)
  assert prod_state(bucket_copy) == before
  record.write_text(json.dumps(signing.sign(passed)))  # what `invoke test` writes with the key
  deploy.deploy(str(bucket_copy), loop.a)
  assert prod_variables(bucket_copy)['build_id'] == loop.a


@pytest.fixture
def small_disk(tmp_path):
  """A tmpfs mount (root only) to fill up; skipped where mounting is not allowed."""
  mount_point = tmp_path / 'disk'
  mount_point.mkdir()
  done = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=64m', 'tmpfs', str(mount_point)],
                        capture_output=True, text=True)
  if done.returncode != 0:
    pytest.skip(f'cannot mount a tmpfs here: {done.stderr.strip()}')
  yield mount_point
  subprocess.run(['umount', '-l', str(mount_point)], check=True)


def test_a_full_disk_during_deploy_is_one_line_and_the_next_deploy_cleans_up(project, loop,
                                                                              small_disk):
  copy = small_disk / 'bucket'
  skip = {('test', 'ct'), ('test', 'results'), ('prod', 'ct'), ('prod', 'registry'),
          ('prod', 'artifacts', loop.a), ('prod', 'workflows', loop.a)}
  shutil.copytree(loop.bucket, copy, ignore=lambda d, names: [
      n for n in names if pathlib.Path(d, n).relative_to(loop.bucket).parts in skip])
  for record in copy.rglob('*.json'):
    if not {'artifacts', 'workflows'} & set(record.relative_to(copy).parts):
      record.write_text(record.read_text().replace(str(loop.bucket), str(copy)))
  used = os.statvfs(small_disk).f_blocks - os.statvfs(small_disk).f_bfree
  wheel = copy / 'test' / 'artifacts' / loop.a / loop.manifest_a['wheel']
  size = used * os.statvfs(small_disk).f_frsize + wheel.stat().st_size // 2
  subprocess.run(['mount', '-o', f'remount,size={size}', str(small_disk)], check=True)
  before = prod_state(copy)
  done = invoke(project, copy, 'deploy', '--build-id', loop.a)
  assert done.returncode == 2, done.stderr
  assert 'Traceback' not in done.stderr and 'No space left on device' in done.stderr
  assert done.stderr.strip().splitlines()[-1].startswith('[beam-pipelines] FAILED')
  assert prod_variables(copy)['build_id'] == loop.b
  assert deploy.live_deployment_ok(layout.Env(str(copy), layout.PROD)) is None
  leftovers = [p for p in (copy / 'prod').rglob('*') if bucket.is_temp_name(p.name)]
  subprocess.run(['mount', '-o', 'remount,size=64m', str(small_disk)], check=True)
  again = invoke(project, copy, 'deploy', '--build-id', loop.a)
  assert again.returncode == 0, again.stderr
  if leftovers:
    assert 'temporary file(s) left by writers that are gone' in again.stderr
  assert not [p for p in (copy / 'prod').rglob('*') if bucket.is_temp_name(p.name)]
  assert prod_variables(copy)['build_id'] == loop.a and prod_state(copy) != before


def test_a_read_only_bucket_is_one_line_and_nothing_changes(project, bucket_copy, loop,
                                                              small_disk):
  copy = small_disk / 'bucket'
  shutil.copytree(bucket_copy, copy)
  for record in copy.rglob('*.json'):
    if not {'artifacts', 'workflows'} & set(record.relative_to(copy).parts):
      record.write_text(record.read_text().replace(str(bucket_copy), str(copy)))
  subprocess.run(['mount', '-o', 'remount,ro', str(small_disk)], check=True)
  before = prod_state(copy)
  done = invoke(project, copy, 'deploy', '--build-id', loop.a)
  assert done.returncode == 2 and 'Traceback' not in done.stderr, done.stderr
  assert 'Read-only file system' in done.stderr
  assert prod_state(copy) == before


def test_a_bucket_path_with_glob_characters_is_refused_in_one_line(project, loop, tmp_path):
  """Beam's file sinks read their output paths as patterns, so no pipeline could write in such a
  bucket: every task refuses it before doing anything, and nothing is changed."""
  copy = tmp_path / 'runs[1]' / 'bucket*'
  shutil.copytree(loop.bucket, copy)
  (copy / 'prod' / 'deploy.lock').write_text('null')
  before = sorted(str(p.relative_to(copy)) for p in copy.rglob('*'))
  for args in (('unlock',), ('deploy', '--build-id', loop.a), ('status',)):
    done = invoke(project, copy, *args)
    assert done.returncode == 2, (args, done.stderr)
    refusal = [line for line in done.stderr.splitlines() if 'Nothing was done' in line]
    assert len(refusal) == 1 and "'['" in refusal[0] and "'*'" in refusal[0], done.stderr
  assert sorted(str(p.relative_to(copy)) for p in copy.rglob('*')) == before


def test_status_flags_a_tampered_wheel_a_dead_holders_lock_and_a_blessing_override(
    project, bucket_copy, loop):
  record = bucket_copy / 'test' / 'passed' / f'{loop.a}.json'
  passed = json.loads(record.read_text())
  record.write_text(json.dumps(dict(passed, ml=dict(passed.get('ml') or {}, status='NOT_BLESSED'))))
  deploy.rollback(str(bucket_copy), loop.a, override_blessing='B breaks the report')
  wheel = bucket_copy / 'prod' / 'artifacts' / loop.a / loop.manifest_a['wheel']
  wheel.write_bytes(wheel.read_bytes() + b'\0')
  gone = subprocess.Popen(['true'])
  gone.wait()
  (bucket_copy / 'prod' / 'deploy.lock').write_text(json.dumps(
      {'host': socket.gethostname(), 'pid': gone.pid, 'operation': 'deploy', 'user': 'ci'}))
  done = invoke(project, bucket_copy, 'status')
  assert done.returncode == 0, done.stderr
  assert f'VERIFY FAILED: prod wheel bytes changed: {wheel}' in done.stdout
  assert 'BLESSING OVERRIDDEN: "B breaks the report"' in done.stdout
  assert f'(pid {gone.pid}, deploy)' in done.stdout and 'STALE: that process is gone' in done.stdout
  view = json.loads(invoke(project, bucket_copy, 'status', '--json').stdout)
  prod = view['environments']['prod']
  assert (prod['deployed'], prod['build_id'], prod['verified']) == (True, loop.a, False)
  assert 'bytes changed' in prod['verify_problem']
  assert prod['blessing_override'] == 'B breaks the report'
  assert view['environments']['test']['build_id'] == loop.b
  assert (view['lock']['state'], view['lock']['holder']['pid']) == ('stale', gone.pid)
  assert view['history']['events'][-1]['build_id'] == loop.a
  assert view['passed_builds'] == sorted([loop.a, loop.b])
