"""Process-level helpers shared by every pipeline's entry point: quiet start-up, progress lines."""

from __future__ import annotations

import logging
import os
import sys
import warnings


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
