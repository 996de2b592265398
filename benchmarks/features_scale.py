"""Benchmark: feature extraction's speed against Arrow's own, memory, 2 processes vs 1, and a
large span through continuous training.

    python benchmarks/features_scale.py [--rows 1000000,5000000,10000000] [--repeat 3]
        [--workers_rows 5000000] [--ct_rows 10000000] [--workdir DIR] [--skip speed,memory,workers,ct]

For each row count, one synthetic span written as 1 file (and as 8 files for the 2-process
figures); each measurement in its own process (``features_stats.measure``), with the machine's
1-minute load average beside it:

1. features (Arrow path, 1 process) vs ``pyarrow.csv.read_csv`` + ``pyarrow.parquet.write_table``
   of the same file on one thread (target: <= 3x beyond start-up; start-up is the same pipeline
   on 4,000 rows);
2. peak RSS of features, of validation (TFDV statistics, schema, anomalies, leakage) and of
   evaluation (2 models, paired comparison) of that span, each its own process (target:
   <= 1.5 GiB, independent of the rows);
3. for the ``--workers_rows`` counts, 2 processes (multi_processing) vs 1, in 1 file and in 8
   files, ``--repeat`` times each (target: >= 1.6x in every run, counts identical);
4. ``benchmarks/ct_scale.py`` with ``--ct_rows``: that span through ``invoke ct``, each step's time
   and peak RSS.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import features_stats  # noqa: E402

GIB = features_stats.GIB


def span(workdir: str, rows: int, shards: int) -> str:
  from beam_pipelines import taxi_data
  root = os.path.join(workdir, f'{rows}x{shards}')
  directory = taxi_data.span_dir(root, features_stats.DATE)
  if not os.path.isdir(directory):
    taxi_data.write_span(root, features_stats.DATE, rows, seed=0, shards=shards)
  return os.path.join(directory, '*.csv')


def line(text: str) -> None:
  print(text, flush=True)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--rows', default='1000000,5000000,10000000')
  parser.add_argument('--repeat', type=int, default=3)
  parser.add_argument('--workers_rows', default='5000000',
                      help='Row counts of the 2-process figures (comma-separated).')
  parser.add_argument('--ct_rows', type=int, default=10_000_000)
  parser.add_argument('--workdir', default='outputs/benchmarks/features_scale')
  parser.add_argument('--skip', default='', help='Comma-separated: speed, memory, workers, ct.')
  args = parser.parse_args(argv)
  skip = set(filter(None, args.skip.split(',')))
  workdir = os.path.abspath(args.workdir)
  ok = True
  small = span(workdir, 4_000, 1)
  fixed = min(features_stats.measure('features_1', workdir + '/small', small)['seconds']
              for _ in range(2))
  line(f'start-up (features on 4,000 rows, 1 process): {fixed:.1f} s')
  models = train_models(workdir)
  workers_rows = {int(r) for r in args.workers_rows.split(',') if r}
  for rows in (int(r) for r in args.rows.split(',')):
    one_file = span(workdir, rows, 1)
    if 'speed' not in skip or 'memory' not in skip:
      ours = features_stats.measure('features_1', workdir + f'/{rows}', one_file)
      reference = features_stats.measure('pyarrow', workdir + f'/{rows}', one_file)
      ratio = (ours['seconds'] - fixed) / reference['seconds']
      line(f'{rows:,} rows, 1 file: features {ours["seconds"]:.1f} s (load {ours["load"]:.1f}), '
           f'beyond start-up {ours["seconds"] - fixed:.1f} s; pyarrow read_csv + write_table, '
           f'1 thread: {reference["seconds"]:.2f} s (load {reference["load"]:.1f}); ratio '
           f'{ratio:.1f}x (target <= 3x: {"met" if ratio <= 3 else "MISSED"})')
      peaks = {'features': ours['peak_rss']['self']}
      if 'memory' not in skip:
        for kind in ('validate', 'evaluate'):
          peaks[kind] = features_stats.measure(kind, workdir + f'/{rows}', models)['peak_rss']['self']
      for kind, peak in peaks.items():
        line(f'{rows:,} rows: peak RSS of {kind}, 1 process: {peak / GIB:.2f} GiB '
             f'(target <= 1.5 GiB: {"met" if peak <= 1.5 * GIB else "MISSED"})')
        ok &= peak <= 1.5 * GIB
    if 'workers' in skip or rows not in workers_rows:
      continue
    for shards, pattern in ((1, one_file), (8, span(workdir, rows, 8))):
      speedups = []
      for run in range(args.repeat):
        one = features_stats.measure('features_1', workdir + f'/{rows}', pattern)
        two = features_stats.measure('features_2', workdir + f'/{rows}', pattern)
        same = (one['rows'], one['dead']) == (two['rows'], two['dead'])
        speedups.append(one['seconds'] / two['seconds'])
        line(f'{rows:,} rows in {shards} file(s), run {run + 1}: 1 process {one["seconds"]:.1f} s '
             f'(load {one["load"]:.1f}), 2 processes {two["seconds"]:.1f} s (load '
             f'{two["load"]:.1f}): {speedups[-1]:.2f}x, counts '
             f'{"identical" if same else "DIFFERENT"}; peak RSS 2 processes '
             f'{two["peak_rss"]["self"] / GIB:.2f} GiB + largest worker '
             f'{two["peak_rss"]["children"] / GIB:.2f} GiB')
        ok &= same
      line(f'{rows:,} rows in {shards} file(s): 2 processes vs 1: '
           f'{", ".join(f"{s:.2f}x" for s in speedups)} (target >= 1.6x in every run: '
           f'{"met" if min(speedups) >= 1.6 else "MISSED"})')
  if 'ct' not in skip:
    import ct_scale
    ct_scale.main(['--rows', str(args.ct_rows), '--workdir', os.path.join(workdir, 'ct')])
  line(f'load average at the end: {os.getloadavg()[0]:.1f}')
  return 0 if ok else 1


def train_models(workdir: str) -> str:
  """A logistic and a gbt model (the evaluation's baseline and candidate), trained on the
  start-up span's features; returns their parent directory."""
  from beam_pipelines import train
  models = os.path.join(workdir, 'models')
  features = os.path.join(workdir, 'small', 'features_1')
  if not os.path.isdir(os.path.join(models, 'gbt')):
    train.run(['--features', features, '--output', os.path.join(models, 'logistic')])
    train.run(['--features', features, '--output', os.path.join(models, 'gbt'),
               '--classifier', 'gbt', '--max_iter', '50'])
  return models


if __name__ == '__main__':
  sys.exit(main())
