"""Pipelines declared in the repository: ``beam_pipelines/pipelines/<name>/``, shipped in the wheel.

A folder holds ``pipeline.yaml`` and the files it names (relative to the folder)::

    spec: spec.yaml               # the dataset spec (beam_pipelines.ml.spec)
    integration: integration.csv  # small CSV of the level-2 check of `invoke test`
    schema: schema.pbtxt          # optional; default: schema.pbtxt when the folder has one
    train: {classifier: logistic, C: 1.0}   # flags of beam_pipelines.train (max_train_rows:
                                  # the rows fitted at most; a stratified sample beyond)
    window: 1                     # spans trained on: the new one and the window-1 before it
    blessing: {metrics: ..., registered_change: ...}   # inline (beam_pipelines.ml.blessing), a
                                  # path, or absent (the default rule)
    policy: {retrain: every_span | on_drift, on_drift: retrain | block}
    model_card:                   # optional text of each version's model card (the site's
      overview: ...               # model-card-<name>-v<N>.html/.md); a key left out reads
      intended_use: ...           # "not stated" there. Keys: MODEL_CARD_FIELDS
      users: ...
      limitations: ...
      ethical_considerations: ...
    experiment_run: RUN_ID        # optional: the experiment run whose train section this is
                                  # (written by `python -m beam_pipelines.experiment --adopt`)

The pipeline's name is its folder's name; it names its registry and its CT prefixes in the bucket.
``load_definition`` also takes the path of a ``pipeline.yaml`` elsewhere (any bucket URL).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from importlib import resources
from typing import Any, Dict, List, Mapping, Optional, Sequence, TypedDict, overload

import yaml

from beam_pipelines.ml import blessing as blessing_lib
from beam_pipelines.ml import spec as spec_lib
from beam_pipelines.ml.results import ParamValue
from beam_pipelines.store import bucket, layout
from beam_pipelines.store.errors import Refusal

DEFINITION_FILE = 'pipeline.yaml'
SCHEMA_FILE = 'schema.pbtxt'
RETRAIN_EVERY_SPAN, RETRAIN_ON_DRIFT = 'every_span', 'on_drift'
ON_DRIFT_RETRAIN, ON_DRIFT_BLOCK = 'retrain', 'block'
_FIELDS = ('spec', 'integration', 'schema', 'train', 'window', 'blessing', 'policy', 'model_card',
           'experiment_run')
# The model card's considerations a pipeline folder states (Model Card Toolkit's ``overview`` and
# ``considerations``), in the order a card shows them; not parameters: no cache key holds them.
MODEL_CARD_FIELDS = ('overview', 'intended_use', 'users', 'limitations', 'ethical_considerations')


class DefinitionError(Refusal):
  """A pipeline definition that cannot be used (the message names the file and the field)."""


@dataclasses.dataclass(frozen=True)
class Policy:
  """When a span retrains and what drift above threshold does."""
  retrain: str = RETRAIN_EVERY_SPAN
  on_drift: str = ON_DRIFT_RETRAIN


class _ParameterKeys(TypedDict):
  pipeline: str
  definition: str  # its pipeline.yaml
  spec: str
  spec_fingerprint: str
  train: Dict[str, ParamValue]
  window: int
  blessing: Mapping[str, object]  # the blessing config document
  blessing_sha256: str
  schema_sha256: Optional[str]
  policy: Dict[str, str]


class PipelineParameters(_ParameterKeys, total=False):
  """A pipeline's parameters as lineage records and cache keys hold them."""
  experiment_run: str  # the experiment run its train section was adopted from, when it was


@dataclasses.dataclass(frozen=True)
class PipelineDefinition:
  """One declared pipeline: its spec, data for the level-2 check, training, blessing and policy."""

  name: str
  path: str  # its pipeline.yaml
  spec_path: str
  train: Dict[str, ParamValue]  # flags of beam_pipelines.train, without ``--``
  integration_path: Optional[str] = None
  schema_path: Optional[str] = None  # the reviewed schema in the folder, when there is one
  window: int = 1
  blessing: Optional[Mapping[str, object]] = None  # the config document; None: the default rule
  policy: Policy = Policy()
  model_card: Mapping[str, str] = dataclasses.field(default_factory=dict)  # MODEL_CARD_FIELDS
  experiment_run: Optional[str] = None  # the experiment run its train section came from

  @property
  def blessing_config(self) -> Mapping[str, object]:
    return self.blessing if self.blessing is not None else blessing_lib.DEFAULT_CONFIG

  def parameters(self) -> PipelineParameters:
    """The pipeline's parameters as lineage and cache keys record them."""
    schema = bucket.sha256_of(self.schema_path) if self.schema_path else None
    parameters = PipelineParameters(
        pipeline=self.name, definition=self.path, spec=self.spec_path,
        spec_fingerprint=spec_lib.load(self.spec_path).fingerprint(),
        train=dict(self.train), window=self.window, blessing=self.blessing_config,
        blessing_sha256=bucket.sha256_bytes(
            json.dumps(self.blessing_config, sort_keys=True).encode('utf-8')),
        schema_sha256=schema, policy=dataclasses.asdict(self.policy))
    if self.experiment_run:
      parameters['experiment_run'] = self.experiment_run
    return parameters


def pipelines_root() -> pathlib.Path:
  return pathlib.Path(str(resources.files('beam_pipelines') / 'pipelines'))


def declared_pipelines() -> List[str]:
  """Names of the pipelines this package declares (folders with a pipeline.yaml), sorted."""
  root = pipelines_root()
  return sorted(p.parent.name for p in root.glob(f'*/{DEFINITION_FILE}')) if root.is_dir() else []


def choose_pipeline(requested: Optional[str], declared: Sequence[str]) -> str:
  """``requested`` if given, else the only declared pipeline; with several (or none) declared and
  none requested, a refusal listing the choices. No pipeline is chosen silently."""
  if requested:
    return requested
  if len(declared) == 1:
    return declared[0]
  if not declared:
    raise DefinitionError(f'no pipeline is declared (no folder of {pipelines_root()} holds a '
                          f'{DEFINITION_FILE}): name one with --pipeline PATH/{DEFINITION_FILE}')
  raise DefinitionError(f'{len(declared)} pipelines are declared ({", ".join(declared)}): say '
                        f'which with --pipeline NAME')


def default_pipeline() -> str:
  """The only declared pipeline; several (or none) is a refusal listing them."""
  return choose_pipeline(None, declared_pipelines())


def definition_path(name_or_path: Optional[str] = None) -> str:
  """The pipeline.yaml of a declared pipeline name (default: ``default_pipeline()``), or a path."""
  ref = name_or_path or default_pipeline()
  if '/' in ref or ref.endswith(('.yaml', '.yml')):
    return ref
  names = declared_pipelines()
  if ref not in names:
    raise DefinitionError(f'no pipeline named {ref!r}: this build declares '
                          f'{", ".join(names) or "none"} (folders of {pipelines_root()})')
  return str(pipelines_root() / ref / DEFINITION_FILE)


@overload
def _beside(path: str, value: str) -> str: ...


@overload
def _beside(path: str, value: Optional[str]) -> Optional[str]: ...


def _beside(path: str, value: Optional[str]) -> Optional[str]:
  """``value`` (a path or URL) resolved against the folder of ``path``; None stays None."""
  if value is None or '://' in value or value.startswith('/'):
    return value
  if '://' in path:
    return layout.join(path.rsplit('/', 1)[0], value)
  return str(pathlib.PurePosixPath(path).parent / value)


def _policy(raw: Any, path: str) -> Policy:
  if raw is None:
    return Policy()
  if not isinstance(raw, dict) or not set(raw) <= {'retrain', 'on_drift'}:
    raise DefinitionError(f'{path}: policy must map retrain and/or on_drift, got {raw!r}')
  policy = Policy(**raw)
  if policy.retrain not in (RETRAIN_EVERY_SPAN, RETRAIN_ON_DRIFT):
    raise DefinitionError(f'{path}: policy.retrain must be {RETRAIN_EVERY_SPAN} or '
                          f'{RETRAIN_ON_DRIFT}, got {policy.retrain!r}')
  if policy.on_drift not in (ON_DRIFT_RETRAIN, ON_DRIFT_BLOCK):
    raise DefinitionError(f'{path}: policy.on_drift must be {ON_DRIFT_RETRAIN} or '
                          f'{ON_DRIFT_BLOCK}, got {policy.on_drift!r}')
  return policy


def _blessing(raw: Any, path: str) -> Optional[Mapping[str, object]]:
  if isinstance(raw, str):  # a config file beside the definition
    raw = _read_yaml(_beside(path, raw), 'blessing config')
  if raw is None:
    return None
  try:
    blessing_lib.parse_config(raw)
  except blessing_lib.BlessingConfigError as error:
    raise DefinitionError(f'{path}: blessing: {error}') from None
  return raw


def _model_card(raw: Any, path: str) -> Dict[str, str]:
  if raw is None:
    return {}
  if not isinstance(raw, dict) or not set(raw) <= set(MODEL_CARD_FIELDS):
    raise DefinitionError(f'{path}: model_card must map some of {", ".join(MODEL_CARD_FIELDS)}, '
                          f'got {raw!r}')
  texts = {key: value.strip() for key, value in raw.items() if isinstance(value, str)}
  if len(texts) != len(raw):
    raise DefinitionError(f'{path}: model_card: each field is a text, got '
                          f'{sorted(k for k in raw if k not in texts)} of another type')
  return {key: value for key, value in texts.items() if value}


def _read_yaml(path: str, what: str) -> Any:
  try:
    return yaml.safe_load(bucket.read_bytes(path, what).decode('utf-8'))
  except (yaml.YAMLError, UnicodeDecodeError) as error:
    raise DefinitionError(f'{what} {path} is not valid YAML: '
                          f'{str(error).splitlines()[0]}') from None


def load_definition(name_or_path: Optional[str] = None) -> PipelineDefinition:
  """A declared pipeline by name (default: the only one), or a pipeline.yaml path."""
  path = definition_path(name_or_path)
  raw = _read_yaml(path, 'pipeline definition')
  if not isinstance(raw, dict) or not raw.get('spec') or not isinstance(raw.get('train', {}), dict):
    raise DefinitionError(f'pipeline definition {path}: needs "spec" and a "train" mapping')
  unknown = sorted(set(raw) - set(_FIELDS))
  if unknown:
    raise DefinitionError(f'pipeline definition {path}: unknown field(s) {unknown} '
                          f'(known: {", ".join(_FIELDS)})')
  window = raw.get('window', 1)
  if isinstance(window, bool) or not isinstance(window, int) or window < 1:
    raise DefinitionError(f'pipeline definition {path}: window must be a whole number >= 1, '
                          f'got {window!r}')
  schema = _beside(path, raw.get('schema'))
  if schema is None:
    candidate = _beside(path, SCHEMA_FILE)
    schema = candidate if bucket.exists(candidate) else None
  name = pathlib.PurePosixPath(path.split('://', 1)[-1]).parent.name
  experiment_run = raw.get('experiment_run')
  if experiment_run is not None and not isinstance(experiment_run, str):
    raise DefinitionError(f'pipeline definition {path}: experiment_run must be a run id, got '
                          f'{experiment_run!r}')
  return PipelineDefinition(
      name=name, path=path, spec_path=_beside(path, raw['spec']), train=dict(raw.get('train') or {}),
      integration_path=_beside(path, raw.get('integration')), schema_path=schema, window=window,
      blessing=_blessing(raw.get('blessing'), path), policy=_policy(raw.get('policy'), path),
      model_card=_model_card(raw.get('model_card'), path), experiment_run=experiment_run)
