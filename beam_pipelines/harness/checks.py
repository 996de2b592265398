"""The checks a test workflow can name, in one explicit table.

A workflow definition's ``"checks": [{"check": NAME, ...}]`` names entries of ``CHECKS``; each
check gets its parameters with ``{placeholders}`` filled from the environment's variables and
returns a ``CheckResult``.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Mapping

from beam_pipelines.harness import golden, ml_check, workflows
from beam_pipelines.harness.results import CheckResult

CheckFn = Callable[[Dict[str, str]], CheckResult]
CHECKS: Dict[str, CheckFn] = {
    golden.GOLDEN_CHECK: golden.golden_counts,  # the word count against its golden reference
    ml_check.ML_CHECK: ml_check.ml_model,  # level 2: the build's model against production's
}


def run_checks(definition: workflows.WorkflowDefinition,
               values: Mapping[str, object]) -> List[CheckResult]:
  """Runs the definition's checks in order (their names were checked when it was parsed)."""
  results = []
  for spec in definition.checks:
    params = {k: workflows.render(v, values) for k, v in spec.items()}
    results.append(CHECKS[spec['check']](params))
  return results
