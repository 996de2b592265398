"""The JSON records of continuous training, typed: what a run's lineage, a registry version, an
alias move and a span record hold (docs/continuous-training.md describes each file).

Each has one writer and one reader: the lineage record ``ct.lineage.RunRecord`` (``lineage.json``
of a run), a registry version and an alias move ``ct.registry.Registry`` (``version.json``,
``aliases.json``, ``history/``), a span record ``ct.loop`` (``spans/<sha256>.json``). Keys that a
record of an older build may lack are in the ``total=False`` parts.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, TypedDict

from beam_pipelines.ml.results import Number


class FileEntry(TypedDict):
  """A data file of a span: where, its sha256 and its size."""
  path: str
  sha256: str
  size: int


class _CodeKeys(TypedDict):
  version: str
  fingerprint: str  # sha256 of the package's files: the code part of every cache key
  source: str  # deployed-wheel | source-tree


class CodeIdentity(_CodeKeys, total=False):
  """Which code ran: a deployed wheel (build id, wheel sha256) or a source tree (git commit)."""
  build_id: Optional[str]
  wheel_sha256: Optional[str]
  git_commit: Optional[str]
  git_dirty: Optional[bool]


class RunData(TypedDict):
  """The data a run trained on: the span, its training window and every file's sha256."""
  span: str
  window: List[str]
  files: List[FileEntry]
  sha256: str  # of the whole window
  span_sha256: str


class StepEntry(TypedDict, total=False):
  """One step of a run in its lineage: status, outputs, a line for people and its result."""
  status: str
  outputs: str
  summary: str
  result: Dict[str, object]  # the step's typed result as JSON (``ml.results``)
  version: int  # push: the registry version
  created: bool
  model_version: int  # predict, forward_evaluation: the production version that scored
  started_at: str  # when the step started (ran, or was looked up in the step cache)
  finished_at: str  # when it was recorded
  judged: bool  # holdout_evaluation: its blessing judged registered_change (else only scored)
  peak_rss_bytes: int  # this process's peak resident memory while the step ran (Linux; absent
  # when the step was reused or the system cannot tell)


class ModelEntry(TypedDict):
  """The model a run registered."""
  version: int
  sha256: str
  blessing: str


class _LineageKeys(TypedDict):
  run_id: str
  started_at: str
  status: str  # running | pushed | registered | not_blessed | stopped | no_trigger | failed
  steps: Dict[str, StepEntry]


class LineageDocument(_LineageKeys, total=False):
  """``lineage.json`` of a run."""
  trigger: List[str]
  code: CodeIdentity
  data: RunData
  parameters: Dict[str, object]  # the pipeline definition's parameters, as recorded
  finished_at: str
  model: ModelEntry
  report: str  # stopped: the validation report
  reason: str
  error: str  # failed: the exception


class _BlessingKeys(TypedDict):
  status: str  # BLESSED | NOT_BLESSED
  message: str
  rubber_stamped: bool


class JudgementSummary(TypedDict):
  """One judgement of a continuous-training decision: the eval split's or the holdout's."""
  status: str  # BLESSED | NOT_BLESSED
  message: str


class BlessingSummary(_BlessingKeys, total=False):
  """A version's blessing, as its evaluation judged it; in continuous training with a holdout,
  BLESSED only when both the eval split's and the holdout's judgements are, ``failed`` naming
  those that are not (``eval_split``, ``holdout``)."""
  eval_split: JudgementSummary
  holdout: JudgementSummary
  failed: List[str]


class HoldoutModel(TypedDict):
  """Production's scores on the same holdout rows as the candidate's."""
  version: Optional[int]
  metrics: Dict[str, Number]


class _HoldoutKeys(TypedDict):
  sha256: str  # of the holdout's files (``lineage.data_sha256``): the same rows for every version
  rows: int  # labelled rows scored
  metrics: Dict[str, Number]
  evaluation: str  # the holdout evaluation's directory


class HoldoutRecord(_HoldoutKeys, total=False):
  """A version's metrics on its pipeline's fixed holdout (the integration CSV)."""
  run_id: Optional[str]
  production: HoldoutModel  # the candidate's record: production on the same rows, that run
  comparison: Dict[str, object]  # the paired AUC comparison (``artifacts.AucComparison``)


class EvaluationEntry(TypedDict, total=False):
  """One evaluation of a registered version: the run that made it, when, and its blessing."""
  run_id: Optional[str]
  lineage: Optional[str]
  at: str
  blessing: BlessingSummary
  metrics: Dict[str, Number]


class _VersionKeys(TypedDict):
  version: int
  model_sha256: str
  files: Dict[str, str]  # file name -> sha256
  source: str  # the directory it was registered from
  registered_at: str


class VersionRecord(_VersionKeys, total=False):
  """``versions/<n>/version.json`` of the registry: the model, its metrics and blessing, and the
  run that made it; the data, code and parameters are in that run's lineage record, which the
  version refers to (``lineage``) rather than copies. Versions registered before that carry
  copies in ``data``, ``code`` and ``parameters``. ``blessing`` is the latest evaluation's; when
  a later run re-evaluated the same model bytes to another blessing, ``evaluations`` lists every
  evaluation, oldest first (``metrics``, ``run_id`` and ``lineage`` stay the registering run's)."""
  metrics: Dict[str, Number]
  blessing: BlessingSummary
  evaluations: List[EvaluationEntry]
  holdout: HoldoutRecord  # its metrics on the pipeline's fixed holdout (same rows every version)
  run_id: str
  lineage: str  # the run's lineage.json: the one source of the data, code and parameters
  data: RunData
  code: CodeIdentity
  parameters: Dict[str, object]


class _EventKeys(TypedDict):
  event_id: str
  event: str  # push | promote | rollback
  at: str
  by: str
  reason: str
  aliases: Dict[str, int]  # the aliases after the move
  moves: Dict[str, Dict[str, Optional[int]]]  # alias -> {"from": n or None, "to": n}


class AliasEvent(_EventKeys, total=False):
  """An alias move of the registry (``history/<event_id>.json``, and in ``aliases.json``)."""
  run_id: str
  blessing_override: str
  recovered: bool


@dataclasses.dataclass(frozen=True)
class Readmission:
  """A person's decision that a refused span may train and be a drift baseline again."""
  by: str
  at: str
  reason: str = ''
  lineage: Optional[str] = None  # the lineage record of the re-admission


@dataclasses.dataclass(frozen=True)
class SpanRecord:
  """``spans/<sha256>.json``: what continuous training did with a span (the last run on it).

  A span ``stopped``, ``failed`` or ``not_blessed`` is refused: in no later training window and
  no drift baseline, unless ``readmitted``. The fingerprint of what decided it (schema, spec,
  code) lets a stopped or failed span run again by itself once one of them changes; records of
  older builds lack it (None)."""
  span: str
  sha256: str
  run_id: Optional[str] = None
  verdict: Optional[str] = None  # validation's status
  outcome: Optional[str] = None  # pushed | registered | not_blessed | stopped | no_trigger | failed
  statistics: Optional[str] = None  # its train statistics: the drift baseline of the next span
  version: Optional[int] = None  # the registry version of its model
  at: str = ''
  error: Optional[str] = None  # failed: the exception, type and message
  schema_sha256: Optional[str] = None  # the schema file validation used
  spec_fingerprint: Optional[str] = None
  code_fingerprint: Optional[str] = None
  readmitted: Optional[Readmission] = None
