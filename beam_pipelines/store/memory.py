"""This process's peak resident memory over a stretch of work (Linux ``/proc``).

``reset_peak()`` zeroes the kernel's high-water mark (``VmHWM``, by writing 5 to
``/proc/self/clear_refs``); ``peak_rss_bytes()`` reads it. Together they give the peak of one step
of a long process (a continuous-training run runs its steps in one process). Elsewhere, or where
the reset is not allowed, both say so (False / None) rather than report the process's lifetime
peak as a step's. The reset restarts ``getrusage``'s ``ru_maxrss`` too, but that one also keeps
the high-water mark of the image before exec (the copy of the parent that forked), which no
reset lowers: a process started by a large one (a benchmark that generated its data in memory)
reports the parent's resident set as its own peak. ``VmHWM`` is this image's alone.
"""

from __future__ import annotations

from typing import Optional

_STATUS = '/proc/self/status'
_CLEAR_REFS = '/proc/self/clear_refs'


def reset_peak() -> bool:
  """Starts a new peak from the current resident set; False when this system cannot."""
  try:
    with open(_CLEAR_REFS, 'w') as handle:
      handle.write('5')
  except OSError:
    return False
  return True


def peak_rss_bytes() -> Optional[int]:
  """The peak resident set since the last ``reset_peak()`` (or the process start), in bytes."""
  try:
    with open(_STATUS) as handle:
      for line in handle:
        if line.startswith('VmHWM:'):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  return None
