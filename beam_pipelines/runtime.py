"""Process-level helpers shared by every pipeline's entry point: quiet start-up, progress lines."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from typing import Callable


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


def progress(message: str) -> None:
  """Prints one progress line a user follows (step, records); goes to stderr like logging."""
  print(f'[beam-pipelines] {message}', file=sys.stderr, flush=True)


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


def is_dry_run(options) -> bool:
  """True when Beam's ``--dry_run True`` asks only to build the (Dataflow) job."""
  from apache_beam.options.pipeline_options import TestOptions
  return bool(options.view_as(TestOptions).dry_run)


def run_to_completion(pipeline, options, name: str):
  """Runs ``pipeline`` and waits for it; returns its result, or None when Beam only built the job.

  With ``--dry_run True`` (Beam's TestOptions) DataflowRunner translates the pipeline into a job
  and returns without submitting it: nothing is written, so callers return before reading outputs.
  """
  result = pipeline.run()
  if is_dry_run(options):
    job = getattr(result, 'job', None)
    job_name = getattr(getattr(job, 'proto', None), 'name', None) or 'the job'
    progress(f'{name}: --dry_run: Dataflow job {job_name} built, not submitted; nothing written')
    return None
  result.wait_until_finish()
  return result
