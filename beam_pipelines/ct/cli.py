"""``python -m beam_pipelines.ct``: the continuous-training command line.

Exit statuses (the same through ``invoke ct``)::

    0  every span was pushed (or registered with --no_push), had no trigger, or was checked
    1  a span stopped at validation: anomalies, or drift with the policy ``on_drift: block``
    2  an error: bad flags, a missing span, data that does not match the spec, a refusal
    3  a model was trained and evaluated but NOT_BLESSED: production is unchanged

With ``--json`` the last line of stdout (all of it) is one JSON object: the exit status and its
meaning, the outcome of each span (docs/continuous-training.md). The flags are parsed before the
loop, Beam, TFDV or any pipeline is imported: ``--help`` and usage errors answer at once.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import pathlib
import sys
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

from beam_pipelines import runtime, submission
from beam_pipelines.ct.outcomes import (
  CHECK_ANOMALOUS,
  CHECKED,
  NO_TRIGGER,
  NOT_BLESSED,
  READMITTED,
  STOPPED,
  SpanOutcome,
)
from beam_pipelines.ct.registry import PRODUCTION
from beam_pipelines.store import bucket, layout, text_lines
from beam_pipelines.store.bucket import check_bucket_name, resolve_bucket
from beam_pipelines.store.console import progress
from beam_pipelines.store.errors import Refusal
from beam_pipelines.store.typed_json import to_json

if TYPE_CHECKING:  # the loop imports Beam, TFDV and every pipeline: after the flags are parsed
  from beam_pipelines.ct.loop import ContinuousTraining
  from beam_pipelines.ct.steps import Baseline

EXIT_OK, EXIT_STOPPED, EXIT_ERROR, EXIT_NOT_BLESSED = (
    runtime.EXIT_OK, runtime.EXIT_STOPPED, runtime.EXIT_ERROR, runtime.EXIT_NOT_BLESSED)
EXIT_RESULTS = {EXIT_OK: 'done', EXIT_STOPPED: 'stopped_at_validation', EXIT_ERROR: 'error',
                EXIT_NOT_BLESSED: 'not_blessed'}  # the "result" of the --json line

USAGE = """
    python -m beam_pipelines.ct [--pipeline NAME] [--bucket URL] [--span DIR] [--force]
        [--no_cache] [--no_push] [--predict] [--build_id ID --wheel_sha256 SHA]
    python -m beam_pipelines.ct --demo [--bucket URL]   # spans 1-4 of the sample, ct on each
    python -m beam_pipelines.ct --check --output DIR [--cache DIR] [--baselines JSON]
                                                      # the level-2 check of `invoke test`
    python -m beam_pipelines.ct --write_schema --pipeline NAME --span DIR
                                                      # infer a schema for review, in the folder
    python -m beam_pipelines.ct --update_schema --pipeline NAME --span DIR
                                                      # fold an accepted span into that schema
    python -m beam_pipelines.ct --readmit SPAN [--reason WHY] [--pipeline NAME]
                                                      # a refused span trains again (no retrain)

exit status: 0 pushed/no trigger, 1 stopped at validation, 2 error, 3 not blessed
(--json: the last line of stdout is one JSON object saying it, and what happened to each span)

Any other flag is a Beam option of the pipeline steps (features, validation, evaluation), e.g.
--runner DataflowRunner --project P --region R --temp_location gs://B/tmp --extra_package WHEEL;
training is scikit-learn in this process and reads/writes gs:// itself.
"""


class UsageError(Refusal):
  """Flags that do not make a ct command (one line, exit status 2)."""


class ArgumentParser(argparse.ArgumentParser):
  """argparse whose usage errors are refusals (one line, exit status 2), not SystemExit."""

  def error(self, message: str):
    raise UsageError(f'{message} (see python -m beam_pipelines.ct --help)')


def parse_args(argv: Optional[Sequence[str]]):
  parser = ArgumentParser(prog='python -m beam_pipelines.ct',
                          description=__doc__.split('\n')[0], allow_abbrev=False,
                          formatter_class=argparse.RawDescriptionHelpFormatter, epilog=USAGE)
  parser.add_argument('--pipeline', default=None,
                      help='A declared pipeline (a folder of beam_pipelines/pipelines/) or the '
                      'path of a pipeline.yaml; default: the only one declared (with several, '
                      'say which).')
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
  parser.add_argument('--output', default=None,
                      help='--check: output directory; --write_schema/--update_schema: scratch '
                      'outputs (default outputs/write-schema/<pipeline>, '
                      'outputs/update-schema/<pipeline>).')
  parser.add_argument('--cache', default=None, help='--check: step cache directory.')
  parser.add_argument('--baselines', default='',
                      help='--check: JSON file {pipeline: {model_dir, model_sha256, record_path}} '
                      'of the models to beat (none: rubber stamp).')
  parser.add_argument('--write_schema', action='store_true',
                      help="Infer the schema of --span and write it into the pipeline's folder "
                      '(schema.pbtxt) for review; with each feature\'s noise floor. The span '
                      'passes under the schema written.')
  parser.add_argument('--update_schema', action='store_true',
                      help="Fold what --span shows (new categorical values, rarer presence) into "
                      "the pipeline's committed schema (tfdv.update_schema) and say what changed.")
  parser.add_argument('--readmit', default=None, metavar='SPAN',
                      help='Re-admit a span that stopped, failed or was NOT_BLESSED (its directory '
                      'or name) into later training windows and drift baselines; nothing is '
                      'retrained; recorded in its span record and a lineage record.')
  parser.add_argument('--reason', default='', help='--readmit: why (recorded).')
  parser.add_argument('--json', action='store_true',
                      help='End with one line of JSON on stdout (outcome of each span, exit status '
                      'and its meaning); progress stays on stderr.')
  args, beam_args = parser.parse_known_args(argv)
  if beam_args and not beam_args[0].startswith('--'):
    parser.error(f'unexpected argument {beam_args[0]!r}')
  if beam_args:  # Beam options of the steps: an unknown flag is refused now, not after a span
    runtime.reject_unknown_flags(parser, beam_args)
  try:
    text_lines.max_record_chars()
  except text_lines.SettingError as error:
    parser.error(str(error))
  args.beam_args = tuple(beam_args)
  return args


def read_baselines(path: str) -> Dict[str, Baseline]:
  """The --baselines file: {pipeline: {model_dir, model_sha256, record_path}}. A baseline with a
  registry record must have that record's model sha256 (checked here, before any model is loaded;
  loading checks the model's bytes against it)."""
  from beam_pipelines.ct.loop import CtError  # imports Beam: only when a command runs
  from beam_pipelines.ct.steps import Baseline  # imports the pipelines: only when a command runs
  if not path:
    return {}
  raw = bucket.read_json(path, 'ML check baselines')
  try:
    baselines = {name: Baseline(entry['model_dir'], entry['model_sha256'], entry.get('record_path'))
                 for name, entry in raw.items() if entry}
  except (TypeError, KeyError) as error:
    raise CtError(f'{path} is not a baselines file ({error})') from None
  for name, baseline in baselines.items():
    if baseline.record_path:
      recorded = bucket.read_json(baseline.record_path, 'baseline registry record')
      if recorded.get('model_sha256') != baseline.model_sha256:
        raise CtError(f'baseline of {name}: model sha256 {baseline.model_sha256} is not the one '
                      f'its registry record {baseline.record_path} holds '
                      f'({recorded.get("model_sha256")}). Refusing to load it.')
  return baselines


def run(argv: Optional[Sequence[str]] = None) -> List[SpanOutcome]:
  """Parses ``argv`` and runs the command; returns the outcome of each span."""
  return execute(parse_args(argv))[0]


def execute(args: argparse.Namespace) -> Tuple[List[SpanOutcome], Dict[str, Any]]:
  """Runs parsed flags; returns (the outcome of each span, what the JSON line says besides)."""
  from beam_pipelines.ct import (  # Beam, the pipelines, Vertex AI's SDK: only when a command runs
    demo,
    vertex,
  )
  from beam_pipelines.ct.loop import (  # imports Beam, TFDV, the pipelines: only when run
    ContinuousTraining,
    CtError,
    CtOptions,
    check_all,
  )
  from beam_pipelines.ct.steps import StepDidNotRun  # imports Beam: only when a command runs
  from beam_pipelines.tracking import mlflow_mirror  # only when a command runs
  dry_run = submission.is_dry_run(args.beam_args)
  if args.check:
    if not args.output:
      raise CtError('--check needs --output')
    try:
      summary = check_all(args.output, read_baselines(args.baselines), args.cache,
                          [args.pipeline] if args.pipeline else None, args.beam_args)
    except StepDidNotRun:
      if not dry_run:
        raise
      progress('ct check: --dry_run: the features job was built, not submitted; validation, '
               'training and evaluation read its outputs, so only a real run builds theirs. '
               'Nothing was written.')
      return [], {'mode': 'check', 'dry_run': True}
    return ([SpanOutcome(STOPPED if r.status == CHECK_ANOMALOUS else CHECKED, name,
                         report=r.report, blessing=r.status)
             for name, r in summary.pipelines.items()], {'mode': 'check'})
  if args.write_schema or args.update_schema:
    from beam_pipelines.ct import schemas  # imports Beam and TFDV: only when a command runs
    flag = '--write_schema' if args.write_schema else '--update_schema'
    if not args.span or len(args.span) != 1 or (args.write_schema and args.update_schema):
      raise CtError(f'{flag} needs one --span (and not both schema commands)')
    if args.write_schema:
      target = schemas.write_schema(args.pipeline, args.span[0], args.output or '')
      return [], {'mode': 'write_schema', 'schema': target}
    target, changed = schemas.update_schema(args.pipeline, args.span[0], args.output or '')
    return [], {'mode': 'update_schema', 'schema': target, 'changes': changed}
  if dry_run:
    raise CtError('--dry_run builds Dataflow jobs without running them: give it to `ct --check` '
                  '(the features job of each declared pipeline); a CT run records spans and '
                  'models, so it needs real runs')
  if args.demo and not args.bucket:
    url = demo.fresh_demo_bucket()  # never the real bucket: the demo moves `production`
  else:
    url = resolve_bucket(args.bucket, pathlib.Path.cwd())
    check_bucket_name(url)
    bucket.refuse_unreachable([url])  # also $BEAM_PIPELINES_BUCKET
  ct = ContinuousTraining(url, CtOptions(
      env=args.env, pipeline=args.pipeline, use_cache=not args.no_cache,
      push=not args.no_push, predict=args.predict, build_id=args.build_id,
      wheel_sha256=args.wheel_sha256, beam_args=args.beam_args))
  if args.demo:
    shown = demo.run_demo(ct)  # it prints what happened to each span; a stopped span 3 is the design
    summarise(ct, [])
    mlflow_mirror.mirror_after(ct.paths)  # opt-in: $MLFLOW_TRACKING_URI
    return shown, dict(_where(ct), mode='demo')
  if args.readmit:
    if args.span or args.force:
      raise CtError('--readmit takes a span of its own: no --span, no --force')
    return [ct.readmit(args.readmit, args.reason)], dict(_where(ct), mode='readmit')
  try:
    outcomes = ct.run(args.span, args.force)
  finally:  # a failed run is tracked too
    mlflow_mirror.mirror_after(ct.paths)  # opt-in: $MLFLOW_TRACKING_URI
  summarise(ct, outcomes)
  vertex.mirror_after(ct.registry, ct.definition.name)  # opt-in: $BEAM_PIPELINES_VERTEX_REGISTRY
  return outcomes, dict(_where(ct), mode='run')


def _where(ct: ContinuousTraining) -> Dict[str, Any]:
  """The pipeline, bucket, registry and production version after a run (for the JSON line)."""
  return {'pipeline': ct.definition.name, 'bucket': ct.bucket_url, 'registry': ct.registry.root,
          'production': ct.registry.aliases().get(PRODUCTION)}


def summarise(ct: ContinuousTraining, outcomes: List[SpanOutcome]) -> None:
  """The closing lines: what happened to each span, where production is, where records are."""
  for outcome in outcomes:
    if outcome.outcome == NO_TRIGGER:
      continue
    detail = (f'stopped at validation (report {outcome.report})' if outcome.outcome == STOPPED
              else 're-admitted (nothing retrained)' if outcome.outcome == READMITTED
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


def json_line(status: int, outcomes: Sequence[SpanOutcome], facts: Dict[str, Any],
              error: Optional[str] = None) -> str:
  """The last line of ``--json``: one JSON object (fields in docs/continuous-training.md)."""
  return json.dumps({'exit_status': status, 'result': EXIT_RESULTS[status], 'error': error,
                     'outcomes': [to_json(o) for o in outcomes], 'mode': None, 'pipeline': None,
                     'bucket': None, 'registry': None, 'production': None, **facts},
                    sort_keys=True)


def read_result(returncode: int, lines: Sequence[str]) -> Tuple[int, Optional[str]]:
  """(exit status, error) of a ct process from its exit status and its output with ``--json``:
  its JSON line's status when it agrees with the process's; anything else (no JSON line, another
  status: a crash outside ``main``, a killed process) is an error, 2, with the output's last line
  (a traceback ends with the exception's type and message)."""
  for line in reversed(lines):
    if line.startswith('{'):
      try:
        result = json.loads(line)
      except ValueError:
        continue
      if isinstance(result, dict) and result.get('exit_status') == returncode:
        return returncode, result.get('error')
      break
  last = next((line.strip() for line in reversed(lines) if line.strip()), 'no output')
  return EXIT_ERROR, f'ct ended with exit status {returncode} and no result line: {last}'


def main(argv: Optional[Sequence[str]] = None) -> int:
  """The command line; returns its exit status (see the module docstring). ``--help`` and usage
  errors answer before Beam, TFDV or any pipeline is imported."""
  argv = list(sys.argv[1:] if argv is None else argv)
  as_json = '--json' in argv
  outcomes: List[SpanOutcome] = []
  facts: Dict[str, Any] = {}
  try:
    args = parse_args(argv)
    submission.refuse_unreachable(argv)  # a gs:// span, output or bucket (none: --dry_run)
    # With --json, stdout carries only the final line: anything a step prints goes to stderr.
    with contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext():
      outcomes, facts = execute(args)
  except Exception as error:  # noqa: BLE001 - runtime.failure_status says what it was
    status = runtime.failure_status('ct', error)
    if as_json:
      print(json_line(status, [], facts, f'{type(error).__name__}: {error}'
                      if not isinstance(error, Refusal) else str(error)), flush=True)
    return status
  status = EXIT_OK if facts.get('mode') == 'demo' else exit_status(outcomes)
  if as_json:
    print(json_line(status, outcomes, facts), flush=True)
  return status
