"""The continuous-training steps, each a cached call of an ML pipeline's ``run``.

features -> validation -> training -> evaluation, with the pipeline definition of the build
(``data/ct_pipeline.yaml``: dataset spec, training flags, blessing config). Each step's cache key
is made of the keys/hashes of its inputs, the code fingerprint and its parameters
(``ct.cache``), so an unchanged step is skipped and its outputs reused. Used by the continuous
training runs (``beam_pipelines.ct``) and by the level-2 check of ``invoke test``.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

from beam_pipelines import evaluate, features, train, validate
from beam_pipelines.ct.cache import StepCache, step_key
from beam_pipelines.ct.definition import PipelineDefinition
from beam_pipelines.ml import artifacts
from beam_pipelines.store import bucket, layout

FEATURES, VALIDATION, TRAINING, EVALUATION = 'features', 'validation', 'training', 'evaluation'
STEPS = (FEATURES, VALIDATION, TRAINING, EVALUATION)


@dataclasses.dataclass(frozen=True)
class StepRun:
  """One step of a run: what it returned, whether it ran or was reused, where its outputs are."""
  result: Dict[str, Any]
  status: str  # cache.RAN | cache.CACHED
  directory: str
  key: str


def features_step(definition: PipelineDefinition, pattern: str, directory: str,
                  beam_args: Sequence[str] = ()) -> Dict[str, Any]:
  summary = features.run(['--input', pattern, '--spec', definition.spec_path,
                          '--output', directory, *beam_args])
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
  inferring = bool(schema) and not bucket.exists(schema)
  argv = ['--features', features_dir, '--output', directory]
  argv += ['--schema', schema] if schema else []
  argv += ['--previous_statistics', previous] if previous else []
  verdict = validate.run(argv + list(beam_args))
  return {'status': verdict['status'], 'message': verdict['message'],
          'drifted_features': verdict['drifted_features'],
          'anomalies': [{k: a[k] for k in ('feature', 'types', 'description')}
                        for a in verdict['anomalies']],
          'drift': [d for d in verdict['drift'] if d['exceeded']],
          'statistics': verdict['statistics'][artifacts.TRAIN],
          'report': layout.join(directory, artifacts.REPORT_FILE),
          'schema_stored': bucket.sha256_of(schema) if inferring else None}


def training_step(definition: PipelineDefinition, features_dir: str, validation_dir: str,
                  directory: str) -> Dict[str, Any]:
  metadata = train.run(['--features', features_dir, '--output', directory,
                        '--spec', definition.spec_path, '--verdict', validation_dir,
                        *definition.train_flags])
  return {'model_sha256': metadata['model_sha256'], 'rows': metadata['data']['rows'],
          'hyperparameters': metadata['hyperparameters']}


def evaluation_step(definition: PipelineDefinition, features_dir: str, model_dir: str,
                    baseline: Optional[Tuple[str, str]], directory: str,
                    beam_args: Sequence[str] = ()) -> Dict[str, Any]:
  argv = ['--features', features_dir, '--model', model_dir, '--output', directory]
  if baseline:
    argv += ['--baseline_model', baseline[0], '--baseline_sha256', baseline[1]]
  if definition.blessing_path:
    argv += ['--blessing_config', definition.blessing_path]
  record = evaluate.run(argv + list(beam_args))
  models = json.loads(bucket.read_bytes(layout.join(directory, artifacts.METRICS_FILE)))['models']
  return {'status': record['status'], 'message': record['message'],
          'rubber_stamped': record['rubber_stamped'],
          'metrics': models['candidate']['overall'],
          'baseline_metrics': models.get('baseline', {}).get('overall'),
          'baseline': baseline[0] if baseline else None}


StepHook = Callable[[str, str, str, Dict[str, Any]], None]  # (step, status, directory, result)


def run_steps(definition: PipelineDefinition, pattern: str, data_sha256: str, code: str,
              cache: StepCache, on_step: StepHook, baseline: Optional[Tuple[str, str]] = None,
              schema: Optional[str] = None,
              previous: Optional[str] = None,
              beam_args: Sequence[str] = ()) -> Dict[str, StepRun]:
  """Runs (or reuses) each step; stops after validation when it says "anomalous".

  ``beam_args`` (runner, Dataflow options) go to the Beam pipelines (features, validation,
  evaluation); training is scikit-learn in this process and gets none.
  Returns {step name: StepRun} for the steps that ran or were reused.
  ``baseline`` is (model directory, verified model sha256) of the model to beat, or None.
  """
  params = definition.parameters()
  done: Dict[str, StepRun] = {}

  def step(name: str, fn, **inputs):
    key = step_key(name, code=code, **inputs)
    result, status, directory = cache.run(name, key, fn)
    done[name] = StepRun(result, status, directory, key)
    on_step(name, status, directory, result)
    return result, directory, key

  _, features_dir, features_key = step(
      FEATURES, lambda d: features_step(definition, pattern, d, beam_args),
      data=data_sha256, spec=params['spec_fingerprint'])
  previous_sha = bucket.sha256_of(previous) if previous else None
  schema_sha = _schema_key(cache, features_key, code, schema, previous_sha)
  verdict, validation_dir, _ = step(
      VALIDATION, lambda d: validation_step(features_dir, d, schema, previous, beam_args),
      features=features_key, schema=schema_sha, previous=previous_sha)
  if verdict['status'] == artifacts.VERDICT_ANOMALOUS:
    return done
  trained, model_dir, _ = step(
      TRAINING, lambda d: training_step(definition, features_dir, validation_dir, d),
      features=features_key, train=params['train'], spec=params['spec_fingerprint'])
  step(EVALUATION, lambda d: evaluation_step(definition, features_dir, model_dir, baseline, d,
                                       beam_args),
       features=features_key, model=trained['model_sha256'],
       baseline=baseline[1] if baseline else None, blessing=params['blessing_sha256'])
  return done
