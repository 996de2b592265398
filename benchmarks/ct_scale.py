"""Benchmark: a large span through continuous training on this machine, and the same steps'
Dataflow jobs built offline with worker settings for a span 100x larger.

    python benchmarks/ct_scale.py [--rows 10000000] [--first_rows 200000] [--workdir DIR]
                                  [--skip dataflow]

1. A fresh local bucket; a first span of ``--first_rows`` synthetic trips goes through
   ``invoke ct --source`` (production v1), then a span of ``--rows`` (the new span: every step,
   forward evaluation of production included). Each ``invoke ct`` is its own process. Prints, from
   the run's lineage, each step's wall time and peak RSS (``peak_rss_bytes``: the process's
   high-water mark reset at the step's start, see ``beam_pipelines/store/memory.py``), the run's
   wall time and its whole-process peak RSS (the largest of the steps' and of the ``invoke``
   process's own ``getrusage`` after the last step), with the load average.
2. Builds the features, validation and evaluation Dataflow jobs offline (``--dry_run True``, no
   network) with the worker settings docs/performance.md gives for a span 100x larger, and prints
   the settings as each job carries them (worker pool, autoscaling), so the figures in the docs are
   those a submitted job would get.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Dict, List

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO)]
GIB = 1024 ** 3
FIRST, NEW = datetime.date(2026, 11, 1), datetime.date(2026, 11, 2)
OFFLINE = ['--runner', 'DataflowRunner', '--project', 'beam-pipelines-ci', '--region', 'us-central1',
           '--temp_location', 'gs://beam-pipelines-offline-check/tmp', '--dry_run', 'True',
           '--no_auth']
CONTAINER_REPO = 'us-central1-docker.pkg.dev/beam-pipelines-ci/beam-pipelines/sdk'  # never pulled
# A span 100x the benchmark's (1e9 rows, ~86 GB of CSV): docs/performance.md says why.
WORKERS_100X: Dict[str, List[str]] = {
    'features': ['--machine_type', 'n2-standard-4', '--num_workers', '8', '--max_num_workers', '64',
                 '--autoscaling_algorithm', 'THROUGHPUT_BASED', '--disk_size_gb', '50'],
    'validate': ['--machine_type', 'n2-standard-4', '--num_workers', '8', '--max_num_workers', '64',
                 '--autoscaling_algorithm', 'THROUGHPUT_BASED', '--disk_size_gb', '50'],
    'evaluate': ['--machine_type', 'n2-standard-4', '--num_workers', '4', '--max_num_workers', '32',
                 '--autoscaling_algorithm', 'THROUGHPUT_BASED', '--disk_size_gb', '50'],
}


def generated_span(workdir: pathlib.Path, date: datetime.date, rows: int) -> pathlib.Path:
  """The span's directory of CSV files, generated once per (rows, date) and kept for re-runs."""
  from beam_pipelines import taxi_data
  root = workdir / 'data' / f'{rows}'
  directory = pathlib.Path(taxi_data.span_dir(str(root), date))
  if not directory.is_dir():
    started = time.perf_counter()
    taxi_data.write_span(str(root), date, rows, seed=date.day)
    print(f'generated {rows:,} rows in {time.perf_counter() - started:.0f} s: {directory}',
          flush=True)
  return directory


def land(span: pathlib.Path, landing: pathlib.Path) -> pathlib.Path:
  """Lands a span (hard links: the large file is not copied)."""
  target = landing / span.name
  target.mkdir(parents=True)
  for path in span.iterdir():
    try:
      os.link(path, target / path.name)
    except OSError:
      shutil.copy2(path, target / path.name)
  return target


# ``invoke`` run in a process that then prints its own peak RSS since the last step's reset
# (CT runs inside invoke's process): ``VmHWM``, not ``ru_maxrss``, which also counts this
# benchmark's resident set at the fork (Linux carries it across exec).
_WITH_PEAK = ('import runpy, sys\n'
              'from beam_pipelines.store.memory import peak_rss_bytes\n'
              'sys.argv = ["invoke", *sys.argv[1:]]\n'
              'try:\n'
              '  runpy.run_module("invoke", run_name="__main__")\n'
              'finally:\n'
              '  print("peak_rss_kib", (peak_rss_bytes() or 0) // 1024, file=sys.stderr)\n')


def ct(bucket: pathlib.Path, span: pathlib.Path) -> dict:
  """``invoke ct --source`` on one span in its own process: wall time, peak RSS, its lineage."""
  started = time.perf_counter()
  done = subprocess.run(
      [sys.executable, '-c', _WITH_PEAK, 'ct', '--source', '--bucket', str(bucket), '--span',
       str(span), '--json'], cwd=REPO, capture_output=True, text=True,
      env=dict(os.environ, PYTHONPATH=str(REPO)))
  seconds = time.perf_counter() - started
  if done.returncode not in (0, 3):
    raise SystemExit(f'invoke ct exited {done.returncode}:\n{done.stderr[-4000:]}')
  peak = int(done.stderr.rsplit('peak_rss_kib', 1)[1].split()[0]) * 1024
  result = json.loads(done.stdout.strip().splitlines()[-1])
  (outcome,) = result['outcomes']
  lineage = json.loads(pathlib.Path(outcome['lineage']).read_text())
  # Each step resets the kernel's high-water mark: the run's peak is the largest of the steps'
  # and of what followed the last reset.
  steps = [s.get('peak_rss_bytes') or 0 for s in lineage['steps'].values()]
  return {'seconds': seconds, 'peak_rss': max([peak, *steps]), 'outcome': outcome,
          'lineage': lineage, 'load': os.getloadavg()[0]}


def _seconds(step: dict) -> float:
  parse = datetime.datetime.fromisoformat
  return (parse(step['finished_at'].replace('Z', '+00:00'))
          - parse(step['started_at'].replace('Z', '+00:00'))).total_seconds()


def print_run(label: str, run: dict) -> None:
  outcome = run['outcome']
  peak = f'{run["peak_rss"] / GIB:.2f} GiB'
  print(f'{label}: {run["seconds"]:.1f} s, peak RSS {peak} (load {run["load"]:.1f}); outcome '
        f'{outcome["outcome"]}, model v{outcome.get("version")}', flush=True)
  steps = sorted(run['lineage']['steps'].items(), key=lambda item: item[1].get('started_at', ''))
  for name, step in steps:
    if 'started_at' not in step:
      print(f'  {name:20s} {step["status"]}')
      continue
    rss = step.get('peak_rss_bytes')
    print(f'  {name:20s} {step["status"]:7s} {_seconds(step):7.1f} s  peak RSS '
          f'{rss / GIB if rss else float("nan"):.2f} GiB  {step.get("summary", "")[:90]}')


def dataflow_jobs(workdir: pathlib.Path, features_dir: str, model_dir: str) -> None:
  """Each step's job built offline with the 100x worker settings; prints what the job carries."""
  import apache_beam as beam
  from apache_beam.options.pipeline_options import PipelineOptions
  from apache_beam.runners.dataflow.internal import apiclient

  from beam_pipelines import evaluate, features, submission, validate
  from beam_pipelines.ml import blessing
  from beam_pipelines.ml import spec as spec_lib
  source = workdir / 'wheel' / 'src'
  shutil.rmtree(workdir / 'wheel', ignore_errors=True)
  source.mkdir(parents=True)
  for name in ('setup.py', 'pyproject.toml', 'README.md'):
    shutil.copy2(REPO / name, source / name)
  shutil.copytree(REPO / 'beam_pipelines', source / 'beam_pipelines',
                  ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
  subprocess.run([sys.executable, '-m', 'build', '--no-isolation', '--wheel', '--outdir',
                  str(workdir / 'wheel' / 'dist'), str(source)], check=True, capture_output=True)
  (wheel,) = (workdir / 'wheel' / 'dist').glob('*.whl')
  spec = spec_lib.load(spec_lib.default_spec_path())
  models = {evaluate.CANDIDATE: evaluate.describe_model(model_dir)}
  out = 'gs://beam-pipelines-offline-check/ct-scale'
  constructs = {
      'features': lambda p: features.build_pipeline(p, f'{out}/landing/*.csv', spec,
                                                    f'{out}/features'),
      'validate': lambda p: validate.build_pipeline(p, features_dir, spec, f'{out}/validation'),
      'evaluate': lambda p: evaluate.build_pipeline(
          p, features_dir, models, models[evaluate.CANDIDATE]['label'], None,
          blessing.BlessingRule.load(), f'{out}/evaluation'),
  }
  print('Dataflow jobs built offline with the settings for a span 100x larger:', flush=True)
  for name, construct in constructs.items():
    argv = submission.submission_args(name, OFFLINE + WORKERS_100X[name], wheel=str(wheel),
                                      build_id='ct-scale', image=f'{CONTAINER_REPO}:ct-scale')
    pipeline = beam.Pipeline(options=PipelineOptions(argv))
    construct(pipeline)
    job = pipeline.run().job
    # A dry run stops before the job's environment is made; made here as a submission makes it
    # (Beam's own ``apiclient.Environment``, from the job's options), nothing staged.
    environment = apiclient.Environment(
        packages=[], options=job.options, environment_version=apiclient._FNAPI_ENVIRONMENT_MAJOR_VERSION,
        proto_pipeline_staged_url='(dry run: not staged)', proto_pipeline=job.proto_pipeline)
    pool = environment.proto.workerPools[0]
    print(f'  {name:9s} job {job.proto.name}: {pool.machineType}, {pool.numWorkers} workers '
          f'scaling to {pool.autoscalingSettings.maxNumWorkers} '
          f'({pool.autoscalingSettings.algorithm}: throughput-based), disk {pool.diskSizeGb} GB, '
          f'image {environment.proto.workerPools[0].workerHarnessContainerImage or "-"}',
          flush=True)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--rows', type=int, default=10_000_000)
  parser.add_argument('--first_rows', type=int, default=200_000)
  parser.add_argument('--workdir', default='outputs/benchmarks/ct_scale')
  parser.add_argument('--skip', default='', help='Comma-separated: ct, dataflow.')
  args = parser.parse_args(argv)
  skip = set(filter(None, args.skip.split(',')))
  workdir = pathlib.Path(args.workdir).resolve()
  print(f'{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} '
        f'cores, load average {os.getloadavg()[0]:.1f}', flush=True)
  first, new = generated_span(workdir, FIRST, args.first_rows), generated_span(workdir, NEW, args.rows)
  with tempfile.TemporaryDirectory(prefix='ct-scale-', dir=workdir) as tmp:
    bucket = pathlib.Path(tmp) / 'bucket'
    landing = bucket / 'prod' / 'inputs' / 'ct' / 'taxi'
    if 'ct' not in skip:
      print_run(f'ct, first span ({args.first_rows:,} rows)', ct(bucket, land(first, landing)))
      large = ct(bucket, land(new, landing))
      print_run(f'ct, new span ({args.rows:,} rows)', large)
      steps = large['lineage']['steps']
      features_dir, model_dir = steps['features']['outputs'], steps['training']['outputs']
    if 'dataflow' not in skip:
      if 'ct' in skip:
        raise SystemExit('--skip ct: the Dataflow jobs are built on the CT run\'s outputs')
      dataflow_jobs(pathlib.Path(tmp), features_dir, model_dir)
  return 0


if __name__ == '__main__':
  sys.exit(main())
