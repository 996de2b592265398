"""Wall time of the commands a person (or a script) runs to look: `ct --help`, `invoke status`,
`invoke model-list`, `invoke lineage`, each a fresh process, on a local bucket.

    python benchmarks/cli_latency.py [--runs 3]

The bucket is temporary and prepared without training: two registered versions of the taxi
pipeline (small stand-in models saved by `ml.model_io`, pushed and moved by the real registry),
each with its run's lineage record, so every read path is the real one. Prints, per command, the
median and the min-max of the runs, and the load average before and after (`os.getloadavg`).
Targets (a quiet 2-core machine): `python -m beam_pipelines.ct --help` < 1 s, `invoke status`
< 1.5 s.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Sequence

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / 'tests')]

import ctdata  # noqa: E402 - the tests' bucket of two registered versions, on the path above

TARGETS = {'ct --help': 1.0, 'invoke status': 1.5}
COMMANDS = {
    'ct --help': [sys.executable, '-m', 'beam_pipelines.ct', '--help'],
    'invoke status': [sys.executable, '-m', 'invoke', 'status'],
    'invoke status --json': [sys.executable, '-m', 'invoke', 'status', '--json'],
    'invoke model-list': [sys.executable, '-m', 'invoke', 'model-list'],
    'invoke model-list --json': [sys.executable, '-m', 'invoke', 'model-list', '--json'],
    'invoke lineage': [sys.executable, '-m', 'invoke', 'lineage'],
}


def time_command(command: Sequence[str], bucket: pathlib.Path, runs: int) -> List[float]:
  env = dict(os.environ, BEAM_PIPELINES_BUCKET=str(bucket), PYTHONPATH=str(REPO))
  seconds = []
  for _ in range(runs):
    start = time.perf_counter()
    done = subprocess.run(list(command), cwd=REPO, env=env, capture_output=True, text=True)
    seconds.append(time.perf_counter() - start)
    if done.returncode != 0:
      raise SystemExit(f'{" ".join(command)} failed (exit {done.returncode}):\n{done.stderr}')
  return seconds


def main(argv: Sequence[str] = ()) -> Dict[str, List[float]]:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--runs', type=int, default=3, help='runs of each command (default 3)')
  args = parser.parse_args(argv)
  load_before = os.getloadavg()
  results = {}
  with tempfile.TemporaryDirectory(prefix='cli-latency-') as tmp:
    bucket = pathlib.Path(tmp) / 'bucket'
    ctdata.build_bucket(bucket)
    for name, command in COMMANDS.items():
      results[name] = time_command(command, bucket, args.runs)
  load_after = os.getloadavg()
  print(f'{time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}, {os.cpu_count()} cores, '
        f'{args.runs} runs each; load average (1, 5, 15 min) before '
        f'{", ".join(f"{x:.2f}" for x in load_before)}, after '
        f'{", ".join(f"{x:.2f}" for x in load_after)}')
  print(f'{"command":28s} {"median":>8s} {"min-max":>13s}  target')
  for name, seconds in results.items():
    target = TARGETS.get(name)
    verdict = '' if target is None else (
        f'< {target:.1f} s: {"met" if statistics.median(seconds) < target else "MISSED"}')
    print(f'{name:28s} {statistics.median(seconds):7.2f}s {min(seconds):6.2f}-{max(seconds):.2f} s'
          f'  {verdict}')
  return results


if __name__ == '__main__':
  main(sys.argv[1:])
