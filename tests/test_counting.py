"""SumCounts: a pipeline's totals in one combine."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from beam_pipelines.ml import counting


def test_totals_sum_each_name_and_an_empty_input_counts_zero():
  with TestPipeline() as pipeline:
    totals = {
        'rows_read': pipeline | 'Read' >> beam.Create([3, 4]),
        'rows_written': pipeline | 'Written' >> beam.Create([5, 1, 1]),
        'rows_dead_lettered': pipeline | 'Dead' >> beam.Create([]),
    } | counting.SumCounts()
    assert_that(totals, equal_to([{'rows_read': 7, 'rows_written': 7, 'rows_dead_lettered': 0}]))


def test_totals_of_nothing_at_all_are_zeros():
  with TestPipeline() as pipeline:
    totals = {'rows_read': pipeline | beam.Create([])} | counting.SumCounts()
    assert_that(totals, equal_to([{'rows_read': 0}]))
