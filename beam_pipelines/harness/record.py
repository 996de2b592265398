"""``python -m beam_pipelines.harness.record``: add a test run's evidence on a build.

The Composer test DAG runs this from the staged wheel of the build it tested (``PYTHONPATH=<wheel>``).
The run's results become their own record, ``test/evidence/<build_id>/<run>.json``
(``evidence.write_evidence``): the build's "test passed" record, which ``invoke test`` signed, is
never rewritten (Composer does not hold the key); deploy reads both. Prints the run's status and
exits 0 when recorded and passed, 1 when recorded and failed, 2 when nothing was recorded.

    python -m beam_pipelines.harness.record --bucket gs://B --build_id ID --sha256 S \\
        --wheel_file gs://B/test/artifacts/ID/beam_pipelines-0.1.0-py3-none-any.whl \\
        --tested_by composer:beam_pipelines_test/RUN --results '[{"check": ..., "passed": ...}]'
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional, Sequence, cast

from beam_pipelines.harness import evidence
from beam_pipelines.harness.results import ResultEntry
from beam_pipelines.store.errors import Refusal

RESULT_KEYS = ('check', 'passed', 'message')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(prog='python -m beam_pipelines.harness.record',
                                   description=__doc__.split('\n')[0])
  for name in ('bucket', 'build_id', 'sha256', 'wheel_file', 'tested_by'):
    parser.add_argument(f'--{name}', required=True)
  parser.add_argument('--results', required=True, help='JSON list of check results.')
  return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
  args = parse_args(argv)
  try:
    found = json.loads(args.results)
  except ValueError as error:
    print(f'error: --results is not JSON: {error}', file=sys.stderr)
    return 2
  if not isinstance(found, list) or not all(
      isinstance(r, dict) and all(k in r for k in RESULT_KEYS) and isinstance(r['passed'], bool)
      for r in found):
    print(f'error: --results must be a list of objects with {", ".join(RESULT_KEYS)} '
          f'(passed: true or false)',
          file=sys.stderr)
    return 2
  try:
    path, run = evidence.write_evidence(
        args.bucket, args.build_id, args.sha256, args.wheel_file,
        cast(List[ResultEntry],  # their keys were checked above
             [dict(r, details=r.get('details', {})) for r in found]), args.tested_by)
  except Refusal as error:
    print(f'error: {error}', file=sys.stderr)
    return 2
  print(json.dumps({'status': run.status, 'failures': run.failures(), 'evidence': path}))
  return 0 if run.passed else 1


if __name__ == '__main__':
  sys.exit(main())
