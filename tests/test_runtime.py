"""The pipelines' runner choice: the DirectRunner runs a batch pipeline on the FnApiRunner at once,
without Beam's attempt to download and start Prism first."""

from __future__ import annotations

import logging

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.portability.fn_api_runner import fn_runner
from apache_beam.testing.util import assert_that, equal_to

from beam_pipelines import runtime


def test_the_default_runner_is_the_direct_runners_batch_engine():
  for argv in ([], ['--runner', 'DirectRunner'], ['--runner=DirectRunner', '--direct_num_workers=2']):
    assert isinstance(runtime.new_pipeline(PipelineOptions(argv)).runner, fn_runner.FnApiRunner)


def test_another_runner_is_left_as_asked():
  pipeline = runtime.new_pipeline(PipelineOptions(['--runner', 'PrismRunner']))
  assert not isinstance(pipeline.runner, fn_runner.FnApiRunner)
  assert type(pipeline.runner).__name__ == 'PrismRunner'


def test_a_pipeline_runs_without_trying_prism(caplog):
  caplog.set_level(logging.INFO, logger='apache_beam')
  with runtime.new_pipeline(PipelineOptions([])) as pipeline:
    doubled = pipeline | beam.Create([1, 2, 3]) | beam.Map(lambda x: 2 * x)
    assert_that(doubled, equal_to([2, 4, 6]))
  assert not [r for r in caplog.records if 'Prism' in r.getMessage()]
