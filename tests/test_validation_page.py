"""The validation page as a person reads it: a statistics table per split equal to the TFDV
statistics (and to pandas on the same CSV), small-integer features drawn one bar per value, large
distances flagged, numbers for people, no sideways scrolling at 1,280 px.

The slow part is one module fixture: two months of real flights (``tests/realdata.py``), their
features, and two validations (January alone, then February against January); every test reads
those outputs."""

from __future__ import annotations

import json
import pathlib
import re
import types

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from beam_pipelines.ml import artifacts
from beam_pipelines.pages import charts, validation
from beam_pipelines.pages.charts import human_number, human_percent

import realdata


class TestHumanNumbers:
  def test_numbers_read_as_people_write_them(self):
    assert human_number(1460) == '1,460' and human_number(1460.0) == '1,460'
    assert human_number(1460.27) == '1,460' and human_number(61370.2) == '61,370'
    assert human_number(0.25) == '0.25' and human_number(0.0412) == '0.0412'
    assert human_number(3.2e6) == '3.2M' and human_number(1.46e9) == '1.46B'
    assert human_number(12.3456) == '12.35' and human_number(123.456) == '123.5'
    assert human_number(-7) == '-7' and human_number(0) == '0' and human_number(1.0) == '1'
    assert human_number(None) == 'n/a' and human_number(float('nan')) == 'n/a'
    assert human_number(0.00012) == '0.00012' and human_number(999.96) == '1,000'

  def test_no_number_is_ever_written_with_an_exponent(self):
    for exponent in range(-9, 15):
      for mantissa in (1, 1.46, 3.2, 9.99):
        for sign in (1, -1):
          text = human_number(sign * mantissa * 10.0 ** exponent)
          assert 'e' not in text.lower(), (mantissa, exponent, text)

  def test_shares_read_as_percentages(self):
    assert human_percent(0.456) == '45.6%' and human_percent(0.0183) == '1.8%'
    assert human_percent(0) == '0%' and human_percent(1) == '100%'
    assert human_percent(0.0004) == '<0.1%' and human_percent(None) == 'n/a'

  def test_chart_ticks_are_round_and_readable(self):
    svg = charts.line_chart('t', {'a': [(0, 0), (1460, 3.2e6)]}, 'x', 'y')
    ticks = re.findall(r'text-anchor="(?:end|middle)">([^<]+)</text>', svg)
    assert '1,000' in ticks and '3M' in ticks, ticks
    assert not any('e+' in t or 'e-' in t for t in ticks), ticks
    bars = charts.bar_chart('b', ['1', '2'], {'s': [0.2, 0.52]}, 'share')
    assert '0.5' in re.findall(r'text-anchor="end">([^<]+)</text>', bars)


def _distance(value, exceeded=False, source='default', threshold=0.1):
  return {'feature': 'f', 'measure': 'JENSEN_SHANNON_DIVERGENCE', 'value': value,
          'threshold': threshold, 'exceeded': exceeded, 'threshold_source': source}


def test_flags_follow_the_verdict_and_mark_large_distances_without_a_threshold():
  assert validation.flag(_distance(0.3, exceeded=True)) == 'over threshold'
  assert validation.flag(_distance(1.0, threshold=1.0)) == 'large, no threshold set'  # noise floor
  assert validation.flag(_distance(0.6, source='spec', threshold=0.7)) is None  # someone chose
  assert validation.flag(_distance(0.2, threshold=0.3)) is None


def test_a_0_1_feature_without_stored_counts_is_drawn_from_its_mean():
  from tensorflow_metadata.proto.v0 import statistics_pb2
  feature = statistics_pb2.FeatureNameStatistics()
  feature.path.step.append('late')
  feature.num_stats.common_stats.num_non_missing = 200
  feature.num_stats.mean = 0.25
  quantiles = feature.num_stats.histograms.add(type=statistics_pb2.Histogram.QUANTILES)
  quantiles.buckets.add(low_value=0, high_value=0, sample_count=150)
  quantiles.buckets.add(low_value=1, high_value=1, sample_count=50)
  assert validation.small_integer_counts(feature) == {'0': 150.0, '1': 50.0}
  stored = feature.custom_stats.add(name=validation.VALUE_COUNTS)
  stored.rank_histogram.buckets.add(label='0', sample_count=149)
  stored.rank_histogram.buckets.add(label='1', sample_count=51)
  assert validation.small_integer_counts(feature) == {'0': 149.0, '1': 51.0}


# ----- real data: one pair of validations, read by every test below -----

@pytest.fixture(scope='module')
def flights(tmp_path_factory):
  from beam_pipelines import features, validate
  root = tmp_path_factory.mktemp('validation-page')
  spec = root / 'spec.yaml'
  spec.write_text(realdata.SPEC_YAML)
  s = types.SimpleNamespace(csv={}, features={}, output={})
  for name, month in (('january', 1), ('february', 2)):
    s.csv[name] = realdata.write_csv(realdata.month(month, every=30), root / name / 'flights.csv')
    s.features[name] = root / 'features' / name
    s.output[name] = root / 'validation' / name
    features.run(['--input', str(s.csv[name]), '--spec', str(spec),
                  '--output', str(s.features[name])])
  validate.run(['--features', str(s.features['january']), '--output', str(s.output['january'])])
  validate.run(['--features', str(s.features['february']), '--output', str(s.output['february']),
                '--previous_statistics', str(s.output['january'])])
  s.verdict = json.loads((s.output['february'] / artifacts.VERDICT_FILE).read_text())
  s.statistics = {split: validate.load_statistics(
      str(s.output['february'] / 'statistics' / f'{split}.pb')) for split in artifacts.SPLITS}
  s.statistics['previous'] = validate.load_statistics(
      str(s.output['january'] / 'statistics' / 'train.pb'))
  return s


def _split_rows(flights, name: str, split: str) -> pd.DataFrame:
  """The CSV's rows that landed in ``split`` (matched on the key, read straight from the CSV)."""
  keys = pq.read_table(str(flights.features[name] / split), columns=['flight_id']).column(0)
  frame = pd.read_csv(flights.csv[name], dtype={'flight_id': str})
  return frame[frame['flight_id'].isin(set(keys.to_pylist()))]



@pytest.mark.slow
def test_the_summary_is_the_statistics_proto(flights):
  for split in ('train', 'eval', 'previous'):
    summaries = validation.summarize(flights.statistics[split])
    for feature in flights.statistics[split].datasets[0].features:
      name = feature.path.step[0]
      summary = summaries[name]
      if feature.HasField('num_stats'):
        num = feature.num_stats
        common = num.common_stats
        assert (summary['mean'], summary['std'], summary['min'], summary['max']) == (
            num.mean, num.std_dev, num.min, num.max)
        assert summary['median'] == num.median  # where the quantiles reach half the rows
        assert summary['count'] == common.num_non_missing
        assert summary['zeros'] == pytest.approx(num.num_zeros / common.num_non_missing)
      else:
        common = feature.string_stats.common_stats
        assert summary['unique'] == feature.string_stats.unique
        top = feature.string_stats.top_values[0]
        assert summary['top'][0] == (top.value, top.frequency / common.num_non_missing)
      assert summary['missing'] == pytest.approx(
          common.num_missing / (common.num_missing + common.num_non_missing))


@pytest.mark.slow
def test_the_summary_equals_pandas_on_the_same_csv(flights):
  for name, split, stats in (('february', 'train', 'train'), ('february', 'eval', 'eval'),
                             ('january', 'train', 'previous')):
    rows = _split_rows(flights, name, split)
    summaries = validation.summarize(flights.statistics[stats])
    assert sum(1 for _ in rows.itertuples()) == flights.statistics[stats].datasets[0].num_examples
    for column in realdata.NUMERIC:
      values, summary = rows[column], summaries[column]
      assert summary['count'] == values.notna().sum(), column
      assert summary['missing'] == pytest.approx(values.isna().mean()), column
      assert summary['mean'] == pytest.approx(values.mean(), rel=1e-9), column
      assert (summary['min'], summary['max']) == (values.min(), values.max()), column
      assert summary['zeros'] == pytest.approx((values == 0).sum() / values.notna().sum())
    for column in realdata.CATEGORICAL:
      counts = rows[column].value_counts()
      assert summaries[column]['unique'] == len(counts), column
      value, share = summaries[column]['top'][0]  # a most frequent value (ties in any order)
      assert counts[value] == counts.iloc[0], column
      assert share == pytest.approx(counts.iloc[0] / counts.sum()), column


@pytest.mark.slow
def test_small_integer_features_carry_their_exact_value_counts(flights):
  rows = _split_rows(flights, 'february', 'train')
  distributions = validation.feature_distributions(flights.statistics['train'])
  for column in ('day', 'late'):  # 28 days of February; the 0/1 label
    expected = {f'{v:.0f}': float(c) for v, c in rows[column].value_counts().items()}
    assert distributions[column]['counts'] == expected, column
  for column in ('dep_delay', 'distance', 'sched_dep_time'):  # many values: numeric bins
    assert distributions[column]['counts'] == {}, column
  day = validation.compare(distributions['day'],
                           validation.feature_distributions(flights.statistics['previous'])['day'])
  assert day['labels'] == [str(d) for d in range(1, 32)]  # one bar per day, in order


@pytest.mark.slow
def test_numeric_charts_use_the_deciles_drift_measures_on(flights):
  current = validation.feature_distributions(flights.statistics['train'])
  before = validation.feature_distributions(flights.statistics['previous'])
  for d in flights.verdict['drift']:
    name = d['feature']
    if d['measure'] != validation.JSD or current[name]['counts']:
      continue
    chart = validation.compare(current[name], before[name], before[name])
    assert chart['distance'] == pytest.approx(d['value'], abs=1e-6), name
    assert chart['labels'][0].startswith('< ') and chart['labels'][-1].startswith('> ')
    assert len(chart['labels']) <= 2 * 9 + 1 and sum(chart['a']) == pytest.approx(1.0)


@pytest.fixture(scope='module')
def chromium():
  from browser import browser
  with browser() as opened:
    yield opened


def _open_at(chromium, path: pathlib.Path, shot: str, width: int = 1280):
  """The page in a window ``width`` px wide: what the browser saw and its widths."""
  chromium._driver.set_window_size(width, 1600)  # the test's own browser, resized for this check
  view = chromium.open(path, shot)
  scroll, inner = chromium._driver.execute_script(
      'return [document.body.scrollWidth, window.innerWidth]')
  return view, scroll, inner


@pytest.mark.slow
def test_the_page_shows_the_statistics_charts_and_flags_without_overflow(flights, chromium,
                                                                         tmp_path):
  from browser import assert_clean
  verdict = dict(flights.verdict)
  drift_list = [dict(d) for d in verdict['drift']]
  quiet = next(d for d in drift_list if not d['exceeded'])
  quiet.update(value=1.0, threshold=1.0, threshold_source='default')  # as with tiny samples
  verdict['drift'] = drift_list
  page_path = tmp_path / 'report.html'
  page_path.write_text(validation.render(verdict, flights.statistics, flights.statistics['previous']))
  view, scroll, inner = _open_at(chromium, page_path, 'validation-statistics')
  assert inner >= 1200 and scroll <= inner, (scroll, inner)
  names = re.findall(r'data-chart="([^"]+)"', page_path.read_text())
  assert_clean(view, names)  # every chart drawn
  assert {'train-vs-eval-late', 'span-vs-previous-day', 'span-vs-previous-dep_delay'} <= set(names)
  assert view.chart('train-vs-eval-late')['marks'] == 2 * 2  # 0 and 1, train and eval
  assert view.chart('span-vs-previous-day')['marks'] == 2 * 31
  for split in ('train', 'eval', 'previous'):
    for name, summary in validation.summarize(flights.statistics[split]).items():
      fields = validation.NUMERIC_FIELDS if summary['kind'] == 'numeric' else (
          'count', 'missing', 'unique', 'top')
      for field in fields:
        assert view.values[f'stats.{split}.{name}.{field}'] == validation.stat_text(
            summary, field), (split, name, field)
  rows = _split_rows(flights, 'february', 'train')
  for column in realdata.NUMERIC:  # the page against pandas on the CSV, as people read it
    assert view.values[f'stats.train.{column}.mean'] == human_number(rows[column].mean())
    assert view.values[f'stats.train.{column}.max'] == human_number(rows[column].max())
  for d in verdict['drift']:
    why = validation.flag(d)
    if why:
      assert view.values[f'flag.drift.{d["feature"]}'] == why
      assert view.values[f'drift.{d["feature"]}.result'] == why
  assert view.values[f'flag.drift.{quiet["feature"]}'] == 'large, no threshold set'
  assert not re.search(r'\d\.\d+e[+-]\d', view.text), 'a number in exponent notation'


@pytest.mark.slow
def test_the_report_validation_wrote_has_the_statistics_table(flights):
  report = (flights.output['february'] / artifacts.REPORT_FILE).read_text()
  assert 'Statistics per split' in report and 'data-key="stats.previous.dep_delay.median"' in report
  day = next(f for f in flights.statistics['train'].datasets[0].features if f.path.step[0] == 'day')
  assert [c.name for c in day.custom_stats if c.name == validation.VALUE_COUNTS]
  assert np.isclose(sum(b.sample_count for c in day.custom_stats if c.name == validation.VALUE_COUNTS
                        for b in c.rank_histogram.buckets), day.num_stats.common_stats.num_non_missing)
