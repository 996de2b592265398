"""The HTML reports and the bucket's site, as a person sees them: opened in headless Chromium with
the network blocked (tests/browser.py), on one CT demo bucket (real features, TFDV validation,
training, evaluation, registry) shared by every test here. Screenshots: outputs/browser/."""

from __future__ import annotations

import json
import math
import pathlib

import pytest
from browser import assert_clean, browser

from beam_pipelines.ct import cli as ct_cli
from beam_pipelines.harness import site
from beam_pipelines.pages import evaluation, page, validation

pytestmark = pytest.mark.integration


def _reports(bucket: pathlib.Path, step: str):
  """(lineage record, report directory) of each CT run that has ``step``'s report, oldest first."""
  out = []
  for lineage in sorted((bucket / 'prod' / 'ct' / 'taxi' / 'runs').glob('*/lineage.json')):
    record = json.loads(lineage.read_text())
    outputs = (record['steps'].get(step) or {}).get('outputs')
    if outputs and (pathlib.Path(outputs) / 'report.html').exists():
      out.append((record, pathlib.Path(outputs)))
  return out


@pytest.fixture(scope='session')
def demo_bucket(tmp_path_factory):
  """The CT demo (spans: sample, same, missing column, drift) on a private bucket, then its site."""
  bucket = tmp_path_factory.mktemp('reports') / 'bucket'
  status = ct_cli.main(['--demo', '--bucket', str(bucket)])
  index = site.build_site(str(bucket))
  return bucket, pathlib.Path(index), status


def test_ct_demo_exits_0_after_a_successful_demo(demo_bucket):
  bucket, _, status = demo_bucket
  assert status == 0  # its span 3 stops at validation by design: that is the demo working
  assert len(list((bucket / 'prod' / 'registry' / 'taxi' / 'versions').iterdir())) == 3


@pytest.fixture(scope='session')
def chromium():
  with browser() as opened:
    yield opened


def test_validation_report_of_drifted_span_shows_distances_and_distributions(demo_bucket, chromium):
  bucket, _, _ = demo_bucket
  record, directory = next(r for r in _reports(bucket, 'validation')
                           if r[0]['steps']['validation']['result']['status'] == 'drift')
  verdict = json.loads((directory / 'verdict.json').read_text())
  view = chromium.open(directory / 'report.html', 'validation-drift')
  assert_clean(view, ['drift-payment_type', 'span-vs-previous-payment_type',
                      'train-vs-eval-payment_type', 'span-vs-previous-fare', 'train-vs-eval-fare'])
  for d in verdict['drift']:
    assert view.values[f'drift.{d["feature"]}.value'] == f'{d["value"]:.4f}'
    assert view.values[f'drift.{d["feature"]}.threshold'] == f'{d["threshold"]:.4f}'
  for split, rows in verdict['rows'].items():
    assert view.values[f'rows.{split}'] == f'{rows:,}'
  assert 'drift over threshold' in view.text
  assert 'facets' not in (directory / 'report.html').read_text().lower()


def test_validation_report_of_anomalous_span_puts_the_anomaly_first(demo_bucket, chromium):
  bucket, _, _ = demo_bucket
  _, directory = next(r for r in _reports(bucket, 'validation')
                      if r[0]['steps']['validation']['result']['status'] == 'anomalous')
  view = chromium.open(directory / 'report.html', 'validation-anomalous')
  assert_clean(view, ['train-vs-eval-payment_type'])
  features = view.text.split('Features', 1)[1]
  assert features.lstrip().startswith('company'), features[:200]  # the missing column, first


def test_evaluation_report_overlays_roc_and_calibration_and_equals_metrics_json(demo_bucket,
                                                                               chromium):
  bucket, _, _ = demo_bucket
  _, directory = _reports(bucket, 'evaluation')[-1]  # the drift span: candidate vs baseline
  metrics = json.loads((directory / 'metrics.json').read_text())
  view = chromium.open(directory / 'report.html', 'evaluation')
  assert_clean(view, ['roc', 'calibration'])
  assert view.chart('roc')['marks'] == 2 and view.chart('calibration')['marks'] >= 2 * 3
  models = metrics['models']
  for name in ('candidate', 'baseline'):
    for metric in ('auc', 'accuracy', 'log_loss'):
      assert view.values[f'{name}.{metric}'] == f'{models[name]["overall"][metric]:.4f}'
    assert view.values[f'{name}.example_count'] == f'{models[name]["overall"]["example_count"]:,}'
  delta = models['candidate']['overall']['auc'] - models['baseline']['overall']['auc']
  assert view.values['delta.auc'] == f'{delta:+.4f}'
  for value, slice_metrics in models['candidate']['slices'].items():
    shown = view.values[f'slice.{value}.auc']
    auc = slice_metrics['auc']
    assert shown == ('n/a' if auc is None else f'{auc:.4f}')
  assert 'small slice' in view.text or 'one class only' in view.text
  assert_evaluation_page_equals_metrics_json(view, metrics,
                                             json.loads((directory / 'blessing.json').read_text()))


def assert_evaluation_page_equals_metrics_json(view, metrics, record):
  """Every chart drawn, the page no wider than the window, and the numbers shown (headline,
  confusion matrix, new metrics, importance, every slicing spec) equal to metrics.json."""
  assert_clean(view, ['roc', 'pr', 'threshold', 'calibration', 'importance'])
  assert view.widths['body'] <= view.widths['window'], view.widths
  assert view.widths['document'] <= view.widths['window'], view.widths
  models = metrics['models']
  comparison = metrics['comparison']['auc']
  word = 'Blessed' if record['status'] == 'BLESSED' else 'Not blessed'
  assert f'{word}: candidate AUC ' in view.text
  assert view.values['headline.candidate_auc'] == f'{comparison["candidate_auc"]:.3f}'
  assert view.values['headline.baseline_auc'] == f'{comparison["baseline_auc"]:.3f}'
  assert view.values['headline.rows'] == f'{comparison["sampled_rows"]:,}'
  for name, entry in models.items():
    overall = entry['overall']
    for cell in ('true_positives', 'false_positives', 'true_negatives', 'false_negatives'):
      assert view.values[f'{name}.{cell}'] == f'{overall[cell]:,}'
    for metric in ('average_precision', 'brier_score', 'expected_calibration_error', 'threshold',
                   'precision', 'recall', 'f1'):
      assert view.values[f'{name}.{metric}'] == page.number(overall[metric])
    for item in entry['importance']['features']:
      assert view.values[f'importance.{name}.{item["feature"]}.auc_drop'] == page.number(
          item['auc_drop'])
  rows = sum(c for _, _, c in models['candidate']['curves']['calibration'])
  assert rows == models['candidate']['overall']['example_count']  # the counts drawn cover every row
  for index, slicing in enumerate(models['candidate']['slicings']):
    prefix = 'slice.' if index == 0 else f'slice.{slicing["name"]}.'
    assert f'Slices by {slicing["name"]}' in view.text
    for value, slice_metrics in slicing['slices'].items():
      assert view.values[f'{prefix}{value}.example_count'] == f'{slice_metrics["example_count"]:,}'


def test_site_index_shows_runs_and_links_that_resolve(demo_bucket, chromium):
  bucket, index, _ = demo_bucket
  view = chromium.open(index, 'site-index')
  assert_clean(view, [])
  assert 'Continuous-training runs' in view.text and 'anomalous' in view.text
  reports = [link for link in view.links if link.endswith('report.html')]
  assert len(reports) == 4 + 3  # a validation report per span, an evaluation per trained span
  for link in view.links:
    assert (index.parent / link).resolve().exists(), link


def test_site_model_page_charts_metrics_across_versions_and_lineage(demo_bucket, chromium):
  bucket, index, _ = demo_bucket
  model_page = index.parent / site.model_page('taxi')
  versions = {int(p.parent.name): json.loads(p.read_text())
              for p in (bucket / 'prod' / 'registry' / 'taxi' / 'versions').glob('*/version.json')}
  view = chromium.open(model_page, 'site-model')
  assert_clean(view, ['metric-by-version-auc', 'metric-by-version-accuracy']
               + [f'lineage-v{n}' for n in versions])
  for metric in ('auc', 'accuracy'):  # one chart per metric, a point per version
    assert view.chart(f'metric-by-version-{metric}')['marks'] >= len(versions)
  for number, record in versions.items():
    assert view.values[f'v{number}.auc'] == f'{record["metrics"]["auc"]:.4f}'
    assert view.values[f'v{number}.blessing'] == record['blessing']['status']
    run = json.loads(pathlib.Path(record['lineage']).read_text())  # the version refers to it
    assert 'data' not in record and run['data']['sha256'][:12] in view.text
  aliases = json.loads((bucket / 'prod' / 'registry' / 'taxi' / 'aliases.json').read_text())
  assert view.values['alias.production'] == f'v{aliases["aliases"]["production"]}'
  for link in view.links:
    assert (model_page.parent / link).resolve().exists(), link


def test_site_refuses_an_unknown_pipeline_naming_the_known_ones(demo_bucket):
  bucket, _, _ = demo_bucket
  with pytest.raises(Exception, match="no ML pipeline 'taxy'.*taxi"):
    site.build_site(str(bucket), 'taxy')


def test_the_browser_check_fails_a_cdn_script_and_a_blank_chart(chromium, tmp_path):
  page_file = tmp_path / 'bad.html'
  page_file.write_text('<!DOCTYPE html><html><head><meta charset="utf-8">'
                       '<script src="https://cdn.example.invalid/facets.js"></script></head><body>'
                       '<svg class="chart" data-chart="empty" width="300" height="200"></svg>'
                       '</body></html>')
  view = chromium.open(page_file, 'self-check')
  assert view.failed_requests and 'cdn.example.invalid' in view.failed_requests[0]
  with pytest.raises(AssertionError):
    assert_clean(view, [])
  view.failed_requests, view.console_errors = [], []
  with pytest.raises(AssertionError, match='blank'):
    assert_clean(view, ['empty'])


def test_site_links_are_relative_for_local_and_gs_buckets():
  assert site.relative('gs://my-bucket', 'gs://my-bucket/prod/ct/runs/r/lineage.json') == \
      '../prod/ct/runs/r/lineage.json'
  assert site.relative('/data/bucket', '/data/bucket/prod/x/report.html') == '../prod/x/report.html'
  assert site.relative('gs://my-bucket', 'gs://other/prod/x') is None  # not ours: no link
  assert site.relative('/data/bucket', '/data/bucket-2/x') is None


class TestNumbersForPeople:
  def test_numbers_are_rendered_without_python_reprs(self):
    assert page.number(True) == 'yes' and page.number(False) == 'no'
    assert page.number(None) == 'n/a' and page.number(math.nan) == 'n/a'
    assert page.number(2413) == '2,413' and page.number(0.93256) == '0.9326'
    assert page.number({'train': 2413, 'eval': 587}) == 'train 2,413, eval 587'
    assert page.number(['a', 'b']) == 'a, b'

  def test_auc_interval_narrows_with_more_examples_and_stays_in_0_1(self):
    small = evaluation.auc_interval(0.9, 10, 10)
    large = evaluation.auc_interval(0.9, 1000, 1000)
    assert small[0] < large[0] < 0.9 < large[1] < small[1] <= 1.0
    assert evaluation.auc_interval(0.9, 0, 10) is None and evaluation.auc_interval(None, 5, 5) is None
    # Hanley & McNeil's example: AUC 0.8, 50 and 50 -> standard error about 0.044
    low, high = evaluation.auc_interval(0.8, 50, 50)
    assert (high - low) / (2 * 1.96) == pytest.approx(0.0437, abs=0.002)

  def test_auc_interval_of_a_tiny_slice_is_wide_even_at_auc_1(self):
    low, high = evaluation.auc_interval(1.0, 1, 19)  # one positive ranked first: says little
    assert high == 1.0 and low < 0.1

  def test_small_slices_are_warned_about(self):
    assert 'one class only' in evaluation.small_slice_warning({'example_count': 8, 'positive_count': 0})
    assert 'small slice' in evaluation.small_slice_warning({'example_count': 20, 'positive_count': 9})
    assert evaluation.small_slice_warning({'example_count': 500, 'positive_count': 200}) is None


def test_the_validation_report_prefers_the_noise_floor_validation_measured():
  measured = {'noise_floor': {'fare': {'noise_floor': 0.0412, 'measure': 'JENSEN_SHANNON_DIVERGENCE'}}}
  assert validation.noise_floors(measured, {}, {}) == (
      {'fare': 0.0412}, validation.MEASURED_FLOOR)
  assert validation.noise_floors({}, {}, {}) == ({}, validation.ESTIMATED_FLOOR)
