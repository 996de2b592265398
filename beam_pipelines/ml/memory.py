"""Will a fit fit? The memory a training run needs, estimated before it loads, and what is free.

``fit_bytes(rows, columns, encoded)`` is the peak a training process adds above its imports
(about 0.3 GiB): ``rows x (BYTES_PER_COLUMN x columns read + BYTES_PER_ENCODED_COLUMN x encoded
columns)``. Columns read: the features and the label. Encoded columns: the width of the matrix
the classifier gets, one per numeric feature and one per value of each categorical feature
(one-hot; a missing value is a value). The constants come from the peak RSS of ``train.fit`` in a
fresh process above its RSS after imports, the slope between two sizes (fixed costs cancel), on
2 cores with scikit-learn 1.9 (both kinds of column cost about 16 bytes a row; rounded up by a
quarter):

| data (columns read, encoded) | logistic | gbt (10 iterations) | ``fit_bytes`` a row |
|---|---|---|---|
| taxi: 8 columns, 15 encoded | 364 B/row (250k -> 2M rows) | 351 B/row (250k -> 1M) | 460 B |
| taxi with 100 companies: 8 columns, 111 encoded | 1,910 B/row (250k -> 500k) | 1,892 B/row (250k -> 500k) | 2,380 B |

A stratified sample (``ml.sampling``) costs about 60 MiB more than the same rows read whole (2M
rows down to 1M: 701 MiB peak RSS against 645 MiB; down to 250k: 461 against 398), whatever the
split's size: the fit, not the reading, is the peak.

``available()`` is what the operating system says is free for this process: ``MemAvailable`` of
``/proc/meminfo`` (what can be allocated without swapping), and, inside a container, no more than
its cgroup's limit less its usage (the page cache it could drop excepted), since a container is
killed at its limit whatever the machine has free; ``os.sysconf`` elsewhere; None when unknown.
"""

from __future__ import annotations

import os
from typing import Optional

BYTES_PER_COLUMN = 20  # per row and column read: the frame and its typed copy (8 bytes each), ...
BYTES_PER_ENCODED_COLUMN = 20  # per row and encoded column: the float64 matrix and a copy
_NO_LIMIT = 1 << 60  # a cgroup "limit" this large is none


def bytes_per_row(columns: int, encoded: int) -> int:
  """The peak bytes a row adds to a fit (module docstring)."""
  return BYTES_PER_COLUMN * columns + BYTES_PER_ENCODED_COLUMN * encoded


def fit_bytes(rows: int, columns: int, encoded: int) -> int:
  """The memory a fit of ``rows`` rows needs above the process's imports (module docstring)."""
  return rows * bytes_per_row(columns, encoded)


def _read_number(path: str) -> Optional[int]:
  try:
    with open(path, encoding='ascii') as handle:
      text = handle.read().strip()
  except (OSError, UnicodeDecodeError):
    return None
  return int(text) if text.isdigit() else None


def _stat(path: str, key: str) -> int:
  try:
    with open(path, encoding='ascii') as handle:
      for line in handle:
        name, _, value = line.partition(' ')
        if name == key and value.strip().isdigit():
          return int(value)
  except (OSError, UnicodeDecodeError):
    pass
  return 0


def _meminfo_available(meminfo: str) -> Optional[int]:
  try:
    with open(meminfo, encoding='ascii') as handle:
      for line in handle:
        if line.startswith('MemAvailable:'):
          return int(line.split()[1]) * 1024
  except (OSError, UnicodeDecodeError, ValueError, IndexError):
    pass
  try:
    return os.sysconf('SC_AVPHYS_PAGES') * os.sysconf('SC_PAGE_SIZE')
  except (ValueError, OSError, AttributeError):
    return None


def _cgroup_headroom(cgroup: str) -> Optional[int]:
  """The container's limit less its usage (less the inactive page cache), or None: no limit."""
  for folder, limit_file, usage_file, inactive in (
      (cgroup, 'memory.max', 'memory.current', 'inactive_file'),  # cgroup v2
      (f'{cgroup}/memory', 'memory.limit_in_bytes', 'memory.usage_in_bytes',
       'total_inactive_file')):  # cgroup v1
    limit = _read_number(f'{folder}/{limit_file}')
    usage = _read_number(f'{folder}/{usage_file}')
    if limit is not None and usage is not None and limit < _NO_LIMIT:
      return max(limit - max(usage - _stat(f'{folder}/memory.stat', inactive), 0), 0)
  return None


def available(meminfo: str = '/proc/meminfo', cgroup: str = '/sys/fs/cgroup') -> Optional[int]:
  """Bytes this process can still allocate (module docstring); None when unknown. The paths are
  where Linux has the files."""
  free, headroom = _meminfo_available(meminfo), _cgroup_headroom(cgroup)
  if free is None:
    return headroom
  return free if headroom is None else min(free, headroom)


def gib(size: int) -> str:
  """Bytes for people: ``1.2 GiB``, below 1 GiB ``310 MiB`` (``0.4 MiB`` below 1 MiB)."""
  if size >= 1 << 30:
    return f'{size / (1 << 30):.1f} GiB'
  value = size / (1 << 20)
  return f'{value:.0f} MiB' if value >= 1 else f'{value:.1f} MiB'
