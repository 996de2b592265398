"""The continuous-training steps, each a cached call of an ML pipeline's typed core.

features -> validation -> training -> evaluation, with the pipeline definition of the build
(its folder under ``beam_pipelines/pipelines/``: spec, training parameters, blessing rule)::

    features.extract(patterns, spec, dir)                    -> FeaturesResult
    validate.validate(features, dir, schema, previous)       -> Verdict
    train.fit(features, dir, parameters, spec, verdict)      -> TrainedModel
    evaluate.evaluate(model, dir, features, baseline, rule)  -> Evaluation

and, in continuous training, two evaluations beside them: ``forward_evaluation`` (production on
the new span's labelled rows, before training: ``evaluate.evaluate(production, dir,
input_pattern=span)``) and ``holdout_evaluation`` (the candidate and production on the
pipeline's fixed holdout, its integration CSV, judged by the blessing's ``registered_change``
thresholds on those same rows).

Each step's cache key is made of the keys/hashes of its inputs, the code fingerprint and its
parameters (``ct.cache``), so an unchanged step is skipped and its typed result reused. Used by
the continuous training runs (``beam_pipelines.ct``) and by the level-2 check of ``invoke test``.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Callable, Generic, Iterator, Optional, Sequence, TypeVar, Union

from beam_pipelines import evaluate, features, train, validate
from beam_pipelines.ct import forward, lineage
from beam_pipelines.ct.cache import RAN, StepCache, step_key
from beam_pipelines.ct.definition import PipelineDefinition
from beam_pipelines.ml import artifacts
from beam_pipelines.ml.blessing import CHANGE, REGISTERED, BlessingRule
from beam_pipelines.ml.results import (
  DryRun,
  Evaluation,
  FeaturesResult,
  ModelRef,
  TrainedModel,
  Verdict,
)
from beam_pipelines.store import bucket, layout, memory
from beam_pipelines.store.console import counts, number, ticking

FEATURES, VALIDATION, TRAINING, EVALUATION = 'features', 'validation', 'training', 'evaluation'
FORWARD, HOLDOUT = 'forward_evaluation', 'holdout_evaluation'
EXACT_AUC_TOLERANCE = 1e-6  # a histogram AUC whose error bound exceeds this is recomputed exactly
STEPS = (FEATURES, VALIDATION, TRAINING, EVALUATION)
StepResult = Union[FeaturesResult, Verdict, TrainedModel, Evaluation]
R = TypeVar('R', FeaturesResult, Verdict, TrainedModel, Evaluation)


class StepDidNotRun(RuntimeError):
  """A step's core returned no result (a Beam dry run): continuous training needs real outputs."""


@dataclasses.dataclass(frozen=True)
class Baseline:
  """The model to beat: its directory, its verified sha256, and (for a registered model) the path
  of its registry record, whose metrics bound how far a candidate may fall below it."""
  model_dir: str
  model_sha256: str
  record_path: Optional[str] = None
  version: Optional[int] = None  # its registry version (production's)

  @property
  def ref(self) -> ModelRef:
    return ModelRef(self.model_dir, self.model_sha256)


@dataclasses.dataclass(frozen=True)
class StepRun(Generic[R]):
  """One step of a run: what it returned, whether it ran or was reused, where its outputs are."""
  name: str
  result: R
  status: str  # cache.RAN | cache.CACHED
  directory: str
  key: str
  started_at: str = ''  # when the step started (ran or was looked up in the cache)
  peak_rss_bytes: Optional[int] = None  # this process's peak while the step ran (None: reused,
  # or not measurable here; see ``store.memory``)


@dataclasses.dataclass(frozen=True)
class StepRuns:
  """The steps of one run that ran or were reused; training and evaluation are None when the
  run stopped after validation."""
  features: StepRun[FeaturesResult]
  validation: StepRun[Verdict]
  training: Optional[StepRun[TrainedModel]] = None
  evaluation: Optional[StepRun[Evaluation]] = None

  def __iter__(self) -> Iterator[StepRun]:
    return iter(s for s in (self.features, self.validation, self.training, self.evaluation) if s)


StepHook = Callable[[StepRun], None]


@dataclasses.dataclass(frozen=True)
class Announced:
  """A step hook that is also told when each step starts (``started(name)``, before its cache
  lookup): continuous training's run record, whose listeners emit the step's START event."""
  done: StepHook
  started: Callable[[str], None]

  def __call__(self, run: StepRun) -> None:
    self.done(run)


def _real(result: Union[R, DryRun], step: str) -> R:
  if isinstance(result, DryRun):
    raise StepDidNotRun(f'step {step}: the pipeline was only built (--dry_run): no outputs')
  return result


def _schema_key(cache: StepCache, features_key: str, code: str, schema: Optional[str],
                previous_sha: Optional[str]) -> Optional[str]:
  """The schema part of validation's key: the stored schema's sha256, or None when there is none
  yet, or when the run that inferred and stored exactly this schema is the cached one."""
  if not schema or not bucket.exists(schema):
    return None
  sha = bucket.sha256_of(schema)
  inferred = cache.get(VALIDATION, step_key(VALIDATION, code=code, features=features_key,
                                            schema=None, previous=previous_sha), Verdict)
  return None if inferred and inferred.schema_stored_sha256 == sha else sha


def verify_model(result: TrainedModel, directory: str) -> Optional[str]:
  """None when the cached model file has the sha256 its training step recorded, else why not."""
  model_file = layout.join(directory, artifacts.MODEL_FILE)
  if not bucket.exists(model_file):
    return f'{model_file} is missing'
  actual = bucket.sha256_of(model_file)
  if actual != result.model_sha256:
    return f'{model_file} has sha256 {actual}, the step recorded {result.model_sha256}'
  return None


def blessing_rule(definition: PipelineDefinition, baseline: Optional[Baseline]) -> BlessingRule:
  """The pipeline's rule, with production's registered metrics when the baseline has a record."""
  registered = None
  if baseline and baseline.record_path:
    registered = bucket.read_json(baseline.record_path, 'baseline registry record').get('metrics')
  return BlessingRule.from_config(definition.blessing_config, registered)


def cached_step(cache: StepCache, on_step: StepHook, name: str, kind: type, fn: Callable[[str], R],
                code: str, verify=None, **inputs) -> StepRun[R]:
  """Runs ``fn(directory)`` as step ``name`` unless the cache holds its result for these inputs
  (key: ``name``, ``code`` and ``inputs``); tells ``on_step``."""
  key = step_key(name, code=code, **inputs)
  if isinstance(on_step, Announced):
    on_step.started(name)
  started = lineage.step_time()
  measured = memory.reset_peak()
  with ticking(f'ct: step {name}', delay=1.0):
    result, status, directory = cache.run(name, key, fn, kind, verify)
  peak = memory.peak_rss_bytes() if measured and status == RAN else None
  done: StepRun[R] = StepRun(name, result, status, directory, key, started, peak)
  on_step(done)
  return done


def run_steps(definition: PipelineDefinition, patterns: Sequence[str], data_sha256: str,
              code: str, cache: StepCache, on_step: StepHook, baseline: Optional[Baseline] = None,
              schema: Optional[str] = None, previous: Optional[str] = None,
              train_if: Callable[[Verdict], bool] = lambda verdict: True,
              beam_args: Sequence[str] = (),
              after_validation: Optional[Callable[[Verdict], None]] = None,
              registered_on_holdout: bool = False) -> StepRuns:
  """Runs (or reuses) each step; stops after validation when it says "anomalous" or when
  ``train_if(verdict)`` is False (the pipeline's policy).

  ``after_validation(verdict)`` runs between validation and that decision, whatever it is
  (continuous training's forward evaluation). ``registered_on_holdout``: the blessing's
  ``registered_change`` thresholds are judged on the fixed holdout (``holdout_evaluation``), so
  the eval split's blessing leaves production's registered metrics out.

  ``patterns`` are the CSV globs of the spans trained on (the training window). The trained model
  is loaded (evaluation) or registered only as the bytes whose sha256 the training step recorded.
  ``beam_args`` (runner, Dataflow options) go to the Beam pipelines (features, validation,
  evaluation); training is scikit-learn in this process and gets none.
  """
  params = definition.parameters()
  hyperparameters = train.parameters(definition.train)  # checked before anything runs

  def step(name: str, kind: type, fn: Callable[[str], R], verify=None, **inputs) -> StepRun[R]:
    return cached_step(cache, on_step, name, kind, fn, code, verify, **inputs)

  extracted = step(
      FEATURES, FeaturesResult,
      lambda d: _real(features.extract(patterns, definition.spec_path, d, beam_args), FEATURES),
      data=data_sha256, spec=params['spec_fingerprint'])
  previous_sha = bucket.sha256_of(previous) if previous else None
  schema_sha = _schema_key(cache, extracted.key, code, schema, previous_sha)
  validated = step(
      VALIDATION, Verdict,
      lambda d: _real(validate.validate(extracted.directory, d, schema, previous,
                                        beam_args=beam_args), VALIDATION),
      features=extracted.key, schema=schema_sha, previous=previous_sha)
  if after_validation is not None:
    after_validation(validated.result)
  if validated.result.anomalous or not train_if(validated.result):
    return StepRuns(extracted, validated)
  trained = step(
      TRAINING, TrainedModel,
      lambda d: train.fit(extracted.directory, d, hyperparameters, definition.spec_path,
                          verdict=validated.directory),
      verify=verify_model, features=extracted.key, train=params['train'],
      spec=params['spec_fingerprint'])
  evaluated = step(
      EVALUATION, Evaluation,
      lambda d: _real(evaluate.evaluate(
          trained.result.ref, d, features=extracted.directory,
          baseline=baseline.ref if baseline else None,
          rule=blessing_rule(definition, None if registered_on_holdout else baseline),
          beam_args=beam_args), EVALUATION),
      features=extracted.key, model=trained.result.model_sha256,
      baseline=baseline.model_sha256 if baseline else None,
      registered=bucket.sha256_of(baseline.record_path)
      if baseline and baseline.record_path and not registered_on_holdout else None,
      blessing=params['blessing_sha256'])
  return StepRuns(extracted, validated, trained, evaluated)


def describe(result: StepResult) -> str:
  """A step's result in one line for people (progress lines, the lineage's step summary)."""
  if isinstance(result, FeaturesResult):
    written = counts(result.rows_written, '')
    return (f'{result.rows_read:,} rows read = {written} + {result.rows_dead_lettered:,} '
            f'dead-lettered')
  if isinstance(result, TrainedModel):
    if result.sample and result.rows_available is not None:
      return (f'{result.rows:,} of {result.rows_available:,} rows (a stratified sample: '
              f'max_train_rows {result.max_train_rows:,}); model sha256 '
              f'{result.model_sha256[:12]}…')
    return f'{result.rows:,} rows; model sha256 {result.model_sha256[:12]}…'
  return result.message



def forward_evaluation(pattern: str, span_sha256: str, production: Baseline, code: str,
                       cache: StepCache, on_step: StepHook,
                       beam_args: Sequence[str] = ()) -> StepRun[Evaluation]:
  """Production scored on a new span's labelled rows (every row of ``pattern``; unlabelled rows
  are dead-lettered, never scored), with no baseline: its live performance on data it has not
  seen. Cached by the span's sha256, production's model sha256 and the code.

  The AUC recorded is exact where it can be: when the evaluator's histogram AUC has an ``auc_error_bound`` above
  ``EXACT_AUC_TOLERANCE`` and the span has at most ``forward.MAX_EXACT_ROWS`` labelled rows, it
  is recomputed from the ranks of the scores (``ct.forward``) on the same rows (a second pass);
  ``metrics.auc`` is then that value, ``auc_error_bound`` 0 and ``histogram_auc`` the evaluator's
  (which ``metrics.json`` of the step's directory keeps). A span without labelled
  rows gives ``rows_scored`` 0 and no metric."""

  def run(directory: str) -> Evaluation:
    done = _real(evaluate.evaluate(production.ref, directory, input_pattern=pattern,
                                   beam_args=beam_args), FORWARD)
    bound, auc = done.metrics.get('auc_error_bound'), done.metrics.get('auc')
    if auc is None or bound is None or bound <= EXACT_AUC_TOLERANCE:
      return done
    if (done.rows_scored or 0) > forward.MAX_EXACT_ROWS:
      return done  # the midrank AUC would be a sample's: no more exact than the histogram's
    exact = forward.exact_auc(production.ref, pattern, layout.join(directory, 'exact_auc'),
                              beam_args)
    if exact['candidate_auc'] is None or exact['sampled_rows'] != exact['rows']:
      return done  # a sample's AUC is no more exact than the histogram's
    return dataclasses.replace(done, metrics={
        **done.metrics, 'auc': exact['candidate_auc'], 'auc_error_bound': 0.0,
        'histogram_auc': auc})

  return cached_step(cache, on_step, FORWARD, Evaluation, run, code, data=span_sha256,
                     model=production.model_sha256)


def holdout_rule(definition: PipelineDefinition) -> Optional[BlessingRule]:
  """The blessing's ``registered_change`` thresholds as change thresholds of the candidate against
  production on the same holdout rows; None when the blessing has none (the holdout is then
  scored, not judged)."""
  registered = definition.blessing_config.get(REGISTERED)
  if not isinstance(registered, dict) or not registered:
    return None
  return BlessingRule.from_config(
      {'metrics': {metric: {CHANGE: dict(threshold)} for metric, threshold in registered.items()}})


def holdout_evaluation(definition: PipelineDefinition, pattern: str, holdout_sha256: str,
                       candidate: TrainedModel, production: Optional[Baseline], code: str,
                       cache: StepCache, on_step: StepHook,
                       beam_args: Sequence[str] = ()) -> StepRun[Evaluation]:
  """The candidate and production (when there is one) scored on the same rows of the pipeline's
  fixed holdout (``pattern``: its integration CSV), judged by ``holdout_rule`` (no production:
  rubber stamp). Cached by the holdout's sha256, both models' sha256, the rule and the code."""
  rule = holdout_rule(definition)
  return cached_step(
      cache, on_step, HOLDOUT, Evaluation,
      lambda d: _real(evaluate.evaluate(
          candidate.ref, d, input_pattern=pattern,
          baseline=production.ref if production else None, rule=rule, beam_args=beam_args),
          HOLDOUT),
      code, data=holdout_sha256, model=candidate.model_sha256,
      baseline=production.model_sha256 if production else None,
      rule=json.dumps(rule.describe(), sort_keys=True, default=str) if rule else None)


def holdout_judged(definition: PipelineDefinition) -> bool:
  """Whether the holdout evaluation's blessing is a judgement (the rule has registered_change
  thresholds), rather than the default rule's record of a score."""
  return holdout_rule(definition) is not None


def describe_forward(result: Evaluation, version: Optional[int], span: str) -> str:
  """Forward evaluation in one line: production vN on span S before training: AUC, log loss,
  labelled rows."""
  head = f'production v{version} on {span} before training'
  if not result.rows_scored:
    return (f'{head}: no labelled rows ({result.rows_read or 0:,} row(s) read, none with a label): '
            f'nothing to score')
  metrics = result.metrics
  return (f'{head}: AUC {number(metrics.get("auc"), 3)}, log loss '
          f'{number(metrics.get("log_loss"), 3)} on {result.rows_scored:,} labelled rows')
