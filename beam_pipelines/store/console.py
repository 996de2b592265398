"""Progress lines a user follows (what step, how many records), on stderr like logging, a live
line for long work (terminal only) that ends in a one-line summary with the time, and values
written for people (``number``, ``counts``), never as Python reprs."""

from __future__ import annotations

import contextlib
import math
import shutil
import sys
import threading
import time
from typing import Any, Iterator, List, Mapping, Optional, TextIO, Tuple

PREFIX = '[beam-pipelines]'
SPLIT_ORDER = ('train', 'eval')  # counts per split are read in this order


def number(value: Any, digits: int = 4) -> str:
  """A value as a person reads it: 1,234 / 0.9326 / yes / no / n/a; lists comma-joined, mappings
  as ``key value`` pairs (never a Python repr)."""
  if value is None:
    return 'n/a'
  if isinstance(value, bool):
    return 'yes' if value else 'no'
  if isinstance(value, int):
    return f'{value:,}'
  if isinstance(value, float):
    if math.isnan(value):
      return 'n/a'
    if value and abs(value) < 10 ** -digits:
      return f'{value:.1e}'
    return f'{value:.{digits}f}'
  if isinstance(value, (list, tuple)):
    return ', '.join(number(v, digits) for v in value) or 'none'
  if isinstance(value, Mapping):
    return ', '.join(f'{k} {number(v, digits)}' for k, v in value.items()) or 'none'
  return str(value)


def fields(value: Any, prefix: str = '') -> List[Tuple[str, str]]:
  """A nested record as ``(dotted.key, value for people)`` pairs, one per leaf, keys sorted."""
  if isinstance(value, Mapping) and value:
    return [pair for key, item in sorted(value.items(), key=lambda kv: str(kv[0]))
            for pair in fields(item, f'{prefix}.{key}' if prefix else str(key))]
  if isinstance(value, (list, tuple)) and any(isinstance(v, (Mapping, list, tuple)) for v in value):
    return [pair for i, item in enumerate(value, 1) for pair in fields(item, f'{prefix}.{i}')]
  return [(prefix, number(value))]


def counts(values: Any, unit: str) -> str:
  """``{'eval': 401, 'train': 1596}`` -> ``1,596 train + 401 eval rows``; a single count -> ``N rows``;
  with ``unit`` empty, the counts alone."""
  suffix = f' {unit}' if unit else ''
  if not isinstance(values, Mapping):
    return f'{number(values)}{suffix}'
  order = [k for k in SPLIT_ORDER if k in values] + sorted(k for k in values if k not in SPLIT_ORDER)
  return (' + '.join(f'{number(values[k])} {k}' for k in order) if order else '0') + suffix


def progress(message: str) -> None:
  """Prints one progress line; goes to stderr, flushed, so relayed runs show it at once."""
  print(f'{PREFIX} {message}', file=sys.stderr, flush=True)


def _terminal() -> Optional[TextIO]:
  """stderr when it is a terminal (live lines are drawn only there), else None."""
  stream = sys.stderr
  return stream if hasattr(stream, 'isatty') and stream.isatty() else None


class LiveLine:
  """One status line rewritten in place on a terminal (cut to its width), silent otherwise;
  ``finish`` prints one summary line with the elapsed time, terminal or not."""

  def __init__(self, label: str, stream: Optional[TextIO] = None, delay: float = 0.0):
    self.label = label
    self.started = time.monotonic()
    self._stream = stream if stream is not None else _terminal()
    self._delay = delay  # draw nothing before this many seconds (short runs stay quiet)
    self._text = ''
    self._lock = threading.Lock()

  @property
  def elapsed(self) -> float:
    return time.monotonic() - self.started

  def update(self, text: Optional[str] = None) -> None:
    """Redraws the line with ``text`` (or the last text) and the elapsed time."""
    with self._lock:
      if text is not None:
        self._text = text
      if self._stream is None or self.elapsed < self._delay:
        return
      width = shutil.get_terminal_size((80, 20)).columns - 1
      line = f'{PREFIX} {self.label}: {self._text} [{self.elapsed:.0f}s]'.replace('\n', ' ')
      self._stream.write('\r' + line[:width].ljust(width))
      self._stream.flush()

  def clear(self) -> None:
    with self._lock:
      if self._stream is not None and self.elapsed >= self._delay:
        width = shutil.get_terminal_size((80, 20)).columns - 1
        self._stream.write('\r' + ' ' * width + '\r')
        self._stream.flush()

  def finish(self, summary: Optional[str]) -> float:
    """Clears the live line and prints ``label: summary (N.Ns)``; None prints nothing."""
    self.clear()
    if summary is not None:
      progress(f'{self.label}: {summary} ({self.elapsed:.1f}s)')
    return self.elapsed


_ticking_depth = 0


@contextlib.contextmanager
def ticking(label: str, text: str = 'running', delay: float = 3.0,
            stream: Optional[TextIO] = None) -> Iterator[LiveLine]:
  """A live line showing the elapsed time while the block runs (drawn after ``delay`` seconds,
  on a terminal only); cleared at the end, leaving the caller to print its own summary."""
  global _ticking_depth
  line = LiveLine(label, stream, delay)
  if _ticking_depth:  # an outer live line is drawn already (a CT step around a Beam run)
    line._stream = None
  _ticking_depth += 1
  stop = threading.Event()

  def tick() -> None:
    while not stop.wait(0.5):
      line.update(text if not line._text else None)

  thread = threading.Thread(target=tick, daemon=True)
  thread.start()
  try:
    yield line
  finally:
    _ticking_depth -= 1
    stop.set()
    thread.join()
    line.finish(None)
