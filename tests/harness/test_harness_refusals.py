"""Every refusal of the harness, on the real harness and a temporary bucket: clear message,
exit status != 0, and nothing changed in prod."""

from __future__ import annotations

import json
import pathlib
import shutil

import pytest

from beam_pipelines.harness import deploy, testing
from beam_pipelines.store import layout
from beam_pipelines.store.errors import Refusal

from .support import invoke, make_project, prod_variables

pytestmark = pytest.mark.integration


def prod_state(bucket: pathlib.Path) -> dict:
  """Every object under prod/ with its bytes: 'nothing changed' means this is equal."""
  return {str(p.relative_to(bucket)): p.read_bytes()
          for p in sorted((bucket / 'prod').rglob('*')) if p.is_file()}


def wheel_of(bucket, loop, build_id, env='test'):
  return bucket / env / 'artifacts' / build_id / loop.manifest_a['wheel']


def assert_refused(done, *fragments):
  assert done.returncode != 0
  assert 'REFUSED' in done.stderr
  for fragment in fragments:
    assert fragment in done.stderr, done.stderr


def test_deploy_refuses_a_wheel_with_one_byte_changed(project, bucket_copy, loop):
  wheel = wheel_of(bucket_copy, loop, loop.a)
  data = bytearray(wheel.read_bytes())
  data[len(data) // 2] ^= 0x01
  wheel.write_bytes(bytes(data))
  before = prod_state(bucket_copy)
  done = invoke(project, bucket_copy, 'deploy', '--build-id', loop.a)
  assert_refused(done, 'bytes changed', str(wheel))
  assert prod_state(bucket_copy) == before


def test_deploy_refuses_a_build_that_did_not_pass(project, bucket_copy, loop):
  (bucket_copy / 'test' / 'passed' / f'{loop.a}.json').unlink()
  before = prod_state(bucket_copy)
  done = invoke(project, bucket_copy, 'deploy', '--build-id', loop.a)
  assert_refused(done, f'build {loop.a} did not pass test')
  assert prod_state(bucket_copy) == before


@pytest.mark.parametrize('hostile', ['../x', '../../etc', 'latest'])
def test_deploy_and_rollback_refuse_a_hostile_build_id(project, bucket_copy, hostile):
  before = prod_state(bucket_copy)
  for task in ('deploy', 'rollback'):
    done = invoke(project, bucket_copy, task, '--build-id', hostile)
    assert_refused(done, f"invalid build id '{hostile}'")
  assert prod_state(bucket_copy) == before
  assert not (bucket_copy / 'x').exists() and not (bucket_copy.parent / 'x').exists()


def test_deploy_refuses_prod_variables_that_are_not_json(project, bucket_copy, loop):
  (bucket_copy / 'prod' / 'variables.json').write_text('{"build_id": "half')
  before = prod_state(bucket_copy)
  done = invoke(project, bucket_copy, 'deploy', '--build-id', loop.a)
  assert_refused(done, 'prod variables at', 'is not valid JSON')
  assert prod_state(bucket_copy) == before


def test_deploy_refuses_a_missing_wheel(bucket_copy, loop):
  wheel_of(bucket_copy, loop, loop.a).unlink()
  before = prod_state(bucket_copy)
  with pytest.raises(Refusal, match='missing'):
    deploy.deploy(str(bucket_copy), loop.a)
  assert prod_state(bucket_copy) == before


def test_deploy_refuses_an_empty_wheel(bucket_copy, loop):
  wheel_of(bucket_copy, loop, loop.a).write_bytes(b'')
  before = prod_state(bucket_copy)
  with pytest.raises(Refusal, match=r'empty \(0 bytes\)'):
    deploy.deploy(str(bucket_copy), loop.a)
  assert prod_state(bucket_copy) == before


def test_deploy_refuses_a_tampered_workflow_definition(bucket_copy, loop):
  definition = bucket_copy / 'test' / 'artifacts' / loop.a / 'workflows' / 'wordcount.json'
  definition.write_text(definition.read_text().replace('DirectRunner', 'DataflowRunner'))
  before = prod_state(bucket_copy)
  with pytest.raises(Refusal, match='workflows/wordcount.json bytes changed'):
    deploy.deploy(str(bucket_copy), loop.a)
  assert prod_state(bucket_copy) == before


def test_deploy_refuses_a_passed_record_for_other_bytes(bucket_copy, loop):
  record = bucket_copy / 'test' / 'passed' / f'{loop.a}.json'
  passed = json.loads(record.read_text())
  record.write_text(json.dumps(dict(passed, sha256='0' * 64)))
  before = prod_state(bucket_copy)
  with pytest.raises(Refusal, match='is not the one that passed test'):
    deploy.deploy(str(bucket_copy), loop.a)
  assert prod_state(bucket_copy) == before


def test_rollback_refuses_a_tampered_prod_wheel(bucket_copy, loop):
  wheel = wheel_of(bucket_copy, loop, loop.a, env='prod')
  wheel.write_bytes(wheel.read_bytes() + b'\0')
  before = prod_state(bucket_copy)
  with pytest.raises(Refusal, match='bytes changed'):
    deploy.rollback(str(bucket_copy))
  assert prod_state(bucket_copy) == before


def test_run_refuses_a_tampered_deployed_wheel(project, bucket_copy, loop):
  wheel = wheel_of(bucket_copy, loop, loop.b, env='prod')
  wheel.write_bytes(b'PK' + wheel.read_bytes()[2:-1])
  done = invoke(project, bucket_copy, 'run', 'wordcount')
  assert_refused(done, 'bytes changed')
  assert not list((bucket_copy / 'prod' / 'results').glob('runs/*'))


def test_the_approval_gate_requires_approve(bucket_copy, loop):
  deploy.set_approval(str(bucket_copy), True)
  before = prod_state(bucket_copy)
  with pytest.raises(Refusal, match='approval gate is on'):
    deploy.deploy(str(bucket_copy), loop.a)
  assert prod_state(bucket_copy) == before
  values = deploy.deploy(str(bucket_copy), loop.a, approve=True)
  assert values.build_id == loop.a and values.get('approved') is True


def test_deploy_refuses_while_another_deploy_holds_the_lock(bucket_copy, loop):
  lock_path = bucket_copy / 'prod' / 'deploy.lock'
  lock_path.write_text(json.dumps({'user': 'ana', 'host': 'ci-runner-3', 'pid': 4242,
                                   'since': '2026-11-26T10:00:00+00:00', 'operation': 'deploy'}))
  with pytest.raises(Refusal, match=r'ana@ci-runner-3 \(pid 4242, deploy\) since 2026-11-26'):
    deploy.deploy(str(bucket_copy), loop.a)
  assert prod_variables(bucket_copy)['build_id'] == loop.b


def test_test_step_refuses_test_variables_that_are_not_json(project, bucket_copy):
  (bucket_copy / 'test' / 'variables.json').write_text('not json')
  with pytest.raises(Refusal, match='test variables at .* is not valid JSON'):
    testing.run_test(project, str(bucket_copy))
  assert (bucket_copy / 'test' / 'variables.json').read_text() == 'not json'


def test_a_failing_golden_comparison_writes_no_passed_record(loop, tmp_path):
  """A build whose output differs from the reference fails test and cannot be deployed."""
  copy = make_project(tmp_path / 'project')
  reference = copy / 'build' / 'support-files' / 'reference.txt'
  reference.write_text(reference.read_text().replace('A: 3\n', 'A: 4\n') + 'Zyzzyva: 1\n')
  bucket = tmp_path / 'bucket'
  done = invoke(copy, bucket, 'build', '--no-checks', 'test')
  assert_refused(done, 'test FAILED', '1 missing: Zyzzyva', 'A (expected 4, got 3)')
  assert not list((bucket / 'test' / 'passed').glob('*.json'))
  report = json.loads(next((bucket / 'test' / 'results').glob('*/report.json')).read_text())
  assert report['status'] == 'failed'
  assert_refused(invoke(copy, bucket, 'deploy'), 'no build has passed test yet')


def test_build_refuses_code_that_fails_lint(tmp_path):
  copy = make_project(tmp_path / 'project')
  (copy / 'beam_pipelines' / 'sloppy.py').write_text('import os\n')
  done = invoke(copy, tmp_path / 'bucket', 'build')
  assert_refused(done, 'build: lint failed', 'F401')
  assert not (copy / 'dist').exists()
  shutil.rmtree(copy)


def test_build_refuses_code_that_fails_a_unit_test(tmp_path):
  copy = make_project(tmp_path / 'project')
  (copy / 'tests' / 'harness' / 'test_harness_zz_broken.py').write_text(
      'def test_arithmetic_still_works():\n  assert 1 + 1 == 3\n')
  done = invoke(copy, tmp_path / 'bucket', 'build',
                **{layout.UNIT_TESTS_ENV_VAR: 'tests/harness'})
  assert_refused(done, 'build: unit tests failed', 'test_arithmetic_still_works')
  assert not (copy / 'dist').exists()
