"""A step's peak memory: the kernel's high-water mark, reset at the step's start."""

from __future__ import annotations

import sys

import pytest

from beam_pipelines.store import memory

pytestmark = pytest.mark.skipif(not sys.platform.startswith('linux'), reason='/proc is Linux')


def test_the_peak_covers_what_was_held_since_the_reset_and_no_earlier():
  assert memory.reset_peak()
  block = bytearray(300 * 2 ** 20)  # touched: zero-filled pages are resident
  block[::4096] = b'\x01' * len(block[::4096])
  held = memory.peak_rss_bytes()
  del block
  assert memory.reset_peak()
  after = memory.peak_rss_bytes()
  assert held is not None and after is not None
  assert held - after >= 250 * 2 ** 20
