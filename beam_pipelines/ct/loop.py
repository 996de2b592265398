"""The continuous-training runs: each new data span -> features -> validation -> training ->
evaluation against the production model -> blessing -> registry push (``production`` moves only if
blessed); and the level-2 check of ``invoke test`` (``check``).

Triggers: a span not trained on yet (``new_span``), ``--force``; drift above the spec's thresholds
against the previous span is recorded as a trigger (``drift``). With no trigger it says so and does
nothing. Anomalies stop the run with the validation report's path; production is unchanged. Every
run writes a lineage record; unchanged steps are reused from the step cache (``--no_cache``
forces them). The bucket layout is ``beam_pipelines.ct.paths``.
"""

from __future__ import annotations

import dataclasses
import datetime
import secrets
from typing import Any, Dict, List, Optional, Sequence, Tuple

from beam_pipelines import predict
from beam_pipelines.ct import lineage, registry, steps
from beam_pipelines.ct.cache import StepCache
from beam_pipelines.ct.definition import load_definition
from beam_pipelines.ct.outcomes import (
  NO_TRIGGER,
  NOT_BLESSED,
  PUSHED,
  REGISTERED,
  STOPPED,
  TRIGGER_DRIFT,
  TRIGGER_FORCE,
  TRIGGER_NEW,
  SpanOutcome,
)
from beam_pipelines.ct.paths import (
  CACHE,
  CHECK_FILE,
  LINEAGE_FILE,
  SPAN_FILES,
  CtPaths,
  model_registry,
)
from beam_pipelines.ml import artifacts
from beam_pipelines.ml.csv_io import match_files
from beam_pipelines.store import bucket, layout
from beam_pipelines.store.console import progress
from beam_pipelines.store.crash import crash_point
from beam_pipelines.store.errors import Refusal
from beam_pipelines.store.lock import BucketLock


class CtError(Refusal):
  """Continuous training cannot go on (no span, bad data); the message says what to do."""


@dataclasses.dataclass(frozen=True)
class CtOptions:
  """How a continuous-training run behaves (the ``ct`` command's flags)."""
  env: str = layout.PROD
  definition_path: Optional[str] = None  # the CT pipeline definition (default: the bundled one)
  use_cache: bool = True  # reuse the outputs of steps whose inputs are unchanged
  push: bool = True  # a blessed model moves ``production`` (else only ``candidate``)
  predict: bool = False  # then batch inference of the span with the production model
  build_id: Optional[str] = None  # the deployed build running this (lineage)
  wheel_sha256: Optional[str] = None  # its wheel's sha256 (lineage)
  beam_args: Tuple[str, ...] = ()  # Beam options of the pipeline steps (runner, Dataflow flags)


def new_run_id() -> str:
  return f'{datetime.datetime.now(datetime.timezone.utc):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}'


def span_pattern(span: str) -> str:
  """A span's CSV files as a pattern: a directory's ``*.csv``, or a file/glob as given."""
  if any(c in span for c in '*?[') or span.endswith('.csv'):
    return span
  return layout.join(span, SPAN_FILES)


def span_files(span: str) -> List[str]:
  pattern = span_pattern(span)
  try:
    return match_files(pattern)
  except FileNotFoundError:
    raise CtError(f'span {span}: no CSV file matches {pattern}') from None


def landed_spans(paths: CtPaths) -> List[str]:
  """Span directories of the landing area (those holding CSV files), sorted by name."""
  return sorted({f.rsplit('/', 1)[0] for f in bucket.list_tree(paths.landing)
                 if f.endswith('.csv') and '.tmp-' not in f})


def processed_spans(paths: CtPaths) -> List[Dict[str, Any]]:
  """Records of processed spans, oldest first."""
  records = [bucket.read_json(p, 'span record') for p in bucket.list_files(paths.spans)
             if p.endswith('.json')]
  return sorted(records, key=lambda r: (r.get('at', ''), r.get('run_id', '')))


class ContinuousTraining:
  """One bucket environment's continuous training, with the pipeline definition of this build."""

  def __init__(self, bucket_url: str, options: CtOptions = CtOptions()):
    self.bucket_url = bucket_url
    self.options = options
    self.paths = CtPaths(bucket_url, options.env)
    self.definition = load_definition(options.definition_path)
    self.registry = model_registry(bucket_url, options.env, options.definition_path)
    self.cache = StepCache(self.paths.cache, enabled=options.use_cache)
    self.push, self.predict = options.push, options.predict
    self.code = lineage.code_identity(options.build_id, options.wheel_sha256)

  def run(self, spans: Optional[Sequence[str]] = None, force: bool = False) -> List[SpanOutcome]:
    """Processes the given spans, else every landed span not processed yet, oldest first."""
    with BucketLock(self.paths.lock, 'continuous training run',
                    guards=f'continuous training of {self.paths.env.root}'):
      if spans is None:
        done = {r['span'] for r in processed_spans(self.paths)}
        landed = landed_spans(self.paths)
        spans = [s for s in landed if s not in done] or landed[-1:]
        if not spans:
          progress(f'ct: no trigger: the landing area {self.paths.landing} holds no span; '
                   f'nothing to do')
          return [SpanOutcome(NO_TRIGGER, None)]
      return [self.run_span(span, force) for span in spans]

  def run_span(self, span: str, force: bool = False) -> SpanOutcome:
    """One run on one span (see the module docstring); returns its outcome."""
    entries = lineage.file_entries(span_files(span))
    sha256 = lineage.data_sha256(entries)
    record_path = self.paths.span_record(sha256)
    seen = bucket.read_json(record_path, 'span record') if bucket.exists(record_path) else None
    if seen and not force:
      progress(f'ct: no trigger: span {span} (sha256 {sha256[:12]}) was processed by run '
               f'{seen["run_id"]} ({seen["outcome"]}); nothing to do (--force retrains)')
      return SpanOutcome(NO_TRIGGER, span, sha256=sha256, run_id=seen['run_id'])
    trigger = ([] if seen else [TRIGGER_NEW]) + ([TRIGGER_FORCE] if force else [])
    run_id = new_run_id()
    lineage_path = layout.join(self.paths.run(run_id), LINEAGE_FILE)
    progress(f'ct: run {run_id}: span {span} (sha256 {sha256[:12]}, {len(entries)} file(s)); '
             f'trigger {", ".join(trigger)}')
    run = lineage.RunRecord(
        lineage_path, run_id=run_id, trigger=trigger, code=self.code,
        data={'span': span, 'files': entries, 'sha256': sha256},
        parameters=dict(self.definition.parameters(), push=self.push,
                        cache=self.cache.enabled, predict=self.predict))
    try:
      return self._train_span(run, span, sha256, record_path)
    except Exception as error:
      run.finish('failed', error=f'{type(error).__name__}: {error}')
      raise

  def _train_span(self, run: lineage.RunRecord, span: str, sha256: str,
                  record_path: str) -> SpanOutcome:
    previous = [r for r in processed_spans(self.paths)
                if r.get('statistics') and r['sha256'] != sha256]
    previous_statistics = previous[-1]['statistics'] if previous else None
    production = None
    if self.registry.aliases().get(registry.PRODUCTION) is not None:
      directory, record = self.registry.verified_dir(registry.PRODUCTION)
      production = (directory, record['model_sha256'])
      progress(f'ct: baseline: production model v{record["version"]} (sha256 verified)')

    def on_step(name, status, directory, result):
      summary = result.get('message') or result.get('model_sha256') or ''
      progress(f'ct: step {name}: {status}{" (inputs unchanged: outputs reused)" if status == "cached" else ""}'
               f'  -> {directory}')
      run.step(name, status, outputs=directory, summary=str(summary)[:300], result=result)

    done = steps.run_steps(self.definition, span_pattern(span), sha256, self.code['fingerprint'],
                           self.cache, on_step, baseline=production, schema=self.paths.schema,
                           previous=previous_statistics, beam_args=self.options.beam_args)
    verdict = done[steps.VALIDATION].result
    outcome = SpanOutcome(NO_TRIGGER, span, sha256=sha256, run_id=run.record['run_id'],
                          lineage=run.path, verdict=verdict['status'])
    if verdict['status'] == artifacts.VERDICT_DRIFT:
      run.record['trigger'].append(TRIGGER_DRIFT)
      progress(f'ct: drift above threshold in {verdict["drifted_features"]}: trigger recorded')
    if verdict['status'] == artifacts.VERDICT_ANOMALOUS:
      progress(f'ct: STOPPED at validation: {verdict["message"]}; report: {verdict["report"]}; '
               f'production unchanged')
      run.finish(STOPPED, report=verdict['report'])
      self._record_span(record_path, outcome, STOPPED, None)
      return dataclasses.replace(outcome, outcome=STOPPED, report=verdict['report'])
    evaluation = done[steps.EVALUATION].result
    model_dir = done[steps.TRAINING].directory
    record, created = self.registry.push(
        model_dir, metrics=evaluation['metrics'], run_id=run.record['run_id'], lineage=run.path,
        blessing={k: evaluation[k] for k in ('status', 'message', 'rubber_stamped')},
        data=run.record['data'], code=self.code, parameters=run.record['parameters'])
    version = record['version']
    crash_point('ct-registered')
    progress(f'ct: model {"registered as" if created else "already registered:"} v{version} '
             f'({evaluation["status"]}): {evaluation["message"]}')
    status = NOT_BLESSED
    if evaluation['status'] == artifacts.BLESSED:
      moves = {registry.CANDIDATE: version}
      if self.push:
        moves[registry.PRODUCTION] = version
      event = self.registry.move(moves, registry.EVENT_PUSH, evaluation['message'],
                                 run_id=run.record['run_id'])
      status = PUSHED if self.push else REGISTERED
      if event:
        progress(f'ct: aliases moved: {event["moves"]}')
    run.step('push', status, version=version, created=created)
    if self.predict:
      self._predict(run, span)
    run.finish(status, model={'version': version, 'sha256': record['model_sha256'],
                              'blessing': evaluation['status']})
    self._record_span(record_path, outcome, status, verdict['statistics'], version)
    return dataclasses.replace(outcome, outcome=status, version=version,
                               blessing=evaluation['status'],
                               production=self.registry.aliases().get(registry.PRODUCTION))

  def _predict(self, run: lineage.RunRecord, span: str) -> None:
    directory, record = self.registry.verified_dir(registry.PRODUCTION)
    output = layout.join(run.path.rsplit('/', 1)[0], 'predictions')
    summary = predict.run(['--input', span_pattern(span), '--model', directory,
                           '--model_sha256', record['model_sha256'], '--output', output])
    run.step('predict', 'ran', outputs=output, model_version=record['version'],
             summary=f'{summary["predictions_written"]} predictions')

  def _record_span(self, path: str, outcome: SpanOutcome, status: str,
                   statistics: Optional[str], version: Optional[int] = None) -> None:
    bucket.write_json(path, {'span': outcome.span, 'sha256': outcome.sha256,
                             'run_id': outcome.run_id, 'verdict': outcome.verdict,
                             'outcome': status, 'statistics': statistics, 'version': version,
                             'at': layout.now_utc()})


def check(input_pattern: str, output: str, baseline: Optional[str], baseline_sha256: Optional[str],
          cache_dir: Optional[str], definition_path: Optional[str] = None,
          beam_args: Sequence[str] = ()) -> Dict[str, Any]:
  """The level-2 ML check: this build's pipeline on the integration data, against a baseline."""
  definition = load_definition(definition_path)
  entries = lineage.file_entries(span_files(input_pattern))
  code = lineage.code_identity()
  progress(f'ct check: {len(entries)} file(s) of {input_pattern}; baseline '
           f'{baseline or "none (rubber stamp)"}')
  done = steps.run_steps(
      definition, input_pattern, lineage.data_sha256(entries), code['fingerprint'],
      StepCache(cache_dir or layout.join(output, CACHE)),
      lambda name, status, directory, _: progress(f'ct check: step {name}: {status} -> {directory}'),
      baseline=(baseline, baseline_sha256) if baseline else None, beam_args=beam_args)
  result = {'input': input_pattern, 'data': entries, 'data_sha256': lineage.data_sha256(entries),
            'code': code,
            'parameters': definition.parameters(),
            'steps': {n: {'status': s.status, 'directory': s.directory, 'result': s.result}
                      for n, s in done.items()}}
  verdict = done[steps.VALIDATION].result
  if steps.EVALUATION in done:
    evaluation = done[steps.EVALUATION].result
    result.update(status=evaluation['status'], message=evaluation['message'],
                  metrics=evaluation['metrics'], baseline_metrics=evaluation['baseline_metrics'],
                  baseline=evaluation['baseline'],
                  model_dir=done[steps.TRAINING].directory,
                  model_sha256=done[steps.TRAINING].result['model_sha256'])
  else:
    result.update(status='ANOMALOUS', message=verdict['message'], report=verdict['report'])
  bucket.write_json(layout.join(output, CHECK_FILE), result)
  progress(f'ct check: {result["status"]}: {result["message"]}; {layout.join(output, CHECK_FILE)}')
  return result
