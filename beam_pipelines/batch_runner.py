"""The DirectRunner's batch engine, chosen directly: what ``--runner DirectRunner`` runs here.

    python -m beam_pipelines.predict ... --runner beam_pipelines.batch_runner.DirectBatchRunner
"""

from __future__ import annotations

import itertools

import apache_beam as beam
from apache_beam.internal.util import ArgumentPlaceholder
from apache_beam.options.pipeline_options import StandardOptions
from apache_beam.pipeline import PipelineVisitor
from apache_beam.runners.runner import PipelineRunner
from apache_beam.transforms import userstate
from apache_beam.transforms.core import CombineValuesDoFn
from apache_beam.transforms.timeutil import TimeDomain


class DirectBatchRunner(PipelineRunner):
  """The DirectRunner without its Prism attempt: a batch pipeline runs on the FnApiRunner at once.

  Since Beam 2.6x the DirectRunner first tries Prism, a Go runner it downloads from GitHub: with
  network a run silently moves to another engine, without it every run waits on the failed
  download (~0.3 s per pipeline here) before falling back to the FnApiRunner. This runner builds
  the FnApiRunner as the DirectRunner does (the pipeline options reach the workers, so
  ``--direct_num_workers`` and ``--direct_running_mode`` apply as usual). What the DirectRunner
  would not give the FnApiRunner (streaming, ``TestStream``, Pub/Sub, processing-time timers,
  combiners with deferred side inputs) goes to Beam's DirectRunner itself. ``--runner
  PrismRunner`` still asks for Prism.

  Unlike Beam's DirectRunner, this runner says it is Fn API compatible, so ``beam.Pipeline``
  adds the ``beam_fn_api`` experiment at construction; the FnApiRunner adds it anyway.
  """

  def run_pipeline(self, pipeline, options):
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.direct.direct_runner import SwitchingDirectRunner
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.runners.portability.portable_runner import JobServiceHandle

    if options.view_as(StandardOptions).streaming or not _FnApiSupport().accept(pipeline):
      return SwitchingDirectRunner().run_pipeline(pipeline, options)
    encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
    runner = fn_runner.FnApiRunner(provision_info=fn_runner.ExtendedProvisionInfo(
        beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded)))
    return runner.run_pipeline(pipeline, options)


class _FnApiSupport(PipelineVisitor):
  """Whether the FnApiRunner runs a pipeline: the DirectRunner's own test, on the same transforms
  (``SwitchingDirectRunner``'s ``_FnApiRunnerSupportVisitor``, a local class Beam does not
  export)."""

  def accept(self, pipeline) -> bool:
    self.supported = True
    pipeline.visit(self)
    return self.supported

  def enter_composite_transform(self, applied_ptransform):
    from apache_beam.io.gcp.pubsub import ReadFromPubSub, WriteToPubSub  # Beam imports it so, late
    if isinstance(applied_ptransform.transform, (ReadFromPubSub, WriteToPubSub)):
      self.supported = False

  def visit_transform(self, applied_ptransform):
    from apache_beam.testing.test_stream import TestStream

    transform = applied_ptransform.transform
    if isinstance(transform, TestStream):
      self.supported = False
    if isinstance(transform, beam.ParDo):
      if isinstance(transform.dofn, CombineValuesDoFn):
        args, kwargs = transform.raw_side_inputs
        if any(isinstance(arg, ArgumentPlaceholder) for arg in itertools.chain(args, kwargs.values())):
          self.supported = False
      if userstate.is_stateful_dofn(transform.dofn):
        _, timers = userstate.get_dofn_specs(transform.dofn)
        if any(timer.time_domain == TimeDomain.REAL_TIME for timer in timers):
          self.supported = False
