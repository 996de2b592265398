"""The level-2 gate: the candidate build's model against production's, in `invoke test` and deploy.

``invoke test`` runs the test workflow ``ml_test`` (``python -m beam_pipelines.ct --check``) of the
candidate build from its uploaded wheel on the integration data, with the variables of
``baseline_variables``: the model to beat is the one the production build's pipeline produced on
the same integration data (recorded by that build's own test), else the registry's production
model, else none (rubber stamp). The ``ml_model`` check reads the result; the "test passed"
record keeps it under ``"ml"``; ``refuse_unblessed`` makes deploy refuse a NOT_BLESSED model
unless a reason overrides it (recorded in prod's variables and history).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from beam_pipelines.ct import lineage, registry
from beam_pipelines.ct.paths import model_registry
from beam_pipelines.harness.errors import HarnessError
from beam_pipelines.harness.results import CheckResult, TestReport, read_passed
from beam_pipelines.ml.artifacts import BLESSED, NOT_BLESSED
from beam_pipelines.store import bucket, layout, records
from beam_pipelines.store.console import progress
from beam_pipelines.store.errors import Refusal

ML_CHECK = 'ml_model'
VAR_CACHE = 'ml_cache_location'
VAR_BASELINE_MODEL = 'ml_baseline_model'
VAR_BASELINE_SHA256 = 'ml_baseline_sha256'
VAR_BASELINE_SOURCE = 'ml_baseline_source'
VAR_OVERRIDE = 'blessing_override'  # prod variable / history field: why a NOT_BLESSED build went out
INTEGRATION_INPUT = 'inputs/ml/taxi_integration.csv'  # in the test environment
_DETAILS = ('status', 'message', 'metrics', 'baseline_metrics', 'baseline', 'model_dir',
            'model_sha256', 'data_sha256')


def _production_build_model(bucket_url: str, data_sha256: str) -> Optional[Dict[str, str]]:
  """The model the live prod build's pipeline produced on this integration data (its test)."""
  prod, test = layout.Env(bucket_url, layout.PROD), layout.Env(bucket_url, layout.TEST)
  live = records.deployed(prod)
  if live is None or not bucket.exists(test.passed(live.build_id)):
    return None
  ml = read_passed(bucket_url, live.build_id).ml or {}  # signature checked when signing is on
  if ml.get('data_sha256') != data_sha256 or not ml.get('model_dir'):
    return None
  model_file = layout.join(ml['model_dir'], 'model.joblib')
  if not bucket.exists(model_file):  # e.g. the test cache was cleaned: fall back to the registry
    return None
  bucket.verify(model_file, ml['model_sha256'], f'model of prod build {live.build_id}')
  return {VAR_BASELINE_MODEL: ml['model_dir'], VAR_BASELINE_SHA256: ml['model_sha256'],
          VAR_BASELINE_SOURCE: f'the model of prod build {live.build_id} on the same integration data'}


def _registry_production(bucket_url: str) -> Optional[Dict[str, str]]:
  reg = model_registry(bucket_url)
  if reg.aliases().get(registry.PRODUCTION) is None:
    return None
  directory, record = reg.verified_dir(registry.PRODUCTION)
  return {VAR_BASELINE_MODEL: directory, VAR_BASELINE_SHA256: record['model_sha256'],
          VAR_BASELINE_SOURCE: f'the registered production model v{record["version"]}'}


def baseline_variables(bucket_url: str) -> Dict[str, str]:
  """Test variables of the ML workflow: its step cache and the model to beat ('' = none)."""
  test = layout.Env(bucket_url, layout.TEST)
  data = lineage.data_sha256(lineage.file_entries([test.path(INTEGRATION_INPUT)]))
  baseline = (_production_build_model(bucket_url, data) or _registry_production(bucket_url)
              or {VAR_BASELINE_MODEL: '', VAR_BASELINE_SHA256: '',
                  VAR_BASELINE_SOURCE: 'none: no production model yet (rubber stamp)'})
  return {VAR_CACHE: test.path('ct', 'cache'), **baseline}


def ml_model(params: Dict[str, str]) -> CheckResult:
  """Passes when the candidate's model was evaluated (BLESSED or NOT_BLESSED: deploy decides)."""
  try:
    result = bucket.read_json(params['result'], 'ML check result')
  except Refusal as error:
    return CheckResult(ML_CHECK, False, str(error), {})
  details = {k: result.get(k) for k in _DETAILS}
  details['baseline_source'] = params.get('baseline_source')
  if result.get('status') not in (BLESSED, NOT_BLESSED):
    return CheckResult(ML_CHECK, False, f'no model was evaluated: {result.get("message")}', details)
  return CheckResult(ML_CHECK, True, f'model {result["status"]} against '
                     f'{params.get("baseline_source")}: {result.get("message")}', details)


def report_section(results: List[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
  """The "ml" part of the test report: the ML check's details (metrics, blessing, baseline)."""
  return next((r['details'] for r in results if r['check'] == ML_CHECK), None)


def refuse_unblessed(passed: TestReport, build_id: str, override: Optional[str],
                     event: str = 'deploy') -> Optional[str]:
  """Raises when the build's model is NOT_BLESSED and no reason overrides; returns the override."""
  if passed.ml_status != NOT_BLESSED:
    return None
  ml = passed.ml or {}
  if override and override.strip():
    progress(f'{event}: build {build_id}\'s model is NOT_BLESSED; going ahead, override '
             f'recorded: "{override.strip()}"')
    return override.strip()
  raise HarnessError(
      f'build {build_id}: its model is NOT_BLESSED against {ml.get("baseline") or "production"}: '
      f'{ml.get("message")}. {event.capitalize()} refused: that pipeline makes a worse model. To '
      f'go ahead anyway, give a reason: invoke {event} --override-blessing "<why>" (recorded). '
      f'Nothing was changed.')
