"""Tests of the dataset spec: validation names the bad field; resolve() checks the CSV header."""

from __future__ import annotations

import pytest

from beam_pipelines.ml import spec
from beam_pipelines.ml.spec import SpecError

HEADER = ['id', 'ts', 'fare', 'miles', 'payment', 'company', 'tip']
BASE = {'label': 'tip', 'key': 'id', 'timestamp': 'ts', 'numeric': ['fare', 'miles'],
        'categorical': ['payment', 'company']}


def test_bundled_taxi_spec_loads_and_resolves():
  taxi = spec.load(spec.default_spec_path())
  assert taxi.label == 'big_tip' and taxi.key == 'trip_id'
  assert taxi.threshold('payment_type', 'drift') == 0.05
  assert taxi.threshold('trip_seconds', 'drift') is None


def test_resolve_orders_columns_and_expands_all():
  resolved = spec.from_dict({**BASE, 'numeric': 'all', 'ignore': ['company'],
                             'categorical': ['payment']}).resolve(HEADER)
  assert resolved.numeric == ('fare', 'miles')
  assert resolved.columns == ['id', 'ts', 'fare', 'miles', 'payment', 'tip']


def test_fingerprint_is_stable_and_sensitive():
  a = spec.from_dict(BASE).resolve(HEADER)
  assert a.fingerprint() == spec.from_dict(dict(BASE)).resolve(HEADER).fingerprint()
  assert a.fingerprint() != spec.from_dict({**BASE, 'eval_fraction': 0.3}).resolve(HEADER).fingerprint()


@pytest.mark.parametrize('raw, field', [
    ({}, "'label'"),
    ({**BASE, 'label': ''}, "'label'"),
    ({**BASE, 'numeric': 'fare'}, "'numeric'"),
    ({**BASE, 'numeric': 'all', 'categorical': 'all'}, "'categorical'"),
    ({**BASE, 'eval_fraction': 1.5}, "'eval_fraction'"),
    ({**BASE, 'thresholds': {'fare': {'drift': -1}}}, "thresholds.fare"),
    ({**BASE, 'thresholds': {'fare': {'speed': 1}}}, "thresholds.fare"),
    ({**BASE, 'thresholds': {'nope': {'drift': 1}}}, "thresholds.nope"),
    ({**BASE, 'colour': 'red'}, "'colour'"),
    ({**BASE, 'categorical': ['payment', 'fare']}, "'fare'"),
    (['label', 'tip'], 'mapping'),
    ({**BASE, 'new_values': 'allow'}, "'new_values'"),
    ({**BASE, 'leakage': True}, "'leakage'"),
    ({**BASE, 'leakage_auc': 0.4}, "'leakage_auc'"),
    ({**BASE, 'presence_tolerance': 1.5}, "'presence_tolerance'"),
    ({**BASE, 'max_dead_letter_fraction': -0.1}, "'max_dead_letter_fraction'"),
])
def test_bad_spec_names_the_field(raw, field):
  with pytest.raises(SpecError, match=field):
    spec.from_dict(raw)


def test_resolve_names_missing_columns():
  with pytest.raises(SpecError, match=r"'numeric'.*\['miles'\]"):
    spec.from_dict(BASE).resolve([c for c in HEADER if c != 'miles'])
  with pytest.raises(SpecError, match='repeats'):
    spec.from_dict(BASE).resolve(HEADER + ['fare'])


def test_load_reports_path_and_yaml_errors(tmp_path):
  bad = tmp_path / 'bad.yaml'
  bad.write_text('label: [unclosed\n')
  with pytest.raises(SpecError, match='not valid YAML'):
    spec.load(bad)
  with pytest.raises(SpecError, match='cannot read'):
    spec.load(tmp_path / 'missing.yaml')
  good = tmp_path / 'spec.json'
  good.write_text('{"label": "tip", "numeric": ["fare"]}')
  assert spec.load(good).numeric == ('fare',)


def test_the_schema_policy_has_defaults_for_real_data():
  policy = spec.from_dict(BASE)
  assert (policy.new_values, policy.leakage, policy.leakage_auc) == ('warn', 'warn', 0.98)
  assert (policy.presence_tolerance, policy.max_dead_letter_fraction) == (0.1, 0.05)
  strict = spec.from_dict({**BASE, 'new_values': 'block', 'leakage': 'block',
                           'max_dead_letter_fraction': 0})
  assert (strict.new_values, strict.leakage, strict.max_dead_letter_fraction) == (
      'block', 'block', 0.0)
  assert strict.fingerprint() != policy.fingerprint()  # a policy change is a spec change


class TestSplit:
  """``split``: hash (the default, unchanged) or time (the latest rows by the timestamp)."""

  def test_hash_is_the_default_and_leaves_the_fingerprint_as_it_was(self):
    default = spec.from_dict(BASE).resolve(HEADER)
    assert default.split == spec.SPLIT_HASH and 'split' not in default.to_dict()
    explicit = spec.from_dict({**BASE, 'split': 'hash'}).resolve(HEADER)
    assert explicit.fingerprint() == default.fingerprint()
    timed = spec.from_dict({**BASE, 'split': 'time'}).resolve(HEADER)
    assert timed.to_dict()['split'] == 'time' and timed.fingerprint() != default.fingerprint()

  def test_the_mapping_form_carries_the_fraction(self):
    timed = spec.from_dict({**BASE, 'split': {'by': 'time', 'eval_fraction': 0.1}})
    assert (timed.split, timed.eval_fraction) == ('time', 0.1)
    assert spec.from_dict({**BASE, 'split': {'by': 'time'}}).eval_fraction == 0.2

  def test_a_time_split_without_a_timestamp_is_refused_clearly(self):
    without = {k: v for k, v in BASE.items() if k != 'timestamp'}
    with pytest.raises(SpecError, match="spec field 'split': a time split makes the eval split "
                       "the latest rows by the spec's timestamp column, and this spec names none"):
      spec.from_dict({**without, 'split': 'time'})
    assert spec.from_dict(without).split == 'hash'

  @pytest.mark.parametrize('value, match', [
      ('random', "'split' must be one of \\['hash', 'time'\\]"),
      ({'by': 'time', 'fraction': 0.1}, "'split' must map 'by'"),
      ({'by': 'time', 'eval_fraction': 1.5}, "'eval_fraction' must be a number in \\(0, 1\\)"),
  ])
  def test_bad_values_name_the_field(self, value, match):
    with pytest.raises(SpecError, match=match):
      spec.from_dict({**BASE, 'split': value})

  def test_the_fraction_is_given_once(self):
    with pytest.raises(SpecError, match="'eval_fraction' and 'split.eval_fraction': give one"):
      spec.from_dict({**BASE, 'eval_fraction': 0.3, 'split': {'by': 'time', 'eval_fraction': 0.1}})
