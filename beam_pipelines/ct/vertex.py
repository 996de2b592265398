"""An opt-in mirror of a model registry in Vertex AI Model Registry; the bucket stays the truth.

With ``$BEAM_PIPELINES_VERTEX_REGISTRY=projects/PROJECT/locations/REGION`` set, continuous training
(after each run) and ``invoke model-promote``/``model-rollback`` (after each move) bring Vertex AI
in line with the bucket's registry of the pipeline:

- each registered version not mirrored yet is uploaded as a version of one Vertex model per
  pipeline (``Model.upload`` with ``parent_model``: the first version creates it), its artifact
  the registry's version folder on GCS (``model.joblib``: what Vertex's scikit-learn prediction
  containers load), labelled with its build id, data sha256 and model sha256 (label values are
  at most 63 characters: a sha256 keeps its first 63 hex digits), its version aliases
  ``v<N>`` and, when the bucket says so, ``production`` / ``candidate``;
- each alias the bucket moved is moved in Vertex too (``ModelRegistry.add_version_aliases``).

Which Vertex version mirrors which registry version is kept beside the registry, in
``<registry>/vertex.json``; a failed call leaves it as it was, and the next sync resumes. Vertex is
never read to decide anything: the aliases in the bucket decide what serves.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Mapping, Optional, Protocol

from beam_pipelines.ct.registry import ALIASES, Registry
from beam_pipelines.ml.artifacts import MODEL_FILE
from beam_pipelines.store import bucket, layout
from beam_pipelines.store.console import progress

REGISTRY_ENV_VAR = 'BEAM_PIPELINES_VERTEX_REGISTRY'  # projects/PROJECT/locations/REGION
SERVING_IMAGE_ENV_VAR = 'BEAM_PIPELINES_VERTEX_SERVING_IMAGE'
# Vertex AI's prebuilt scikit-learn prediction container (override with the variable above).
DEFAULT_SERVING_IMAGE = 'us-docker.pkg.dev/vertex-ai/prediction/sklearn-cpu.1-5:latest'
MIRROR_FILE = 'vertex.json'
LABEL_MAX = 63


class VertexApi(Protocol):
  """The two Vertex AI SDK calls the mirror makes (``AiPlatformApi`` makes them for real)."""

  def upload(self, *, display_name: str, artifact_uri: str, serving_container_image_uri: str,
             parent_model: Optional[str], is_default_version: bool, version_aliases: List[str],
             labels: Dict[str, str], description: str) -> str:
    """Uploads a model version; returns its versioned resource name (``...models/M@V``)."""

  def add_version_aliases(self, model: str, version: str, aliases: List[str]) -> None:
    """Points ``aliases`` at ``version`` of ``model`` (Vertex moves them from other versions)."""


class AiPlatformApi:
  """``VertexApi`` through ``google.cloud.aiplatform`` (imported only when a sync runs)."""

  def __init__(self, location: str):
    parts = location.split('/')
    if len(parts) != 4 or parts[0] != 'projects' or parts[2] != 'locations':
      raise ValueError(f'${REGISTRY_ENV_VAR} must be projects/PROJECT/locations/REGION, '
                       f'got {location!r}')
    from google.cloud import aiplatform
    aiplatform.init(project=parts[1], location=parts[3])
    self._aiplatform = aiplatform

  def upload(self, **kwargs: Any) -> str:
    model = self._aiplatform.Model.upload(**kwargs, sync=True)
    return f'{model.resource_name}@{model.version_id}'

  def add_version_aliases(self, model: str, version: str, aliases: List[str]) -> None:
    registry = self._aiplatform.models.ModelRegistry(model)
    registry.add_version_aliases(new_aliases=aliases, version=version)


def label(value: Optional[str]) -> str:
  """A GCP label value: lower-case letters, digits, ``-`` and ``_``, at most 63 characters."""
  text = ''.join(c if c.isalnum() or c in '-_' else '-' for c in (value or 'unknown').lower())
  return text[:LABEL_MAX]


def configured() -> Optional[str]:
  """The Vertex location to mirror to, when the opt-in variable is set."""
  return os.environ.get(REGISTRY_ENV_VAR, '').strip() or None


def _lineage_facts(record: Mapping[str, Any]) -> Dict[str, Optional[str]]:
  """Build id and data sha256 of a version, from its run's lineage (or older copies)."""
  lineage: Mapping[str, Any] = {}
  if record.get('lineage') and bucket.exists(record['lineage']):
    lineage = bucket.read_json(record['lineage'], 'lineage record')
  code = lineage.get('code') or record.get('code') or {}
  data = lineage.get('data') or record.get('data') or {}
  return {'build_id': code.get('build_id'), 'data_sha256': data.get('sha256')}


def read_mirror(registry: Registry) -> Dict[str, Any]:
  path = layout.join(registry.root, MIRROR_FILE)
  if not bucket.exists(path):
    return {'model': None, 'versions': {}, 'aliases': {}}
  return bucket.read_json(path, 'Vertex AI mirror record')


def sync(registry: Registry, pipeline: str, api: VertexApi,
         serving_image: Optional[str] = None) -> Dict[str, Any]:
  """Uploads the versions Vertex lacks and moves its aliases to the bucket's; returns (and writes)
  the mirror record ``{model, versions: {n: vertex version name}, aliases: {alias: n}}``."""
  image = serving_image or os.environ.get(SERVING_IMAGE_ENV_VAR) or DEFAULT_SERVING_IMAGE
  mirror = read_mirror(registry)
  aliases = registry.aliases()
  path = layout.join(registry.root, MIRROR_FILE)
  for number in registry.numbers():
    if str(number) in mirror['versions']:
      continue
    record = registry.record(number)
    facts = _lineage_facts(record)
    name = api.upload(
        display_name=pipeline, artifact_uri=registry.version_dir(number),
        serving_container_image_uri=image, parent_model=mirror['model'],
        is_default_version=aliases.get('production') == number,
        version_aliases=[f'v{number}'] + [a for a in ALIASES if aliases.get(a) == number],
        labels={'pipeline': label(pipeline), 'registry_version': str(number),
                'build_id': label(facts['build_id']), 'data_sha256': label(facts['data_sha256']),
                'model_sha256': label(record['model_sha256'])},
        description=f'{pipeline} v{number}: {MODEL_FILE} sha256 {record["model_sha256"]}; the '
                    f'bucket registry {registry.root} is the source of truth')
    mirror['model'] = mirror['model'] or name.split('@', 1)[0]
    mirror['versions'][str(number)] = name
    mirror['aliases'].update({a: number for a in ALIASES if aliases.get(a) == number})
    bucket.write_bytes(path, (json.dumps(mirror, indent=2, sort_keys=True) + '\n').encode())
    progress(f'vertex: {pipeline} v{number} mirrored as {name}')
  for alias in ALIASES:
    target = aliases.get(alias)
    if target is None or mirror['aliases'].get(alias) == target:
      continue
    version = mirror['versions'][str(target)].split('@', 1)[1]
    api.add_version_aliases(mirror['model'], version, [alias])
    mirror['aliases'][alias] = target
    bucket.write_bytes(path, (json.dumps(mirror, indent=2, sort_keys=True) + '\n').encode())
    progress(f'vertex: {alias} -> {pipeline} v{target} ({mirror["versions"][str(target)]})')
  return mirror


def sync_if_configured(registry: Registry, pipeline: str) -> Optional[Dict[str, Any]]:
  """``sync`` to ``$BEAM_PIPELINES_VERTEX_REGISTRY`` with the real SDK, when it is set (the
  registry must be on GCS: Vertex reads the model from its version folder)."""
  location = configured()
  if not location:
    return None
  api = AiPlatformApi(location)
  if not registry.root.startswith('gs://'):
    raise ValueError(f'${REGISTRY_ENV_VAR} is set but the registry {registry.root} is not on GCS: '
                     f'Vertex AI reads models from gs:// only')
  return sync(registry, pipeline, api)


def mirror_after(registry: Registry, pipeline: str) -> None:
  """What a command runs after it changed the registry: the opt-in sync, whose failure is said
  in one line and changes nothing (the bucket decided; the next sync resumes)."""
  try:
    sync_if_configured(registry, pipeline)
  except Exception as error:  # noqa: BLE001 - the mirror is best effort; the bucket is the truth
    progress(f'vertex: mirror NOT updated ({type(error).__name__}: {error}); the bucket registry '
             f'is unchanged and the next run or move resumes the sync')
