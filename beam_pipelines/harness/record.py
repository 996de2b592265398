"""``python -m beam_pipelines.harness.record``: add test evidence to a build's report.

The Composer test DAG runs this from the staged wheel of the build it tested (``PYTHONPATH=<wheel>``),
so its Dataflow job's verdict goes through the same writer as ``invoke test``'s
(``results.record_results``): evidence is added, never removed. Prints the merged report's status
and exits 0 when recorded, 1 when the build has a failed result, 2 when nothing was recorded.

    python -m beam_pipelines.harness.record --bucket gs://B --build_id ID --sha256 S \\
        --wheel_file gs://B/test/artifacts/ID/beam_pipelines-0.1.0-py3-none-any.whl \\
        --tested_by composer:beam_pipelines_test/RUN --results '[{"check": ..., "passed": ...}]'
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional, Sequence, cast

from beam_pipelines.harness import results
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
      isinstance(r, dict) and all(k in r for k in RESULT_KEYS) for r in found):
    print(f'error: --results must be a list of objects with {", ".join(RESULT_KEYS)}',
          file=sys.stderr)
    return 2
  try:
    report = results.record_results(args.bucket, args.build_id, args.sha256, args.wheel_file,
                                    cast(List[ResultEntry],  # their keys were checked above
                                         [dict(r, details=r.get('details', {})) for r in found]),
                                    args.tested_by)
  except Refusal as error:
    print(f'error: {error}', file=sys.stderr)
    return 2
  print(json.dumps({'status': report.status, 'failures': report.failures(),
                    'ml_status': report.ml_status}))
  return 0 if report.passed else 1


if __name__ == '__main__':
  sys.exit(main())
