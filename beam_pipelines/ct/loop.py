"""The continuous-training runs: each new data span -> features -> validation -> training ->
evaluation against the production model -> blessing -> registry push (``production`` moves only if
blessed); and the level-2 check of ``invoke test`` (``check``).

Triggers: a span not trained on yet (``new_span``), ``--force``, a stopped or failed span whose
schema, spec or code changed since (``changed``); drift above the spec's thresholds against the
previous span is recorded as a trigger (``drift``). With no trigger it says so and does nothing.
Anomalies, or a spec column missing from any file of the training window, stop the run with the
validation report's path; production is unchanged. A span stopped, failed or NOT_BLESSED is
refused: in no later training window and no drift baseline until a person re-admits it
(``readmit``). Every run writes a lineage record and a run record (``ct.runs``); unchanged steps are reused from the step cache
(``--no_cache`` forces them). The bucket layout is ``beam_pipelines.ct.paths``.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import secrets
from typing import Dict, List, Optional, Sequence, Tuple

from beam_pipelines import predict
from beam_pipelines.ct import lineage, registry, runs, steps
from beam_pipelines.ct.cache import CACHED, StepCache
from beam_pipelines.ct.definition import (
  ON_DRIFT_BLOCK,
  RETRAIN_EVERY_SPAN,
  PipelineDefinition,
  declared_pipelines,
  load_definition,
)
from beam_pipelines.ct.outcomes import (
  CHECK_ANOMALOUS,
  FAILED,
  NO_TRIGGER,
  NOT_BLESSED,
  PUSHED,
  READMITTED,
  REFUSED,
  REGISTERED,
  RERUN_ON_CHANGE,
  STOPPED,
  TRIGGER_CHANGED,
  TRIGGER_DRIFT,
  TRIGGER_FORCE,
  TRIGGER_NEW,
  CheckSummary,
  PipelineCheck,
  SpanOutcome,
  combined_decision,
)
from beam_pipelines.ct.paths import (
  CACHE,
  CHECK_FILE,
  CHECKS_FILE,
  LINEAGE_FILE,
  SPAN_FILES,
  CtPaths,
)
from beam_pipelines.ct.records import (
  BlessingSummary,
  HoldoutModel,
  HoldoutRecord,
  JudgementSummary,
  Readmission,
  SpanRecord,
  VersionRecord,
)
from beam_pipelines.ml import artifacts
from beam_pipelines.ml.csv_io import match_files
from beam_pipelines.ml.results import ModelRef, PredictionResult, Verdict
from beam_pipelines.store import bucket, layout
from beam_pipelines.store.console import number, progress
from beam_pipelines.store.crash import crash_point
from beam_pipelines.store.errors import Refusal
from beam_pipelines.store.identity import actor
from beam_pipelines.store.lock import BucketLock
from beam_pipelines.store.typed_json import from_json, to_json
from beam_pipelines.tracking import openlineage_events


class CtError(Refusal):
  """Continuous training cannot go on (no span, bad data); the message says what to do."""


@dataclasses.dataclass(frozen=True)
class CtOptions:
  """How a continuous-training run behaves (the ``ct`` command's flags)."""
  env: str = layout.PROD
  pipeline: Optional[str] = None  # a declared pipeline's name or a pipeline.yaml (default: taxi)
  use_cache: bool = True  # reuse the outputs of steps whose inputs are unchanged
  push: bool = True  # a blessed model moves ``production`` (else only ``candidate``)
  predict: bool = False  # then batch inference of the span with the production model
  build_id: Optional[str] = None  # the deployed build running this (lineage)
  wheel_sha256: Optional[str] = None  # its wheel's sha256 (lineage)
  beam_args: Tuple[str, ...] = ()  # Beam options of the pipeline steps (runner, Dataflow flags)


def new_run_id() -> str:
  return f'{datetime.datetime.now(datetime.timezone.utc):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}'


def _is_folder(span: str) -> bool:
  """Whether ``span`` names a folder: a local directory, or an object-store prefix with objects."""
  if bucket.is_local(span):
    return os.path.isdir(span)
  return not span.endswith('.csv') and bool(bucket.list_files(span))


def span_pattern(span: str) -> str:
  """A span's CSV files as a pattern: a folder's ``*.csv`` or a file, each literal whatever its
  name holds (``[``, ``?``, ``*``); a path that names neither is a glob as given."""
  if _is_folder(span):
    return layout.join(bucket.escape_pattern(span.rstrip('/')), SPAN_FILES)
  if span.endswith('.csv') and bucket.exists(span):
    return bucket.escape_pattern(span)
  if any(c in span for c in '*?[') or span.endswith('.csv'):
    return span
  return layout.join(span, SPAN_FILES)


def span_files(span: str) -> List[str]:
  """The CSV files of a span; a symbolic link in a local span is refused, never followed."""
  pattern = span_pattern(span)
  try:
    files = match_files(pattern)
  except FileNotFoundError:
    raise CtError(f'span {span}: no CSV file matches {pattern}') from None
  if bucket.is_local(span):
    links = [p for p in [span.rstrip('/')] + files if os.path.islink(p)]
    if links:
      raise CtError(f'span {span}: {links[0]} is a symbolic link: a span\'s files are read as '
                    f'they are, never through links. Replace it by a copy of the file or remove '
                    f'it. Nothing was run.')
  return files


def landed_spans(paths: CtPaths) -> List[str]:
  """Span directories of the landing area (those holding CSV files), sorted by name."""
  return sorted({f.rsplit('/', 1)[0] for f in bucket.list_tree(paths.landing)
                 if f.endswith('.csv') and not bucket.is_temp_name(f.rsplit('/', 1)[-1])})


def read_span_record(path: str) -> SpanRecord:
  """The one reader of a span record (``spans/<sha256>.json``)."""
  return from_json(SpanRecord, bucket.read_json(path, 'span record'), path)


def processed_spans(paths: CtPaths) -> List[SpanRecord]:
  """Records of processed spans, in the order they were processed."""
  records = [read_span_record(p) for p in bucket.list_files(paths.spans) if p.endswith('.json')]
  return sorted(records, key=lambda r: (r.at, r.run_id or ''))


def accepted(record: SpanRecord) -> bool:
  """Whether a span may train and be a drift baseline: not refused, or re-admitted."""
  return record.readmitted is not None or record.outcome not in REFUSED


def latest_records(records: Sequence[SpanRecord]) -> Dict[str, SpanRecord]:
  """Span name -> its latest record (``records`` in the order they were processed)."""
  return {r.span.rstrip('/'): r for r in records}


def chronological_previous(records: Sequence[SpanRecord], span: str,
                           sha256: str) -> Optional[SpanRecord]:
  """The record of the span just before ``span`` in time (span names sort chronologically) that
  was accepted and has statistics: the drift baseline. Not the last one processed: spans may land
  out of order. A refused span (stopped, failed, NOT_BLESSED) is never a baseline."""
  earlier = latest_records([r for r in records if r.sha256 != sha256 and r.span.rstrip('/') < span])
  usable = {name: r for name, r in earlier.items() if r.statistics and accepted(r)}
  return usable[max(usable)] if usable else None


def changes(record: SpanRecord, current: Dict[str, Optional[str]]) -> List[str]:
  """What differs (schema, spec, code) between what decided ``record`` and ``current``; a record
  of an older build, without that fingerprint, differs in all three."""
  if record.code_fingerprint is None:
    return list(FINGERPRINT)
  return [name for name, key in FINGERPRINT.items() if getattr(record, key) != current[key]]


FINGERPRINT = {'schema': 'schema_sha256', 'spec': 'spec_fingerprint', 'code': 'code_fingerprint'}


def window_spans(landed: Sequence[str], span: str, window: int) -> List[str]:
  """The spans a model is trained on: ``span`` and the ``window - 1`` of ``landed`` before it in
  time (the caller passes the accepted spans only)."""
  earlier = sorted(s for s in landed if s < span)
  return earlier[max(0, len(earlier) - (window - 1)):] + [span] if window > 1 else [span]


class ContinuousTraining:
  """Continuous training of one declared pipeline in one environment of a bucket."""

  def __init__(self, bucket_url: str, options: CtOptions = CtOptions()):
    self.bucket_url = bucket_url
    self.options = options
    self.definition = load_definition(options.pipeline)
    self.paths = CtPaths(bucket_url, self.definition.name, options.env)
    self.registry = registry.Registry(self.paths.registry)
    self.cache = StepCache(self.paths.cache, enabled=options.use_cache)
    self.push, self.predict = options.push, options.predict
    self.code = lineage.code_identity(options.build_id, options.wheel_sha256)

  @property
  def schema(self) -> str:
    """The reviewed schema of the pipeline's folder, else the one inferred on first use."""
    return self.definition.schema_path or self.paths.schema

  def run(self, spans: Optional[Sequence[str]] = None, force: bool = False) -> List[SpanOutcome]:
    """Processes the given spans, else every landed span not processed yet, oldest first."""
    with BucketLock(self.paths.lock, 'continuous training run',
                    guards=f'continuous training of {self.paths.root}'):
      for root in (self.paths.root, self.registry.root):
        bucket.remove_stale_temps(root, 'ct')
      if spans is None:
        spans = self.pending()
        if not spans:
          progress(f'ct: no trigger: the landing area {self.paths.landing} holds no span; '
                   f'nothing to do')
          return [SpanOutcome(NO_TRIGGER, None)]
      return [self.run_span(span, force) for span in spans]

  def fingerprint(self) -> Dict[str, Optional[str]]:
    """What decides a span besides its data: the schema file's sha256, the spec, the code."""
    schema = self.schema
    return {'schema_sha256': bucket.sha256_of(schema) if bucket.exists(schema) else None,
            'spec_fingerprint': self.definition.parameters()['spec_fingerprint'],
            'code_fingerprint': self.code['fingerprint']}

  def pending(self) -> List[str]:
    """The landed spans to process: those with no record, and those stopped or failed under
    another schema, spec or code; else the last landed (to say there is nothing to do)."""
    landed = landed_spans(self.paths)
    latest = latest_records(processed_spans(self.paths))
    current, pending = self.fingerprint(), []
    for span in landed:
      record = latest.get(span)
      if record is None or self._rerun(record, current):
        pending.append(span)
      elif record.outcome == FAILED and record.readmitted is None:
        progress(f'ct: skipping span {span}: it failed in run {record.run_id} ({record.error}) '
                 f'under the same schema, spec and code; `--span {span} --force` retries it, '
                 f'`--readmit {span}` accepts it as it is')
    return pending or landed[-1:]

  @staticmethod
  def _rerun(record: SpanRecord, current: Dict[str, Optional[str]]) -> List[str]:
    """What changed since a stopped or failed span was decided (empty: nothing, or another
    outcome, or re-admitted)."""
    if record.outcome not in RERUN_ON_CHANGE or record.readmitted is not None:
      return []
    return changes(record, current)

  def _window(self, span: str) -> List[str]:
    """The training window of ``span``: it and the accepted spans before it (refused ones left
    out, saying so)."""
    latest = latest_records(processed_spans(self.paths))
    landed = landed_spans(self.paths)
    window = window_spans([s for s in landed if s in latest and accepted(latest[s])], span,
                          self.definition.window)
    if self.definition.window > 1:
      start = window[0] if len(window) == self.definition.window else ''
      left_out = [f'{s} ({latest[s].outcome})' for s in landed
                  if start <= s < span and s in latest and not accepted(latest[s])]
      if left_out:
        progress(f'ct: training window leaves out refused span(s) {", ".join(left_out)} '
                 f'(`--readmit SPAN` re-admits one)')
    return window

  def run_span(self, span: str, force: bool = False) -> SpanOutcome:
    """One run on one span (see the module docstring); returns its outcome."""
    span_entries = lineage.file_entries(span_files(span))
    sha256 = lineage.data_sha256(span_entries)
    record_path = self.paths.span_record(sha256)
    seen = read_span_record(record_path) if bucket.exists(record_path) else None
    changed = self._rerun(seen, self.fingerprint()) if seen and not force else []
    if seen and not force and not changed:
      progress(f'ct: no trigger: span {span} (sha256 {sha256[:12]}) was processed by run '
               f'{seen.run_id} ({seen.outcome}); nothing to do (--force retrains)')
      return SpanOutcome(NO_TRIGGER, span, sha256=sha256, run_id=seen.run_id)
    if changed:
      progress(f'ct: span {span} {seen.outcome if seen else ""} in run '
               f'{seen.run_id if seen else ""} under another {", ".join(changed)}: running it '
               f'again')
    window = self._window(span.rstrip('/'))
    earlier = lineage.file_entries([f for s in window[:-1] for f in span_files(s)])
    entries = sorted(earlier + span_entries, key=lambda entry: entry['path'])
    trigger = (([] if seen else [TRIGGER_NEW]) + ([TRIGGER_CHANGED] if changed else [])
               + ([TRIGGER_FORCE] if force else []))
    run_id = new_run_id()
    lineage_path = layout.join(self.paths.run(run_id), LINEAGE_FILE)
    progress(f'ct: {self.definition.name}: run {run_id}: span {span} (sha256 {sha256[:12]}, '
             f'training window {len(window)} span(s), {len(entries)} file(s)); '
             f'new data: {", ".join(trigger) or "none"}')
    run = lineage.RunRecord(
        lineage_path, run_id=run_id, trigger=trigger, code=self.code,
        data={'span': span, 'window': window, 'files': entries,
              'sha256': lineage.data_sha256(entries), 'span_sha256': sha256},
        parameters=dict(self.definition.parameters(), push=self.push,
                        cache=self.cache.enabled, predict=self.predict),
        listeners=openlineage_events.listeners(self.definition, self.registry))
    try:
      outcome = self._train_span(run, span, window, sha256, record_path, force)
    except Exception as error:
      message = f'{type(error).__name__}: {error}'
      run.finish(FAILED, error=message)
      self._record_failed(record_path, SpanOutcome(FAILED, span, sha256=sha256, run_id=run_id,
                                                   lineage=run.path), message)
      self._record_run(run)
      raise
    self._record_run(run)
    return outcome

  def _record_run(self, run: lineage.RunRecord) -> None:
    """The run's record in the format every run shares (``ct.runs``), from its lineage; one
    that cannot be written is said, never put in place of the run's outcome."""
    try:
      runs.record_ct_run(run.record, self.definition.name, run.path,
                         runs.ranking_metric(self.definition.blessing_config))
    except Exception as recording:  # noqa: BLE001 - the lineage record stays the source
      progress(f'ct: could not write the run record of {run.record["run_id"]}: '
               f'{type(recording).__name__}: {recording}')

  def _record_failed(self, path: str, outcome: SpanOutcome, error: str) -> None:
    """Records a span whose run raised (later runs skip it); a record that cannot be written is
    said, never put in place of the run's own error."""
    try:
      self._record_span(path, outcome, FAILED, None, error=error)
      progress(f'ct: span {outcome.span} recorded as failed: later runs skip it until the schema, '
               f'spec or code changes (`--span {outcome.span} --force` retries it now)')
    except Exception as recording:  # noqa: BLE001 - the run's error is the one to raise
      progress(f'ct: could not record span {outcome.span} as failed: '
               f'{type(recording).__name__}: {recording}')

  def readmit(self, span: str, reason: str = '') -> SpanOutcome:
    """Re-admits a refused span (stopped, failed, NOT_BLESSED) into later training windows and
    drift baselines, without retraining; recorded in its span record and a lineage record."""
    with BucketLock(self.paths.lock, 'continuous training readmit',
                    guards=f'continuous training of {self.paths.root}'):
      record = self._record_of(span)
      if accepted(record):
        why = 'already re-admitted' if record.readmitted else record.outcome
        progress(f'ct: span {record.span} is {why}: it is in training windows already; nothing '
                 f'to do')
        return SpanOutcome(NO_TRIGGER, record.span, sha256=record.sha256, run_id=record.run_id)
      run_id = new_run_id()
      run = lineage.RunRecord(
          layout.join(self.paths.run(run_id), LINEAGE_FILE), run_id=run_id, trigger=[READMITTED],
          code=self.code, data={'span': record.span, 'window': [], 'files': [],
                                'sha256': record.sha256, 'span_sha256': record.sha256},
          parameters={'readmitted_outcome': record.outcome, 'decided_by_run': record.run_id})
      readmission = Readmission(actor(), layout.now_utc(), reason.strip(), run.path)
      run.finish(READMITTED, reason=reason.strip() or f're-admitted by {readmission.by}')
      bucket.write_json(self.paths.span_record(record.sha256),
                        to_json(dataclasses.replace(record, readmitted=readmission)))
      progress(f'ct: span {record.span} ({record.outcome} in run {record.run_id}) re-admitted by '
               f'{readmission.by}: later training windows and drift baselines include it; '
               f'nothing retrained; lineage {run.path}')
      return SpanOutcome(READMITTED, record.span, sha256=record.sha256, run_id=run_id,
                         lineage=run.path)

  def _record_of(self, span: str) -> SpanRecord:
    """The latest record of a span given as its directory or its name (``span-2026-11-03``)."""
    name = span.rstrip('/')
    found = {s: r for s, r in latest_records(processed_spans(self.paths)).items()
             if name in (s, s.rsplit('/', 1)[-1])}
    if not found:
      raise CtError(f'span {span}: ct has no record of it in {self.paths.spans}: nothing to '
                    f're-admit (run `ct` on it first)')
    if len(found) > 1:
      raise CtError(f'span {span} names several spans ({", ".join(sorted(found))}): give its '
                    f'directory')
    return next(iter(found.values()))

  def _baseline(self) -> Optional[steps.Baseline]:
    if self.registry.aliases().get(registry.PRODUCTION) is None:
      return None
    directory, record = self.registry.verified_dir(registry.PRODUCTION)
    progress(f'ct: baseline: production model v{record["version"]} (sha256 verified; '
             f'registered auc {number(record.get("metrics", {}).get("auc"))})')
    return steps.Baseline(directory, record['model_sha256'],
                          self.registry.record_path(record['version']), record['version'])

  def _train_if(self, run: lineage.RunRecord, force: bool, first_model: bool):
    """The policy as a predicate on validation's verdict: train or stop after validation."""
    policy = self.definition.policy

    def decide(verdict: Verdict) -> bool:
      drift = verdict.drifted
      if drift:
        run.record['trigger'].append(TRIGGER_DRIFT)
        progress(f'ct: drift above threshold in {", ".join(verdict.drifted_features)} against '
                 f'the previous span: {verdict.message}')
      if drift and policy.on_drift == ON_DRIFT_BLOCK:
        return False
      if force or first_model or policy.retrain == RETRAIN_EVERY_SPAN:
        return True
      return drift  # retrain on drift only
    return decide

  def _train_span(self, run: lineage.RunRecord, span: str, window: List[str], sha256: str,
                  record_path: str, force: bool) -> SpanOutcome:
    previous = chronological_previous(processed_spans(self.paths), span.rstrip('/'), sha256)
    if previous:
      progress(f'ct: drift baseline: span {previous.span} (the one before it in time)')
    baseline = self._baseline()

    def on_step(done: steps.StepRun) -> None:
      reused = ' (inputs unchanged: outputs reused)' if done.status == CACHED else ''
      peak = (f' (peak RSS {done.peak_rss_bytes / 2 ** 30:.2f} GiB)'
              if done.peak_rss_bytes is not None else '')
      progress(f'ct: step {done.name}: {done.status}{reused}{peak}  -> {done.directory}')
      extra: Dict[str, object] = {}
      summary = steps.describe(done.result)
      if done.name == steps.FORWARD and baseline is not None:
        extra['model_version'] = baseline.version
        summary = steps.describe_forward(done.result, baseline.version, span_name(span))
      elif done.name == steps.HOLDOUT:
        extra['judged'] = steps.holdout_judged(self.definition)
      if done.peak_rss_bytes is not None:
        extra['peak_rss_bytes'] = done.peak_rss_bytes
      run.step(done.name, done.status, outputs=done.directory, summary=summary[:300],
               result=to_json(done.result), started_at=done.started_at, **extra)

    hooks = steps.Announced(on_step, run.started)  # each step's start told to run's listeners

    def forward_evaluation(verdict: Verdict) -> None:
      if baseline is not None:
        self._forward(run, span, sha256, baseline, hooks)

    holdout = self.definition.integration_path
    done = steps.run_steps(
        self.definition, [span_pattern(s) for s in window], run.record['data']['sha256'],
        self.code['fingerprint'], self.cache, hooks, baseline=baseline, schema=self.schema,
        previous=previous.statistics if previous else None,
        train_if=self._train_if(run, force, baseline is None), beam_args=self.options.beam_args,
        after_validation=forward_evaluation, registered_on_holdout=bool(holdout))
    verdict = done.validation.result
    report = verdict.report or layout.join(done.validation.directory, artifacts.REPORT_FILE)
    statistics = verdict.statistics.get(artifacts.TRAIN)
    outcome = SpanOutcome(NO_TRIGGER, span, sha256=sha256, run_id=run.record['run_id'],
                          lineage=run.path, verdict=verdict.status)
    for warning in verdict.warnings:
      progress(f'ct: warning: {warning.feature} ({warning.split}): {warning.description}')
    missing = ((missing_columns(done.features.directory) or f'column(s) '
                f'{", ".join(verdict.missing_columns)} missing from a file of the window')
               if verdict.missing_columns else '')
    if verdict.anomalous or missing or (verdict.drifted
                                        and self.definition.policy.on_drift == ON_DRIFT_BLOCK):
      why = ('a column missing from a file of the training window' if missing
             else 'anomalies' if verdict.anomalous
             else 'drift above threshold (policy on_drift: block)')
      message = '; '.join(m for m in (missing, verdict.message) if m)
      progress(f'ct: STOPPED at validation ({why}): {message}; report: '
               f'{report}; production unchanged')
      run.finish(STOPPED, report=report, reason=why)
      self._record_span(record_path, outcome, STOPPED, None)
      return dataclasses.replace(outcome, outcome=STOPPED, report=report)
    if done.training is None or done.evaluation is None:
      progress(f'ct: no trigger: span {span} validated ({verdict.status}), no drift above '
               f'threshold, and the policy retrains on drift only; production unchanged')
      run.finish(NO_TRIGGER)
      self._record_span(record_path, outcome, NO_TRIGGER, statistics)
      return outcome
    evaluation = done.evaluation.result
    trained = done.training.result
    scored = self._holdout(holdout, trained, baseline, hooks) if holdout else None
    decision = self._decision(evaluation, scored[0] if scored else None)
    record, created = self.registry.push(
        done.training.directory, trained.model_sha256, metrics=evaluation.metrics,
        run_id=run.record['run_id'], lineage=run.path, blessing=decision,
        **({'holdout': self._holdout_record(scored, baseline, run)} if scored else {}))
    # data, code, parameters: in the run's lineage record, which the version refers to (its one
    # source)
    version = record['version']
    crash_point('ct-registered')
    if scored:
      self._record_holdouts(version, created, scored, baseline, run)
    progress(f'ct: model {"registered as" if created else "already registered:"} v{version} '
             f'({decision["status"]}): {decision["message"]}')
    status = NOT_BLESSED
    if decision['status'] == artifacts.BLESSED:
      moves = {registry.CANDIDATE: version}
      if self.push and not self._newer_in_production(span, version):
        moves[registry.PRODUCTION] = version
      event = self.registry.move(moves, registry.EVENT_PUSH, decision['message'],
                                 run_id=run.record['run_id'])
      status = PUSHED if registry.PRODUCTION in moves else REGISTERED
      if event:
        progress(f'ct: aliases moved: {registry.describe_moves(event["moves"])}')
    run.step('push', status, version=version, created=created)
    if self.predict:
      self._predict(run, span)
    failed = decision.get('failed') or []
    run.finish(status, model={'version': version, 'sha256': record['model_sha256'],
                              'blessing': decision['status']},
               reason=(f'not blessed by the {" and the ".join(f.replace("_", " ") for f in failed)}'
                       f' judgement: {decision["message"]}') if failed else None)
    self._record_span(record_path, outcome, status, statistics, version)
    return dataclasses.replace(outcome, outcome=status, version=version,
                               blessing=decision['status'],
                               production=self.registry.aliases().get(registry.PRODUCTION))

  def _forward(self, run: lineage.RunRecord, span: str, sha256: str, production: steps.Baseline,
               on_step: steps.StepHook) -> None:
    """Production's forward evaluation on the new span, before training: recorded in the
    lineage (step ``forward_evaluation``); data that cannot be scored (a column production reads
    is missing, rows that do not reconcile) is recorded as skipped, never fails the run."""
    started = lineage.step_time()
    try:
      done = steps.forward_evaluation(span_pattern(span), sha256, production,
                                      self.code['fingerprint'], self.cache, on_step,
                                      self.options.beam_args)
    except Refusal as error:
      why = f'production v{production.version} cannot score span {span_name(span)}: {error}'
      progress(f'ct: forward evaluation skipped: {why}')
      run.step(steps.FORWARD, 'skipped', summary=why[:300], model_version=production.version,
               started_at=started)
      return
    progress(f'ct: {steps.describe_forward(done.result, production.version, span_name(span))}')

  def _holdout(self, holdout: str, trained, production: Optional[steps.Baseline],
               on_step: steps.StepHook) -> Tuple[steps.StepRun, str]:
    """The candidate (and production) on the pipeline's fixed holdout: its integration CSV."""
    sha256 = lineage.data_sha256(lineage.file_entries(span_files(holdout)))
    done = steps.holdout_evaluation(
        self.definition, span_pattern(holdout), sha256, trained,
        production, self.code['fingerprint'], self.cache, on_step, self.options.beam_args)
    result = done.result
    against = (f' vs production v{production.version} AUC '
               f'{number((result.baseline_metrics or {}).get("auc"))}' if production else '')
    progress(f'ct: holdout {holdout}: candidate AUC {number(result.metrics.get("auc"))}{against} '
             f'on the same {result.rows_scored or 0:,} labelled rows'
             + (f': {result.status}' if steps.holdout_judged(self.definition) else ''))
    return done, sha256

  def _decision(self, evaluation, holdout: Optional[steps.StepRun]) -> BlessingSummary:
    """The blessing of a CT run: the eval split's judgement and, with a judged holdout, the
    holdout's; BLESSED only when each is."""
    decision = BlessingSummary(status=evaluation.status, message=evaluation.message,
                               rubber_stamped=evaluation.rubber_stamped)
    if holdout is None or not steps.holdout_judged(self.definition):
      return decision
    status, message, failed = combined_decision({
        'eval_split': (evaluation.status, evaluation.message),
        'holdout': (holdout.result.status, holdout.result.message)})
    return BlessingSummary(
        status=status, message=message,
        rubber_stamped=evaluation.rubber_stamped and holdout.result.rubber_stamped,
        eval_split=JudgementSummary(status=evaluation.status, message=evaluation.message),
        holdout=JudgementSummary(status=holdout.result.status, message=holdout.result.message),
        failed=failed)

  @staticmethod
  def _holdout_record(scored: Tuple[steps.StepRun, str], production: Optional[steps.Baseline],
                      run: lineage.RunRecord) -> HoldoutRecord:
    """The candidate's holdout metrics for its version record (production's beside them)."""
    holdout, sha256 = scored
    result = holdout.result
    record = HoldoutRecord(sha256=sha256, rows=result.rows_scored or 0,
                           metrics=result.metrics, evaluation=holdout.directory,
                           run_id=run.record['run_id'])
    if production is not None:
      record['production'] = HoldoutModel(version=production.version,
                                          metrics=result.baseline_metrics or {})
    if result.auc_comparison is not None:
      record['comparison'] = to_json(result.auc_comparison)
    return record

  def _record_holdouts(self, version: int, created: bool, scored: Tuple[steps.StepRun, str],
                       production: Optional[steps.Baseline], run: lineage.RunRecord) -> None:
    """Holdout metrics on the version records: the candidate's when it was registered before
    (the same model), production's when its record lacks this holdout's."""
    if not created:
      self.registry.record_holdout(version, self._holdout_record(scored, production, run))
    if production is not None and production.version is not None \
        and production.version != version:
      holdout, sha256 = scored
      result = holdout.result
      self.registry.record_holdout(production.version, HoldoutRecord(
          sha256=sha256, rows=result.rows_scored or 0,
          metrics=result.baseline_metrics or {}, evaluation=holdout.directory,
          run_id=run.record['run_id']))

  def _newer_in_production(self, span: str, version: int) -> bool:
    """Whether production serves a model of a span newer than ``span`` (then it stays: a run on
    an older span, e.g. ``--force``, never moves production back; says how to promote)."""
    live = self.registry.aliases().get(registry.PRODUCTION)
    if live is None or live == version:
      return False
    trained_on = production_span(self.registry.record(live))
    if not trained_on or span_name(span) >= span_name(trained_on):
      return False
    progress(f'ct: span {span_name(span)} is older than span {span_name(trained_on)}, which '
             f'production v{live} was trained on: production stays v{live}; v{version} is '
             f'candidate (`invoke model-promote --version {version} --reason "<why>"` serves it)')
    return True

  def _predict(self, run: lineage.RunRecord, span: str) -> None:
    directory, record = self.registry.verified_dir(registry.PRODUCTION)
    output = layout.join(run.path.rsplit('/', 1)[0], 'predictions')
    result = predict.predict(span_pattern(span), ModelRef(directory, record['model_sha256']),
                             output, beam_args=self.options.beam_args)
    written = result.predictions_written if isinstance(result, PredictionResult) else 0
    run.step('predict', 'ran', outputs=output, model_version=record['version'],
             summary=f'{written:,} predictions')

  def _record_span(self, path: str, outcome: SpanOutcome, status: str,
                   statistics: Optional[str], version: Optional[int] = None,
                   error: Optional[str] = None) -> None:
    if outcome.span is None or outcome.sha256 is None:
      raise CtError(f'no span record without a span and its sha256 ({path})')
    current = self.fingerprint()
    bucket.write_json(path, to_json(SpanRecord(
        outcome.span, outcome.sha256, run_id=outcome.run_id, verdict=outcome.verdict,
        outcome=status, statistics=statistics, version=version, at=layout.now_utc(),
        error=error, schema_sha256=current['schema_sha256'],
        spec_fingerprint=current['spec_fingerprint'],
        code_fingerprint=current['code_fingerprint'])))


def span_name(span: str) -> str:
  """A span's name, the last part of its directory (names sort chronologically)."""
  return span.rstrip('/').rsplit('/', 1)[-1]


def production_span(record: VersionRecord) -> Optional[str]:
  """The span a registered version was trained on, from its run's lineage record (or the copy
  an older version carries)."""
  data = record.get('data')
  if not data and record.get('lineage') and bucket.exists(record['lineage']):
    data = bucket.read_json(record['lineage'], 'lineage record').get('data')
  return data.get('span') if data else None


def missing_columns(features_dir: str) -> str:
  """Which file of a training window lacks which spec column (from the features summary), as a
  sentence; empty when every file has every column."""
  files = artifacts.read_summary(features_dir).get('files', [])
  return '; '.join(f'column(s) {", ".join(f["missing_columns"])} missing from {f["source"]}'
                   for f in files if f['missing_columns'])


def check(definition: PipelineDefinition, output: str, baseline: Optional[steps.Baseline],
          cache_dir: Optional[str], beam_args: Sequence[str] = ()) -> PipelineCheck:
  """The level-2 ML check of one declared pipeline: this build's pipeline on its integration
  data, against a baseline (or none: rubber stamp). Writes ``<output>/ml_check.json``."""
  if not definition.integration_path:
    raise CtError(f'pipeline {definition.name} ({definition.path}) names no "integration" CSV: '
                  f'the level-2 check of `invoke test` needs one')
  entries = lineage.file_entries(span_files(definition.integration_path))
  data_sha256 = lineage.data_sha256(entries)
  code = lineage.code_identity()
  progress(f'ct check: {definition.name}: {len(entries)} file(s) of '
           f'{definition.integration_path}; baseline '
           f'{baseline.model_dir if baseline else "none (rubber stamp)"}')
  done = steps.run_steps(
      definition, [definition.integration_path], data_sha256, code['fingerprint'],
      StepCache(cache_dir or layout.join(output, CACHE)),
      lambda done: progress(
          f'ct check: {definition.name}: step {done.name}: {done.status} -> {done.directory}'),
      baseline=baseline, schema=definition.schema_path, beam_args=beam_args)
  if done.training and done.evaluation:
    evaluation = done.evaluation.result
    result = PipelineCheck(
        evaluation.status, evaluation.message, data_sha256, metrics=evaluation.metrics,
        baseline_metrics=evaluation.baseline_metrics, baseline=evaluation.baseline,
        model_dir=done.training.directory, model_sha256=done.training.result.model_sha256)
  else:
    verdict = done.validation.result
    result = PipelineCheck(CHECK_ANOMALOUS, verdict.message, data_sha256, report=verdict.report)
  bucket.write_json(layout.join(output, CHECK_FILE), {
      **to_json(result), 'pipeline': definition.name, 'input': definition.integration_path,
      'data': entries, 'code': code, 'parameters': definition.parameters(),
      'steps': {s.name: {'status': s.status, 'directory': s.directory,
                         'result': to_json(s.result)} for s in done}})
  progress(f'ct check: {definition.name}: {result.message}; '
           f'{layout.join(output, CHECK_FILE)}')
  return result


def check_all(output: str, baselines: Dict[str, steps.Baseline], cache_dir: Optional[str],
              names: Optional[Sequence[str]] = None,
              beam_args: Sequence[str] = ()) -> CheckSummary:
  """The level-2 check of every pipeline this build declares (or of ``names``): one
  ``<output>/<pipeline>/ml_check.json`` each and a summary ``<output>/ml_checks.json``."""
  results = {}
  for name in names or declared_pipelines():
    definition = load_definition(name)
    results[definition.name] = check(
        definition, layout.join(output, definition.name), baselines.get(definition.name),
        layout.join(cache_dir, definition.name) if cache_dir else None, beam_args)
  summary = CheckSummary(results)
  bucket.write_json(layout.join(output, CHECKS_FILE), to_json(summary))
  return summary
