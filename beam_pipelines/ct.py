"""Continuous training: each new data span -> features -> validation -> training -> evaluation
against the production model -> blessing -> registry push (``production`` moves only if blessed).

    python -m beam_pipelines.ct [--bucket URL] [--span DIR] [--force] [--no_cache] [--no_push]
        [--predict] [--pipeline YAML] [--build_id ID --wheel_sha256 SHA]
    python -m beam_pipelines.ct --demo [--bucket URL]   # spans 1-4 of the sample, ct on each
    python -m beam_pipelines.ct --check --input GLOB --output DIR [--baseline_model DIR
        --baseline_sha256 SHA] [--cache DIR]         # the level-2 ML check of `invoke test`

Triggers: a span not trained on yet (``new_span``), drift above the spec's thresholds against the
previous span (``drift``, from validation's verdict), ``--force``. With no trigger it says so and
does nothing. Anomalies stop the run with the validation report's path; production is unchanged.
Every run writes a lineage record; unchanged steps are reused from the step cache (``--no_cache``
forces them). Bucket layout (``CtPaths``), under the environment (``prod``)::

    <env>/inputs/ct/<span>/*.csv             the landing area: one directory per span
    <env>/ct/runs/<run_id>/lineage.json      lineage of each run (+ predictions/ with --predict)
    <env>/ct/spans/<span sha256>.json        processed spans: run, outcome, statistics, version
    <env>/ct/cache/<step>/<key>/             step outputs, done.json last
    <env>/ct/schema.pbtxt                    the curated schema (inferred on first use)
    <env>/ct/ct.lock                         one ct run at a time
    <env>/registry/<model>/                  the model registry (``beam_pipelines.ml.registry``)
"""

from __future__ import annotations

import argparse
import datetime
import logging
import pathlib
import secrets
import sys
from typing import Any, Dict, List, Optional, Sequence

from beam_pipelines.harness import bucket, layout
from beam_pipelines.harness.errors import HarnessError
from beam_pipelines.runtime import progress

CT_DIR, LANDING, REGISTRY_DIR = layout.CT, layout.CT, layout.REGISTRY
RUNS, SPANS, CACHE = 'runs', 'spans', 'cache'
SCHEMA_FILE, LOCK_FILE, LINEAGE_FILE, CHECK_FILE = ('schema.pbtxt', 'ct.lock', 'lineage.json',
                                                    'ml_check.json')
SPAN_FILES = '*.csv'
TRIGGER_NEW, TRIGGER_DRIFT, TRIGGER_FORCE = 'new_span', 'drift', 'force'
PUSHED, REGISTERED, NOT_BLESSED, STOPPED, NO_TRIGGER = (
    'pushed', 'registered', 'not_blessed', 'stopped', 'no_trigger')


class CtPaths:
  """Where continuous training reads and writes in one environment of a bucket."""

  def __init__(self, bucket_url: str, env: str = layout.PROD):
    self.env = layout.Env(bucket_url, env)
    self.landing = self.env.path(layout.INPUTS, LANDING)
    self.root = self.env.path(CT_DIR)
    self.cache = layout.join(self.root, CACHE)
    self.spans = layout.join(self.root, SPANS)
    self.schema = layout.join(self.root, SCHEMA_FILE)
    self.lock = layout.join(self.root, LOCK_FILE)  # read by DeployLock

  def run(self, run_id: str) -> str:
    return layout.join(self.root, RUNS, run_id)

  def span_record(self, sha256: str) -> str:
    return layout.join(self.spans, f'{sha256}.json')

  def registry(self, model: str) -> str:
    return self.env.path(REGISTRY_DIR, model)


def model_registry(bucket_url: str, env: str = layout.PROD, definition_path: Optional[str] = None):
  """The registry of the model the CT pipeline definition trains (named by its dataset spec)."""
  from beam_pipelines.ml import registry, steps
  from beam_pipelines.ml import spec as spec_lib
  definition = steps.load_definition(definition_path)
  return registry.Registry(CtPaths(bucket_url, env).registry(spec_lib.load(definition.spec_path).name))


def new_run_id() -> str:
  return f'{datetime.datetime.now(datetime.timezone.utc):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}'


def span_pattern(span: str) -> str:
  """A span's CSV files as a pattern: a directory's ``*.csv``, or a file/glob as given."""
  if any(c in span for c in '*?[') or span.endswith('.csv'):
    return span
  return layout.join(span, SPAN_FILES)


def span_files(span: str) -> List[str]:
  from beam_pipelines.ml.csv_io import match_files
  pattern = span_pattern(span)
  try:
    return match_files(pattern)
  except FileNotFoundError:
    raise HarnessError(f'span {span}: no CSV file matches {pattern}') from None


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

  def __init__(self, bucket_url: str, env: str = layout.PROD, definition_path: Optional[str] = None,
               use_cache: bool = True, push: bool = True, predict: bool = False,
               build_id: Optional[str] = None, wheel_sha256: Optional[str] = None):
    from beam_pipelines.ml import lineage, steps
    from beam_pipelines.ml.cache import StepCache
    self.bucket_url = bucket_url
    self.paths = CtPaths(bucket_url, env)
    self.definition = steps.load_definition(definition_path)
    self.registry = model_registry(bucket_url, env, definition_path)
    self.cache = StepCache(self.paths.cache, enabled=use_cache)
    self.push, self.predict = push, predict
    self.code = lineage.code_identity(build_id, wheel_sha256)

  def run(self, spans: Optional[Sequence[str]] = None, force: bool = False) -> List[Dict[str, Any]]:
    """Processes the given spans, else every landed span not processed yet, oldest first."""
    from beam_pipelines.harness.lock import DeployLock
    with DeployLock(self.paths, 'continuous training', 'continuous training'):
      if spans is None:
        done = {r['span'] for r in processed_spans(self.paths)}
        landed = landed_spans(self.paths)
        spans = [s for s in landed if s not in done] or landed[-1:]
        if not spans:
          progress(f'ct: no trigger: the landing area {self.paths.landing} holds no span; '
                   f'nothing to do')
          return [{'outcome': NO_TRIGGER, 'span': None}]
      return [self.run_span(span, force) for span in spans]

  def run_span(self, span: str, force: bool = False) -> Dict[str, Any]:
    """One run on one span (see the module docstring); returns its outcome."""
    from beam_pipelines.ml import lineage
    entries = lineage.file_entries(span_files(span))
    sha256 = lineage.data_sha256(entries)
    record_path = self.paths.span_record(sha256)
    seen = bucket.read_json(record_path, 'span record') if bucket.exists(record_path) else None
    if seen and not force:
      progress(f'ct: no trigger: span {span} (sha256 {sha256[:12]}) was processed by run '
               f'{seen["run_id"]} ({seen["outcome"]}); nothing to do (--force retrains)')
      return {'outcome': NO_TRIGGER, 'span': span, 'sha256': sha256, 'run_id': seen['run_id']}
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

  def _train_span(self, run, span: str, sha256: str, record_path: str) -> Dict[str, Any]:
    from beam_pipelines.harness.deploy import crash_point
    from beam_pipelines.ml import artifacts, registry, steps
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
                           previous=previous_statistics)
    verdict = done[steps.VALIDATION]['result']
    outcome = {'span': span, 'sha256': sha256, 'run_id': run.record['run_id'],
               'lineage': run.path, 'verdict': verdict['status']}
    if verdict['status'] == artifacts.VERDICT_DRIFT:
      run.record['trigger'].append(TRIGGER_DRIFT)
      progress(f'ct: drift above threshold in {verdict["drifted_features"]}: trigger recorded')
    if verdict['status'] == artifacts.VERDICT_ANOMALOUS:
      progress(f'ct: STOPPED at validation: {verdict["message"]}; report: {verdict["report"]}; '
               f'production unchanged')
      run.finish(STOPPED, report=verdict['report'])
      self._record_span(record_path, outcome, STOPPED, None)
      return dict(outcome, outcome=STOPPED, report=verdict['report'])
    evaluation = done[steps.EVALUATION]['result']
    model_dir = done[steps.TRAINING]['directory']
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
    return dict(outcome, outcome=status, version=version, blessing=evaluation['status'],
                production=self.registry.aliases().get(registry.PRODUCTION))

  def _predict(self, run, span: str) -> None:
    from beam_pipelines import predict
    from beam_pipelines.ml import registry
    directory, record = self.registry.verified_dir(registry.PRODUCTION)
    output = layout.join(run.path.rsplit('/', 1)[0], 'predictions')
    summary = predict.run(['--input', span_pattern(span), '--model', directory,
                           '--model_sha256', record['model_sha256'], '--output', output])
    run.step('predict', 'ran', outputs=output, model_version=record['version'],
             summary=f'{summary["predictions_written"]} predictions')

  def _record_span(self, path: str, outcome: Dict[str, Any], status: str,
                   statistics: Optional[str], version: Optional[int] = None) -> None:
    bucket.write_json(path, {**{k: outcome[k] for k in ('span', 'sha256', 'run_id', 'verdict')},
                             'outcome': status, 'statistics': statistics, 'version': version,
                             'at': layout.now_utc()})


def check(input_pattern: str, output: str, baseline: Optional[str], baseline_sha256: Optional[str],
          cache_dir: Optional[str], definition_path: Optional[str] = None) -> Dict[str, Any]:
  """The level-2 ML check: this build's pipeline on the integration data, against a baseline."""
  from beam_pipelines.ml import lineage, steps
  from beam_pipelines.ml.cache import StepCache
  definition = steps.load_definition(definition_path)
  entries = lineage.file_entries(span_files(input_pattern))
  code = lineage.code_identity()
  progress(f'ct check: {len(entries)} file(s) of {input_pattern}; baseline '
           f'{baseline or "none (rubber stamp)"}')
  done = steps.run_steps(
      definition, input_pattern, lineage.data_sha256(entries), code['fingerprint'],
      StepCache(cache_dir or layout.join(output, CACHE)),
      lambda name, status, directory, _: progress(f'ct check: step {name}: {status} -> {directory}'),
      baseline=(baseline, baseline_sha256) if baseline else None)
  result = {'input': input_pattern, 'data': entries, 'data_sha256': lineage.data_sha256(entries),
            'code': code,
            'parameters': definition.parameters(),
            'steps': {n: {k: s[k] for k in ('status', 'directory', 'result')} for n, s in done.items()}}
  verdict = done[steps.VALIDATION]['result']
  if steps.EVALUATION in done:
    evaluation = done[steps.EVALUATION]['result']
    result.update(status=evaluation['status'], message=evaluation['message'],
                  metrics=evaluation['metrics'], baseline_metrics=evaluation['baseline_metrics'],
                  baseline=evaluation['baseline'],
                  model_dir=done[steps.TRAINING]['directory'],
                  model_sha256=done[steps.TRAINING]['result']['model_sha256'])
  else:
    result.update(status='ANOMALOUS', message=verdict['message'], report=verdict['report'])
  bucket.write_json(layout.join(output, CHECK_FILE), result)
  progress(f'ct check: {result["status"]}: {result["message"]}; {layout.join(output, CHECK_FILE)}')
  return result


def parse_args(argv: Optional[Sequence[str]]):
  parser = argparse.ArgumentParser(prog='python -m beam_pipelines.ct',
                                   description=__doc__.split('\n')[0], allow_abbrev=False)
  parser.add_argument('--bucket', default=None,
                      help='Bucket URL (default: $BEAM_PIPELINES_BUCKET, else ./bucket).')
  parser.add_argument('--env', default=layout.PROD, help='Environment of the bucket (prod).')
  parser.add_argument('--span', action='append', default=None,
                      help='A span directory (or CSV glob) to process; default: each new landed span.')
  parser.add_argument('--force', action='store_true', help='Retrain even without a trigger.')
  parser.add_argument('--no_cache', action='store_true', help='Run every step, reuse nothing.')
  parser.add_argument('--no_push', action='store_true',
                      help='A blessed model becomes "candidate" only; production stays.')
  parser.add_argument('--predict', action='store_true',
                      help='Then batch inference of the span with the production model.')
  parser.add_argument('--pipeline', default=None, help='CT pipeline definition (YAML).')
  parser.add_argument('--build_id', default=None, help='Build id of the deployed build (lineage).')
  parser.add_argument('--wheel_sha256', default=None, help='sha256 of its wheel (lineage).')
  parser.add_argument('--demo', action='store_true',
                      help='Land spans 1-4 (sample, same, missing column, drift); ct on each, in '
                      'a fresh demo bucket (outputs/ct-demo/bucket) unless --bucket is given.')
  parser.add_argument('--check', action='store_true', help='The level-2 check of `invoke test`.')
  parser.add_argument('--input', default=None, help='--check: integration CSV file(s).')
  parser.add_argument('--output', default=None, help='--check: output directory.')
  parser.add_argument('--cache', default=None, help='--check: step cache directory.')
  parser.add_argument('--baseline_model', default='', help='--check: the model to beat (dir).')
  parser.add_argument('--baseline_sha256', default='', help='--check: its verified sha256.')
  return parser.parse_args(argv)


def run(argv: Optional[Sequence[str]] = None) -> List[Dict[str, Any]]:
  args = parse_args(argv)
  if args.check:
    if not args.input or not args.output:
      raise HarnessError('--check needs --input and --output')
    return [check(args.input, args.output, args.baseline_model or None,
                  args.baseline_sha256 or None, args.cache, args.pipeline)]
  from beam_pipelines.harness.bucket import resolve_bucket
  if args.demo and not args.bucket:
    from beam_pipelines.ml import demo
    url = demo.fresh_demo_bucket()  # never the real bucket: the demo moves `production`
  else:
    url = resolve_bucket(args.bucket, pathlib.Path.cwd())
  ct = ContinuousTraining(url, args.env, args.pipeline, not args.no_cache, not args.no_push,
                          args.predict, args.build_id, args.wheel_sha256)
  if args.demo:
    from beam_pipelines.ml import demo
    return demo.run_demo(ct)
  outcomes = ct.run(args.span, args.force)
  summarise(ct, outcomes)
  return outcomes


def summarise(ct: ContinuousTraining, outcomes: List[Dict[str, Any]]) -> None:
  """The closing lines: what happened to each span, where production is, where records are."""
  for outcome in outcomes:
    if outcome['outcome'] == NO_TRIGGER:
      continue
    detail = (f'stopped at validation (report {outcome["report"]})' if outcome['outcome'] == STOPPED
              else f'model v{outcome["version"]} {outcome["blessing"]}, {outcome["outcome"]}')
    progress(f'ct: done: span {outcome["span"]}: {detail}; lineage {outcome["lineage"]}')
  production = ct.registry.aliases().get('production')
  from beam_pipelines.harness.bucket import resolve_bucket
  flag = '' if ct.bucket_url == resolve_bucket(None, pathlib.Path.cwd()) else f' --bucket {ct.bucket_url}'
  progress(f'ct: production model: {"v" + str(production) if production else "none"}; '
           f'registry {ct.registry.root}; `invoke model-list{flag}`, '
           f'`invoke lineage --model production{flag}`')


def main(argv: Optional[Sequence[str]] = None) -> int:
  """Exit 0: trained/pushed/no trigger; 1: a span stopped at validation (anomalies); 2: error."""
  try:
    outcomes = run(argv)
  except HarnessError as error:
    progress(f'ct: error: {error}')
    return 2
  return 1 if any(o.get('outcome') == STOPPED or o.get('status') == 'ANOMALOUS'
                  for o in outcomes) else 0


if __name__ == '__main__':
  logging.getLogger().setLevel(logging.WARNING)
  sys.exit(main(sys.argv[1:]))
