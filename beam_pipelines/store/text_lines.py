"""Lines of text files, bounded: what every reader of user files checks before use.

A line longer than the record limit (``$BEAM_PIPELINES_MAX_RECORD_BYTES``, default 1 MiB) comes
out as an ``OversizedLine`` holding only its start, so memory and time stay bounded whatever the
input (a 50 MB file without a newline is a runaway file, not a record). The CSV readers and the
word count share this; it needs neither pandas nor NumPy, so a word-count install (Beam alone)
has it.
"""

from __future__ import annotations

import codecs
import dataclasses
import os
import re
from typing import Iterator, List, Optional, Sequence, Set, Union

from beam_pipelines.store.errors import NoInputError, Refusal

MAX_RECORD_ENV_VAR = 'BEAM_PIPELINES_MAX_RECORD_BYTES'  # longest line read, default 1 MiB
DEFAULT_MAX_RECORD = 1 << 20
PREVIEW_CHARS = 200  # of an oversized line, in its dead letter and messages

Patterns = Union[str, Sequence[str]]  # one glob, or several (e.g. the spans of a window)


def patterns_of(file_pattern: Patterns) -> List[str]:
  return [file_pattern] if isinstance(file_pattern, str) else list(file_pattern)


def match_files(file_pattern: Patterns) -> List[str]:
  """Paths matching a pattern or patterns (local or any Beam filesystem), sorted, each once;
  raises naming the first pattern that matches nothing."""
  from apache_beam.io.filesystems import FileSystems  # imports apache_beam (~2 s): only when used
  paths: Set[str] = set()
  for pattern in patterns_of(file_pattern):
    metadata = FileSystems.match([pattern])[0].metadata_list
    if not metadata:
      raise NoInputError(f'no file matches {pattern}')
    paths.update(m.path for m in metadata)
  return sorted(paths)


class SettingError(Refusal):
  """An environment variable holding a value it cannot have; the message names it."""


def max_record_chars() -> int:
  """The longest line a reader accepts: $BEAM_PIPELINES_MAX_RECORD_BYTES, else 1 MiB; any other
  value than a whole number >= 1 is refused in one line naming the variable."""
  value = os.environ.get(MAX_RECORD_ENV_VAR)
  if value is None or value == '':
    return DEFAULT_MAX_RECORD
  if not re.fullmatch(r'[0-9]{1,12}', value) or int(value) < 1:
    raise SettingError(f'${MAX_RECORD_ENV_VAR} is {value!r}: expected a whole number of '
                      f'characters >= 1 (unset: {DEFAULT_MAX_RECORD}). Nothing was read.')
  return int(value)


@dataclasses.dataclass
class OversizedLine:
  """A line longer than the maximum: only its start is kept; the rest was read and dropped."""
  preview: str
  size: int
  limit: int


class RecordTooLarge(Exception):
  def __init__(self, line: OversizedLine):
    super().__init__(f'record of {line.size} characters exceeds the maximum of {line.limit} '
                     f'(${MAX_RECORD_ENV_VAR})')
    self.line = line


def bounded_lines(binary, max_line: Optional[int] = None,
                  chunk_size: int = 1 << 20) -> Iterator[Union[str, OversizedLine]]:
  """Lines (with their '\n') of a binary stream decoded as UTF-8; a byte-order mark is dropped.

  Bad bytes survive as surrogates (errors='surrogateescape') and dead-letter their row. A line
  longer than ``max_line`` characters (default ``max_record_chars()``) comes out as an
  ``OversizedLine``: memory and time stay bounded whatever the input.
  """
  max_line = max_line or max_record_chars()
  decoder = codecs.getincrementaldecoder('utf-8')(errors='surrogateescape')
  rest = ''
  skipping: Optional[OversizedLine] = None
  first = True
  while True:
    chunk = binary.read(chunk_size)
    text = decoder.decode(chunk, final=not chunk)
    if first and text:
      text, first = text[1:] if text.startswith('\ufeff') else text, False
    pieces = text.split('\n')
    last = pieces.pop()
    for piece in pieces:
      if skipping is not None:
        skipping.size += len(piece) + 1
        yield skipping
        skipping = None
        continue
      line, rest = rest + piece, ''
      if len(line) > max_line:
        yield OversizedLine(line[:PREVIEW_CHARS], len(line) + 1, max_line)
      else:
        yield line + '\n'
    if skipping is not None:
      skipping.size += len(last)
    else:
      rest += last
      if len(rest) > max_line:
        skipping, rest = OversizedLine(rest[:PREVIEW_CHARS], len(rest), max_line), ''
    if not chunk:
      break
  if skipping is not None:
    yield skipping
  elif rest:
    yield rest
