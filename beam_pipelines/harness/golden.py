"""The word count's check: every output shard together equals the golden reference, exactly."""

from __future__ import annotations

from typing import Dict, List, Tuple

from beam_pipelines.harness import compare
from beam_pipelines.harness.results import CheckResult
from beam_pipelines.store import bucket
from beam_pipelines.store.errors import Refusal

GOLDEN_CHECK = 'golden_counts'

def read_shard_maps(output_prefix: str) -> List[Tuple[str, Dict[str, str]]]:
  """(shard path, parsed map) for every output shard ``<prefix>-*``."""
  directory, _, name = output_prefix.rpartition('/')
  shards = [p for p in bucket.list_files(directory) if p.rsplit('/', 1)[-1].startswith(name + '-')]
  return [(shard, compare.parse_counts(bucket.read_bytes(shard).decode('utf-8'), shard))
          for shard in shards]

def golden_counts(params: Dict[str, str]) -> CheckResult:
  """Every output shard together equals the golden ``key: value`` reference, exactly."""
  try:
    shard_maps = read_shard_maps(params['output'])
    if not shard_maps:
      return CheckResult(GOLDEN_CHECK, False, f'no output shards match {params["output"]}-*', {})
    actual = compare.merge_maps(shard_maps)
    expected = compare.parse_counts(
        bucket.read_bytes(params['reference'], 'reference').decode('utf-8'), params['reference'])
  except (ValueError, Refusal) as error:
    return CheckResult(GOLDEN_CHECK, False, str(error), {})
  comparison = compare.compare_maps(expected, actual)
  details = {'shards': len(shard_maps), 'keys': len(actual), 'reference': params['reference'],
             'missing': comparison.missing, 'unexpected': comparison.unexpected,
             'wrong': [list(w) for w in comparison.wrong]}
  return CheckResult(GOLDEN_CHECK, comparison.equal, compare.render(comparison), details)
