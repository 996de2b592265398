"""Golden-file comparison, as the tutorial's ``CompareXComMapsOperator``: pure functions.

``parse_counts`` turns ``key: value`` text into a map, ``compare_maps`` compares two maps exactly,
``render`` names every missing, wrong and unexpected key.
"""

from __future__ import annotations

from typing import Dict, Iterable, List, NamedTuple, Tuple


class Comparison(NamedTuple):
  """Differences between an expected and an actual map (empty lists: equal)."""
  missing: List[str]  # in expected, not in actual
  wrong: List[Tuple[str, str, str]]  # (key, expected value, actual value)
  unexpected: List[str]  # in actual, not in expected

  @property
  def equal(self) -> bool:
    return not (self.missing or self.wrong or self.unexpected)


def parse_counts(text: str, source: str = '<text>') -> Dict[str, str]:
  """Parses ``key: value`` lines into a map. Blank lines are skipped.

  Raises ValueError naming the source and line for a line without ``': '`` or a repeated key.
  The split is on the last ``': '`` so a key may contain ``': '``; values are compared as text.
  """
  result: Dict[str, str] = {}
  for number, line in enumerate(text.splitlines(), 1):
    if not line.strip():
      continue
    key, sep, value = line.rpartition(': ')
    if not sep:
      raise ValueError(f'{source}:{number}: not a "key: value" line: {line!r}')
    if key in result:
      raise ValueError(f'{source}:{number}: key {key!r} appears twice')
    result[key] = value.strip()
  return result


def merge_maps(maps: Iterable[Tuple[str, Dict[str, str]]]) -> Dict[str, str]:
  """Merges per-shard maps; a key in two shards is an error (each word belongs to one shard)."""
  merged: Dict[str, str] = {}
  origin: Dict[str, str] = {}
  for source, mapping in maps:
    for key, value in mapping.items():
      if key in merged:
        raise ValueError(f'key {key!r} appears in two shards: {origin[key]} and {source}')
      merged[key] = value
      origin[key] = source
  return merged


def compare_maps(expected: Dict[str, str], actual: Dict[str, str]) -> Comparison:
  """Exact map equality, with every difference listed (sorted)."""
  missing = sorted(k for k in expected if k not in actual)
  unexpected = sorted(k for k in actual if k not in expected)
  wrong = sorted((k, expected[k], actual[k]) for k in expected
                 if k in actual and actual[k] != expected[k])
  return Comparison(missing, wrong, unexpected)


def render(comparison: Comparison) -> str:
  """A message naming every missing, wrong and unexpected key; 'outputs match' when equal."""
  if comparison.equal:
    return 'outputs match the reference'
  parts = []
  if comparison.missing:
    parts.append(f'{len(comparison.missing)} missing: ' + ', '.join(comparison.missing))
  if comparison.wrong:
    parts.append(f'{len(comparison.wrong)} wrong: ' + ', '.join(
        f'{key} (expected {want}, got {got})' for key, want, got in comparison.wrong))
  if comparison.unexpected:
    parts.append(f'{len(comparison.unexpected)} unexpected: ' + ', '.join(comparison.unexpected))
  return 'outputs differ from the reference: ' + '; '.join(parts)
