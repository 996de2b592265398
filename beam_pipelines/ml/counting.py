"""Run totals in one combine: the counts a pipeline's summary reconciles (rows read, written,
dead-lettered) summed together, so a summary costs one CombineGlobally, not one per count plus a
side input each."""

from __future__ import annotations

from typing import Dict, Iterable, Sequence, Tuple

import apache_beam as beam


class TotalsFn(beam.CombineFn):
  """(name, count) pairs -> {name: total} with every name of ``names`` present (0 when none)."""

  def __init__(self, names: Sequence[str]):
    super().__init__()
    self._names = tuple(names)

  def create_accumulator(self) -> Dict[str, int]:
    return dict.fromkeys(self._names, 0)

  def add_input(self, totals: Dict[str, int], named: Tuple[str, int]) -> Dict[str, int]:
    name, count = named
    totals[name] += count
    return totals

  def merge_accumulators(self, accumulators: Iterable[Dict[str, int]]) -> Dict[str, int]:
    merged = self.create_accumulator()
    for totals in accumulators:
      for name, count in totals.items():
        merged[name] += count
    return merged

  def extract_output(self, totals: Dict[str, int]) -> Dict[str, int]:
    return dict(totals)


class SumCounts(beam.PTransform):
  """{name: PCollection of counts} -> one {name: total} (an empty input totals 0).

      totals = {'rows_read': rows_per_file, 'rows_dead_lettered': ones} | SumCounts()
  """

  def expand(self, counts: Dict[str, beam.PCollection]):
    named = [pcoll | f'Name_{name}' >> beam.Map(lambda count, name=name: (name, count))
             for name, pcoll in counts.items()]
    return (named
            | 'Flatten' >> beam.Flatten()
            | 'Sum' >> beam.CombineGlobally(TotalsFn(list(counts))))
