"""The level-2 gate's pure parts: the ML check reads every pipeline's check result, deploy's
blessing refusal per pipeline, records written before pipelines had folders, and the bundled
pipeline's integration data (regenerable with the taxi generator)."""

from __future__ import annotations

import datetime
import json

import pytest

from beam_pipelines import taxi_data
from beam_pipelines.ct.definition import load_definition
from beam_pipelines.harness import ml_check as gate
from beam_pipelines.harness.errors import HarnessError
from beam_pipelines.harness.results import TestReport

NOT_BLESSED_TAXI = {
    'status': 'NOT_BLESSED', 'baseline': '/b/model',
    'message': 'NOT_BLESSED: auc: candidate 0.83 vs baseline 0.9 (HIGHER_IS_BETTER): diff -0.07'}


def passed_record(ml=None) -> TestReport:
  return TestReport(build_id='B', sha256='0' * 64, wheel_file='w.whl', status='passed',
                    tested_at='2026-11-27T10:00:00+00:00', tested_by='ana@ci', ml=ml)


def test_the_integration_span_is_the_generators_output():
  text = taxi_data.render_span(2000, datetime.date(2026, 10, 1), 7, taxi_data.Knobs(malformed=3))[0]
  with open(load_definition('taxi').integration_path, encoding='utf-8') as handle:
    assert handle.read() == text


def test_deploy_refuses_a_not_blessed_model_naming_the_pipeline_and_metric():
  record = passed_record({'taxi': NOT_BLESSED_TAXI, 'churn': {'status': 'BLESSED'}})
  with pytest.raises(HarnessError, match=r'taxi: NOT_BLESSED.*auc: candidate 0.83.*--override-blessing'):
    gate.refuse_unblessed(record, 'B', None)
  with pytest.raises(HarnessError):
    gate.refuse_unblessed(record, 'B', '   ')  # a blank reason is no reason


def test_an_override_is_returned_with_the_pipelines_it_covers():
  record = passed_record({'taxi': NOT_BLESSED_TAXI, 'churn': {'status': 'BLESSED'}})
  assert gate.refuse_unblessed(record, 'B', ' hotfix ') == {
      gate.VAR_OVERRIDE: 'hotfix', gate.VAR_OVERRIDE_PIPELINES: ['taxi']}


def test_blessed_or_pre_ml_builds_pass():
  assert gate.refuse_unblessed(passed_record({'taxi': {'status': 'BLESSED'}}), 'B', None) is None
  assert gate.refuse_unblessed(passed_record(), 'B', None) is None


def test_a_record_from_before_pipeline_folders_reads_as_the_taxi_pipeline():
  record = passed_record(NOT_BLESSED_TAXI)  # one verdict at the top level
  assert record.ml_by_pipeline == {'taxi': NOT_BLESSED_TAXI}
  with pytest.raises(HarnessError, match='taxi: NOT_BLESSED'):
    gate.refuse_unblessed(record, 'B', None)


def _summary(tmp_path, pipelines, baselines=None):
  path = tmp_path / 'ml_checks.json'
  path.write_text(json.dumps({'pipelines': pipelines}))
  (tmp_path / 'baselines.json').write_text(json.dumps(baselines or {}))
  return {'result': str(path), 'baselines': str(tmp_path / 'baselines.json')}


def test_the_ml_check_passes_evaluated_models_and_keeps_each_pipelines_metrics(tmp_path):
  params = _summary(tmp_path, {
      'taxi': {'status': 'NOT_BLESSED', 'message': 'NOT_BLESSED: auc worse', 'metrics': {'auc': 0.8},
               'data_sha256': 'd1'},
      'churn': {'status': 'BLESSED', 'message': 'BLESSED: rubber stamp', 'metrics': {'auc': 0.7},
                'data_sha256': 'd2'}},
      {'taxi': {'model_dir': '/m', 'model_sha256': 'abc', 'source': 'prod build X'}, 'churn': None})
  result = gate.ml_model(params)
  assert result.passed
  assert ('taxi: model evaluated against prod build X: NOT_BLESSED: auc worse (deploy refuses '
          'this build unless --override-blessing gives a reason)') in result.message
  assert ('churn: model evaluated against none: no production model yet (rubber stamp): '
          'BLESSED: rubber stamp;') in result.message + ';'
  assert result.details['taxi']['metrics'] == {'auc': 0.8}
  assert gate.report_section([{'check': gate.ML_CHECK, 'details': result.details}]) == result.details


def test_the_ml_check_fails_when_a_pipeline_has_no_evaluated_model(tmp_path):
  assert not gate.ml_model({'result': str(tmp_path / 'absent.json')}).passed
  result = gate.ml_model(_summary(tmp_path, {
      'taxi': {'status': 'BLESSED', 'message': 'ok', 'data_sha256': 'd1'},
      'churn': {'status': 'ANOMALOUS', 'message': 'company missing', 'data_sha256': 'd2'}}))
  assert not result.passed and 'churn: no model was evaluated: company missing' in result.message
