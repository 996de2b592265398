"""The typed records that cross floors, each with its one reader: build manifests and the
deployment variables of an environment (``variables.json``, the Composer variables).

Field names are the contract in ``layout`` (``M_*``, ``VAR_*``); a record read from the bucket is
checked here once, and every caller gets attributes, not string keys.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Dict, List, Mapping, Optional, TypedDict, Union

from beam_pipelines.store import bucket, layout
from beam_pipelines.store.errors import StorageError, UntrustedPointerError


@dataclasses.dataclass(frozen=True)
class FileEntry:
  """One file of a build: its sha256 and size in bytes."""
  sha256: str
  size: int


class FileDocument(TypedDict):
  """One file's entry in ``manifest.json``."""
  sha256: str
  size: int


class ManifestDocument(TypedDict):
  """``manifest.json`` (keys: ``layout.M_*``)."""
  name: str
  version: str
  build_id: str
  created_at: Optional[str]
  git_commit: Optional[str]
  git_dirty: bool
  source_date_epoch: Optional[int]
  python_version: Optional[str]
  beam_version: Optional[str]
  wheel: str
  sdist: str
  files: Dict[str, FileDocument]


@dataclasses.dataclass(frozen=True)
class Manifest:
  """``manifest.json`` of a build: who built what, and the sha256 of every file it ships."""
  name: str
  version: str
  build_id: str
  wheel: str
  sdist: str
  files: Dict[str, FileEntry]
  created_at: Optional[str] = None
  git_commit: Optional[str] = None
  git_dirty: bool = True
  source_date_epoch: Optional[int] = None
  python_version: Optional[str] = None
  beam_version: Optional[str] = None

  @property
  def wheel_sha256(self) -> str:
    return self.files[self.wheel].sha256

  def workflow_files(self) -> Dict[str, FileEntry]:
    """The build's workflow definitions: ``workflows/<name>.json`` -> entry."""
    return {n: e for n, e in sorted(self.files.items()) if n.startswith(layout.WORKFLOWS + '/')}

  def to_dict(self) -> ManifestDocument:
    return {
        layout.M_NAME: self.name, layout.M_VERSION: self.version, layout.M_BUILD_ID: self.build_id,
        layout.M_CREATED_AT: self.created_at, layout.M_GIT_COMMIT: self.git_commit,
        layout.M_GIT_DIRTY: self.git_dirty, layout.M_SOURCE_DATE_EPOCH: self.source_date_epoch,
        layout.M_PYTHON: self.python_version, layout.M_BEAM: self.beam_version,
        layout.M_WHEEL: self.wheel, layout.M_SDIST: self.sdist,
        layout.M_FILES: {n: FileDocument(sha256=e.sha256, size=e.size)
                         for n, e in sorted(self.files.items())},
    }

  @classmethod
  def from_dict(cls, raw: Mapping[str, Any], source: str) -> 'Manifest':
    """A manifest from its JSON object; a missing field or a wheel not among the files is refused."""
    try:
      files = {str(n): FileEntry(str(e['sha256']), int(e['size']))
               for n, e in raw[layout.M_FILES].items()}
      manifest = cls(
          name=str(raw[layout.M_NAME]), version=str(raw[layout.M_VERSION]),
          build_id=layout.validate_build_id(raw[layout.M_BUILD_ID]),
          wheel=str(raw[layout.M_WHEEL]), sdist=str(raw[layout.M_SDIST]), files=files,
          created_at=raw.get(layout.M_CREATED_AT), git_commit=raw.get(layout.M_GIT_COMMIT),
          git_dirty=bool(raw.get(layout.M_GIT_DIRTY, True)),
          source_date_epoch=raw.get(layout.M_SOURCE_DATE_EPOCH),
          python_version=raw.get(layout.M_PYTHON), beam_version=raw.get(layout.M_BEAM))
    except (KeyError, TypeError, ValueError, AttributeError) as error:
      raise StorageError(f'{source} is not a build manifest (bad or missing field {error}). '
                         f'Refusing to use it.') from None
    for name in (manifest.wheel, manifest.sdist):
      if name not in files:
        raise StorageError(f'{source}: {name} is not among the files it lists. Refusing.')
    return manifest


def read_manifest(path: str, what: str = 'build manifest',
                  expected_sha256: Optional[str] = None) -> Manifest:
  """The one reader of a manifest (a bucket object or a local ``dist/manifest.json``).

  With ``expected_sha256`` (recorded by a verified step: the "test passed" record, prod's
  variables), the bytes are read once, hashed, and parsed only when they are those bytes.
  """
  if expected_sha256 is None:
    return Manifest.from_dict(bucket.read_json(path, what), path)
  data = bucket.read_bytes(path, what)
  actual = bucket.sha256_bytes(data)
  if actual != expected_sha256:
    raise StorageError(f'{what} bytes changed: {path} has sha256 {actual}, expected '
                       f'{expected_sha256} (recorded when it was tested). Refusing to use it.')
  try:
    raw = json.loads(data.decode('utf-8'))
  except (UnicodeDecodeError, ValueError):
    raise StorageError(f'{what} at {path} is not valid JSON. Refusing to use it.') from None
  if not isinstance(raw, dict):
    raise StorageError(f'{what} at {path} is not a JSON object. Refusing to use it.')
  return Manifest.from_dict(raw, path)


VariableValue = Union[str, bool, None, List[str]]  # text, a flag, or the pipelines an override covers
Variables = Dict[str, VariableValue]  # what ``variables.json`` holds (names: ``layout.VAR_*``)


@dataclasses.dataclass(frozen=True)
class DeploymentVariables:
  """An environment's ``variables.json``: which build runs there and where its workflows read and
  write. ``values`` keeps every variable (the workflow placeholders are filled from it)."""
  env: str
  build_id: str
  wheel_file: str
  sha256: str
  manifest_file: str
  workflows_dir: str
  values: Variables

  def get(self, name: str, default: VariableValue = None) -> VariableValue:
    return self.values.get(name, default)

  def text(self, name: str) -> Optional[str]:
    """A text variable (a sha256, an id, a location); None when absent or not text."""
    value = self.values.get(name)
    return value if isinstance(value, str) else None

  @property
  def version(self) -> Optional[str]:
    return self.text(layout.VAR_VERSION)

  @property
  def manifest_sha256(self) -> Optional[str]:
    """The sha256 of the build's manifest the variables pin; None in ones written before."""
    return self.text(layout.VAR_MANIFEST_SHA256)

  @classmethod
  def from_dict(cls, env: str, raw: Mapping[str, Any], source: str) -> 'DeploymentVariables':
    missing = [k for k in layout.REQUIRED_VARIABLES if not raw.get(k)]
    if missing:
      raise StorageError(f'{env} variables at {source} lack {", ".join(missing)}. '
                         f'Nothing was changed.')
    return cls(env, layout.validate_build_id(raw[layout.VAR_BUILD_ID]),
               str(raw[layout.VAR_WHEEL_FILE]), str(raw[layout.VAR_SHA256]),
               str(raw[layout.VAR_MANIFEST_FILE]), str(raw[layout.VAR_WORKFLOWS_DIR]), dict(raw))


def check_pointers(env: layout.Env, variables: DeploymentVariables) -> DeploymentVariables:
  """Refuses variables whose pointers are not where the layout puts the build they name.

  The wheel, manifest and workflow folder must be those of ``build_id`` inside ``env``'s own
  prefix, and every location variable the env's own: a rewritten ``variables.json`` cannot
  redirect a run to another build, the test area, or outside the bucket.
  """
  build_id = variables.build_id
  wheel_name = variables.wheel_file.rsplit('/', 1)[-1]
  expected = {layout.VAR_MANIFEST_FILE: env.manifest(build_id),
              layout.VAR_WORKFLOWS_DIR: env.workflows(build_id)}
  if layout.WHEEL_NAME_PATTERN.fullmatch(wheel_name):
    expected[layout.VAR_WHEEL_FILE] = env.artifact(build_id, wheel_name)
  else:
    expected[layout.VAR_WHEEL_FILE] = env.artifact(build_id, '<name>.whl')
  expected.update(env.location_variables())
  wrong = [f'{k} is {variables.values[k]!r}, expected {v!r}' for k, v in expected.items()
           if k in variables.values and variables.values[k] != v]
  if wrong:
    raise UntrustedPointerError(
        f'{env.name} variables at {env.variables} point outside build {build_id} in {env.root}: '
        f'{"; ".join(wrong)}. Refusing to use them (deploy or rollback writes them anew).')
  return variables


def read_variables(env: layout.Env) -> DeploymentVariables:
  """The one reader of an environment's variables; missing, invalid, incomplete, or pointing
  anywhere but the named build's objects in ``env`` is refused."""
  return check_pointers(env, DeploymentVariables.from_dict(
      env.name, bucket.read_json(env.variables, f'{env.name} variables'), env.variables))


def deployed(env: layout.Env) -> Optional[DeploymentVariables]:
  """What ``env`` runs now; None before its first deployment."""
  return read_variables(env) if bucket.exists(env.variables) else None
