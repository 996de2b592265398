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
