"""Each pipeline's Dataflow job, built offline with Beam's ``--dry_run True``, and local scale-out.

``DataflowRunner`` with ``TestOptions.dry_run`` translates the pipeline into the Dataflow job
(``result.job``: its proto, portable pipeline and options) and returns before staging files or
calling the service: no credentials, no network. The temp location must be a valid GCS bucket name
(else Beam tries to create a default bucket over the network) and sources read at construction
must exist locally, so inputs are local files; outputs are never opened in a dry run.

To add a pipeline: one ``DataflowCase`` line in ``PIPELINES`` (its own flags, the labelled steps
its job must have). Every test below then runs for it.
"""

from __future__ import annotations

import dataclasses
import pathlib
import shutil
import subprocess
import sys
from typing import Callable, Dict, List, Tuple

import pytest

from beam_pipelines import submission

from conftest import REPO, SUPPORT_FILES, read_shards

BUILD_ID = '20261126T153000Z-ab12cd3'
OFFLINE_BUCKET = 'gs://beam-pipelines-offline-check'  # a valid (never contacted) bucket name
DATAFLOW_OFFLINE = [
    '--runner', 'DataflowRunner', '--project', 'beam-pipelines-ci', '--region', 'us-central1',
    '--temp_location', f'{OFFLINE_BUCKET}/tmp', '--dry_run', 'True', '--no_auth']
PICKLED_MAIN_SESSION = 'pickled_main_session'


@dataclasses.dataclass(frozen=True)
class DataflowCase:
  """A pipeline's Dataflow check: its own flags (given a scratch dir) and its top-level steps."""
  pipeline: str
  argv: Callable[[pathlib.Path], List[str]]
  steps: Tuple[str, ...]


PIPELINES = [
    DataflowCase(
        'wordcount',
        lambda tmp: ['--input', str(SUPPORT_FILES / 'input.txt'),
                     '--output', f'{OFFLINE_BUCKET}/out/counts'],
        ('ReadLines', 'CountWords', 'Format', 'Write')),
]
CASES = {case.pipeline: case for case in PIPELINES}


@pytest.fixture(scope='session')
def built_wheel(tmp_path_factory) -> pathlib.Path:
  """The project's real wheel, built once per session from a copy of the source tree.

  Built from a copy so that parallel builds in the work tree (egg-info, build dirs) cannot clash.
  """
  root = tmp_path_factory.mktemp('wheel-build')
  source = root / 'src'
  source.mkdir()
  for name in ('setup.py', 'pyproject.toml', 'README.md'):
    shutil.copy2(REPO / name, source / name)
  shutil.copytree(REPO / 'beam_pipelines', source / 'beam_pipelines',
                  ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
  subprocess.run(
      [sys.executable, '-m', 'build', '--no-isolation', '--wheel', '--outdir', str(root / 'dist'),
       str(source)], check=True, capture_output=True, timeout=300)
  (wheel,) = (root / 'dist').glob('beam_pipelines-*.whl')
  return wheel


@pytest.fixture(scope='module')
def dry_run_jobs(built_wheel, tmp_path_factory) -> Dict[str, object]:
  """Builds every registered pipeline's Dataflow job once (lazily), through submission_args."""
  jobs: Dict[str, object] = {}

  def job_of(name: str):
    if name not in jobs:
      case = CASES[name]
      tmp = tmp_path_factory.mktemp(f'dataflow-{name}')
      argv = submission.submission_args(
          name, case.argv(tmp) + DATAFLOW_OFFLINE, wheel=str(built_wheel), build_id=BUILD_ID)
      result = submission.run_pipeline(name, argv)
      assert result is not None and hasattr(result, 'job'), (
          f'beam_pipelines.{name}.run() must return the PipelineResult (its .job is the dry run)')
      jobs[name] = result.job
    return jobs[name]

  return job_of


def _top_level_steps(job) -> List[str]:
  transforms = job.proto_pipeline.components.transforms.values()
  return sorted({t.unique_name for t in transforms if '/' not in t.unique_name})


def _staged_files(job) -> List[str]:
  """Names of the files staged for the workers' environment(s) (wheel, pickled session ...)."""
  from apache_beam.portability.api import beam_runner_api_pb2
  names = []
  for environment in job.proto_pipeline.components.environments.values():
    for artifact in environment.dependencies:
      payload = beam_runner_api_pb2.ArtifactStagingToRolePayload.FromString(artifact.role_payload)
      names.append(payload.staged_name)
  return names


@pytest.mark.integration
@pytest.mark.parametrize('name', sorted(CASES))
def test_job_has_the_pipelines_labelled_steps(dry_run_jobs, name):
  steps = _top_level_steps(dry_run_jobs(name))
  missing = [step for step in CASES[name].steps if step not in steps]
  assert not missing, f'{name}: steps {missing} not in the Dataflow job {steps}'


@pytest.mark.integration
@pytest.mark.parametrize('name', sorted(CASES))
def test_job_stages_the_built_wheel(dry_run_jobs, built_wheel, name):
  from apache_beam.options.pipeline_options import SetupOptions
  job = dry_run_jobs(name)
  assert job.options.view_as(SetupOptions).extra_packages == [str(built_wheel)]
  assert built_wheel.name in _staged_files(job)


@pytest.mark.integration
@pytest.mark.parametrize('name', sorted(CASES))
def test_job_name_and_labels_carry_the_build_id(dry_run_jobs, name):
  job = dry_run_jobs(name)
  assert job.proto.name == submission.job_name(name, BUILD_ID)
  labels = {p.key: p.value for p in job.proto.labels.additionalProperties}
  assert labels == {'build_id': submission.label_value(BUILD_ID), 'pipeline': name}


@pytest.mark.integration
@pytest.mark.parametrize('name', sorted(CASES))
def test_workers_do_not_depend_on_the_submitting_main_session(dry_run_jobs, name):
  """save_main_session is off and nothing of __main__ is pickled: DoFns come from the wheel."""
  from apache_beam.options.pipeline_options import SetupOptions
  job = dry_run_jobs(name)
  assert job.options.view_as(SetupOptions).save_main_session is False
  assert PICKLED_MAIN_SESSION not in _staged_files(job)


@pytest.mark.integration
def test_setup_file_staging_builds_a_source_package(tmp_path):
  """--setup_file (when asked instead of the wheel): Beam builds an sdist of the tree and stages it."""
  source = tmp_path / 'src'
  source.mkdir()
  for name in ('setup.py', 'pyproject.toml', 'README.md'):
    shutil.copy2(REPO / name, source / name)
  shutil.copytree(REPO / 'beam_pipelines', source / 'beam_pipelines',
                  ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
  argv = submission.submission_args(
      'wordcount', CASES['wordcount'].argv(tmp_path) + DATAFLOW_OFFLINE,
      setup_file=str(source / 'setup.py'), build_id=BUILD_ID)
  job = submission.run_pipeline('wordcount', argv).job
  assert 'workflow.tar.gz' in _staged_files(job)
  assert job.proto.name == submission.job_name('wordcount', BUILD_ID)


# ---------------------------------------------------------------------------------------------
# Local scale-out: the DirectRunner's multi-process mode runs DoFns in separate worker processes,
# so they are pickled and unpickled as on remote workers. Counts must equal the 1-worker run.

SCALE_OUT = {
    'wordcount': lambda tmp: ['--input', str(SUPPORT_FILES / 'input.txt'),
                              '--output', str(tmp / 'counts')],
}


def _word_counts(prefix: pathlib.Path) -> Dict[str, int]:
  lines = read_shards(str(prefix))
  counts = dict(line.rsplit(': ', 1) for line in lines)
  assert len(counts) == len(lines), 'a word appears on two output lines'
  return {word: int(count) for word, count in counts.items()}


@pytest.mark.integration
@pytest.mark.parametrize('name', sorted(SCALE_OUT))
def test_two_worker_processes_give_the_one_worker_counts(tmp_path, name):
  runs = {}
  for workers, mode in ((1, 'in_memory'), (2, 'multi_processing')):
    out = tmp_path / f'{workers}-workers'
    out.mkdir()
    argv = SCALE_OUT[name](out) + [
        '--direct_num_workers', str(workers), '--direct_running_mode', mode]
    completed = subprocess.run(
        [sys.executable, '-m', f'beam_pipelines.{name}'] + argv,
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr[-3000:]
    runs[workers] = _word_counts(out / 'counts')
  assert runs[2] == runs[1]
  reference = dict(line.rsplit(': ', 1) for line in
                   (SUPPORT_FILES / 'reference.txt').read_text(encoding='utf-8').splitlines())
  assert runs[2] == {word: int(count) for word, count in reference.items()}
