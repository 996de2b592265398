"""Shared fixtures: repository paths, and helpers to read a pipeline's output shards back."""

from __future__ import annotations

import glob
import pathlib
from typing import List

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
SUPPORT_FILES = REPO / 'build' / 'support-files'


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
