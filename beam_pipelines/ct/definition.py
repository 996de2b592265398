"""The CT pipeline definition of a build: which dataset spec, which training flags, which
blessing rule (``beam_pipelines/data/ct_pipeline.yaml`` by default)."""

from __future__ import annotations

import dataclasses
import pathlib
from importlib import resources
from typing import Any, Dict, List, Optional

import yaml

from beam_pipelines.ml import spec as spec_lib
from beam_pipelines.store import bucket, layout
from beam_pipelines.store.errors import Refusal


class DefinitionError(Refusal):
  """A CT pipeline definition that cannot be used (the message names the file and the field)."""


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

  @property
  def model_name(self) -> str:
    """The registry name of the model this pipeline trains: its dataset spec's ``name``."""
    return spec_lib.load(self.spec_path).name

  def parameters(self) -> Dict[str, Any]:
    """The pipeline's parameters as lineage and cache keys record them."""
    blessing = bucket.sha256_of(self.blessing_path) if self.blessing_path else 'default'
    return {'pipeline': self.path, 'spec': self.spec_path,
            'spec_fingerprint': spec_lib.load(self.spec_path).fingerprint(),
            'train': dict(self.train), 'blessing': self.blessing_path, 'blessing_sha256': blessing}


def default_definition_path() -> str:
  return str(resources.files('beam_pipelines') / 'data' / 'ct_pipeline.yaml')


def load_definition(path: Optional[str] = None) -> PipelineDefinition:
  """Reads the pipeline definition (YAML); relative spec/blessing paths are beside the file."""
  path = path or default_definition_path()
  try:
    raw = yaml.safe_load(bucket.read_bytes(path, 'CT pipeline definition').decode('utf-8'))
  except (yaml.YAMLError, UnicodeDecodeError) as error:
    raise DefinitionError(f'CT pipeline definition {path} is not valid YAML: '
                          f'{str(error).splitlines()[0]}') from None
  if not isinstance(raw, dict) or not raw.get('spec') or not isinstance(raw.get('train', {}), dict):
    raise DefinitionError(f'CT pipeline definition {path}: needs "spec" and a "train" mapping')

  def beside(value):
    if value is None or '://' in value or value.startswith('/'):
      return value
    return str(pathlib.PurePosixPath(path).parent / value) if '://' not in path else layout.join(
        path.rsplit('/', 1)[0], value)
  return PipelineDefinition(path, beside(raw['spec']), dict(raw.get('train') or {}),
                            beside(raw.get('blessing')))
