"""Wall time of README command 1, `invoke build test deploy`, and of each of its steps.

    python benchmarks/harness_loop.py [--runs 2] [--no-checks]

Runs the real CLI from the repository on its defaults, except for a temporary bucket (so the
benchmark never changes ./bucket) and an empty wheel cache (the install is timed cold). Step times
come from the progress lines as they stream: a step starts at its first line ("build:", "test:",
"deploy:") and ends where the next one starts.
Target: the loop under 60 s on a 2-core machine after installation.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
STEPS = ('build', 'test', 'deploy')
# Sub-steps worth seeing separately, keyed by the progress line that starts them.
MARKS = {
    'build: lint (': 'build/lint',
    'build: type check': 'build/type check',
    'build: unit tests': 'build/unit tests',
    'build: wheel + sdist': 'build/wheel+sdist+manifest',
    'test: uploading': 'test/upload+stage',
    'install:': 'test/install wheel',
    'test: running workflow': 'test/run workflow+check',
    'deploy: promoting': 'deploy',
}


def one_loop(tmp: str, checks: bool) -> dict:
  """Runs the loop once with the bucket and cache under ``tmp`` (both empty unless a previous
  loop left them: `run_all.py` reuses the cache to time the loop after install); returns
  {label: seconds} and total."""
  command = [sys.executable, '-m', 'invoke', 'build'] + ([] if checks else ['--no-checks'])
  command += ['test', 'deploy']
  env = dict(os.environ, BEAM_PIPELINES_BUCKET=os.path.join(tmp, 'bucket'),
             BEAM_PIPELINES_CACHE=os.path.join(tmp, 'cache'))
  start = time.perf_counter()
  marks = [('startup', start)]
  step_starts = {}
  process = subprocess.Popen(command, cwd=REPO, env=env, stderr=subprocess.PIPE,
                             stdout=subprocess.DEVNULL, text=True)
  refused = False
  for line in process.stderr:
    now = time.perf_counter()
    refused = refused or 'REFUSED' in line
    if refused:  # the refusal and its explanation (lint output, failing tests ...)
      print(line, end='', file=sys.stderr)
    text = line.replace('[beam-pipelines] ', '').strip()
    for step in STEPS:
      if text.startswith(f'{step}:') and step not in step_starts:
        step_starts[step] = now
    for prefix, label in MARKS.items():
      if text.startswith(prefix) and label not in dict(marks):
        marks.append((label, now))
  if process.wait() != 0:
    raise SystemExit(f'`{" ".join(command[2:])}` failed (exit {process.returncode})')
  end = time.perf_counter()
  figures = {}
  bounds = [step_starts.get(s, start) for s in STEPS] + [end]
  figures.update({f'step {s}': bounds[i + 1] - bounds[i] for i, s in enumerate(STEPS)})
  figures['  (first step starts after)'] = bounds[0] - start
  marks.append(('end', end))
  for (label, at), (_, nxt) in zip(marks, marks[1:]):
    figures[f'  {label}'] = nxt - at
  figures['TOTAL'] = end - start
  return figures


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--runs', type=int, default=2, help='loops to time (a fresh bucket each)')
  parser.add_argument('--no-checks', action='store_true', help='skip lint, type check + unit tests in build')
  args = parser.parse_args(argv)
  results = []
  for run in range(args.runs):
    with tempfile.TemporaryDirectory(prefix='harness-bench-') as tmp:
      figures = one_loop(tmp, checks=not args.no_checks)
    results.append(figures)
    print(f'run {run + 1}: total {figures["TOTAL"]:.1f} s', file=sys.stderr, flush=True)
  print(f'`invoke build{" --no-checks" if args.no_checks else ""} test deploy` on the defaults '
        f'(temp bucket), {os.cpu_count()} cores, {args.runs} run(s); wall seconds:')
  labels = list(results[0])
  print(f'  {"":34s}' + ''.join(f'{"run " + str(i + 1):>9s}' for i in range(len(results))))
  for label in labels:
    print(f'  {label:34s}' + ''.join(f'{r.get(label, 0.0):9.1f}' for r in results))
  best = min(r['TOTAL'] for r in results)
  print(f'target < 60 s: {"MET" if best < 60 else "MISSED"} (best total {best:.1f} s)')


if __name__ == '__main__':
  main()
