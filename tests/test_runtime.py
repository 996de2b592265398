"""The pipelines' runner: the DirectRunner runs a batch pipeline on its FnApiRunner at once,
without Beam's attempt to download and start Prism first."""

from __future__ import annotations

import logging

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to

from beam_pipelines import runtime
from beam_pipelines.batch_runner import DirectBatchRunner, _FnApiSupport


def test_the_direct_runner_under_any_of_its_names_is_the_batch_runner():
  for argv in ([], ['--runner', 'DirectRunner'], ['--runner=direct'], ['--runner=directrunner'],
               ['--runner=apache_beam.runners.direct.direct_runner.SwitchingDirectRunner'],
               ['--runner=DirectRunner', '--direct_num_workers=2']):
    assert isinstance(runtime.new_pipeline(PipelineOptions(argv)).runner, DirectBatchRunner), argv


def test_another_runner_is_left_as_asked():
  for runner in ('PrismRunner', 'BundleBasedDirectRunner'):
    assert type(runtime.new_pipeline(PipelineOptions(['--runner', runner])).runner).__name__ == runner


def test_a_pipeline_runs_without_trying_prism(caplog):
  caplog.set_level(logging.INFO, logger='apache_beam')
  with runtime.new_pipeline(PipelineOptions([])) as pipeline:
    doubled = pipeline | beam.Create([1, 2, 3]) | beam.Map(lambda x: 2 * x)
    assert_that(doubled, equal_to([2, 4, 6]))
  assert not [r.getMessage() for r in caplog.records if 'Prism' in r.getMessage()]


def test_the_test_pipelines_run_on_it_too():
  assert isinstance(TestPipeline().runner, DirectBatchRunner)


def test_what_the_fn_api_runner_cannot_run_goes_to_beams_direct_runner():
  batch = beam.Pipeline()
  _ = batch | beam.Create([1]) | beam.CombineGlobally(sum)
  assert _FnApiSupport().accept(batch)
  streamed = beam.Pipeline()
  _ = streamed | TestStream().add_elements([1]) | beam.Map(str)
  assert not _FnApiSupport().accept(streamed)
