"""Workflow definitions: the tutorial's DAGs, as JSON files shipped with each build.

A definition (``build/workflows/<name>.json``)::

    {"name": "wordcount_test", "pipeline": "wordcount", "env": "test",
     "module": "beam_pipelines.wordcount",
     "args": ["--input", "{input_location}/wordcount/input.txt", ...],
     "checks": [{"check": "golden_counts", "output": "...", "reference": "..."}]}

``{placeholders}`` are filled at run time from the environment's ``variables.json`` (plus
``run_id``), as a Composer DAG reads its variables. ``module`` must be one of this package's
modules; check names are those of ``beam_pipelines.harness.checks.CHECKS``.

A deployed definition is used only through ``verified_deployment``: the variables' pointers are
the named build's (``records.read_variables``), the manifest has the sha256 the variables pin, and
each definition's bytes have the sha256 the manifest records, checked on the bytes then parsed.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Collection, Dict, List, Mapping, Tuple

from beam_pipelines.harness.errors import HarnessError
from beam_pipelines.store import bucket, layout, records

REQUIRED_FIELDS = ('name', 'pipeline', 'env', 'module', 'args')
PACKAGE_MODULE = re.compile(r'beam_pipelines(\.[a-z][a-z0-9_]*)+')


@dataclasses.dataclass(frozen=True)
class WorkflowDefinition:
  """One workflow of a build: which module runs with which arguments, in which env, then checks."""
  name: str
  pipeline: str
  env: str
  module: str
  args: Tuple[str, ...]
  checks: Tuple[Dict[str, str], ...] = ()  # {"check": name, parameter: template, ...}


def parse_definition(data: bytes, source: str, known_checks: Collection[str]) -> WorkflowDefinition:
  """Parses and validates one workflow definition; anything odd is a HarnessError naming it."""
  try:
    raw = json.loads(data.decode('utf-8'))
  except (UnicodeDecodeError, ValueError) as error:
    raise HarnessError(f'workflow definition {source} is not valid JSON: {error}') from None
  if not isinstance(raw, dict):
    raise HarnessError(f'workflow definition {source} is not a JSON object')
  missing = [f for f in REQUIRED_FIELDS if f not in raw]
  if missing:
    raise HarnessError(f'workflow definition {source} lacks {", ".join(missing)}')
  layout.validate_env(raw['env'])
  if not isinstance(raw['module'], str) or not PACKAGE_MODULE.fullmatch(raw['module']):
    raise HarnessError(f'workflow definition {source}: module {raw["module"]!r} is not a module '
                       f'of beam_pipelines; refusing to run it')
  if not isinstance(raw['args'], list) or not all(isinstance(a, str) for a in raw['args']):
    raise HarnessError(f'workflow definition {source}: args must be strings')
  checks = raw.get('checks', [])
  for check in checks:
    if not isinstance(check, dict) or check.get('check') not in known_checks:
      raise HarnessError(f'workflow definition {source}: unknown check {check!r} '
                         f'(known: {", ".join(sorted(known_checks))})')
    if not all(isinstance(v, str) for v in check.values()):
      raise HarnessError(f'workflow definition {source}: check {check["check"]!r}: parameters '
                         f'must be strings')
  return WorkflowDefinition(str(raw['name']), str(raw['pipeline']), raw['env'], raw['module'],
                            tuple(raw['args']), tuple(checks))


@dataclasses.dataclass(frozen=True)
class Deployment:
  """What an environment runs, verified: its variables, its build's manifest, its definitions."""
  variables: records.DeploymentVariables
  manifest: records.Manifest
  definitions: Tuple[WorkflowDefinition, ...]


def verified_deployment(env: layout.Env, known_checks: Collection[str]) -> Deployment:
  """The deployment of ``env``, each link of variables -> manifest -> wheel, definitions checked.

  Only the definitions the manifest lists are read; any other file in the folder is ignored.
  """
  variables = records.read_variables(env)
  build_id = variables.build_id
  pinned = variables.manifest_sha256
  if not pinned:
    raise HarnessError(f'{env.variables} does not pin its build manifest ({layout.VAR_MANIFEST_SHA256} '
                       f'missing): deploy build {build_id} again. Nothing was run.')
  manifest = records.read_manifest(variables.manifest_file,
                                   f'manifest of build {build_id} in {env.name}', pinned)
  wheel_name = variables.wheel_file.rsplit('/', 1)[-1]
  if (manifest.build_id, manifest.wheel, manifest.wheel_sha256) != (
      build_id, wheel_name, variables.sha256):
    raise HarnessError(f'{env.variables} and the manifest {variables.manifest_file} disagree '
                       f'(build {manifest.build_id} vs {build_id}, wheel {manifest.wheel} vs '
                       f'{wheel_name}, sha256 {manifest.wheel_sha256} vs {variables.sha256}). '
                       f'Refusing to run anything.')
  definitions = []
  for name, entry in manifest.workflow_files().items():
    path = layout.join(variables.workflows_dir, name.split('/', 1)[1])
    data = bucket.read_bytes(path, 'deployed workflow definition')
    if bucket.sha256_bytes(data) != entry.sha256:
      raise HarnessError(f'workflow definition {path} was changed after build {build_id} was '
                         f'made: sha256 {bucket.sha256_bytes(data)}, the manifest says '
                         f'{entry.sha256}. Refusing to run it.')
    definitions.append(parse_definition(data, path, known_checks))
  return Deployment(variables, manifest, tuple(definitions))


def find(definitions: Collection[WorkflowDefinition], pipeline: str, env: str) -> WorkflowDefinition:
  for definition in definitions:
    if definition.pipeline == pipeline and definition.env == env:
      return definition
  known = sorted({f'{d.pipeline} ({d.env})' for d in definitions})
  raise HarnessError(f'no deployed workflow for pipeline {pipeline!r} in {env}; deployed: '
                     f'{", ".join(known) or "none"}')


def render(template: str, values: Mapping[str, object]) -> str:
  """Fills ``{name}`` placeholders from ``values``; an unknown name is a HarnessError."""
  try:
    return template.format_map(values)
  except KeyError as error:
    raise HarnessError(f'workflow placeholder {error} has no variable; known: '
                       f'{", ".join(sorted(values))}') from None


def render_args(definition: WorkflowDefinition, values: Mapping[str, object]) -> List[str]:
  return [render(arg, values) for arg in definition.args]
