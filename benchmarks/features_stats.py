"""Benchmark: feature extraction + TFDV statistics on synthetic taxi rows vs TFDV's own CSV path.

    python benchmarks/features_stats.py [--rows 1000000] [--shards 4] [--workdir DIR]

Same CSV files, same run, each measurement in its own process (imports included, peak RSS clean):

1. ours: ``beam_pipelines.features`` (CSV -> typed, split Parquet + dead letter) then
   ``beam_pipelines.validate`` (GenerateStatistics per split, schema, anomalies, report);
2. TFDV: ``tfdv.generate_statistics_from_csv`` over the same files, on the same columns
   (features + label: the key and timestamp are not statistics inputs in our pipeline either);
3. feature extraction on the DirectRunner in-memory (1 worker) vs multi_processing, 2 workers:
   counts must be identical; prints the speed-up.

Targets: ours / TFDV <= 1.5, peak RSS <= 2 GiB. Peak RSS is each process's own maximum
(``getrusage``), plus the largest worker process for the multi-processing run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import subprocess
import sys
import time

GIB = 1024 ** 3
DATE = datetime.date(2026, 11, 1)


def _peak_rss() -> dict:
  """Peak RSS in bytes of this process (``VmHWM``: this interpreter's own; ``ru_maxrss`` would
  also count the resident set of the process that started it, which Linux carries across
  exec) and of its largest finished child (``ru_maxrss``: with that carried part)."""
  from beam_pipelines.store.memory import peak_rss_bytes
  return {'self': peak_rss_bytes() or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
          'children': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024}


def child(kind: str, workdir: str, csv_pattern: str) -> dict:
  """One measurement, run inside its own process; returns counts and seconds."""
  start = time.perf_counter()
  result: dict = {}
  if kind == 'ours':
    from beam_pipelines import features, validate
    summary = features.run(['--input', csv_pattern, '--output', f'{workdir}/ours/features'])
    extracted = time.perf_counter()
    verdict = validate.run(['--features', f'{workdir}/ours/features',
                            '--output', f'{workdir}/ours/validation'])
    result = {'features_seconds': extracted - start, 'rows': summary.rows_written,
              'dead': summary.rows_dead_lettered, 'verdict': verdict.status,
              'validate_seconds': time.perf_counter() - extracted}
  elif kind == 'tfdv':
    from beam_pipelines.runtime import quiet_startup_noise
    quiet_startup_noise()
    import tensorflow_data_validation as tfdv

    from beam_pipelines.ml import spec as spec_lib
    spec = spec_lib.load(spec_lib.default_spec_path())
    statistics = tfdv.generate_statistics_from_csv(
        csv_pattern, output_path=f'{workdir}/tfdv_stats.tfrecord',
        stats_options=tfdv.StatsOptions(feature_allowlist=list(spec.features) + [spec.label]))
    result = {'rows': int(statistics.datasets[0].num_examples)}
  elif kind == 'validate':  # validation alone of a features_1 output (peak RSS)
    from beam_pipelines import validate
    verdict = validate.run(['--features', f'{workdir}/features_1',
                            '--output', f'{workdir}/validation'])
    result = {'verdict': verdict.status}
  elif kind == 'evaluate':  # two models on a features_1 output's eval split; csv_pattern: models
    from beam_pipelines import evaluate
    done = evaluate.run(['--features', f'{workdir}/features_1', '--model',
                         f'{csv_pattern}/gbt', '--baseline_model', f'{csv_pattern}/logistic',
                         '--output', f'{workdir}/evaluation'])
    result = {'status': done.status, 'rows': done.metrics.get('example_count')}
  elif kind == 'pyarrow':  # the reference: Arrow's own read + Parquet write, one thread
    import glob

    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq
    os.makedirs(f'{workdir}/pyarrow', exist_ok=True)
    start = time.perf_counter()  # imports excluded: the reference is the work alone
    rows = 0
    for index, path in enumerate(sorted(glob.glob(csv_pattern))):
      table = pa_csv.read_csv(path, read_options=pa_csv.ReadOptions(use_threads=False))
      pq.write_table(table, f'{workdir}/pyarrow/{index}.parquet')
      rows += table.num_rows
    result = {'rows': rows}
  else:  # features_1 / features_2 / features_row: extraction alone on 1 or 2 workers
    from beam_pipelines import features
    args = ['--input', csv_pattern, '--output', f'{workdir}/{kind}']
    if kind == 'features_row':
      args += ['--row_path']
    if kind == 'features_2':
      args += ['--direct_running_mode=multi_processing', '--direct_num_workers=2']
    summary = features.run(args)
    result = {'rows': summary.rows_written, 'dead': summary.rows_dead_lettered}
  result['seconds'] = time.perf_counter() - start
  result['peak_rss'] = _peak_rss()
  result['load'] = os.getloadavg()[0]
  return result


def measure(kind: str, workdir: str, csv_pattern: str) -> dict:
  """Runs ``child(kind)`` in a fresh interpreter; returns its result plus the wall time."""
  start = time.perf_counter()
  done = subprocess.run([sys.executable, __file__, '--_child', kind, '--workdir', workdir,
                         '--_csv', csv_pattern], capture_output=True, text=True)
  if done.returncode != 0:
    raise SystemExit(f'{kind} failed:\n{done.stderr[-4000:]}')
  result = json.loads(done.stdout.strip().splitlines()[-1])
  result['wall_seconds'] = time.perf_counter() - start
  return result


def _gib(value: float) -> str:
  return f'{value / GIB:.2f} GiB'


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--rows', type=int, default=1_000_000)
  parser.add_argument('--shards', type=int, default=4, help='CSV files (parallelism unit).')
  parser.add_argument('--workdir', default='outputs/benchmarks/features_stats')
  parser.add_argument('--skip_workers', action='store_true', help='Skip the 1 vs 2 workers run.')
  parser.add_argument('--_child', help=argparse.SUPPRESS)
  parser.add_argument('--_csv', help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  workdir = os.path.abspath(args.workdir)
  if args._child:
    print(json.dumps(child(args._child, workdir, args._csv)))
    return 0

  from beam_pipelines import taxi_data
  started = time.perf_counter()
  taxi_data.write_span(workdir, DATE, args.rows, seed=0, shards=args.shards)
  csv_pattern = os.path.join(taxi_data.span_dir(workdir, DATE), '*.csv')
  size = sum(os.path.getsize(os.path.join(taxi_data.span_dir(workdir, DATE), f))
             for f in os.listdir(taxi_data.span_dir(workdir, DATE)))
  print(f'data: {args.rows} rows in {args.shards} CSV file(s), {size / 1e6:.0f} MB, '
        f'generated in {time.perf_counter() - started:.1f} s ({csv_pattern})', flush=True)

  ours = measure('ours', workdir, csv_pattern)
  print(f"ours: {ours['seconds']:.1f} s (features {ours['features_seconds']:.1f} s + validation "
        f"{ours['validate_seconds']:.1f} s), rows {ours['rows']}, dead {ours['dead']}, "
        f"verdict {ours['verdict']}, peak RSS {_gib(ours['peak_rss']['self'])}", flush=True)
  tfdv = measure('tfdv', workdir, csv_pattern)
  print(f"tfdv.generate_statistics_from_csv: {tfdv['seconds']:.1f} s, rows {tfdv['rows']}, "
        f"peak RSS {_gib(tfdv['peak_rss']['self'])}", flush=True)
  ratio = ours['seconds'] / tfdv['seconds']
  peak = max(ours['peak_rss']['self'], ours['peak_rss']['children'])
  print(f'ratio ours/TFDV: {ratio:.2f} (target <= 1.5: {"met" if ratio <= 1.5 else "MISSED"}); '
        f'peak RSS ours {_gib(peak)} (target <= 2 GiB: {"met" if peak <= 2 * GIB else "MISSED"})')
  same_rows = sum(ours['rows'].values()) == tfdv['rows']
  print(f"rows: ours {sum(ours['rows'].values())} vs TFDV {tfdv['rows']}: "
        f"{'same' if same_rows else 'DIFFERENT'}")

  if not args.skip_workers:
    one = measure('features_1', workdir, csv_pattern)
    two = measure('features_2', workdir, csv_pattern)
    same = (one['rows'], one['dead']) == (two['rows'], two['dead'])
    print(f"features, 1 worker (in_memory): {one['seconds']:.1f} s; 2 workers (multi_processing): "
          f"{two['seconds']:.1f} s; speed-up {one['seconds'] / two['seconds']:.2f}x; counts "
          f"{'identical' if same else 'DIFFERENT'} ({two['rows']}, dead {two['dead']}); "
          f"peak RSS {_gib(one['peak_rss']['self'])} vs {_gib(two['peak_rss']['self'])} + "
          f"largest worker {_gib(two['peak_rss']['children'])}")
    if not same:
      return 1
  return 0 if same_rows else 1


if __name__ == '__main__':
  sys.exit(main())
