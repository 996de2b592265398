"""The harness's refusal: a build, test, deploy, rollback or run step that will not go on."""

from beam_pipelines.store.errors import Refusal


class HarnessError(Refusal):
  """A harness step refused or failed; ``str(error)`` is the user-facing explanation."""
