"""``python -m beam_pipelines.ct``: the continuous-training command line."""

from __future__ import annotations

import argparse
import pathlib
from typing import List, Optional, Sequence

from beam_pipelines.ct import demo
from beam_pipelines.ct.loop import ContinuousTraining, CtError, CtOptions, check
from beam_pipelines.ct.outcomes import CHECKED, NO_TRIGGER, STOPPED, SpanOutcome
from beam_pipelines.ct.registry import PRODUCTION
from beam_pipelines.store import layout
from beam_pipelines.store.bucket import resolve_bucket
from beam_pipelines.store.console import progress
from beam_pipelines.store.errors import Refusal

USAGE = """
    python -m beam_pipelines.ct [--bucket URL] [--span DIR] [--force] [--no_cache] [--no_push]
        [--predict] [--pipeline YAML] [--build_id ID --wheel_sha256 SHA]
    python -m beam_pipelines.ct --demo [--bucket URL]   # spans 1-4 of the sample, ct on each
    python -m beam_pipelines.ct --check --input GLOB --output DIR [--baseline_model DIR
        --baseline_sha256 SHA] [--cache DIR]         # the level-2 ML check of `invoke test`

Any other flag is a Beam option of the pipeline steps (features, validation, evaluation), e.g.
--runner DataflowRunner --project P --region R --temp_location gs://B/tmp --extra_package WHEEL;
training is scikit-learn in this process and reads/writes gs:// itself.
"""


def parse_args(argv: Optional[Sequence[str]]):
  parser = argparse.ArgumentParser(prog='python -m beam_pipelines.ct',
                                   description=__doc__.split('\n')[0], allow_abbrev=False,
                                   formatter_class=argparse.RawDescriptionHelpFormatter,
                                   epilog=USAGE)
  parser.add_argument('--bucket', default=None,
                      help='Bucket URL (default: $BEAM_PIPELINES_BUCKET, else ./bucket).')
  parser.add_argument('--env', default=layout.PROD, help='Environment of the bucket (prod).')
  parser.add_argument('--span', action='append', default=None,
                      help='A span directory (or CSV glob) to process; default: each new landed span.')
  parser.add_argument('--force', action='store_true', help='Retrain even without a trigger.')
  parser.add_argument('--no_cache', action='store_true', help='Run every step, reuse nothing.')
  parser.add_argument('--no_push', action='store_true',
                      help='A blessed model becomes "candidate" only; production stays.')
  parser.add_argument('--predict', action='store_true',
                      help='Then batch inference of the span with the production model.')
  parser.add_argument('--pipeline', default=None, help='CT pipeline definition (YAML).')
  parser.add_argument('--build_id', default=None, help='Build id of the deployed build (lineage).')
  parser.add_argument('--wheel_sha256', default=None, help='sha256 of its wheel (lineage).')
  parser.add_argument('--demo', action='store_true',
                      help='Land spans 1-4 (sample, same, missing column, drift); ct on each, in '
                      'a fresh demo bucket (outputs/ct-demo/bucket) unless --bucket is given.')
  parser.add_argument('--check', action='store_true', help='The level-2 check of `invoke test`.')
  parser.add_argument('--input', default=None, help='--check: integration CSV file(s).')
  parser.add_argument('--output', default=None, help='--check: output directory.')
  parser.add_argument('--cache', default=None, help='--check: step cache directory.')
  parser.add_argument('--baseline_model', default='', help='--check: the model to beat (dir).')
  parser.add_argument('--baseline_sha256', default='', help='--check: its verified sha256.')
  args, beam_args = parser.parse_known_args(argv)
  if beam_args and not beam_args[0].startswith('--'):
    parser.error(f'unexpected argument {beam_args[0]!r}')
  args.beam_args = tuple(beam_args)
  return args


def run(argv: Optional[Sequence[str]] = None) -> List[SpanOutcome]:
  args = parse_args(argv)
  if args.check:
    if not args.input or not args.output:
      raise CtError('--check needs --input and --output')
    result = check(args.input, args.output, args.baseline_model or None,
                   args.baseline_sha256 or None, args.cache, args.pipeline, args.beam_args)
    stopped = result['status'] == 'ANOMALOUS'
    return [SpanOutcome(STOPPED if stopped else CHECKED, args.input, report=result.get('report'),
                        blessing=None if stopped else result['status'])]
  if args.demo and not args.bucket:
    url = demo.fresh_demo_bucket()  # never the real bucket: the demo moves `production`
  else:
    url = resolve_bucket(args.bucket, pathlib.Path.cwd())
  ct = ContinuousTraining(url, CtOptions(
      env=args.env, definition_path=args.pipeline, use_cache=not args.no_cache,
      push=not args.no_push, predict=args.predict, build_id=args.build_id,
      wheel_sha256=args.wheel_sha256, beam_args=args.beam_args))
  if args.demo:
    outcomes = demo.run_demo(ct)
    summarise(ct, [])
    return outcomes
  outcomes = ct.run(args.span, args.force)
  summarise(ct, outcomes)
  return outcomes


def summarise(ct: ContinuousTraining, outcomes: List[SpanOutcome]) -> None:
  """The closing lines: what happened to each span, where production is, where records are."""
  for outcome in outcomes:
    if outcome.outcome == NO_TRIGGER:
      continue
    detail = (f'stopped at validation (report {outcome.report})' if outcome.outcome == STOPPED
              else f'model v{outcome.version} {outcome.blessing}, {outcome.outcome}')
    progress(f'ct: done: span {outcome.span}: {detail}; lineage {outcome.lineage}')
  production = ct.registry.aliases().get(PRODUCTION)
  flag = '' if ct.bucket_url == resolve_bucket(None, pathlib.Path.cwd()) else f' --bucket {ct.bucket_url}'
  progress(f'ct: production model: {"v" + str(production) if production else "none"}; '
           f'registry {ct.registry.root}; `invoke model-list{flag}`, '
           f'`invoke lineage --model production{flag}`')


def main(argv: Optional[Sequence[str]] = None) -> int:
  """Exit 0: trained/pushed/no trigger; 1: a span stopped at validation (anomalies); 2: error."""
  try:
    outcomes = run(argv)
  except Refusal as error:
    progress(f'ct: error: {error}')
    return 2
  return 1 if any(o.outcome == STOPPED for o in outcomes) else 0
