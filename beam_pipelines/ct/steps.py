"""The continuous-training steps, each a cached call of an ML pipeline's ``run``.

features -> validation -> training -> evaluation, with the pipeline definition of the build
(its folder under ``beam_pipelines/pipelines/``: spec, training flags, blessing rule). Each step's cache key
is made of the keys/hashes of its inputs, the code fingerprint and its parameters
(``ct.cache``), so an unchanged step is skipped and its outputs reused. Used by the continuous
training runs (``beam_pipelines.ct``) and by the level-2 check of ``invoke test``.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Callable, Dict, Optional, Sequence

from beam_pipelines import evaluate, features, train, validate
from beam_pipelines.ct.cache import StepCache, step_key
from beam_pipelines.ct.definition import PipelineDefinition
from beam_pipelines.ml import artifacts
from beam_pipelines.store import bucket, layout
from beam_pipelines.store.console import ticking

FEATURES, VALIDATION, TRAINING, EVALUATION = 'features', 'validation', 'training', 'evaluation'
BLESSING_CONFIG_FILE = 'blessing_config.json'  # the pipeline's rule, beside the evaluation
STEPS = (FEATURES, VALIDATION, TRAINING, EVALUATION)


@dataclasses.dataclass(frozen=True)
class Baseline:
  """The model to beat: its directory, its verified sha256, and (for a registered model) the path
  of its registry record, whose metrics bound how far a candidate may fall below it."""
  model_dir: str
  model_sha256: str
  record_path: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class StepRun:
  """One step of a run: what it returned, whether it ran or was reused, where its outputs are."""
  result: Dict[str, Any]
  status: str  # cache.RAN | cache.CACHED
  directory: str
  key: str


def features_step(definition: PipelineDefinition, patterns: Sequence[str], directory: str,
                  beam_args: Sequence[str] = ()) -> Dict[str, Any]:
  inputs = [a for pattern in patterns for a in ('--input', pattern)]
  summary = features.run([*inputs, '--spec', definition.spec_path, '--output', directory,
                          *beam_args])
  return {key: summary[key] for key in ('rows_read', 'rows_written', 'rows_dead_lettered',
                                        'missing_columns', 'extra_columns')}


def _schema_key(cache: StepCache, features_key: str, code: str, schema: Optional[str],
                previous_sha: Optional[str]) -> Optional[str]:
  """The schema part of validation's key: the stored schema's sha256, or None when there is none
  yet, or when the run that inferred and stored exactly this schema is the cached one."""
  if not schema or not bucket.exists(schema):
    return None
  sha = bucket.sha256_of(schema)
  inferred = cache.get(VALIDATION, step_key(VALIDATION, code=code, features=features_key,
                                            schema=None, previous=previous_sha))
  return None if inferred and inferred.get('schema_stored') == sha else sha


def validation_step(features_dir: str, directory: str, schema: Optional[str],
                    previous: Optional[str], beam_args: Sequence[str] = ()) -> Dict[str, Any]:
  inferring = schema if schema and not bucket.exists(schema) else None  # validate infers it
  argv = ['--features', features_dir, '--output', directory]
  argv += ['--schema', schema] if schema else []
  argv += ['--previous_statistics', previous] if previous else []
  verdict = validate.run(argv + list(beam_args))
  return {'status': verdict['status'], 'message': verdict['message'],
          'drifted_features': verdict['drifted_features'],
          'warnings': [{k: w[k] for k in ('feature', 'split', 'description')}
                       for w in verdict.get('warnings', [])],
          'anomalies': [{k: a[k] for k in ('feature', 'types', 'description')}
                        for a in verdict['anomalies']],
          'drift': [d for d in verdict['drift'] if d['exceeded']],
          'statistics': verdict['statistics'][artifacts.TRAIN],
          'report': layout.join(directory, artifacts.REPORT_FILE),
          'schema_stored': bucket.sha256_of(inferring) if inferring else None}


def training_step(definition: PipelineDefinition, features_dir: str, validation_dir: str,
                  directory: str) -> Dict[str, Any]:
  metadata = train.run(['--features', features_dir, '--output', directory,
                        '--spec', definition.spec_path, '--verdict', validation_dir,
                        *definition.train_flags])
  return {'model_sha256': metadata['model_sha256'], 'rows': metadata['data']['rows'],
          'hyperparameters': metadata['hyperparameters']}


def verify_model(result: Dict[str, Any], directory: str) -> Optional[str]:
  """None when the cached model file has the sha256 its training step recorded, else why not."""
  model_file = layout.join(directory, artifacts.MODEL_FILE)
  if not bucket.exists(model_file):
    return f'{model_file} is missing'
  actual = bucket.sha256_of(model_file)
  if actual != result.get('model_sha256'):
    return f'{model_file} has sha256 {actual}, the step recorded {result.get("model_sha256")}'
  return None


def evaluation_step(definition: PipelineDefinition, features_dir: str, model_dir: str,
                    model_sha256: str, baseline: Optional[Baseline], directory: str,
                    beam_args: Sequence[str] = ()) -> Dict[str, Any]:
  config = layout.join(directory, BLESSING_CONFIG_FILE)
  bucket.write_json(config, definition.blessing_config)
  argv = ['--features', features_dir, '--model', model_dir, '--model_sha256', model_sha256,
          '--output', directory, '--blessing_config', config]
  if baseline:
    argv += ['--baseline_model', baseline.model_dir, '--baseline_sha256', baseline.model_sha256]
    argv += ['--baseline_record', baseline.record_path] if baseline.record_path else []
  record = evaluate.run(argv + list(beam_args))
  models = json.loads(bucket.read_bytes(layout.join(directory, artifacts.METRICS_FILE)))['models']
  return {'status': record['status'], 'message': record['message'],
          'rubber_stamped': record['rubber_stamped'],
          'metrics': models['candidate']['overall'],
          'baseline_metrics': models.get('baseline', {}).get('overall'),
          'baseline': baseline.model_dir if baseline else None}


StepHook = Callable[[str, str, str, Dict[str, Any]], None]  # (step, status, directory, result)


def run_steps(definition: PipelineDefinition, patterns: Sequence[str], data_sha256: str,
              code: str, cache: StepCache, on_step: StepHook, baseline: Optional[Baseline] = None,
              schema: Optional[str] = None, previous: Optional[str] = None,
              train_if: Callable[[Dict[str, Any]], bool] = lambda verdict: True,
              beam_args: Sequence[str] = ()) -> Dict[str, StepRun]:
  """Runs (or reuses) each step; stops after validation when it says "anomalous" or when
  ``train_if(verdict)`` is False (the pipeline's policy).

  Returns {step name: StepRun} for the steps that ran or were reused. ``patterns`` are the CSV
  globs of the spans trained on (the training window). The trained model is loaded (evaluation)
  or registered only as the bytes whose sha256 the training step recorded. ``beam_args``
  (runner, Dataflow options) go to the Beam pipelines (features, validation, evaluation);
  training is scikit-learn in this process and gets none.
  """
  params = definition.parameters()
  done: Dict[str, StepRun] = {}

  def step(name: str, fn, verify=None, **inputs):
    key = step_key(name, code=code, **inputs)
    with ticking(f'ct: step {name}', delay=1.0):
      result, status, directory = cache.run(name, key, fn, verify)
    done[name] = StepRun(result, status, directory, key)
    on_step(name, status, directory, result)
    return result, directory, key

  _, features_dir, features_key = step(
      FEATURES, lambda d: features_step(definition, patterns, d, beam_args),
      data=data_sha256, spec=params['spec_fingerprint'])
  previous_sha = bucket.sha256_of(previous) if previous else None
  schema_sha = _schema_key(cache, features_key, code, schema, previous_sha)
  verdict, validation_dir, _ = step(
      VALIDATION, lambda d: validation_step(features_dir, d, schema, previous, beam_args),
      features=features_key, schema=schema_sha, previous=previous_sha)
  if verdict['status'] == artifacts.VERDICT_ANOMALOUS or not train_if(verdict):
    return done
  trained, model_dir, _ = step(
      TRAINING, lambda d: training_step(definition, features_dir, validation_dir, d),
      verify=verify_model, features=features_key, train=params['train'],
      spec=params['spec_fingerprint'])
  step(EVALUATION, lambda d: evaluation_step(definition, features_dir, model_dir,
                                             trained['model_sha256'], baseline, d, beam_args),
       features=features_key, model=trained['model_sha256'],
       baseline=baseline.model_sha256 if baseline else None,
       registered=bucket.sha256_of(baseline.record_path) if baseline and baseline.record_path
       else None, blessing=params['blessing_sha256'])
  return done
