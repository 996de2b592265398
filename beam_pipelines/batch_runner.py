"""The DirectRunner's batch engine, chosen directly: what ``--runner DirectRunner`` runs here.

    python -m beam_pipelines.predict ... --runner beam_pipelines.batch_runner.DirectBatchRunner
"""

from __future__ import annotations

from apache_beam.options.pipeline_options import StandardOptions
from apache_beam.portability.api import beam_provision_api_pb2
from apache_beam.runners.direct.direct_runner import SwitchingDirectRunner
from apache_beam.runners.portability.fn_api_runner import fn_runner
from apache_beam.runners.portability.portable_runner import JobServiceHandle
from apache_beam.runners.runner import PipelineRunner


class DirectBatchRunner(PipelineRunner):
  """The DirectRunner without its Prism attempt: a batch pipeline runs on the FnApiRunner at once.

  Since Beam 2.6x the DirectRunner first tries Prism, a Go runner it downloads from GitHub: with
  network a run silently moves to another engine, without it every run waits on the failed
  download (~0.3 s per pipeline here) before falling back to the FnApiRunner. This runner builds
  the FnApiRunner as the DirectRunner does (the pipeline options reach the workers, so
  ``--direct_num_workers`` and ``--direct_running_mode`` apply as usual); a streaming pipeline
  goes to the DirectRunner itself. ``--runner PrismRunner`` still asks for Prism.
  """

  def run_pipeline(self, pipeline, options):
    if options.view_as(StandardOptions).streaming:
      return SwitchingDirectRunner().run_pipeline(pipeline, options)
    encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
    runner = fn_runner.FnApiRunner(provision_info=fn_runner.ExtendedProvisionInfo(
        beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded)))
    return runner.run_pipeline(pipeline, options)
