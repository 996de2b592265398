"""Shared fixtures: repository paths, and helpers to read a pipeline's output shards back."""

from __future__ import annotations

import glob
import pathlib
from typing import List

import pytest
from apache_beam.testing.test_pipeline import TestPipeline

from beam_pipelines.batch_runner import DirectBatchRunner

REPO = pathlib.Path(__file__).resolve().parent.parent
SUPPORT_FILES = REPO / 'build' / 'support-files'

# TestPipeline runs on the runner the pipelines' CLIs use for the DirectRunner (no Prism attempt).
TestPipeline.pytest_test_pipeline_options = (
    f'--runner={DirectBatchRunner.__module__}.{DirectBatchRunner.__name__}')


@pytest.fixture(scope='session')
def repo_root() -> pathlib.Path:
  return REPO


def read_shards(prefix: str) -> List[str]:
  """All lines of every shard written under ``prefix`` (``prefix-00000-of-0000N`` ...)."""
  lines: List[str] = []
  for shard in sorted(glob.glob(f'{prefix}-*')):
    with open(shard, encoding='utf-8') as handle:
      lines.extend(handle.read().splitlines())
  return lines
