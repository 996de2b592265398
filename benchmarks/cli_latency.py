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
sys.path.insert(0, str(REPO))

from beam_pipelines.ct import lineage, registry  # noqa: E402 - the repository's package, above
from beam_pipelines.ct.definition import load_definition  # noqa: E402
from beam_pipelines.ct.paths import CtPaths  # noqa: E402
from beam_pipelines.ml import model_io  # noqa: E402
from beam_pipelines.store import layout  # noqa: E402

TARGETS = {'ct --help': 1.0, 'invoke status': 1.5}
COMMANDS = {
    'ct --help': [sys.executable, '-m', 'beam_pipelines.ct', '--help'],
    'invoke status': [sys.executable, '-m', 'invoke', 'status'],
    'invoke status --json': [sys.executable, '-m', 'invoke', 'status', '--json'],
    'invoke model-list': [sys.executable, '-m', 'invoke', 'model-list'],
    'invoke model-list --json': [sys.executable, '-m', 'invoke', 'model-list', '--json'],
    'invoke lineage': [sys.executable, '-m', 'invoke', 'lineage'],
}


def prepare(root: pathlib.Path) -> None:
  """Two registered taxi versions with lineage records; v2 is production and candidate."""
  paths = CtPaths(str(root), 'taxi')
  reg = registry.Registry(paths.registry)
  parameters = dict(load_definition('taxi').parameters(), push=True, cache=True, predict=False)
  for number in (1, 2):
    model = str(root / 'scratch' / f'model{number}')
    model_io.save_model({'weights': [number]}, model, numeric=['a'], categorical=[], label='y',
                        spec_fingerprint='spec', data={'fingerprint': 'data'},
                        hyperparameters={'C': 1.0})
    run_id = f'2026110{number}T000000Z-bench{number}'
    run = lineage.RunRecord(
        layout.join(paths.run(run_id), 'lineage.json'), run_id=run_id, trigger=['new_span'],
        code={'source': 'source-tree', 'version': '0.1.0', 'fingerprint': '0' * 64},
        data={'span': f'span-{number}', 'sha256': '0' * 64, 'files': []}, parameters=parameters)
    record, _ = reg.push(model, metrics={'auc': 0.9 + number / 100}, run_id=run_id,
                         lineage=run.path, blessing={'status': 'BLESSED', 'message': 'bench'})
    run.finish('pushed', model={'version': record['version']})
    reg.move({registry.CANDIDATE: number, registry.PRODUCTION: number}, registry.EVENT_PUSH,
             'bench')


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
    prepare(bucket)
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
