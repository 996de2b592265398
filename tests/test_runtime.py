"""The pipelines' runner: the DirectRunner runs a batch pipeline on its FnApiRunner at once,
without Beam's attempt to download and start Prism first."""

from __future__ import annotations

import logging

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from beam_pipelines import runtime
from beam_pipelines.batch_runner import DirectBatchRunner


def test_the_direct_runner_is_the_batch_runner():
  for argv in ([], ['--runner', 'DirectRunner'], ['--runner=DirectRunner', '--direct_num_workers=2']):
    assert isinstance(runtime.new_pipeline(PipelineOptions(argv)).runner, DirectBatchRunner)


def test_another_runner_is_left_as_asked():
  assert type(runtime.new_pipeline(PipelineOptions(['--runner', 'PrismRunner'])).runner).__name__ \
      == 'PrismRunner'


def prism_mentions(caplog, pipeline) -> list:
  caplog.set_level(logging.INFO, logger='apache_beam')
  with pipeline:
    doubled = pipeline | beam.Create([1, 2, 3]) | beam.Map(lambda x: 2 * x)
    assert_that(doubled, equal_to([2, 4, 6]))
  return [r.getMessage() for r in caplog.records if 'Prism' in r.getMessage()]


def test_a_pipeline_runs_without_trying_prism(caplog):
  assert prism_mentions(caplog, runtime.new_pipeline(PipelineOptions([]))) == []


def test_the_test_pipelines_run_on_it_too(caplog):
  assert isinstance(TestPipeline().runner, DirectBatchRunner)
  assert prism_mentions(caplog, TestPipeline()) == []


def test_beams_own_direct_runner_would_try_prism(caplog):
  """What the batch runner saves: the DirectRunner itself tries Prism first."""
  assert prism_mentions(caplog, beam.Pipeline(options=PipelineOptions(['--runner', 'DirectRunner'])))
