"""What a continuous-training run did with one span: the record ``ct`` returns and prints."""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional

TRIGGER_NEW, TRIGGER_DRIFT, TRIGGER_FORCE = 'new_span', 'drift', 'force'
PUSHED, REGISTERED, NOT_BLESSED, STOPPED, NO_TRIGGER = (
    'pushed', 'registered', 'not_blessed', 'stopped', 'no_trigger')
CHECKED = 'checked'  # the level-2 check of `invoke test` evaluated a model (nothing pushed)


@dataclasses.dataclass(frozen=True)
class SpanOutcome:
  """One span's outcome: pushed, registered (``--no_push``), not_blessed, stopped or no_trigger."""
  outcome: str
  span: Optional[str]
  sha256: Optional[str] = None
  run_id: Optional[str] = None
  lineage: Optional[str] = None
  verdict: Optional[str] = None  # validation's status: ok | drift | anomalous
  report: Optional[str] = None  # validation report, when stopped there
  version: Optional[int] = None  # registry version of the model
  blessing: Optional[str] = None  # BLESSED | NOT_BLESSED
  production: Optional[int] = None  # the production version after the run

  def to_dict(self) -> Dict[str, Any]:
    return dataclasses.asdict(self)
