"""What ``invoke model-list`` and ``invoke lineage`` show: one JSON-ready object each (their
``--json`` output, fields in docs/continuous-training.md) and its lines for people.

Read-only: the registry's and the lineage's JSON records, never a model; reading a local bucket
imports neither Beam nor any pipeline.
"""

from __future__ import annotations

from typing import Any, Dict, List, Union

from beam_pipelines.ct.lineage import render as render_lineage
from beam_pipelines.ct.registry import (
  Registry,
  RegistryError,
  blessing_status,
  describe,
  describe_aliases,
  describe_moves,
)
from beam_pipelines.store import bucket
from beam_pipelines.store.console import number

HISTORY_SHOWN = 10  # alias moves listed for people (the JSON holds all of them)


def model_list(reg: Registry, pipeline: str) -> Dict[str, Any]:
  """The registry of ``pipeline``: every version's record as stored, the aliases, the history."""
  versions, skipped_versions = reg.versions_and_skipped()
  history, skipped_events = reg.history_and_skipped()
  return {'pipeline': pipeline, 'registry': reg.root, 'aliases': reg.aliases(),
          'versions': versions, 'history': history, 'skipped': skipped_versions + skipped_events}


def model_list_lines(view: Dict[str, Any]) -> List[str]:
  """A ``model_list`` for people."""
  lines = [f'registry: {view["registry"]}']
  lines += [describe(record, view['aliases']) for record in view['versions']]
  lines.append(f'aliases: {describe_aliases(view["aliases"])}')
  for event in view['history'][-HISTORY_SHOWN:]:
    lines.append(f'  {event.get("at", "?")}  {str(event.get("event", "?")):8s} '
                 f'{describe_moves(event["moves"])}  ({str(event.get("reason", ""))[:80]})')
  lines += [f'  SKIPPED an unreadable entry: {message}' for message in view.get('skipped', [])]
  return lines


def lineage(reg: Registry, pipeline: str, model: Union[str, int]) -> Dict[str, Any]:
  """The version ``model`` names (an alias or a number), its registry record and its run's
  lineage record."""
  version = reg.resolve(model)
  record = reg.record(version)
  path = record.get('lineage')
  if not isinstance(path, str) or not path:
    raise RegistryError(f'{reg.record_path(version)} names no lineage record (a malformed or '
                        f'hand-written version): its files and sha256 are in `invoke model-list`')
  return {'pipeline': pipeline, 'model': str(model), 'version': version, 'registry': reg.root,
          'record': record, 'lineage_path': path,
          'lineage': bucket.read_json(path, 'lineage record')}


def lineage_lines(view: Dict[str, Any]) -> List[str]:
  """A ``lineage`` for people."""
  record = view['record']
  metrics = ', '.join(f'{k} {number(v)}' for k, v in sorted((record.get('metrics') or {}).items())
                      if isinstance(v, float))
  return ([f'model v{view["version"]} ({view["model"]}): sha256 {record["model_sha256"]}, '
           f'{blessing_status(record) or "not evaluated"}; '
           f'{metrics or "no metrics"}']
          + render_lineage(view['lineage'])
          + [f'lineage record: {view["lineage_path"]}'])
