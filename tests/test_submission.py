"""Tests of the Dataflow submission args: job names, labels, staging, pass-through, deployed builds."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import unittest

import pytest

from beam_pipelines import submission
from beam_pipelines.submission import SubmissionError

from conftest import REPO

DATAFLOW = ['--runner', 'DataflowRunner', '--project', 'my-project', '--region', 'us-central1']


class JobNameTest(unittest.TestCase):
  """job_name: <pipeline>-<build id> under Dataflow's rule [a-z]([-a-z0-9]*[a-z0-9])?."""

  RULE = re.compile(r'[a-z]([-a-z0-9]*[a-z0-9])?')
  CASES = [
      (('wordcount', '20261126T153000Z-ab12cd3'), 'wordcount-20261126t153000z-ab12cd3'),
      (('wordcount', None), 'wordcount'),
      (('predict', 'build_7.2+local'), 'predict-build-7-2-local'),
      (('features', '--x--'), 'features-x'),
      (('9lives', 'b1'), 'job-9lives-b1'),
      (('Évaluate', 'ß'), 'valuate'),  # non-ASCII letters are not allowed in job names
  ]

  def test_cases(self):
    for (pipeline, build_id), expected in self.CASES:
      with self.subTest(pipeline=pipeline, build_id=build_id):
        self.assertEqual(submission.job_name(pipeline, build_id), expected)

  def test_long_names_are_cut_to_the_limit_and_still_valid(self):
    name = submission.job_name('wordcount', 'x' * 300 + '-')
    self.assertLessEqual(len(name), submission.JOB_NAME_MAX)
    self.assertRegex(name, self.RULE)

  def test_hostile_build_ids_give_valid_names(self):
    for build_id in ('../x', 'a/b\\c', ' ', 'UPPER', '😀', '-'):
      with self.subTest(build_id=build_id):
        self.assertTrue(self.RULE.fullmatch(submission.job_name('wordcount', build_id)))

  def test_pipeline_without_letters_or_digits_is_refused(self):
    with self.assertRaisesRegex(SubmissionError, 'no letter or digit'):
      submission.job_name('--', 'b1')


class LabelValueTest(unittest.TestCase):
  """label_value: GCP label values are [a-z0-9_-], at most 63 characters."""

  def test_cases(self):
    self.assertEqual(submission.label_value('20261126T153000Z-ab12cd3'), '20261126t153000z-ab12cd3')
    self.assertEqual(submission.label_value('a.b/c d_e'), 'a-b-c-d_e')
    self.assertEqual(len(submission.label_value('x' * 100)), 63)


class SubmissionArgsTest(unittest.TestCase):
  """submission_args: unchanged off Dataflow; staging, job name and labels added on it."""

  @classmethod
  def setUpClass(cls):
    cls.setup_py = str(REPO / 'setup.py')

  def test_direct_runner_args_pass_through_unchanged(self):
    args = ['--runner', 'DirectRunner', '--direct_num_workers', '2', '--input', 'x']
    self.assertEqual(submission.submission_args('wordcount', args, build_id='b1'), args)
    self.assertEqual(submission.submission_args('wordcount', ['--input', 'x']), ['--input', 'x'])

  def test_dataflow_gets_wheel_job_name_and_labels(self):
    wheel = self._wheel()
    args = submission.submission_args(
        'wordcount', DATAFLOW + ['--num_workers', '3'], wheel=wheel, build_id='B-7')
    self.assertEqual(args[:len(DATAFLOW) + 2], DATAFLOW + ['--num_workers', '3'])
    self.assertEqual(submission.flag_values(args, '--extra_package'), [wheel])
    self.assertEqual(submission.flag_values(args, '--job_name'), ['wordcount-b-7'])
    self.assertEqual(submission.flag_values(args, '--labels'), ['build_id=b-7', 'pipeline=wordcount'])

  def test_setup_file_is_staged_when_asked_with_an_absolute_path(self):
    args = submission.submission_args(
        'wordcount', ['--runner=DataflowRunner'], setup_file=self.setup_py)
    self.assertEqual(submission.flag_values(args, '--setup_file'), [self.setup_py])
    self.assertFalse(submission.has_flag(args, '--extra_package'))

  def test_relative_paths_become_absolute(self):
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
      args = submission.dataflow_args('wordcount', [], setup_file='setup.py')
    finally:
      os.chdir(cwd)
    self.assertEqual(submission.flag_values(args, '--setup_file'), [self.setup_py])

  def test_users_explicit_flags_win(self):
    user = DATAFLOW + ['--job_name=mine', '--extra_package', '/x/other.whl',
                       '--labels', 'build_id=theirs', '--labels=team=data']
    args = submission.submission_args('wordcount', user, wheel=self._wheel(), build_id='b1')
    self.assertEqual(submission.flag_values(args, '--job_name'), ['mine'])
    self.assertEqual(submission.flag_values(args, '--extra_package'), ['/x/other.whl'])
    self.assertEqual(submission.flag_values(args, '--labels'),
                     ['build_id=theirs', 'team=data', 'pipeline=wordcount'])

  def test_no_code_to_stage_is_a_clear_error(self):
    with self.assertRaisesRegex(SubmissionError, 'invoke build'):
      submission.submission_args('wordcount', DATAFLOW)

  def test_wheel_and_setup_file_together_are_refused(self):
    with self.assertRaisesRegex(SubmissionError, 'not both'):
      submission.dataflow_args('wordcount', DATAFLOW, wheel=self._wheel(), setup_file=self.setup_py)

  def test_missing_or_misnamed_files_are_refused(self):
    with self.assertRaisesRegex(SubmissionError, 'does not exist'):
      submission.dataflow_args('wordcount', DATAFLOW, wheel='/nonexistent/beam_pipelines.whl')
    with self.assertRaisesRegex(SubmissionError, "must end with '.whl'"):
      submission.dataflow_args('wordcount', DATAFLOW, wheel=self.setup_py)

  def test_runner_is_recognised_in_every_spelling(self):
    for args in (['--runner', 'DataflowRunner'], ['--runner=TestDataflowRunner'],
                 ['--runner', 'apache_beam.runners.dataflow.dataflow_runner.DataflowRunner']):
      with self.subTest(args=args):
        self.assertTrue(submission.is_dataflow(args))
    self.assertFalse(submission.is_dataflow(['--runner', 'DirectRunner']))
    self.assertFalse(submission.is_dataflow(['--runner=DataflowRunner', '--runner=DirectRunner']))

  def _wheel(self):
    return self.wheel_path

  @pytest.fixture(autouse=True)
  def _a_wheel(self, tmp_path):
    wheel = tmp_path / 'beam_pipelines-0.1.0-py3-none-any.whl'
    wheel.write_bytes(b'not really a wheel: only the name is checked here')
    self.wheel_path = str(wheel)


# ---------------------------------------------------------------------------------------------
# Deployed builds: <bucket>/<env>/variables.json.


DEPLOYED_ID = '20261127T080000Z-5bea069-0a1b2c'


def _deploy(bucket, env='prod', **overrides):
  artifacts = bucket / env / 'artifacts' / DEPLOYED_ID
  wheel = artifacts / 'beam_pipelines-0.1.0-py3-none-any.whl'
  wheel.parent.mkdir(parents=True)
  wheel.write_bytes(b'wheel bytes')
  variables = {'build_id': DEPLOYED_ID, 'wheel_file': str(wheel),
               'sha256': hashlib.sha256(b'wheel bytes').hexdigest(),
               'manifest_file': str(artifacts / 'manifest.json'),
               'workflows_dir': str(bucket / env / 'workflows' / DEPLOYED_ID)}
  variables.update(overrides)
  (bucket / env / 'variables.json').write_text(json.dumps(variables))
  return wheel, variables


def test_read_deployed_gives_build_wheel_and_sha(tmp_path):
  wheel, variables = _deploy(tmp_path)
  deployed = submission.read_deployed(str(tmp_path), 'prod')
  assert (deployed.build_id, deployed.wheel_file, deployed.sha256) == (
      DEPLOYED_ID, str(wheel), variables['sha256'])
  assert submission.fetch_wheel(deployed.wheel_file, deployed.sha256) == str(wheel)


def test_tampered_wheel_is_refused(tmp_path):
  wheel, _ = _deploy(tmp_path)
  wheel.write_bytes(b'wheel bytes, changed')
  deployed = submission.read_deployed(str(tmp_path), 'prod')
  with pytest.raises(SubmissionError, match='refusing to stage'):
    submission.fetch_wheel(deployed.wheel_file, deployed.sha256)


def test_copied_wheel_keeps_its_name_and_is_checked(tmp_path):
  # The copy path that gs:// wheels take, through FileSystems, on a local bucket.
  wheel, variables = _deploy(tmp_path / 'bucket')
  (tmp_path / 'fetched').mkdir()
  (tmp_path / 'other').mkdir()
  local = submission.fetch_wheel(str(wheel), variables['sha256'], str(tmp_path / 'fetched'))
  assert local == str(tmp_path / 'fetched' / wheel.name)
  assert open(local, 'rb').read() == b'wheel bytes'
  with pytest.raises(SubmissionError, match='refusing to stage'):
    submission.fetch_wheel(str(wheel), '0' * 64, str(tmp_path / 'other'))
  assert list((tmp_path / 'other').iterdir()) == []  # nothing half-written or unchecked left


@pytest.mark.parametrize('content, message', [
    (None, 'nothing deployed to prod'),
    ('[1, 2]', 'not a JSON object'),
    ('{"build_id": "b1"', 'not valid JSON'),
    ('{"build_id": "b1"}', 'lack wheel_file, sha256, manifest_file, workflows_dir'),
    ('{"build_id": "../b1", "wheel_file": "w", "sha256": "s", "manifest_file": "m", '
     '"workflows_dir": "d"}', 'invalid build id'),
])
def test_bad_variables_are_clear_errors(tmp_path, content, message):
  if content is not None:
    (tmp_path / 'prod').mkdir()
    (tmp_path / 'prod' / 'variables.json').write_text(content)
  with pytest.raises(SubmissionError, match=message):
    submission.read_deployed(str(tmp_path), 'prod')


def test_unknown_environment_is_refused(tmp_path):
  with pytest.raises(SubmissionError, match='unknown environment'):
    submission.read_deployed(str(tmp_path), 'staging')


@pytest.mark.integration
def test_cli_refuses_dataflow_without_code_to_stage(tmp_path):
  # In a directory without dist/: no build to stage, so nothing is submitted.
  completed = subprocess.run(
      [sys.executable, '-m', 'beam_pipelines.submission', '--pipeline', 'wordcount'] + DATAFLOW,
      capture_output=True, text=True, timeout=120, cwd=tmp_path)
  assert completed.returncode == 2
  assert 'invoke build' in completed.stderr


# ---------------------------------------------------------------------------------------------
# The last local build (dist/manifest.json of `invoke build`) and the pipeline hook.


def _dist(tmp_path, wheel_bytes=b'built wheel', build_id='20261126T153000Z-5bea069-3f9a1c'):
  dist = tmp_path / 'dist'
  dist.mkdir()
  wheel = dist / 'beam_pipelines-0.1.0-py3-none-any.whl'
  wheel.write_bytes(wheel_bytes)
  sdist = dist / 'beam_pipelines-0.1.0.tar.gz'
  sdist.write_bytes(b'built sdist')
  manifest = {'name': 'beam-pipelines', 'version': '0.1.0', 'build_id': build_id,
              'wheel': wheel.name, 'sdist': sdist.name,
              'files': {wheel.name: {'sha256': hashlib.sha256(b'built wheel').hexdigest(),
                                     'size': len(b'built wheel')},
                        sdist.name: {'sha256': hashlib.sha256(b'built sdist').hexdigest(),
                                     'size': len(b'built sdist')}}}
  (dist / 'manifest.json').write_text(json.dumps(manifest))
  return dist, wheel


def test_current_build_reads_the_manifest_and_checks_the_wheel(tmp_path):
  dist, wheel = _dist(tmp_path)
  assert submission.current_build(str(dist)) == (str(wheel), '20261126T153000Z-5bea069-3f9a1c')
  wheel.write_bytes(b'rebuilt since')
  with pytest.raises(SubmissionError, match='refusing to stage'):
    submission.current_build(str(dist))


def test_current_build_without_a_build_says_what_to_do(tmp_path):
  with pytest.raises(SubmissionError, match='run `invoke build`'):
    submission.current_build(str(tmp_path))


def test_prepare_argv_stages_the_last_build_only_on_dataflow(tmp_path, monkeypatch):
  _, wheel = _dist(tmp_path)
  monkeypatch.chdir(tmp_path)
  direct = ['--input', 'x', '--direct_num_workers', '2']
  assert submission.prepare_argv('wordcount', direct) == direct
  args = submission.prepare_argv('wordcount', DATAFLOW)
  assert submission.flag_values(args, '--extra_package') == [str(wheel)]
  assert submission.flag_values(args, '--job_name') == ['wordcount-20261126t153000z-5bea069-3f9a1c']
  assert submission.prepare_argv('wordcount', args) == args  # idempotent: ready args pass through


def test_a_job_started_with_the_projects_image_is_named_and_labelled_by_its_build():
  image = 'us-central1-docker.pkg.dev/p/beam/sdk:20261126T153000Z-5bea069-3f9a1c'
  args = submission.prepare_argv('validate', DATAFLOW + ['--sdk_container_image', image])
  assert submission.flag_values(args, '--job_name') == ['validate-20261126t153000z-5bea069-3f9a1c']
  assert 'build_id=20261126t153000z-5bea069-3f9a1c' in submission.flag_values(args, '--labels')
  assert 'pipeline=validate' in submission.flag_values(args, '--labels')
  assert submission.prepare_argv('validate', args) == args


def test_two_runs_with_an_image_of_unknown_build_never_share_a_job_name():
  image = ['--sdk_container_image', 'us-central1-docker.pkg.dev/p/beam/sdk:latest']
  first, second = (submission.flag_values(submission.prepare_argv('validate', DATAFLOW + image),
                                          '--job_name')[0] for _ in range(2))
  assert first.startswith('validate-run-') and first != second
  labels = submission.flag_values(submission.prepare_argv('validate', DATAFLOW + image), '--labels')
  assert labels == ['pipeline=validate']  # no build id is claimed that is not known


@pytest.mark.integration
def test_cli_env_off_dataflow_points_to_invoke_run(tmp_path):
  completed = subprocess.run(
      [sys.executable, '-m', 'beam_pipelines.submission', '--pipeline', 'wordcount', '--env', 'prod',
       '--bucket', str(tmp_path)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
  assert completed.returncode == 2
  assert 'invoke run wordcount --env prod' in completed.stderr


class ContainerImageTest(unittest.TestCase):
  """The project's SDK container: tagged by build id, passed as --sdk_container_image."""

  def test_image_is_the_repository_tagged_with_the_build_id(self):
    self.assertEqual(submission.container_image('r-docker.pkg.dev/p/r/sdk', 'b1'),
                     'r-docker.pkg.dev/p/r/sdk:b1')
    for bad in ('', 'r-docker.pkg.dev/p/r/sdk:latest', 'r-docker.pkg.dev/p/r/sdk@sha256:0'):
      with self.assertRaisesRegex(SubmissionError, 'without a tag'):
        submission.container_image(bad, 'b1')

  def test_image_is_added_unless_the_user_gave_one(self):
    args = ['--runner', 'DataflowRunner', '--setup_file', 'setup.py', '--job_name', 'j']
    with_image = submission.dataflow_args('validate', args, image='repo/sdk:b1')
    self.assertEqual(submission.flag_values(with_image, '--sdk_container_image'), ['repo/sdk:b1'])
    mine = args + ['--sdk_container_image', 'mine:1']
    self.assertEqual(submission.flag_values(
        submission.dataflow_args('validate', mine, image='repo/sdk:b1'), '--sdk_container_image'),
        ['mine:1'])

  def test_ml_pipelines_without_a_container_are_refused(self):
    args = ['--runner', 'DataflowRunner', '--setup_file', 'setup.py']
    for name in ('validate', 'evaluate', 'predict'):
      with self.assertRaisesRegex(SubmissionError, 'needs TFDV/scikit-learn'):
        submission.dataflow_args(name, args)
    self.assertTrue(submission.dataflow_args('wordcount', args))
