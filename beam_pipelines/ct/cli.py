"""``python -m beam_pipelines.ct``: the continuous-training command line.

Exit statuses (the same through ``invoke ct``)::

    0  every span was pushed (or registered with --no_push), had no trigger, or was checked
    1  a span stopped at validation: anomalies, or drift with the policy ``on_drift: block``
    2  an error: bad flags, a missing span, data that does not match the spec, a refusal
    3  a model was trained and evaluated but NOT_BLESSED: production is unchanged
"""

from __future__ import annotations

import argparse
import pathlib
from typing import Dict, List, Optional, Sequence

from beam_pipelines import features, runtime, validate
from beam_pipelines.ct import demo
from beam_pipelines.ct.definition import SCHEMA_FILE, load_definition
from beam_pipelines.ct.loop import (
  CHECK_ANOMALOUS,
  ContinuousTraining,
  CtError,
  CtOptions,
  check_all,
  span_files,
  span_pattern,
)
from beam_pipelines.ct.outcomes import CHECKED, NO_TRIGGER, NOT_BLESSED, STOPPED, SpanOutcome
from beam_pipelines.ct.registry import PRODUCTION
from beam_pipelines.ct.steps import Baseline
from beam_pipelines.ml.results import Verdict
from beam_pipelines.store import bucket, layout
from beam_pipelines.store.bucket import resolve_bucket
from beam_pipelines.store.console import progress

EXIT_OK, EXIT_STOPPED, EXIT_ERROR, EXIT_NOT_BLESSED = (
    runtime.EXIT_OK, runtime.EXIT_STOPPED, runtime.EXIT_ERROR, runtime.EXIT_NOT_BLESSED)

USAGE = """
    python -m beam_pipelines.ct [--pipeline NAME] [--bucket URL] [--span DIR] [--force]
        [--no_cache] [--no_push] [--predict] [--build_id ID --wheel_sha256 SHA]
    python -m beam_pipelines.ct --demo [--bucket URL]   # spans 1-4 of the sample, ct on each
    python -m beam_pipelines.ct --check --output DIR [--cache DIR] [--baselines JSON]
                                                      # the level-2 check of `invoke test`
    python -m beam_pipelines.ct --write_schema --pipeline NAME --span DIR
                                                      # infer a schema for review, in the folder

exit status: 0 pushed/no trigger, 1 stopped at validation, 2 error, 3 not blessed

Any other flag is a Beam option of the pipeline steps (features, validation, evaluation), e.g.
--runner DataflowRunner --project P --region R --temp_location gs://B/tmp --extra_package WHEEL;
training is scikit-learn in this process and reads/writes gs:// itself.
"""


class ArgumentParser(argparse.ArgumentParser):
  """argparse whose usage errors are refusals (one line, exit status 2), not SystemExit."""

  def error(self, message: str):
    raise CtError(f'{message} (see python -m beam_pipelines.ct --help)')


def parse_args(argv: Optional[Sequence[str]]):
  parser = ArgumentParser(prog='python -m beam_pipelines.ct',
                          description=__doc__.split('\n')[0], allow_abbrev=False,
                          formatter_class=argparse.RawDescriptionHelpFormatter, epilog=USAGE)
  parser.add_argument('--pipeline', default=None,
                      help='A declared pipeline (a folder of beam_pipelines/pipelines/) or the '
                      'path of a pipeline.yaml; default: the only one, else taxi.')
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
  parser.add_argument('--build_id', default=None, help='Build id of the deployed build (lineage).')
  parser.add_argument('--wheel_sha256', default=None, help='sha256 of its wheel (lineage).')
  parser.add_argument('--demo', action='store_true',
                      help='Land spans 1-4 (sample, same, missing column, drift); ct on each, in '
                      'a fresh demo bucket (outputs/ct-demo/bucket) unless --bucket is given.')
  parser.add_argument('--check', action='store_true',
                      help='The level-2 check of `invoke test`: every declared pipeline (or '
                      '--pipeline) on its integration data, against --baselines.')
  parser.add_argument('--output', default=None, help='--check: output directory.')
  parser.add_argument('--cache', default=None, help='--check: step cache directory.')
  parser.add_argument('--baselines', default='',
                      help='--check: JSON file {pipeline: {model_dir, model_sha256, record_path}} '
                      'of the models to beat (none: rubber stamp).')
  parser.add_argument('--write_schema', action='store_true',
                      help="Infer the schema of --span and write it into the pipeline's folder "
                      '(schema.pbtxt) for review; with each feature\'s noise floor.')
  args, beam_args = parser.parse_known_args(argv)
  if beam_args and not beam_args[0].startswith('--'):
    parser.error(f'unexpected argument {beam_args[0]!r}')
  args.beam_args = tuple(beam_args)
  return args


def read_baselines(path: str) -> Dict[str, Baseline]:
  """The --baselines file: {pipeline: {model_dir, model_sha256, record_path}}."""
  if not path:
    return {}
  raw = bucket.read_json(path, 'ML check baselines')
  try:
    return {name: Baseline(entry['model_dir'], entry['model_sha256'], entry.get('record_path'))
            for name, entry in raw.items() if entry}
  except (TypeError, KeyError) as error:
    raise CtError(f'{path} is not a baselines file ({error})') from None


def write_schema(pipeline: Optional[str], span: str, output: str) -> str:
  """Features and validation of ``span``; the inferred schema goes into the pipeline's folder."""
  definition = load_definition(pipeline)
  target = str(pathlib.PurePosixPath(definition.path).parent / SCHEMA_FILE)
  if bucket.exists(target):
    raise CtError(f'{target} exists: it is the reviewed schema of {definition.name}. Edit it, or '
                  f'delete it first to infer a new one')
  span_files(span)
  features_dir, validation_dir = layout.join(output, 'features'), layout.join(output, 'validation')
  features.extract([span_pattern(span)], definition.spec_path, features_dir)
  verdict = validate.validate(features_dir, validation_dir, target, with_noise_floor=True)
  if not isinstance(verdict, Verdict):
    raise CtError('--write_schema needs the pipelines to run, not a --dry_run')
  progress(f'ct: schema of {definition.name} inferred from {span} and written to {target}: '
           f'review it (domains, presence, min_domain_mass), then commit it; ct uses it from '
           f'the next build on. Verdict of that span: {verdict.status}')
  suggested = ', '.join(f'{feature} {floor.suggested_threshold}'
                        for feature, floor in sorted(verdict.noise_floor.items()))
  progress(f'ct: suggested drift thresholds above each feature\'s noise floor: {suggested} '
           f'(details: {validation_dir}/noise_floor.json)')
  return target


def run(argv: Optional[Sequence[str]] = None) -> List[SpanOutcome]:
  args = parse_args(argv)
  if args.check:
    if not args.output:
      raise CtError('--check needs --output')
    summary = check_all(args.output, read_baselines(args.baselines), args.cache,
                        [args.pipeline] if args.pipeline else None, args.beam_args)
    return [SpanOutcome(STOPPED if r.status == CHECK_ANOMALOUS else CHECKED, name,
                        report=r.report, blessing=r.status)
            for name, r in summary.pipelines.items()]
  if args.write_schema:
    if not args.span or len(args.span) != 1:
      raise CtError('--write_schema needs one --span')
    write_schema(args.pipeline, args.span[0], args.output or 'outputs/write-schema')
    return []
  if args.demo and not args.bucket:
    url = demo.fresh_demo_bucket()  # never the real bucket: the demo moves `production`
  else:
    url = resolve_bucket(args.bucket, pathlib.Path.cwd())
  ct = ContinuousTraining(url, CtOptions(
      env=args.env, pipeline=args.pipeline, use_cache=not args.no_cache,
      push=not args.no_push, predict=args.predict, build_id=args.build_id,
      wheel_sha256=args.wheel_sha256, beam_args=args.beam_args))
  if args.demo:
    demo.run_demo(ct)  # it prints what happened to each span; a stopped span 3 is the design
    summarise(ct, [])
    return []
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
  flags = f' --pipeline {ct.definition.name}'
  if ct.bucket_url != resolve_bucket(None, pathlib.Path.cwd()):
    flags += f' --bucket {ct.bucket_url}'
  progress(f'ct: {ct.definition.name}: production model: '
           f'{"v" + str(production) if production else "none"}; registry {ct.registry.root}; '
           f'`invoke model-list{flags}`, `invoke lineage{flags} --model production`')


def exit_status(outcomes: Sequence[SpanOutcome]) -> int:
  """1 when a span stopped at validation, else 3 when a model was not blessed, else 0."""
  if any(o.outcome == STOPPED for o in outcomes):
    return EXIT_STOPPED
  if any(o.outcome == NOT_BLESSED for o in outcomes):
    return EXIT_NOT_BLESSED
  return EXIT_OK


def main(argv: Optional[Sequence[str]] = None) -> int:
  """The command line; returns its exit status (see the module docstring)."""
  return runtime.main('ct', run, argv, exit_status)
