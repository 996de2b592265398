"""What continuous training did: the record ``ct`` returns and prints for each span, and the
level-2 check of ``invoke test`` (``ml_checks.json``, read by the harness's ``ml_model`` check).

Nothing here imports Beam: the harness reads these records without loading the pipelines."""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Tuple

from beam_pipelines.ml.results import Number
from beam_pipelines.store import bucket
from beam_pipelines.store.typed_json import from_json

TRIGGER_NEW, TRIGGER_DRIFT, TRIGGER_FORCE = 'new_span', 'drift', 'force'
TRIGGER_CHANGED = 'changed'  # a stopped/failed span re-run after a schema, spec or code change
PUSHED, REGISTERED, NOT_BLESSED, STOPPED, NO_TRIGGER = (
    'pushed', 'registered', 'not_blessed', 'stopped', 'no_trigger')
FAILED, READMITTED = 'failed', 'readmitted'
REFUSED = (STOPPED, FAILED, NOT_BLESSED)  # out of training windows and drift baselines
RERUN_ON_CHANGE = (STOPPED, FAILED)  # run again once the schema, spec or code changed
CHECKED = 'checked'  # the level-2 check of `invoke test` evaluated a model (nothing pushed)


BLESSED_STATUS, NOT_BLESSED_STATUS = 'BLESSED', 'NOT_BLESSED'


def combined_decision(judged: Dict[str, Tuple[str, str]]) -> Tuple[str, str, List[str]]:
  """The blessing of a CT run from each judgement's (status, message), in order (the eval split,
  then the fixed holdout): (BLESSED only when each is, the message naming the failed judgements,
  or every one when none failed, the failed judgements' names)."""
  failed = [name for name, (status, _) in judged.items() if status != BLESSED_STATUS]
  status = NOT_BLESSED_STATUS if failed else BLESSED_STATUS
  message = '; '.join(f'{name.replace("_", " ")}: {text}' for name, (_, text) in judged.items()
                      if not failed or name in failed)
  return status, f'{status}: {message}', failed


@dataclasses.dataclass(frozen=True)
class SpanOutcome:
  """One span's outcome: pushed, registered (``--no_push``), not_blessed, stopped, no_trigger or
  readmitted (``--readmit``)."""
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


CHECK_ANOMALOUS = 'ANOMALOUS'  # a check whose integration data stopped at validation


@dataclasses.dataclass(frozen=True)
class PipelineCheck:
  """The level-2 check of one pipeline: its model BLESSED or NOT_BLESSED against the baseline,
  or ANOMALOUS when its integration data stopped at validation (one entry of ``ml_checks.json``;
  ``ml_check.json`` beside it adds the data, code, parameters and steps)."""
  status: str  # artifacts.BLESSED | artifacts.NOT_BLESSED | CHECK_ANOMALOUS
  message: str
  data_sha256: str
  metrics: Optional[Dict[str, Number]] = None
  baseline_metrics: Optional[Dict[str, Number]] = None
  baseline: Optional[str] = None
  model_dir: Optional[str] = None
  model_sha256: Optional[str] = None
  report: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class CheckSummary:
  """``ml_checks.json``: the level-2 check of every pipeline a build declares."""
  pipelines: Dict[str, PipelineCheck]


def read_checks(path: str) -> CheckSummary:
  """The one reader of ``ml_checks.json``."""
  return from_json(CheckSummary, bucket.read_json(path, 'ML check results'), path)
