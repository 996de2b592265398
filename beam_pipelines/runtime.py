"""The pipelines' CLI opening: quiet start-up, ``--help`` before Beam's import, own flags vs Beam
options, Dataflow staging (``submission``), running to completion."""

from __future__ import annotations

import argparse
import datetime
import difflib
import logging
import os
import re
import sys
import tempfile
import traceback
import warnings
from typing import Callable, List, Optional, Sequence, Tuple, TypeVar

from beam_pipelines.store import bucket, text_lines
from beam_pipelines.store.console import progress, ticking
from beam_pipelines.store.errors import Refusal

R = TypeVar('R')

# The exit statuses of every command line of the project (README, "Exit statuses").
EXIT_OK = 0  # done
EXIT_STOPPED = 1  # a data verdict stopped the work (validation: anomalous)
EXIT_ERROR = 2  # usage error, refusal, or an error (one line; unexpected ones with a log)
EXIT_NOT_BLESSED = 3  # a model was evaluated and is NOT_BLESSED
LOG_DIR_VARIABLE = 'BEAM_PIPELINES_LOG_DIR'  # where tracebacks of unexpected errors go


def error_log(name: str) -> str:
  """A new file for the traceback of an unexpected error of ``name`` (in $BEAM_PIPELINES_LOG_DIR,
  else the temporary directory)."""
  directory = os.environ.get(LOG_DIR_VARIABLE) or tempfile.gettempdir()
  os.makedirs(directory, exist_ok=True)
  stamp = datetime.datetime.now(datetime.timezone.utc).strftime('%Y%m%dT%H%M%SZ')
  handle, path = tempfile.mkstemp(prefix=f'beam-pipelines-{name}-{stamp}-', suffix='.log',
                                  dir=directory)
  os.close(handle)
  return path


def failure_status(name: str, error: BaseException) -> int:
  """Reports why ``name`` failed in one line and returns its exit status (always 2).

  A ``Refusal`` (bad input, spec, model, config, unreconciled counts), a missing or unreadable
  file and undecodable text are one line ``<name>: error: ...``. Anything else is a bug or an
  environment failure: one line with its type and the path of a log holding the traceback, never
  a bare "failed".
  """
  if isinstance(error, Refusal):
    progress(f'{name}: error: {error}')
  elif isinstance(error, (OSError, UnicodeDecodeError)):
    progress(f'{name}: error: {type(error).__name__}: {error}')
  else:
    log = error_log(name)
    with open(log, 'w', encoding='utf-8') as handle:
      handle.write(''.join(traceback.format_exception(error)))
    progress(f'{name}: unexpected error {type(error).__name__}: {error} (traceback: {log})')
  return EXIT_ERROR


def main(name: str, run: Callable[[Optional[Sequence[str]]], R],
         argv: Optional[Sequence[str]] = None,
         exit_status: Callable[[R], int] = lambda result: EXIT_OK) -> int:
  """The one ``main`` of every command line: runs ``run(argv)`` and maps what happens to the
  project's exit statuses: ``exit_status(result)`` turns a finished run into 0, 1 (a stopping
  verdict) or 3 (NOT_BLESSED); a failure is 2 (``failure_status``); argparse's usage errors keep
  their own status 2. A gs:// bucket named in the arguments that cannot be reached is refused
  before anything runs (not with ``--dry_run``, which contacts none).
  """
  try:
    from beam_pipelines import submission  # standard library and the storage floor only
    submission.refuse_unreachable(sys.argv[1:] if argv is None else argv)
    result = run(argv)
  except Exception as error:  # noqa: BLE001 - the one place that reports failures
    return failure_status(name, error)
  return exit_status(result)


def quiet_startup_noise() -> None:
  """Silences import-time noise that is not a user's concern (never real errors).

  TensorFlow's C++ info lines, google.api_core's Python-version FutureWarnings, TensorFlow
  deprecation warnings and TFDV's "IPython missing" notice appear on every run otherwise.
  Call before TensorFlow/TFDV are imported.
  """
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
  warnings.filterwarnings('ignore', category=FutureWarning, module=r'google\..*')
  warnings.filterwarnings('ignore', message=r'.*IPython.*')
  logging.getLogger('tensorflow').setLevel(logging.ERROR)
  logging.getLogger('absl').setLevel(logging.ERROR)


def count(minimum: int) -> Callable[[str], int]:
  """An argparse type: a whole number >= ``minimum``, in ASCII digits (``int('٣')`` is 3)."""
  def parse(text: str) -> int:
    if not re.fullmatch(r'[+]?[0-9]{1,12}', text.strip()) or int(text) < minimum:
      raise argparse.ArgumentTypeError(f'expected a whole number >= {minimum}, got {text!r}')
    return int(text)
  parse.__name__ = f'whole number >= {minimum}'
  return parse


def local_path_problem(input_pattern, output) -> str:
  """Why a local ``--input`` (one pattern or several) or ``--output`` cannot work, before any
  pipeline runs ('' if none): an input that is a directory, an output below something that is a
  file."""
  patterns = [input_pattern] if isinstance(input_pattern, str) else list(input_pattern or ())
  for pattern in patterns:
    if '://' not in pattern and os.path.isdir(pattern):
      return (f'argument --input: {pattern} is a directory; give a file or a pattern such as '
              f'{pattern.rstrip("/")}/*')
  if output and '://' not in output:
    parent = os.path.dirname(os.path.abspath(output))
    while parent and not os.path.exists(parent):
      parent = os.path.dirname(parent)
    if parent and not os.path.isdir(parent):
      return f'argument --output: {parent} is a file, not a directory'
  return ''


LONG_RUN_SECONDS = 3.0  # Beam runs longer than this get a live line and a timed summary
BEAM_OPTIONS_EPILOG = 'Any other flag is a Beam pipeline option (--runner, --direct_num_workers, ...).'


def answer_help_early(module_name: str, pipeline: str, doc: str,
                      add_arguments: Callable[[argparse.ArgumentParser], None],
                      beam_options: bool = True) -> None:
  """Answers ``python -m beam_pipelines.<pipeline> --help`` and exits, before Beam is imported.

  Importing Apache Beam alone takes ~2 s; a module calls this above its heavy imports with its own
  ``__name__``, so ``--help`` costs only argparse. Does nothing when imported or without --help.
  """
  if module_name != '__main__' or not {'-h', '--help'} & set(sys.argv[1:]):
    return
  parser = argparse.ArgumentParser(
      prog=f'python -m beam_pipelines.{pipeline}', description=doc.strip().split('\n')[0],
      epilog=BEAM_OPTIONS_EPILOG if beam_options else None)
  add_arguments(parser)
  parser.parse_args()


def parse_arguments(pipeline: str, argv: Optional[Sequence[str]],
                    add_arguments: Callable[[argparse.ArgumentParser], None]
                    ) -> Tuple[argparse.Namespace, List[str]]:
  """A pipeline's own flags and the rest (Beam's options); a usage error exits with status 2.

  The pipeline's flags are plain argparse, not a PipelineOptions subclass: Beam merges every such
  subclass's flags into one parser, so two pipelines with ``--output`` would clash in one process.
  An unknown flag (neither the pipeline's nor Beam's) names the closest known one.
  """
  parser = argparse.ArgumentParser(prog=f'python -m beam_pipelines.{pipeline}', allow_abbrev=False)
  add_arguments(parser)
  known, beam_args = parser.parse_known_args(list(sys.argv[1:] if argv is None else argv))
  reject_unknown_flags(parser, beam_args)
  try:
    text_lines.max_record_chars()
  except text_lines.SettingError as error:
    parser.error(str(error))
  problem = local_path_problem(getattr(known, 'input', None), getattr(known, 'output', None))
  if problem:
    parser.error(problem)
  return known, beam_args


def beam_options(pipeline: str, beam_args: Sequence[str] = (), paths: Sequence[str] = (),
                 save_main_session: bool = False):
  """Beam ``PipelineOptions`` of a pipeline's core from its Beam arguments.

  On Dataflow the built wheel is staged first (``submission.prepare_argv``). ``paths`` are the
  core's own inputs and outputs: a ``gs://`` one (or option) skips the credential retries of a
  machine without credentials. ``save_main_session`` stays False: the DoFns live in importable
  modules that workers get from the staged wheel, and Beam's default cloudpickle needs nothing of
  the submitting ``__main__``.
  """
  from apache_beam.options.pipeline_options import PipelineOptions, SetupOptions

  from beam_pipelines import submission  # its staging: only when a pipeline runs, not for --help
  args = submission.prepare_argv(pipeline, list(beam_args))
  if any('gs://' in str(arg) for arg in (*args, *paths)):
    bucket.avoid_credential_retries()  # no ~20 s of retries against a local GCS server
  options = PipelineOptions(args)
  options.view_as(SetupOptions).save_main_session = save_main_session
  return options


def pipeline_arguments(pipeline: str, argv, add_arguments: Callable[[argparse.ArgumentParser], None],
                       save_main_session: bool = False):
  """(own flags, Beam PipelineOptions): ``parse_arguments`` then ``beam_options``."""
  known, beam_args = parse_arguments(pipeline, argv, add_arguments)
  paths = [str(v) for v in vars(known).values() if isinstance(v, str)]
  return known, beam_options(pipeline, beam_args, paths, save_main_session)


def _beam_option_parser() -> argparse.ArgumentParser:
  """One parser holding every Beam pipeline option (each PipelineOptions subclass's flags)."""
  from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

  # Beam's own parser class (value-provider flags); a malformed value raises ArgumentError
  parser = _BeamArgumentParser(add_help=False, allow_abbrev=False, exit_on_error=False)
  seen, pending = set(), list(PipelineOptions.__subclasses__())
  while pending:
    cls = pending.pop()
    if cls in seen:
      continue
    seen.add(cls)
    pending.extend(cls.__subclasses__())
    try:
      cls._add_argparse_args(parser)  # noqa: SLF001 - Beam's own hook, as PipelineOptions uses it
    except argparse.ArgumentError:
      continue  # a flag two subclasses both declare (Beam merges them the same way)
  return parser


def _flags(parser: argparse.ArgumentParser) -> List[str]:
  return [flag for action in parser._actions for flag in action.option_strings]  # noqa: SLF001


def reject_unknown_flags(parser: argparse.ArgumentParser, beam_args: Sequence[str]) -> None:
  """Exit status 2 (argparse's usage error) when a flag is neither the pipeline's nor Beam's,
  naming the closest known flag; Beam's own options pass through untouched."""
  beam = _beam_option_parser()
  try:
    _, unknown = beam.parse_known_args(list(beam_args))
  except argparse.ArgumentError as error:  # a Beam option without its value, or a bad one
    parser.error(f'{error} (see --help)')
  for token in unknown:
    if not token.startswith('-'):
      continue
    flag = token.split('=', 1)[0]
    close = difflib.get_close_matches(flag, _flags(parser) + _flags(beam), n=1)
    parser.error(f'unknown flag {flag}' + (f'; did you mean {close[0]}?' if close else '')
                 + ' (see --help)')


DIRECT_RUNNERS = ('directrunner', 'switchingdirectrunner')  # Beam's own names for it, lower case


def is_direct_runner(runner) -> bool:
  """True for the DirectRunner under any name Beam accepts for it (``DirectRunner``, ``direct``,
  its dotted path, ...) and when no runner is given (Beam's default)."""
  if runner is None:
    return True
  if not isinstance(runner, str):
    return False
  name = runner.rsplit('.', 1)[-1].lower()
  return name in DIRECT_RUNNERS or f'{name}runner' in DIRECT_RUNNERS


def new_pipeline(options):
  """A ``beam.Pipeline`` on ``options``; the DirectRunner (the default) runs as
  ``batch_runner.DirectBatchRunner``: the FnApiRunner at once, without Beam's Prism attempt."""
  import apache_beam as beam
  from apache_beam.options.pipeline_options import StandardOptions

  if is_direct_runner(options.view_as(StandardOptions).runner):
    from beam_pipelines import batch_runner  # imports Beam's runners: only when they are used
    return beam.Pipeline(runner=batch_runner.DirectBatchRunner(), options=options)
  return beam.Pipeline(options=options)


def is_dry_run(options) -> bool:
  """True when Beam's ``--dry_run True`` asks only to build the (Dataflow) job."""
  from apache_beam.options.pipeline_options import TestOptions
  return bool(options.view_as(TestOptions).dry_run)


def run_to_completion(pipeline, options, name: str):
  """Runs ``pipeline`` and waits for it; returns its result.

  With ``--dry_run True`` (Beam's TestOptions) DataflowRunner only translates the pipeline into a
  job (``result.job``) and submits nothing: this says so, and callers check ``is_dry_run`` before
  reading any output, since nothing was written.
  """
  result = pipeline.run()
  if is_dry_run(options):
    job = getattr(result, 'job', None)
    job_name = getattr(getattr(job, 'proto', None), 'name', None) or 'the job'
    progress(f'{name}: --dry_run: Dataflow job {job_name} built, not submitted; nothing written')
  else:
    with ticking(name, 'Beam pipeline running') as line:
      result.wait_until_finish()
    if line.elapsed >= LONG_RUN_SECONDS:
      progress(f'{name}: Beam pipeline finished ({line.elapsed:.1f}s)')
  return result
