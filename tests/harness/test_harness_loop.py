"""README command 1 end to end: `invoke build test deploy` twice, rollback, run, status (real CLI)."""

from __future__ import annotations

import json
import zipfile

import pytest
from browser import assert_clean, browser

from beam_pipelines.harness import compare

from .support import invoke, prod_variables

pytestmark = pytest.mark.integration


def test_first_loop_deploys_build_a_and_says_where_everything_is(loop):
  assert loop.a != loop.b
  out = loop.first.stdout + loop.first.stderr
  for step in ('build: lint (ruff check)', 'build: type check (mypy)', 'build: unit tests',
               'test: PASSED', 'deploy: promoting'):
    assert step in out
  assert f'deployed: prod: build {loop.a}' in out
  assert f'{loop.bucket}/prod/variables.json' in out
  assert 'invoke run wordcount' in out


def test_second_loop_deploys_build_b(loop):
  out = loop.second.stdout + loop.second.stderr
  assert f'deployed: prod: build {loop.b}' in out
  assert f'deploy   {loop.b}  (was {loop.a})' in out


def test_building_the_same_commit_twice_gives_byte_identical_wheels(loop):
  wheel = loop.manifest_a['wheel']
  assert loop.manifest_b['wheel'] == wheel
  assert loop.manifest_a['files'][wheel]['sha256'] == loop.manifest_b['files'][wheel]['sha256']
  assert loop.manifest_a['build_id'] != loop.manifest_b['build_id']


def test_the_build_id_is_not_inside_the_wheel(loop):
  wheel = loop.bucket / 'test' / 'artifacts' / loop.a / loop.manifest_a['wheel']
  with zipfile.ZipFile(wheel) as archive:
    for name in archive.namelist():
      assert loop.a.encode() not in archive.read(name)
      assert archive.getinfo(name).date_time[:3] == (1980, 1, 1)  # fixed: not the build's time


def test_manifest_has_every_field(loop):
  manifest = loop.manifest_a
  for field in ('name', 'version', 'build_id', 'git_commit', 'git_dirty', 'python_version',
                'beam_version', 'source_date_epoch', 'files', 'wheel', 'sdist'):
    assert field in manifest
  assert manifest['name'] == 'beam-pipelines' and manifest['git_dirty'] is False
  assert manifest['source_date_epoch'] == 315532800  # 1980-01-01: the same with or without .git
  assert set(manifest['files']) >= {manifest['wheel'], manifest['sdist'], 'lock.txt',
                                    'workflows/wordcount.json', 'workflows/wordcount_test.json',
                                    'dags/beam_pipelines_test_dag.py'}
  assert 'deploy.lock' not in manifest['files']  # the lock ships under its own name


def test_test_step_ran_the_uploaded_wheel_not_the_source_tree(loop, project):
  report = json.loads((loop.bucket / 'test' / 'passed' / f'{loop.a}.json').read_text())
  origin = report['module_origins']['wordcount_test']
  sha = report['sha256']
  assert origin.startswith(str(project / '.harness-cache' / 'wheels' / sha / 'site') + '/')
  assert report['status'] == 'passed' and report['results'][0]['passed']


def test_test_outputs_equal_the_golden_reference(loop, project):
  shards = sorted((loop.bucket / 'test' / 'results' / loop.a / 'wordcount').glob('counts-*'))
  actual = compare.merge_maps((str(s), compare.parse_counts(s.read_text())) for s in shards)
  reference = (project / 'build' / 'support-files' / 'reference.txt').read_text()
  assert actual == compare.parse_counts(reference)


def test_test_variables_name_the_wheel_and_locations(loop):
  values = json.loads((loop.bucket / 'test' / 'variables.json').read_text())
  assert values['build_id'] == loop.b
  assert values['wheel_file'] == str(loop.bucket / 'test' / 'artifacts' / loop.b /
                                     loop.manifest_b['wheel'])
  for key in ('sha256', 'input_location', 'output_location', 'staging_location',
              'temp_location', 'workflows_dir', 'manifest_file'):
    assert values[key]


def test_prod_holds_the_same_bytes_that_passed_test(loop):
  values = prod_variables(loop.bucket)
  passed = json.loads((loop.bucket / 'test' / 'passed' / f'{loop.b}.json').read_text())
  assert values['build_id'] == loop.b and values['sha256'] == passed['sha256']
  prod_wheel = loop.bucket / 'prod' / 'artifacts' / loop.b / loop.manifest_b['wheel']
  test_wheel = loop.bucket / 'test' / 'artifacts' / loop.b / loop.manifest_b['wheel']
  assert prod_wheel.read_bytes() == test_wheel.read_bytes()


def test_rollback_returns_to_the_first_build_and_is_recorded(project, bucket_copy, loop):
  done = invoke(project, bucket_copy, 'rollback')
  assert done.returncode == 0, done.stderr
  assert prod_variables(bucket_copy)['build_id'] == loop.a
  status = invoke(project, bucket_copy, 'status')
  assert f'prod: build {loop.a}' in status.stdout
  assert f'rollback {loop.a}  (was {loop.b})' in status.stdout
  assert 'history (3 events' in status.stdout


def test_run_executes_the_deployed_prod_workflow_with_beam_options(project, bucket_copy, loop):
  done = invoke(project, bucket_copy, 'run', 'wordcount', '--', '--num_shards', '2')
  assert done.returncode == 0, done.stderr
  shards = sorted((bucket_copy / 'prod' / 'results' / 'runs').glob('*/wordcount/counts-*'))
  assert [s.name for s in shards] == ['counts-00000-of-00002', 'counts-00001-of-00002']
  assert f'run: done: wordcount of build {loop.b}' in done.stderr
  actual = compare.merge_maps((str(s), compare.parse_counts(s.read_text())) for s in shards)
  reference = (project / 'build' / 'support-files' / 'reference.txt').read_text()
  assert actual == compare.parse_counts(reference)  # prod input was seeded from the test input


def test_status_shows_deployments_last_test_and_history(project, loop):
  done = invoke(project, loop.bucket, 'status')
  assert done.returncode == 0, done.stderr
  for text in (f'test: build {loop.b}', f'prod: build {loop.b}', f'last test: build {loop.b} PASSED',
               'passed builds: 2', 'approval gate: off', 'lock: free', 'history (2 events'):
    assert text in done.stdout


def test_report_site_shows_deployments_history_and_test_results(project, bucket_copy, loop):
  assert invoke(project, bucket_copy, 'rollback').returncode == 0
  done = invoke(project, bucket_copy, 'report')
  assert done.returncode == 0, done.stderr
  index = bucket_copy / 'site' / 'index.html'
  assert f'open {index}' in done.stderr
  with browser() as chromium:
    view = chromium.open(index, 'site-index-deploys')
  assert_clean(view, [])
  assert view.values['deployed.prod.build_id'] == loop.a  # rolled back
  assert view.values['deployed.test.build_id'] == loop.b
  assert view.values[f'test.{loop.a}.status'] == view.values[f'test.{loop.b}.status'] == 'passed'
  history = view.text.split('Deploy history', 1)[1].split('Test results', 1)[0]
  assert history.count('rollback') == 1 and history.count('deploy') >= 2
  for link in view.links:
    assert (index.parent / link).resolve().exists(), link
