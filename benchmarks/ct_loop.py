"""Wall time of continuous training and of the level-2 ML check, cold and from the step cache.

    python benchmarks/ct_loop.py

Runs the real CLI (``python -m beam_pipelines.ct``) from the source tree on a temporary bucket:
the demo (spans 1-4 landed and trained one by one: 3,000 trips each), a re-run with no trigger,
a forced re-run of span 4 (every step but evaluation from the cache), then ``--check`` (what
``invoke test`` runs) cold and warm. Per-span times come from the progress lines as they stream.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

CT = [sys.executable, '-m', 'beam_pipelines.ct']
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed(label, command, marks=()):
  """Runs ``command``; returns [(label, seconds)] for the whole run and for each marked phase."""
  started = time.monotonic()
  phases, current, current_start = [], None, started
  with subprocess.Popen(command, cwd=REPO, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                        text=True) as process:
    for line in process.stderr:
      for mark in marks:
        if mark in line and ' landed at ' in line:
          now = time.monotonic()
          if current:
            phases.append((current, now - current_start))
          current, current_start = line.split(mark, 1)[1].split(' landed')[0].strip(), now
  end = time.monotonic()
  if current:
    phases.append((current, end - current_start))
  if process.returncode not in (0, 1, 3):  # pushed or no trigger, stopped, not blessed
    raise SystemExit(f'{" ".join(command)} exited {process.returncode}')
  return [(label, end - started)] + [(f'  {p}', s) for p, s in phases]


def main() -> None:
  rows = []
  with tempfile.TemporaryDirectory(prefix='ct-bench-') as tmp:
    bucket = os.path.join(tmp, 'bucket')
    rows += timed('demo: spans 1-4, cold (one process)', CT + ['--demo', '--bucket', bucket],
                  marks=('demo: ',))
    rows += timed('re-run, no trigger', CT + ['--bucket', bucket])
    span = os.path.join(bucket, 'prod', 'inputs', 'ct', 'taxi', 'span-2026-11-04')
    rows += timed('--force span 4 (steps cached but evaluation)',
                  CT + ['--bucket', bucket, '--force', '--span', span])
    check = CT + ['--check', '--pipeline', 'taxi', '--output', os.path.join(tmp, 'check'),
                  '--cache', os.path.join(tmp, 'cache')]
    rows += timed('level-2 check (invoke test), cold', check)
    rows += timed('level-2 check, warm (same code and data)', check)
  print(f'continuous training, 2 cores, source tree; wall seconds (cpu count {os.cpu_count()}):')
  for label, seconds in rows:
    print(f'  {label:52s} {seconds:6.1f}')


if __name__ == '__main__':
  main()
