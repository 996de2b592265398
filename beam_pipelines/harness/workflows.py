"""Workflow definitions (the tutorial's DAGs, as JSON) and the checks a test workflow runs.

A definition (``build/workflows/<name>.json``, shipped with each build)::

    {"name": "wordcount_test", "pipeline": "wordcount", "env": "test",
     "module": "beam_pipelines.wordcount",
     "args": ["--input", "{input_location}/wordcount/input.txt", ...],
     "checks": [{"check": "golden_counts", "output": "...", "reference": "..."}]}

``{placeholders}`` are filled at run time from the environment's ``variables.json`` (plus
``run_id``), as a Composer DAG reads its variables. Checks are looked up by name in ``CHECKS``;
later issues register more (``@register_check('ml_blessing')``).
"""

from __future__ import annotations

import json
from typing import Callable, Dict, List, NamedTuple

from beam_pipelines.harness import bucket, compare, layout
from beam_pipelines.harness.errors import HarnessError

REQUIRED_FIELDS = ('name', 'pipeline', 'env', 'module', 'args')


class CheckResult(NamedTuple):
  check: str
  passed: bool
  message: str
  details: dict


CheckFn = Callable[[Dict[str, str]], CheckResult]
CHECKS: Dict[str, CheckFn] = {}


def register_check(name: str) -> Callable[[CheckFn], CheckFn]:
  """Decorator: makes a check available to workflow definitions under ``name``."""
  def decorate(fn: CheckFn) -> CheckFn:
    CHECKS[name] = fn
    return fn
  return decorate


def parse_definition(data: bytes, source: str) -> dict:
  """Parses and validates one workflow definition."""
  try:
    definition = json.loads(data.decode('utf-8'))
  except (UnicodeDecodeError, ValueError) as error:
    raise HarnessError(f'workflow definition {source} is not valid JSON: {error}') from None
  missing = [f for f in REQUIRED_FIELDS if f not in definition]
  if missing:
    raise HarnessError(f'workflow definition {source} lacks {", ".join(missing)}')
  layout.validate_env(definition['env'])
  if not all(isinstance(a, str) for a in definition['args']):
    raise HarnessError(f'workflow definition {source}: args must be strings')
  for check in definition.get('checks', []):
    if check.get('check') not in CHECKS:
      raise HarnessError(f'workflow definition {source}: unknown check {check.get("check")!r} '
                         f'(known: {", ".join(sorted(CHECKS))})')
  return definition


def load_deployed(workflows_dir: str) -> List[dict]:
  """Every definition deployed under ``workflows_dir`` (an environment's DAG folder)."""
  return [parse_definition(bucket.read_bytes(path), path)
          for path in bucket.list_files(workflows_dir) if path.endswith('.json')]


def find(definitions: List[dict], pipeline: str, env: str) -> dict:
  for definition in definitions:
    if definition['pipeline'] == pipeline and definition['env'] == env:
      return definition
  known = sorted({f'{d["pipeline"]} ({d["env"]})' for d in definitions})
  raise HarnessError(f'no deployed workflow for pipeline {pipeline!r} in {env}; deployed: '
                     f'{", ".join(known) or "none"}')


def render(template: str, values: Dict[str, str]) -> str:
  """Fills ``{name}`` placeholders from ``values``; an unknown name is a HarnessError."""
  try:
    return template.format_map(values)
  except KeyError as error:
    raise HarnessError(f'workflow placeholder {error} has no variable; known: '
                       f'{", ".join(sorted(values))}') from None


def render_args(definition: dict, values: Dict[str, str]) -> List[str]:
  return [render(arg, values) for arg in definition['args']]


def run_checks(definition: dict, values: Dict[str, str]) -> List[CheckResult]:
  results = []
  for spec in definition.get('checks', []):
    params = {k: render(v, values) if isinstance(v, str) else v for k, v in spec.items()}
    results.append(CHECKS[spec['check']](params))
  return results


def read_shard_maps(output_prefix: str):
  """(shard path, parsed map) for every output shard ``<prefix>-*``."""
  from apache_beam.io.filesystems import FileSystems
  shards = sorted(m.path for m in FileSystems.match([f'{output_prefix}-*'])[0].metadata_list)
  return [(shard, compare.parse_counts(bucket.read_bytes(shard).decode('utf-8'), shard))
          for shard in shards]


@register_check('golden_counts')
def golden_counts(params: Dict[str, str]) -> CheckResult:
  """Every output shard together equals the golden ``key: value`` reference, exactly."""
  name = 'golden_counts'
  try:
    shard_maps = read_shard_maps(params['output'])
    if not shard_maps:
      return CheckResult(name, False, f'no output shards match {params["output"]}-*', {})
    actual = compare.merge_maps(shard_maps)
    expected = compare.parse_counts(
        bucket.read_bytes(params['reference'], 'reference').decode('utf-8'), params['reference'])
  except (ValueError, HarnessError) as error:
    return CheckResult(name, False, str(error), {})
  comparison = compare.compare_maps(expected, actual)
  details = {'shards': len(shard_maps), 'keys': len(actual), 'reference': params['reference'],
             'missing': comparison.missing, 'unexpected': comparison.unexpected,
             'wrong': [list(w) for w in comparison.wrong]}
  return CheckResult(name, comparison.equal, compare.render(comparison), details)


# The level-2 ML check (`ml_model`) registers itself with ``register_check``.
from beam_pipelines.ml import gate  # noqa: E402,F401
