"""Rollback targets over a history of moves: shared by prod deploys and the model registry."""

from __future__ import annotations

from typing import Optional, Sequence, TypeVar

T = TypeVar('T')


def previous_target(made_live: Sequence[T], live: T) -> Optional[T]:
  """What was live before ``live`` was last made live, from the targets of the forward moves
  (deploys, pushes, promotions; rollbacks not counted), oldest first. None when there is none."""
  made = list(made_live)
  if live in made:
    index = len(made) - 1 - made[::-1].index(live)
    earlier = [t for t in made[:index] if t != live]
  else:
    earlier = [t for t in made if t != live]
  return earlier[-1] if earlier else None
