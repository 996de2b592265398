"""Workflow definitions: the tutorial's DAGs, as JSON files shipped with each build.

A definition (``build/workflows/<name>.json``)::

    {"name": "wordcount_test", "pipeline": "wordcount", "env": "test",
     "module": "beam_pipelines.wordcount",
     "args": ["--input", "{input_location}/wordcount/input.txt", ...],
     "checks": [{"check": "golden_counts", "output": "...", "reference": "..."}]}

``{placeholders}`` are filled at run time from the environment's ``variables.json`` (plus
``run_id``), as a Composer DAG reads its variables. ``module`` must be one of this package's
modules; check names are those of ``beam_pipelines.harness.checks.CHECKS``.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any, Collection, Dict, List, Tuple

from beam_pipelines.harness.errors import HarnessError
from beam_pipelines.store import bucket, layout

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
  checks: Tuple[Dict[str, Any], ...] = ()


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
  return WorkflowDefinition(str(raw['name']), str(raw['pipeline']), raw['env'], raw['module'],
                            tuple(raw['args']), tuple(checks))


def load_deployed(workflows_dir: str, known_checks: Collection[str]) -> List[WorkflowDefinition]:
  """Every definition deployed under ``workflows_dir`` (an environment's DAG folder)."""
  return [parse_definition(bucket.read_bytes(path), path, known_checks)
          for path in bucket.list_files(workflows_dir) if path.endswith('.json')]


def find(definitions: List[WorkflowDefinition], pipeline: str, env: str) -> WorkflowDefinition:
  for definition in definitions:
    if definition.pipeline == pipeline and definition.env == env:
      return definition
  known = sorted({f'{d.pipeline} ({d.env})' for d in definitions})
  raise HarnessError(f'no deployed workflow for pipeline {pipeline!r} in {env}; deployed: '
                     f'{", ".join(known) or "none"}')


def render(template: str, values: Dict[str, Any]) -> str:
  """Fills ``{name}`` placeholders from ``values``; an unknown name is a HarnessError."""
  try:
    return template.format_map(values)
  except KeyError as error:
    raise HarnessError(f'workflow placeholder {error} has no variable; known: '
                       f'{", ".join(sorted(values))}') from None


def render_args(definition: WorkflowDefinition, values: Dict[str, Any]) -> List[str]:
  return [render(arg, values) for arg in definition.args]
