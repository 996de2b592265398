"""Throughput of training, evaluation (RunInference + metric combiners) and batch inference.

    python benchmarks/evaluate_scale.py [--rows 200000] [--skip_multi]

Writes a seeded synthetic taxi feature set (train = rows/4, eval = rows) and a CSV of `rows` new
trips, trains a logistic model, then times evaluate (candidate + baseline, sliced) on the
in-memory DirectRunner and with 2 multi-process workers (metrics must be identical), and predict
on the CSV. Prints seconds, rows/s and peak RSS of this process tree.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import resource
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / 'tests'))


def peak_rss_mib() -> float:
  own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
  return max(own, children) / 1024


def timed(label, rows, fn):
  started = time.monotonic()
  result = fn()
  seconds = time.monotonic() - started
  print(f'{label:<42} {seconds:7.1f} s  {rows / seconds:9,.0f} rows/s  peak RSS {peak_rss_mib():,.0f} MiB',
        flush=True)
  return result


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--rows', type=int, default=200_000)
  parser.add_argument('--skip_multi', action='store_true', help='Skip the 2-worker run.')
  args = parser.parse_args()

  from beam_pipelines import evaluate, predict, train

  import mldata
  with tempfile.TemporaryDirectory() as tmp:
    root = pathlib.Path(tmp)
    mldata.write_features(root / 'features', train_rows=args.rows // 4, eval_rows=args.rows)
    mldata.taxi_frame(args.rows, seed=99).to_csv(root / 'new.csv', index=False)
    features = str(root / 'features')
    timed(f'train logistic ({args.rows // 4:,} rows)', args.rows // 4,
          lambda: train.run(['--features', features, '--output', str(root / 'model')]))
    train.run(['--features', features, '--output', str(root / 'gbt'), '--classifier', 'gbt',
               '--max_iter', '50'])
    common = ['--features', features, '--model', str(root / 'gbt'),
              '--baseline_model', str(root / 'model')]
    timed(f'evaluate 2 models, in_memory ({args.rows:,} rows)', args.rows,
          lambda: evaluate.run(common + ['--output', str(root / 'e1')]))
    if not args.skip_multi:
      timed(f'evaluate 2 models, 2 processes ({args.rows:,} rows)', args.rows,
            lambda: evaluate.run(common + ['--output', str(root / 'e2'), '--direct_num_workers=2',
                                           '--direct_running_mode=multi_processing']))
      same = (json.loads((root / 'e1' / 'metrics.json').read_text())
              == json.loads((root / 'e2' / 'metrics.json').read_text()))
      print(f'metrics identical in_memory vs 2 processes: {same}')
    timed(f'predict, in_memory ({args.rows:,} CSV rows)', args.rows,
          lambda: predict.run(['--input', str(root / 'new.csv'), '--model', str(root / 'model'),
                               '--output', str(root / 'p')]))


if __name__ == '__main__':
  main()
