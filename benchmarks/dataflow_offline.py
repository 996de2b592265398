"""Figures for the Dataflow/Composer side: offline job builds, local scale-out, DAG parsing.

    python benchmarks/dataflow_offline.py [--lines 200000] [--skip_scale_out] [--skip_dags]

1. Builds the word count's and feature extraction's Dataflow jobs offline (``--dry_run True``)
   from a freshly built wheel and times each (job translation + staging manifest, no network).
2. Runs the word count on a generated text of ``--lines`` lines in one process (in_memory) and
   with 2 multi-process workers, checks the counts are identical, prints both wall times.
3. Loads build/dags in the Airflow environment's real DagBag (scripts/check_dags.py) and prints the
   load and per-file parse times.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import random
import shutil
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
OFFLINE = ['--runner', 'DataflowRunner', '--project', 'beam-pipelines-ci', '--region', 'us-central1',
           '--temp_location', 'gs://beam-pipelines-offline-check/tmp', '--dry_run', 'True',
           '--no_auth']


def build_wheel(work: pathlib.Path) -> pathlib.Path:
  source = work / 'src'
  source.mkdir()
  for name in ('setup.py', 'pyproject.toml', 'README.md'):
    shutil.copy2(REPO / name, source / name)
  shutil.copytree(REPO / 'beam_pipelines', source / 'beam_pipelines',
                  ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
  subprocess.run([sys.executable, '-m', 'build', '--no-isolation', '--wheel', '--outdir',
                  str(work / 'dist'), str(source)], check=True, capture_output=True)
  return next((work / 'dist').glob('*.whl'))


def dry_runs(wheel: pathlib.Path) -> None:
  import apache_beam as beam
  from apache_beam.options.pipeline_options import PipelineOptions

  from beam_pipelines import features, submission, taxi_data, wordcount
  from beam_pipelines.ml import spec as spec_lib
  constructs = {
      'wordcount': lambda p: wordcount.build_pipeline(
          p, str(REPO / 'build' / 'support-files' / 'input.txt'), 'gs://beam-pipelines-offline-check/c'),
      'features': lambda p: features.build_pipeline(
          p, taxi_data.sample_path(), spec_lib.load(spec_lib.default_spec_path()),
          'gs://beam-pipelines-offline-check/f'),
  }
  for name, construct in constructs.items():
    started = time.monotonic()
    argv = submission.submission_args(name, OFFLINE, wheel=str(wheel), build_id='bench')
    pipeline = beam.Pipeline(options=PipelineOptions(argv))
    construct(pipeline)
    job = pipeline.run().job
    steps = len(job.proto_pipeline.components.transforms)
    print(f'dry run {name:10s}: Dataflow job {job.proto.name} built offline in '
          f'{time.monotonic() - started:5.2f} s ({steps} transforms)')


def scale_out(lines: int, work: pathlib.Path) -> None:
  rng = random.Random(7)
  vocabulary = [''.join(rng.choice('abcdefghijklmnopqrstuvwxyzäöü') for _ in range(rng.randint(2, 9)))
                for _ in range(5000)]
  text = work / 'input.txt'
  with open(text, 'w', encoding='utf-8') as handle:
    for _ in range(lines):
      handle.write(' '.join(rng.choice(vocabulary) for _ in range(12)) + '.\n')
  results = {}
  for label, extra in (('1 process (in_memory)', ['--direct_running_mode', 'in_memory']),
                       ('2 workers (multi_processing)', ['--direct_num_workers', '2',
                                                         '--direct_running_mode', 'multi_processing'])):
    out = work / label.split()[0]
    started = time.monotonic()
    subprocess.run([sys.executable, '-m', 'beam_pipelines.wordcount', '--input', str(text),
                    '--output', str(out / 'counts')] + extra, check=True, capture_output=True)
    seconds = time.monotonic() - started
    counts = sorted(line for shard in sorted(out.glob('counts-*'))
                    for line in shard.read_text(encoding='utf-8').splitlines())
    results[label] = counts
    print(f'word count, {lines} lines, {label:28s}: {seconds:6.1f} s')
  first, second = results.values()
  print(f'word count: identical counts across modes: {first == second} ({len(first)} words)')


def dags() -> None:
  python = REPO / '.venv-airflow' / 'bin' / 'python'
  if not python.exists():
    print('DagBag: .venv-airflow missing (scripts/install-airflow.sh); skipped')
    return
  started = time.monotonic()
  done = subprocess.run([str(python), str(REPO / 'scripts' / 'check_dags.py'),
                         str(REPO / 'build' / 'dags')], capture_output=True, text=True)
  report = json.loads(done.stdout)
  print(f'DagBag (Airflow {report["airflow_version"]}): {len(report["dags"])} DAGs, '
        f'{len(report["import_errors"])} import errors; bag loaded in {report["load_seconds"]} s, '
        f'checker process {time.monotonic() - started:.1f} s')
  for name, seconds in sorted(report['file_parse_seconds'].items()):
    print(f'  {name:32s} parsed in {seconds:.3f} s')


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--lines', type=int, default=200000)
  parser.add_argument('--skip_scale_out', action='store_true')
  parser.add_argument('--skip_dags', action='store_true')
  args = parser.parse_args()
  with tempfile.TemporaryDirectory() as tmp:
    work = pathlib.Path(tmp)
    dry_runs(build_wheel(work))
    if not args.skip_scale_out:
      scale_out(args.lines, work)
  if not args.skip_dags:
    dags()


if __name__ == '__main__':
  main()
