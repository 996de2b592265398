"""Each pipeline's Dataflow job, built offline with Beam's ``--dry_run True``, and local scale-out.

``DataflowRunner`` with ``TestOptions.dry_run`` translates the pipeline into the Dataflow job
(``result.job``: its proto, portable pipeline and options) and returns before staging files or
calling the service: no credentials, no network. The temp location must be a valid GCS bucket name
(else Beam tries to create a default bucket over the network) and sources read at construction
must exist locally, so inputs are local files; outputs are never opened in a dry run.

To add a pipeline: one ``DataflowCase`` line in ``PIPELINES`` (how to construct it, the labelled
steps its job must have). Every test below then runs for it.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pathlib
import re
import shutil
import subprocess
import sys
import zipfile
from typing import Callable, Dict, List, Tuple

import pytest

from beam_pipelines import submission

import mldata
from conftest import REPO, SUPPORT_FILES, read_shards

features_dir, good_model_dir = mldata.features_dir, mldata.good_model_dir  # session fixtures

BUILD_ID = '20261126T153000Z-ab12cd3'
OFFLINE_BUCKET = 'gs://beam-pipelines-offline-check'  # a valid (never contacted) bucket name
DATAFLOW_OFFLINE = [
    '--runner', 'DataflowRunner', '--project', 'beam-pipelines-ci', '--region', 'us-central1',
    '--temp_location', f'{OFFLINE_BUCKET}/tmp', '--dry_run', 'True', '--no_auth']
PICKLED_MAIN_SESSION = 'pickled_main_session'
CONTAINER_REPO = 'us-central1-docker.pkg.dev/beam-pipelines-ci/beam-pipelines/sdk'
IMAGE = f'{CONTAINER_REPO}:{BUILD_ID}'  # the project's SDK container of the build


# ---------------------------------------------------------------------------------------------
# The registry. ``construct(pipeline, fixtures)`` adds the pipeline's steps exactly as its ``run()``
# does (its ``build_pipeline``), with local inputs that exist (read at construction) and gs://
# outputs (never opened in a dry run). ``fixtures`` are the pytest fixtures named in ``needs``.


def _wordcount(pipeline, fx):
  from beam_pipelines import wordcount
  wordcount.build_pipeline(pipeline, str(SUPPORT_FILES / 'input.txt'), f'{OFFLINE_BUCKET}/counts')


def _features(pipeline, fx):
  from beam_pipelines import features, taxi_data
  from beam_pipelines.ml import spec as spec_lib
  features.build_pipeline(pipeline, taxi_data.sample_path(),
                          spec_lib.load(spec_lib.default_spec_path()), f'{OFFLINE_BUCKET}/features')


def _validate(pipeline, fx):
  from beam_pipelines import validate
  from beam_pipelines.ml import spec as spec_lib
  validate.build_pipeline(pipeline, str(fx['features_dir']),
                          spec_lib.load(spec_lib.default_spec_path()), f'{OFFLINE_BUCKET}/validation')


def _evaluate(pipeline, fx):
  from beam_pipelines import evaluate
  from beam_pipelines.ml import blessing
  models = {evaluate.CANDIDATE: evaluate.describe_model(str(fx['good_model_dir']))}
  evaluate.build_pipeline(pipeline, str(fx['features_dir']), models,
                          models[evaluate.CANDIDATE]['label'], 'payment_type',
                          blessing.BlessingRule.load(), f'{OFFLINE_BUCKET}/evaluation')


def _predict(pipeline, fx):
  from beam_pipelines import predict, taxi_data
  from beam_pipelines.ml import csv_io, model_io
  model_dir = str(fx['good_model_dir'])
  spec = csv_io.resolve_spec(predict.load_spec(None, model_io.read_metadata(model_dir)),
                             taxi_data.sample_path())
  predict.build_pipeline(pipeline, taxi_data.sample_path(), spec, model_dir,
                         f'{OFFLINE_BUCKET}/predictions')


@dataclasses.dataclass(frozen=True)
class DataflowCase:
  """A pipeline's Dataflow check: how to construct it and the top-level steps its job must have."""
  pipeline: str
  construct: Callable[[object, Dict[str, pathlib.Path]], None]
  steps: Tuple[str, ...]
  needs: Tuple[str, ...] = ()
  slow: bool = False  # imports TensorFlow/TFDV or trains a model (pytest -m slow)


PIPELINES = [
    DataflowCase('wordcount', _wordcount, ('ReadLines', 'CountWords', 'Format', 'Write')),
    DataflowCase('features', _features, (
        'ExtractFeatures', 'WriteTrain', 'WriteEval', 'WriteDeadLetter', 'WriteSummary')),
    DataflowCase('validate', _validate, (
        'StatisticsTrain', 'WriteTrainStatistics', 'StatisticsEval', 'WriteEvalStatistics'),
        needs=('features_dir',), slow=True),
    DataflowCase('evaluate', _evaluate, (
        'ReadEvalSplit', 'DropUnlabelled', 'ScoreCandidate', 'ToSlices', 'MetricsPerSlice',
        'WriteOutputs'), needs=('features_dir', 'good_model_dir'), slow=True),
    DataflowCase('predict', _predict, (
        'ReadCsv', 'Predict', 'WritePredictions', 'WriteDeadLetter'),
        needs=('good_model_dir',), slow=True),
]
CASES = {case.pipeline: case for case in PIPELINES}
NAMES = [pytest.param(c.pipeline, marks=[pytest.mark.slow] if c.slow else []) for c in PIPELINES]


def _copy_source(source: pathlib.Path) -> pathlib.Path:
  """The files setup.py packages, copied (parallel builds in the work tree cannot clash)."""
  source.mkdir()
  for name in ('setup.py', 'pyproject.toml', 'README.md'):
    shutil.copy2(REPO / name, source / name)
  shutil.copytree(REPO / 'beam_pipelines', source / 'beam_pipelines',
                  ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
  return source


@pytest.fixture(scope='session')
def built_wheel(tmp_path_factory) -> pathlib.Path:
  """The project's real wheel, built once per session from a copy of the source tree."""
  root = tmp_path_factory.mktemp('wheel-build')
  source = _copy_source(root / 'src')
  subprocess.run(
      [sys.executable, '-m', 'build', '--no-isolation', '--wheel', '--outdir', str(root / 'dist'),
       str(source)], check=True, capture_output=True, timeout=300)
  (wheel,) = (root / 'dist').glob('beam_pipelines-*.whl')
  return wheel


@pytest.fixture(scope='module')
def dry_run_jobs(built_wheel, request) -> Callable[[str], object]:
  """Builds a registered pipeline's Dataflow job once (lazily), with submission_args' Beam args."""
  from apache_beam import Pipeline
  from apache_beam.options.pipeline_options import PipelineOptions, SetupOptions
  jobs: Dict[str, object] = {}

  def job_of(name: str):
    if name not in jobs:
      case = CASES[name]
      fixtures = {fixture: request.getfixturevalue(fixture) for fixture in case.needs}
      argv = submission.submission_args(
          name, DATAFLOW_OFFLINE, wheel=str(built_wheel), build_id=BUILD_ID, image=IMAGE)
      options = PipelineOptions(argv)
      # As each pipeline's run() sets it (its default is asserted below).
      options.view_as(SetupOptions).save_main_session = _run_default_save_main_session(name)
      pipeline = Pipeline(options=options)
      case.construct(pipeline, fixtures)
      jobs[name] = pipeline.run().job
    return jobs[name]

  return job_of


def _run_default_save_main_session(name: str) -> bool:
  module = importlib.import_module(f'beam_pipelines.{name}')
  parameter = inspect.signature(module.run).parameters.get('save_main_session')
  return bool(parameter.default) if parameter is not None else False


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
@pytest.mark.parametrize('name', NAMES)
def test_job_has_the_pipelines_labelled_steps(dry_run_jobs, name):
  steps = _top_level_steps(dry_run_jobs(name))
  missing = [step for step in CASES[name].steps if step not in steps]
  assert not missing, f'{name}: steps {missing} not in the Dataflow job {steps}'


@pytest.mark.integration
@pytest.mark.parametrize('name', NAMES)
def test_job_stages_the_built_wheel(dry_run_jobs, built_wheel, name):
  from apache_beam.options.pipeline_options import SetupOptions
  job = dry_run_jobs(name)
  assert job.options.view_as(SetupOptions).extra_packages == [str(built_wheel)]
  assert built_wheel.name in _staged_files(job)
  # In the project's SDK container of the build (build/container/Dockerfile: the lock installed).
  assert _container_images(job) == {IMAGE}


def _container_images(job) -> set:
  from apache_beam.portability.api import beam_runner_api_pb2
  return {beam_runner_api_pb2.DockerPayload.FromString(e.payload).container_image
          for e in job.proto_pipeline.components.environments.values()}


@pytest.mark.integration
def test_word_count_runs_on_beams_own_container_with_only_the_wheel(built_wheel):
  """Without the project's container, the word count needs nothing but the wheel's base
  requirements (no TensorFlow/TFDV on its workers); the ML pipelines are refused instead."""
  from apache_beam import Pipeline, version
  from apache_beam.options.pipeline_options import PipelineOptions
  argv = submission.submission_args('wordcount', DATAFLOW_OFFLINE, wheel=str(built_wheel),
                                    build_id=BUILD_ID)
  pipeline = Pipeline(options=PipelineOptions(argv))
  _wordcount(pipeline, {})
  (image,) = _container_images(pipeline.run().job)
  assert image.endswith(f'/beam_python3.11_sdk:{version.__version__}')
  with zipfile.ZipFile(built_wheel) as archive:
    metadata = archive.read(next(n for n in archive.namelist() if n.endswith('/METADATA')))
  base = [line for line in metadata.decode().splitlines()
          if line.startswith('Requires-Dist:') and 'extra ==' not in line]
  assert base and not any('tensorflow' in line or 'scikit-learn' in line for line in base), base
  for name in sorted(submission.ML_EXTRA_PIPELINES):
    with pytest.raises(submission.SubmissionError, match='needs TFDV/scikit-learn'):
      submission.submission_args(name, DATAFLOW_OFFLINE, wheel=str(built_wheel), build_id=BUILD_ID)


@pytest.mark.integration
@pytest.mark.parametrize('name', NAMES)
def test_job_name_and_labels_carry_the_build_id(dry_run_jobs, name):
  job = dry_run_jobs(name)
  assert job.proto.name == submission.job_name(name, BUILD_ID)
  labels = {p.key: p.value for p in job.proto.labels.additionalProperties}
  assert labels == {'build_id': submission.label_value(BUILD_ID), 'pipeline': name}


@pytest.mark.integration
@pytest.mark.parametrize('name', NAMES)
def test_workers_do_not_depend_on_the_submitting_main_session(dry_run_jobs, name):
  """save_main_session is off and nothing of __main__ is pickled: DoFns come from the wheel."""
  from apache_beam.options.pipeline_options import SetupOptions
  assert _run_default_save_main_session(name) is False, f'{name}.run() saves the main session'
  job = dry_run_jobs(name)
  assert job.options.view_as(SetupOptions).save_main_session is False
  assert PICKLED_MAIN_SESSION not in _staged_files(job)


@pytest.mark.integration
def test_setup_file_staging_builds_a_source_package(tmp_path):
  """--setup_file (when asked instead of the wheel): Beam builds an sdist of the tree and stages it."""
  source = _copy_source(tmp_path / 'src')
  # Through the word count's real entry point, run(argv), as `python -m` would call it.
  argv = submission.submission_args(
      'wordcount', ['--input', str(SUPPORT_FILES / 'input.txt'),
                    '--output', f'{OFFLINE_BUCKET}/counts'] + DATAFLOW_OFFLINE,
      setup_file=str(source / 'setup.py'), build_id=BUILD_ID)
  job = submission.run_pipeline('wordcount', argv).job
  assert 'workflow.tar.gz' in _staged_files(job)
  assert job.proto.name == submission.job_name('wordcount', BUILD_ID)


@pytest.mark.integration
def test_deployed_prod_build_is_what_gets_staged(built_wheel, tmp_path):
  """`python -m beam_pipelines.submission --env prod --bucket B`: the wheel named by prod's
  variables.json is fetched, sha256-checked and staged; the job carries the deployed build id."""
  import hashlib
  import json

  from beam_pipelines.store import layout
  prod = layout.Env(str(tmp_path / 'bucket'), layout.PROD)
  deployed_id = '20261127T080000Z-5bea069-0a1b2c'
  wheel = pathlib.Path(prod.artifact(deployed_id, built_wheel.name))
  wheel.parent.mkdir(parents=True)
  shutil.copy2(built_wheel, wheel)
  pathlib.Path(prod.variables).write_text(json.dumps({
      layout.VAR_BUILD_ID: deployed_id, layout.VAR_WHEEL_FILE: str(wheel),
      layout.VAR_SHA256: hashlib.sha256(wheel.read_bytes()).hexdigest(),
      layout.VAR_MANIFEST_FILE: prod.manifest(deployed_id),
      layout.VAR_WORKFLOWS_DIR: prod.workflows(deployed_id)}))
  pipeline, argv, build_id = submission.resolve_cli(
      ['--pipeline', 'wordcount', '--env', 'prod', '--bucket', str(tmp_path / 'bucket'),
       '--input', str(SUPPORT_FILES / 'input.txt'), '--output', f'{OFFLINE_BUCKET}/counts']
      + DATAFLOW_OFFLINE)
  assert (pipeline, build_id) == ('wordcount', deployed_id)
  job = submission.run_pipeline(pipeline, argv).job
  assert job.proto.name == submission.job_name('wordcount', deployed_id)
  assert submission.flag_values(argv, '--extra_package') == [str(wheel)]
  assert wheel.name in _staged_files(job)


# ---------------------------------------------------------------------------------------------
# Local scale-out: the DirectRunner's multi-process mode runs DoFns in separate worker processes,
# so they are pickled and unpickled as on remote workers; the pipeline runs as ``python -m``, so
# its module is ``__main__`` there, as on a submitting machine. The results must equal the 1-worker
# run's (run in-process, in_memory): exact counts and rows, floats to 9 decimals.


def _rounded(value):
  if isinstance(value, float):
    return round(value, 9)
  if isinstance(value, dict):
    return {k: _rounded(v) for k, v in value.items()}
  if isinstance(value, list):
    return [_rounded(v) for v in value]
  return value


def _json(path: pathlib.Path, drop=('output',)):
  import json
  return {k: v for k, v in json.loads(path.read_text()).items() if k not in drop}


def _observe_wordcount(out):
  return _word_counts(out / 'counts')


def _observe_features(out):
  import pyarrow.parquet as pq
  tables = {split: pq.read_table(str(out / split)).to_pandas().sort_values('trip_id')
            .reset_index(drop=True).to_json(orient='records') for split in ('train', 'eval')}
  return _json(out / 'summary.json'), tables


def _observe_validate(out):
  from beam_pipelines import validate
  statistics = {split: [(d.name, d.num_examples) for d in validate.load_statistics(
      str(out / 'statistics' / f'{split}.pb')).datasets] for split in ('train', 'eval')}
  return statistics, _json(out / 'verdict.json', drop=('output', 'statistics'))['status']


def _observe_evaluate(out):
  metrics = _json(out / 'metrics.json')
  return _rounded(metrics['models']), (out / 'BLESSED').exists()


def _observe_predict(out):
  import json
  lines = sorted((out / 'predictions').glob('part-*'))
  predictions = sorted((_rounded(json.loads(line)) for p in lines
                        for line in p.read_text().splitlines()), key=lambda r: r['key'])
  return _json(out / 'summary.json'), predictions


@dataclasses.dataclass(frozen=True)
class ScaleOutCase:
  """How to run a pipeline on ``out`` (its flags) and what of its outputs must not change."""
  pipeline: str
  argv: Callable[[pathlib.Path, Dict[str, pathlib.Path]], List[str]]
  observe: Callable[[pathlib.Path], object]
  needs: Tuple[str, ...] = ()
  slow: bool = False


SCALE_OUT = [
    ScaleOutCase('wordcount', lambda out, fx: [
        '--input', str(SUPPORT_FILES / 'input.txt'), '--output', str(out / 'counts')],
        _observe_wordcount),
    ScaleOutCase('features', lambda out, fx: ['--output', str(out)], _observe_features),
    ScaleOutCase('validate', lambda out, fx: [
        '--features', str(fx['features_run']), '--output', str(out)], _observe_validate,
        needs=('features_run',), slow=True),
    ScaleOutCase('evaluate', lambda out, fx: [
        '--features', str(fx['features_dir']), '--model', str(fx['good_model_dir']),
        '--output', str(out)], _observe_evaluate, needs=('features_dir', 'good_model_dir'),
        slow=True),
    ScaleOutCase('predict', lambda out, fx: [
        '--input', str(fx['sample_csv']), '--model', str(fx['good_model_dir']),
        '--output', str(out)], _observe_predict, needs=('good_model_dir', 'sample_csv'), slow=True),
]
SCALE_CASES = {case.pipeline: case for case in SCALE_OUT}
SCALE_NAMES = [pytest.param(c.pipeline, marks=[pytest.mark.slow] if c.slow else [])
               for c in SCALE_OUT]


@pytest.fixture(scope='module')
def features_run(tmp_path_factory) -> pathlib.Path:
  """A real features output directory (Parquet splits + summary.json) of the bundled sample."""
  from beam_pipelines import features
  out = tmp_path_factory.mktemp('features-run')
  features.run(['--output', str(out)])
  return out


@pytest.fixture(scope='session')
def sample_csv() -> pathlib.Path:
  from beam_pipelines import taxi_data
  return pathlib.Path(taxi_data.sample_path())


def _word_counts(prefix: pathlib.Path) -> Dict[str, int]:
  lines = read_shards(str(prefix))
  counts = dict(line.rsplit(': ', 1) for line in lines)
  assert len(counts) == len(lines), 'a word appears on two output lines'
  return {word: int(count) for word, count in counts.items()}


@pytest.mark.integration
@pytest.mark.parametrize('name', SCALE_NAMES)
def test_two_worker_processes_give_the_one_worker_results(tmp_path, request, name):
  case = SCALE_CASES[name]
  fixtures = {fixture: request.getfixturevalue(fixture) for fixture in case.needs}
  one, two = tmp_path / 'one-worker', tmp_path / 'two-workers'
  module = importlib.import_module(f'beam_pipelines.{name}')
  module.run(case.argv(one, fixtures) + [
      '--direct_num_workers', '1', '--direct_running_mode', 'in_memory'])
  completed = subprocess.run(
      [sys.executable, '-m', f'beam_pipelines.{name}'] + case.argv(two, fixtures) + [
          '--direct_num_workers', '2', '--direct_running_mode', 'multi_processing'],
      capture_output=True, text=True, timeout=600, cwd=tmp_path)
  assert completed.returncode == 0, completed.stderr[-3000:]
  assert case.observe(two) == case.observe(one)
  if name == 'wordcount':  # and both equal the golden reference
    reference = dict(line.rsplit(': ', 1) for line in
                     (SUPPORT_FILES / 'reference.txt').read_text(encoding='utf-8').splitlines())
    assert case.observe(two) == {word: int(count) for word, count in reference.items()}


@pytest.mark.integration
@pytest.mark.parametrize('name', ['wordcount', 'features'])
def test_cli_dry_run_builds_the_job_and_writes_nothing(built_wheel, tmp_path, capsys, name):
  """Through the CLI entry (run() as users call it): the job is built, nothing is read back."""
  import importlib
  module = importlib.import_module(f'beam_pipelines.{name}')
  output = tmp_path / 'out'
  output.mkdir()
  (output / 'keep.txt').write_text('an earlier output a dry run must not remove')
  argv = DATAFLOW_OFFLINE + ['--extra_package', str(built_wheel), '--job_name', f'cli-{name}',
                             '--output', str(output / 'result')]
  assert module.main(argv) == 0
  assert 'cli-' + name in capsys.readouterr().err
  assert sorted(p.name for p in output.iterdir()) == ['keep.txt']


@pytest.mark.integration
def test_ct_check_on_a_dry_run_builds_the_features_job_and_writes_nothing(built_wheel, tmp_path):
  """``ct --check`` with Dataflow's ``--dry_run``: the features job is built, the steps that read
  its outputs are said not to be, exit 0, no traceback, nothing written; a CT run is refused."""
  base = [sys.executable, '-m', 'beam_pipelines.ct']
  dataflow = DATAFLOW_OFFLINE + ['--extra_package', str(built_wheel)]
  check = subprocess.run(base + ['--check', '--output', str(tmp_path / 'out')] + dataflow,
                         cwd=tmp_path, capture_output=True, text=True, timeout=600)
  assert check.returncode == 0, check.stderr[-2000:]
  said = check.stdout + check.stderr
  assert re.search(r'Dataflow job features-run-[0-9t]+z built, not submitted', said), said
  assert 'only a real run builds theirs' in said and 'Traceback' not in said
  assert not (tmp_path / 'out').exists()
  run = subprocess.run(base + ['--bucket', str(tmp_path / 'bucket')] + dataflow, cwd=tmp_path,
                       capture_output=True, text=True, timeout=600)
  assert run.returncode == 2 and 'give it to `ct --check`' in run.stderr
  assert not (tmp_path / 'bucket').exists()
