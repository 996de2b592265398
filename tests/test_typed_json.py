"""The one converter of typed records to and from JSON (``store.typed_json``)."""

from __future__ import annotations

import json

import pytest

from beam_pipelines.ml.results import (
  Distance,
  Evaluation,
  Finding,
  NoiseFloor,
  TrainedModel,
  Verdict,
)
from beam_pipelines.store.typed_json import RecordError, from_json, to_json

VERDICT = Verdict(
    status='drift', message='fare drifted',
    anomalies=(Finding(None, 'eval', ('EMPTY_SPLIT',), 'the eval split has no rows'),),
    drift=(Distance('fare', 'JENSEN_SHANNON_DIVERGENCE', 0.31, 0.1, True),),
    drifted_features=('fare',), rows={'train': 10, 'eval': 0},
    noise_floor={'fare': NoiseFloor('JENSEN_SHANNON_DIVERGENCE', 0.01, None, 0.04)},
    statistics={'train': 'v/statistics/train.pb'}, report='v/report.html')


def test_a_record_survives_a_json_round_trip():
  for record in (VERDICT, TrainedModel('m', 'a' * 64, 10, 4, 'f', {'C': 1.0, 'max_depth': None}),
                 Evaluation('BLESSED', 'ok', False, {'auc': 0.9, 'example_count': 622}, 'e')):
    assert from_json(type(record), json.loads(json.dumps(to_json(record)))) == record


def test_counts_stay_whole_numbers_and_metrics_stay_floats():
  back = from_json(Evaluation, to_json(Evaluation('BLESSED', 'ok', False,
                                                  {'auc': 1.0, 'example_count': 622}, 'e')))
  assert type(back.metrics['example_count']) is int and type(back.metrics['auc']) is float


@pytest.mark.parametrize('change, where', [
    ({'status': None}, 'Verdict.status'),
    ({'drift': [{'feature': 'fare'}]}, 'Verdict.drift[0]'),
    ({'rows': {'train': 'ten'}}, 'Verdict.rows.train'),
    ({'anomalies': 'none'}, 'Verdict.anomalies'),
])
def test_data_of_another_shape_is_refused_naming_the_field(change, where):
  with pytest.raises(RecordError, match=where.replace('[', r'\[').replace(']', r'\]')):
    from_json(Verdict, dict(to_json(VERDICT), **change))


def test_a_missing_required_field_is_refused_and_unknown_keys_are_ignored():
  data = dict(to_json(VERDICT), added_by_a_newer_writer=1)
  assert from_json(Verdict, data) == VERDICT
  del data['message']
  with pytest.raises(RecordError, match="field 'message' is missing"):
    from_json(Verdict, data)
