"""The continuous-training steps, each a cached call of an ML pipeline's ``run``.

features -> validation -> training -> evaluation, with the pipeline definition of the build
(``data/ct_pipeline.yaml``: dataset spec, training flags, blessing config). Each step's cache key
is made of the keys/hashes of its inputs, the code fingerprint and its parameters
(``ml.cache``), so an unchanged step is skipped and its outputs reused. Used by the continuous
training runs (``beam_pipelines.ct``) and by the level-2 check of ``invoke test``.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from importlib import resources
from typing import Any, Callable, Dict, List, Optional, Tuple

from beam_pipelines.harness import bucket, layout
from beam_pipelines.harness.errors import HarnessError
from beam_pipelines.ml import artifacts
from beam_pipelines.ml.cache import StepCache, step_key

FEATURES, VALIDATION, TRAINING, EVALUATION = 'features', 'validation', 'training', 'evaluation'
STEPS = (FEATURES, VALIDATION, TRAINING, EVALUATION)


@dataclasses.dataclass(frozen=True)
class PipelineDefinition:
  """The CT pipeline of a build: which spec, which training flags, which blessing rule."""

  path: str
  spec_path: str
  train: Dict[str, Any]
  blessing_path: Optional[str]

  @property
  def train_flags(self) -> List[str]:
    return [a for k, v in sorted(self.train.items()) for a in (f'--{k}', str(v))]

  def parameters(self) -> Dict[str, Any]:
    """The pipeline's parameters as lineage and cache keys record them."""
    from beam_pipelines.ml import spec as spec_lib
    blessing = bucket.sha256_of(self.blessing_path) if self.blessing_path else 'default'
    return {'pipeline': self.path, 'spec': self.spec_path,
            'spec_fingerprint': spec_lib.load(self.spec_path).fingerprint(),
            'train': dict(self.train), 'blessing': self.blessing_path, 'blessing_sha256': blessing}


def default_definition_path() -> str:
  return str(resources.files('beam_pipelines') / 'data' / 'ct_pipeline.yaml')


def load_definition(path: Optional[str] = None) -> PipelineDefinition:
  """Reads the pipeline definition (YAML); relative spec/blessing paths are beside the file."""
  import yaml
  path = path or default_definition_path()
  raw = yaml.safe_load(bucket.read_bytes(path, 'CT pipeline definition').decode('utf-8'))
  if not isinstance(raw, dict) or not raw.get('spec') or not isinstance(raw.get('train', {}), dict):
    raise HarnessError(f'CT pipeline definition {path}: needs "spec" and a "train" mapping')

  def beside(value):
    if value is None or '://' in value or value.startswith('/'):
      return value
    return str(pathlib.PurePosixPath(path).parent / value) if '://' not in path else layout.join(
        path.rsplit('/', 1)[0], value)
  return PipelineDefinition(path, beside(raw['spec']), dict(raw.get('train') or {}),
                            beside(raw.get('blessing')))


def features_step(definition: PipelineDefinition, pattern: str, directory: str) -> Dict[str, Any]:
  from beam_pipelines import features
  summary = features.run(['--input', pattern, '--spec', definition.spec_path,
                          '--output', directory])
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
                    previous: Optional[str]) -> Dict[str, Any]:
  from beam_pipelines import validate
  inferring = bool(schema) and not bucket.exists(schema)
  argv = ['--features', features_dir, '--output', directory]
  argv += ['--schema', schema] if schema else []
  argv += ['--previous_statistics', previous] if previous else []
  verdict = validate.run(argv)
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
  from beam_pipelines import train
  metadata = train.run(['--features', features_dir, '--output', directory,
                        '--spec', definition.spec_path, '--verdict', validation_dir,
                        *definition.train_flags])
  return {'model_sha256': metadata['model_sha256'], 'rows': metadata['data']['rows'],
          'hyperparameters': metadata['hyperparameters']}


def evaluation_step(definition: PipelineDefinition, features_dir: str, model_dir: str,
                    baseline: Optional[Tuple[str, str]], directory: str) -> Dict[str, Any]:
  from beam_pipelines import evaluate
  argv = ['--features', features_dir, '--model', model_dir, '--output', directory]
  if baseline:
    argv += ['--baseline_model', baseline[0], '--baseline_sha256', baseline[1]]
  if definition.blessing_path:
    argv += ['--blessing_config', definition.blessing_path]
  record = evaluate.run(argv)
  models = json.loads(bucket.read_bytes(layout.join(directory, artifacts.METRICS_FILE)))['models']
  return {'status': record['status'], 'message': record['message'],
          'rubber_stamped': record['rubber_stamped'],
          'metrics': models['candidate']['overall'],
          'baseline_metrics': models.get('baseline', {}).get('overall'),
          'baseline': baseline[0] if baseline else None}


StepHook = Callable[[str, str, str, Dict[str, Any]], None]  # (step, status, directory, result)


def run_steps(definition: PipelineDefinition, pattern: str, data_sha256: str, code: str,
              cache: StepCache, on_step: StepHook, baseline: Optional[Tuple[str, str]] = None,
              schema: Optional[str] = None, previous: Optional[str] = None) -> Dict[str, Any]:
  """Runs (or reuses) each step; stops after validation when it says "anomalous".

  Returns {step: {"result", "status", "directory", "key"}} for the steps that ran or were reused.
  ``baseline`` is (model directory, verified model sha256) of the model to beat, or None.
  """
  params = definition.parameters()
  done: Dict[str, Any] = {}

  def step(name: str, fn, **inputs):
    key = step_key(name, code=code, **inputs)
    result, status, directory = cache.run(name, key, fn)
    done[name] = {'result': result, 'status': status, 'directory': directory, 'key': key}
    on_step(name, status, directory, result)
    return result, directory, key

  _, features_dir, features_key = step(
      FEATURES, lambda d: features_step(definition, pattern, d),
      data=data_sha256, spec=params['spec_fingerprint'])
  previous_sha = bucket.sha256_of(previous) if previous else None
  schema_sha = _schema_key(cache, features_key, code, schema, previous_sha)
  verdict, validation_dir, _ = step(
      VALIDATION, lambda d: validation_step(features_dir, d, schema, previous),
      features=features_key, schema=schema_sha, previous=previous_sha)
  if verdict['status'] == artifacts.VERDICT_ANOMALOUS:
    return done
  trained, model_dir, _ = step(
      TRAINING, lambda d: training_step(definition, features_dir, validation_dir, d),
      features=features_key, train=params['train'], spec=params['spec_fingerprint'])
  step(EVALUATION, lambda d: evaluation_step(definition, features_dir, model_dir, baseline, d),
       features=features_key, model=trained['model_sha256'],
       baseline=baseline[1] if baseline else None, blessing=params['blessing_sha256'])
  return done
