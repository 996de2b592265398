"""The level-2 gate's pure parts: the ML check reads the check result, deploy's blessing refusal,
and the integration data staged by `invoke test` (regenerable with the taxi generator)."""

from __future__ import annotations

import datetime
import json

import pytest

from beam_pipelines import taxi_data
from beam_pipelines.harness import ml_check as gate
from beam_pipelines.harness.errors import HarnessError
from beam_pipelines.harness.results import TestReport

from conftest import REPO


def passed_record(ml=None) -> TestReport:
  return TestReport(build_id='B', sha256='0' * 64, wheel_file='w.whl', status='passed',
                    tested_at='2026-11-27T10:00:00+00:00', tested_by='ana@ci', module_origins={},
                    results=[], ml=ml)


NOT_BLESSED_RECORD = passed_record({
    'status': 'NOT_BLESSED', 'baseline': '/b/model',
    'message': 'NOT_BLESSED: auc: candidate 0.83 vs baseline 0.9 (HIGHER_IS_BETTER): diff -0.07'})


def test_the_integration_span_is_the_generators_output():
  text = taxi_data.render_span(2000, datetime.date(2026, 10, 1), 7, taxi_data.Knobs(malformed=3))[0]
  assert (REPO / 'build' / 'support-files' / 'ml' / 'taxi_integration.csv').read_text() == text


def test_deploy_refuses_a_not_blessed_model_naming_the_metric():
  with pytest.raises(HarnessError, match=r'NOT_BLESSED.*auc: candidate 0.83.*--override-blessing'):
    gate.refuse_unblessed(NOT_BLESSED_RECORD, 'B', None)
  with pytest.raises(HarnessError):
    gate.refuse_unblessed(NOT_BLESSED_RECORD, 'B', '   ')  # a blank reason is no reason


def test_an_override_reason_is_returned_for_the_record():
  assert gate.refuse_unblessed(NOT_BLESSED_RECORD, 'B', ' hotfix ') == 'hotfix'


def test_blessed_or_pre_ml_builds_pass():
  assert gate.refuse_unblessed(passed_record({'status': 'BLESSED'}), 'B', None) is None
  assert gate.refuse_unblessed(passed_record(), 'B', None) is None


def test_the_ml_check_passes_an_evaluated_model_and_keeps_its_metrics(tmp_path):
  path = tmp_path / 'ml_check.json'
  path.write_text(json.dumps({'status': 'NOT_BLESSED', 'message': 'auc worse',
                              'metrics': {'auc': 0.8}, 'model_sha256': 'abc'}))
  result = gate.ml_model({'result': str(path), 'baseline_source': 'prod build X'})
  assert result.passed and 'NOT_BLESSED against prod build X' in result.message
  assert result.details['metrics'] == {'auc': 0.8}
  assert gate.report_section([{'check': gate.ML_CHECK, 'details': result.details}]) == result.details


def test_the_ml_check_fails_without_an_evaluated_model(tmp_path):
  assert not gate.ml_model({'result': str(tmp_path / 'absent.json')}).passed
  path = tmp_path / 'ml_check.json'
  path.write_text(json.dumps({'status': 'ANOMALOUS', 'message': 'company missing'}))
  result = gate.ml_model({'result': str(path)})
  assert not result.passed and 'company missing' in result.message
