"""The site's runs list, version charts, compare pages and model cards, on a bucket of real CT runs:
the CT demo (three pushed spans and one stopped at validation), then a fifth span trained by a
stricter pipeline.yaml of the same pipeline (another C, an AUC floor of 0.99: NOT_BLESSED, and its
own model_card text). Every value the pages show is checked against version.json, lineage.json,
metrics.json and pipeline.yaml; every page is opened in headless Chromium (tests/browser.py)."""

from __future__ import annotations

import datetime
import itertools
import json
import pathlib
import re
import types

import pytest
from browser import assert_clean, browser

from beam_pipelines.ct import cli as ct_cli
from beam_pipelines.ct import demo
from beam_pipelines.ct.definition import (
  MODEL_CARD_FIELDS,
  DefinitionError,
  load_definition,
)
from beam_pipelines.ct.paths import CtPaths
from beam_pipelines.harness import site
from beam_pipelines.pages import charts, compare, model_card, page, versions
from beam_pipelines.taxi_data import Knobs

STRICT_CARD = {'overview': 'A stricter taxi pipeline: every model must reach an AUC of 0.99.',
               'users': 'The tests of the site.'}
STRICT = f"""spec: {load_definition('taxi').spec_path}
train: {{classifier: logistic, C: 0.5, max_iter: 1000, random_state: 0}}
blessing:
  metrics:
    auc:
      value_threshold: {{lower_bound: 0.99}}
model_card:
  overview: "{STRICT_CARD['overview']}"
  users: "{STRICT_CARD['users']}"
"""


def _json(path) -> dict:
  return json.loads(pathlib.Path(path).read_text())


@pytest.fixture(scope='session')
def built(tmp_path_factory):
  """A bucket of real CT runs (pushed x3, stopped, not_blessed) and its site."""
  root = tmp_path_factory.mktemp('site-pages')
  bucket = root / 'bucket'
  demo_status = ct_cli.main(['--demo', '--bucket', str(bucket)])
  folder = root / 'strict' / 'taxi'  # the same pipeline name: the same registry
  folder.mkdir(parents=True)
  (folder / 'pipeline.yaml').write_text(STRICT)
  demo.land(CtPaths(str(bucket)).landing,
            demo.DemoSpan('same distribution', datetime.date(2026, 11, 5), Knobs(malformed=5)))
  strict_status = ct_cli.main(['--bucket', str(bucket), '--pipeline', str(folder / 'pipeline.yaml')])
  index = pathlib.Path(site.build_site(str(bucket)))
  registry = bucket / 'prod' / 'registry' / 'taxi'
  records = {int(p.parent.name): _json(p) for p in (registry / 'versions').glob('*/version.json')}
  runs = [_json(p) for p in sorted((bucket / 'prod' / 'ct' / 'taxi' / 'runs').glob('*/lineage.json'))]
  return types.SimpleNamespace(bucket=bucket, site=index.parent, index=index, versions=records,
                               runs=runs, aliases=_json(registry / 'aliases.json')['aliases'],
                               statuses=(demo_status, strict_status), strict=folder / 'pipeline.yaml')


@pytest.fixture(scope='module')
def chromium():
  with browser() as opened:
    opened._driver.set_window_size(1280, 1000)  # the width the no-overflow check is about
    yield opened


def _open(chromium, path: pathlib.Path, charts=()):
  view = chromium.open(path, f'site-pages-{path.stem}')
  assert_clean(view, list(charts))
  body, inner = chromium._driver.execute_script(
      'return [document.body.scrollWidth, window.innerWidth]')
  assert body <= inner, f'{path.name}: {body} px wide in a {inner} px window'
  widest = chromium._driver.execute_script(
      'return Math.max(...Array.from(document.body.children).map('
      'e => e.getBoundingClientRect().right))')
  assert widest <= inner, f'{path.name}: an element ends at {widest} px of {inner}'
  return view


def _run_of(built, number: int) -> dict:
  return next(r for r in built.runs if r['run_id'] == built.versions[number]['run_id'])


def _metrics_json(run: dict) -> dict:
  return _json(pathlib.Path(run['steps']['evaluation']['outputs']) / 'metrics.json')


# The bucket ------------------------------------------------------------------------------------

@pytest.mark.integration
@pytest.mark.slow
def test_the_bucket_has_pushed_stopped_and_not_blessed_runs(built):
  assert built.statuses == (ct_cli.EXIT_OK, ct_cli.EXIT_NOT_BLESSED)
  assert [r['status'] for r in built.runs] == ['pushed', 'pushed', 'stopped', 'pushed',
                                               'not_blessed']
  assert sorted(built.versions) == [1, 2, 3, 4]
  assert built.versions[4]['blessing']['status'] == 'NOT_BLESSED'


# Every run, with its reason --------------------------------------------------------------------

@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize('page_name', ['index.html', 'model-taxi.html'])
def test_every_ct_run_is_listed_newest_first_with_its_status_and_reason(built, chromium,
                                                                        page_name):
  view = _open(chromium, built.site / page_name)
  for run in built.runs:
    run_id = run['run_id']
    assert view.values[f'run.{run_id}.status'] == run['status']
    reason = view.values[f'run.{run_id}.reason']
    if run['status'] == 'stopped':
      verdict = run['steps']['validation']['result']
      assert reason.startswith(f"{run['reason']}: missing column(s) company; ")
      assert all(f"{a['feature']}: {a['description']}" in reason for a in verdict['anomalies'])
    else:  # trained: the blessing decision (eval split and fixed holdout), as the version has it
      version = built.versions[run['model']['version']]
      assert reason == version['blessing']['message']
      assert run['steps']['evaluation']['result']['message'] in reason
  shown = re.findall(r'data-key="run\.([^"]+)\.status"', (built.site / page_name).read_text())
  assert shown == [r['run_id'] for r in reversed(built.runs)]  # newest first
  not_blessed = built.runs[-1]
  assert 'is below lower_bound 0.99' in view.values[f'run.{not_blessed["run_id"]}.reason']
  for link in view.links:
    assert (built.site / link).resolve().exists(), link


@pytest.mark.integration
@pytest.mark.slow
def test_the_runs_table_sorts_by_the_column_clicked(built, chromium):
  _open(chromium, built.site / 'model-taxi.html')
  driver = chromium._driver
  column = ("return Array.from(document.querySelectorAll('table[data-table=ct-runs-taxi] tbody tr'))"
            ".map(r => r.children[{}].textContent.trim())")
  header = "document.querySelectorAll('table[data-table=ct-runs-taxi] thead th')[{}].click()"
  driver.execute_script(header.format(3))  # status, ascending
  statuses = driver.execute_script(column.format(3))
  assert statuses == sorted(r['status'] for r in built.runs)
  driver.execute_script(header.format(2))  # span
  driver.execute_script(header.format(2))  # again: descending
  spans = driver.execute_script(column.format(2))
  assert spans == sorted(spans, reverse=True) and len(spans) == len(built.runs)


# The metric charts -----------------------------------------------------------------------------

@pytest.mark.integration
@pytest.mark.slow
def test_one_chart_per_metric_each_point_labelled_with_version_and_span(built, chromium):
  view = _open(chromium, built.site / 'model-taxi.html',
               ['metric-by-version-auc', 'metric-by-version-accuracy']
               + [f'lineage-v{n}' for n in built.versions])
  text = (built.site / 'model-taxi.html').read_text()
  for metric, label in (('auc', 'AUC'), ('accuracy', 'accuracy at 0.5')):
    assert view.chart(f'metric-by-version-{metric}')['marks'] >= len(built.versions) + 1
    for number, record in built.versions.items():
      span = _run_of(built, number)['data']['span'].rsplit('/', 1)[-1]
      blessed = '' if record['blessing']['status'] == 'BLESSED' else '; not blessed'
      assert (f'v{number}, span {span}: {label} {page.number(record["metrics"][metric])} '
              f'(own eval split (rows differ by span){blessed})') in text
  auc_chart = text.split('data-chart="metric-by-version-auc"', 1)[1].split('</svg>', 1)[0]
  ticks = re.findall(r'text-anchor="end">([0-9.]+)</text>', auc_chart)
  assert (ticks[0], ticks[-1]) == (charts.human_number(0.5), charts.human_number(1.0))  # chance..perfect
  for number in built.versions:
    assert view.values[f'v{number}.auc'] == page.number(built.versions[number]['metrics']['auc'])


# Compare pages ---------------------------------------------------------------------------------

@pytest.mark.integration
@pytest.mark.slow
def test_a_compare_page_exists_for_every_pair_and_the_model_page_links_them(built):
  expected = {compare.compare_page_name('taxi', a, b)
              for a, b in itertools.combinations(sorted(built.versions), 2)}
  assert {p.name for p in built.site.glob('compare-taxi-*.html')} == expected
  text = (built.site / 'model-taxi.html').read_text()
  assert all(f'href="{name}"' in text for name in expected)


@pytest.mark.integration
@pytest.mark.slow
def test_compare_page_shows_the_parameter_diff_and_metrics_of_the_records(built, chromium):
  view = _open(chromium, built.site / 'compare-taxi-v3-v4.html', ['roc-compare'])
  assert view.chart('roc-compare')['marks'] == 2
  left, right = _run_of(built, 3)['parameters'], _run_of(built, 4)['parameters']
  changed, equal = compare.parameter_diff(left, right)
  assert {key for key, _, _ in changed} >= {'train.C', 'blessing.metrics.auc.value_threshold.lower_bound'}
  assert view.values['param.train.C.left'] == '1' and view.values['param.train.C.right'] == '0.5'
  assert view.values['param.blessing.registered_change.auc.absolute.right'] == '(absent)'
  for key, a, b in changed:
    assert view.values[f'param.{key}.left'] == compare.parameter_text(a)
    assert view.values[f'param.{key}.right'] == compare.parameter_text(b)
  assert 'train.max_iter' in dict(equal) and 'param.train.max_iter.left' not in view.values
  for metric in ('auc', 'accuracy', 'log_loss', 'example_count'):
    a, b = built.versions[3]['metrics'][metric], built.versions[4]['metrics'][metric]
    assert view.values[f'metric.{metric}.left'] == page.number(a)
    assert view.values[f'metric.{metric}.right'] == page.number(b)
  assert view.values['metric.auc.difference'] == \
      f'{built.versions[4]["metrics"]["auc"] - built.versions[3]["metrics"]["auc"]:+.4f}'
  rows = view.values['rows.different']  # no holdout recorded: each on its own eval rows
  assert (f'v3 on {built.versions[3]["metrics"]["example_count"]:,} rows of its eval split of '
          f'span-2026-11-04') in rows and 'span-2026-11-05' in rows
  roc = _metrics_json(_run_of(built, 4))['models']['candidate']['curves']['roc']
  svg = (built.site / 'compare-taxi-v3-v4.html').read_text()
  assert svg.count('<polyline class="mark"') == 2 and len(roc) > 10


# Model cards -----------------------------------------------------------------------------------

@pytest.mark.integration
@pytest.mark.slow
def test_each_version_has_a_model_card_equal_to_its_records(built, chromium):
  bundled = load_definition('taxi').model_card
  model_page = (built.site / 'model-taxi.html').read_text()
  for number, record in sorted(built.versions.items()):
    html_name, md_name = model_card.card_names('taxi', number)
    assert f'href="{html_name}"' in model_page
    run = _run_of(built, number)
    view = _open(chromium, built.site / html_name)
    values = view.values
    assert values['version'] == f'v{number}' and values['model_sha256'] == record['model_sha256']
    assert values['registered_at'] == record['registered_at']
    assert values['blessing'] == record['blessing']['status']
    assert values['blessing_message'] == record['blessing']['message']
    assert values['run_id'] == record['run_id'] == run['run_id']
    assert values['classifier'] == run['parameters']['train']['classifier']
    assert f"C {compare.parameter_text(run['parameters']['train']['C'])}" in values['parameters']
    assert values['code.git_commit'] == run['code']['git_commit']
    assert values['data_sha256'] == run['data']['sha256']
    assert values['span'] == run['data']['span'].rsplit('/', 1)[-1]
    assert values['file.0.sha256'] == run['data']['files'][0]['sha256']
    rows = run['steps']['features']['result']['rows_written']
    assert values['rows'] == ', '.join(f'{s} {n:,}' for s, n in sorted(rows.items()))
    for metric in ('auc', 'accuracy', 'log_loss', 'example_count'):
      assert values[f'metric.{metric}'] == page.number(record['metrics'][metric])
    evaluated = _metrics_json(run)
    assert values['slice_feature'] == f'Sliced by {evaluated["slice_feature"]}, on the same eval split.'
    for value, metrics in evaluated['models']['candidate']['slices'].items():
      assert values[f'slice.{value}.auc'] == page.number(metrics['auc'])
      assert values[f'slice.{value}.example_count'] == page.number(metrics['example_count'])
    stated = STRICT_CARD if number == 4 else bundled
    for field in MODEL_CARD_FIELDS:
      assert values[f'consideration.{field}'] == stated.get(field, model_card.NOT_STATED)
    if number == 4:
      assert str(built.strict) in values['considerations_source']
    markdown = (built.site / md_name).read_text()
    assert markdown.startswith(f'# Model card: taxi v{number}\n')
    for text in [record['model_sha256'], run['data']['sha256'], record['blessing']['message']] + [
        stated.get(field, f'_{model_card.NOT_STATED}_') for field in MODEL_CARD_FIELDS]:
      assert text in markdown


@pytest.mark.integration
@pytest.mark.slow
def test_every_site_page_draws_its_charts_and_fits_1280_pixels(built, chromium):
  for path in sorted(built.site.glob('*.html')):
    charts = re.findall(r'data-chart="([^"]+)"', path.read_text())
    _open(chromium, path, charts)


# Pure parts: no bucket -------------------------------------------------------------------------

def _shown(text: str, key: str) -> str:
  """The text of the element with ``data-key="<key>"`` in a page's HTML."""
  found = re.search(rf'data-key="{re.escape(key)}"[^>]*>([^<]*)<', text)
  assert found, f'no data-key {key}'
  return found.group(1)


def _side(version, auc, holdout_sha=None, rows=2000, parameters=None):
  own = compare.Scored({'auc': auc, 'example_count': 500 + version}, [[0, 0], [1, 1]],
                       500 + version, f'eval split of span-{version}')
  held = compare.Scored({'auc': auc - 0.01, 'example_count': rows}, [[0, 0], [0.2, 0.9], [1, 1]],
                        rows, 'fixed holdout') if holdout_sha else None
  return compare.Side(version, f'span-{version}', 'BLESSED', (), None,
                      parameters or {'train': {'C': 1.0}}, own, held, holdout_sha)


class TestComparePage:
  def test_metrics_on_the_same_holdout_rows_when_both_carry_the_same_holdout(self):
    left, right = _side(1, 0.90, 'a' * 64), _side(2, 0.93, 'a' * 64)
    assert compare.like_for_like(left, right)
    text = compare.compare_page('taxi', left, right)
    assert 'Measured on the same 2,000 holdout rows' in text and 'different rows' not in text
    assert _shown(text, 'metric.auc.left') == '0.8900'  # the holdout's, not the own split's
    assert _shown(text, 'metric.auc.difference') == '+0.0300'

  def test_different_holdouts_or_none_fall_back_to_each_versions_own_rows_said_so(self):
    for left, right in ((_side(1, 0.9, 'a' * 64), _side(2, 0.93, 'b' * 64)),
                        (_side(1, 0.9), _side(2, 0.93, 'a' * 64))):
      assert not compare.like_for_like(left, right)
      text = compare.compare_page('taxi', left, right)
      assert 'Measured on different rows: v1 on 501 rows of its eval split of span-1' in text
      assert _shown(text, 'metric.auc.left') == '0.9000'

  def test_parameter_diff_names_changed_added_and_removed_keys(self):
    changed, equal = compare.parameter_diff(
        {'train': {'C': 1.0, 'classifier': 'logistic'}, 'window': 1, 'blessing': {'a': 1}},
        {'train': {'C': 0.5, 'classifier': 'logistic'}, 'window': 1, 'policy': {'retrain': 'x'}})
    assert changed == [('blessing.a', 1, compare.MISSING), ('policy.retrain', compare.MISSING, 'x'),
                       ('train.C', 1.0, 0.5)]
    assert equal == [('train.classifier', 'logistic'), ('window', 1)]
    assert compare.parameter_text(1e-10) == '1e-10' and compare.parameter_text(compare.MISSING) \
        == '(absent)'

  def test_pairs_are_all_pairs_up_to_20_versions_else_consecutive_and_against_production(self):
    assert compare.pairs([3, 1, 2], 2) == [(1, 2), (1, 3), (2, 3)]
    assert len(compare.pairs(list(range(1, 21)), 20)) == 190
    many = compare.pairs(list(range(1, 31)), 10)
    assert (1, 2) in many and (29, 30) in many and (1, 10) in many and (10, 30) in many
    assert (1, 3) not in many and len(many) == 29 + 29 - 2  # two consecutive pairs hold v10

  def test_the_chooser_only_offers_pages_that_exist(self):
    text = compare.chooser('taxi', [1, 2, 3], compare.pairs([1, 2, 3], 3))
    assert '"compare-taxi-v1-v3.html"' in text and text.count('<option') == 6
    assert 'nothing to compare' in compare.chooser('taxi', [1], [])


class TestMetricCharts:
  def test_axis_starts_at_the_metrics_floor_not_at_the_lowest_value(self):
    assert versions.axis('auc', [0.91, 0.93]) == (0.5, 1.0)
    assert versions.axis('accuracy', [0.87, 0.88]) == (0.0, 1.0)
    assert versions.axis('auc', [0.42, 0.9]) == (0.4, 1.0)  # below chance: shown, not cut
    assert versions.axis('log_loss', [0.3, 2.0])[1] == pytest.approx(2.2)

  def test_holdout_values_are_a_separate_series_of_the_latest_holdout_only(self):
    records = {
        1: {'metrics': {'auc': 0.9}, 'blessing': {'status': 'BLESSED'},
            'holdout': {'sha256': 'old', 'rows': 100, 'metrics': {'auc': 0.5}}},
        2: {'metrics': {'auc': 0.92}, 'blessing': {'status': 'BLESSED'},
            'holdout': {'sha256': 'h' * 64, 'rows': 1460, 'metrics': {'auc': 0.88}}},
        3: {'metrics': {'auc': 0.93}, 'blessing': {'status': 'NOT_BLESSED'},
            'holdout': {'sha256': 'h' * 64, 'rows': 1460, 'metrics': {'auc': 0.87}}}}
    text = site._metric_charts(records, {1: 'span-1', 2: 'span-2', 3: 'span-3'})
    assert 'fixed holdout (1,460 rows, sha256 hhhhhhhh)' in text
    assert 'v2, span span-2: AUC 0.8800 (fixed holdout' in text
    assert 'AUC 0.5000 (fixed holdout' not in text  # another holdout: not comparable
    assert 'v3, span span-3: AUC 0.9300 (own eval split (rows differ by span); not blessed)' in text


class TestRunReason:
  def test_failed_runs_show_their_exception(self):
    assert site.run_reason({'status': 'failed', 'error': 'OSError: [Errno 28] No space left',
                            'steps': {}}) == 'OSError: [Errno 28] No space left'

  def test_a_run_without_an_end_says_how_far_it_got(self):
    reason = site.run_reason({'status': 'running', 'steps': {
        'features': {'status': 'ran'}, 'validation': {'status': 'ran'}}})
    assert reason == 'running, or killed before it finished (last step recorded: validation)'

  def test_registered_but_not_pushed_says_why(self):
    run = {'status': 'registered', 'parameters': {'push': False},
           'steps': {'evaluation': {'result': {'message': 'BLESSED (ok)'}}}}
    assert site.run_reason(run) == 'registered as candidate, not production (--no_push); BLESSED (ok)'

  def test_no_trigger_names_the_verdict(self):
    run = {'status': 'no_trigger', 'steps': {'validation': {'result': {'status': 'ok'}}}}
    assert site.run_reason(run).startswith('no trigger: the span validated (ok)')


class TestModelCardDefinition:
  def _load(self, tmp_path, body):
    folder = tmp_path / 'p'
    folder.mkdir(exist_ok=True)
    (folder / 'pipeline.yaml').write_text(
        f'spec: {load_definition("taxi").spec_path}\ntrain: {{classifier: logistic}}\n' + body)
    return load_definition(str(folder / 'pipeline.yaml'))

  def test_absent_model_card_is_empty_and_the_bundled_one_states_every_field(self, tmp_path):
    assert self._load(tmp_path, '').model_card == {}
    bundled = load_definition('taxi').model_card
    assert set(bundled) == set(MODEL_CARD_FIELDS)
    assert 'synthetic' in bundled['limitations'] and 'Not for decisions' in bundled['intended_use']

  def test_unknown_fields_and_non_text_values_are_refused(self, tmp_path):
    with pytest.raises(DefinitionError, match='model_card must map some of overview'):
      self._load(tmp_path, 'model_card: {owner: me}\n')
    with pytest.raises(DefinitionError, match=r"model_card: each field is a text.*\['users'\]"):
      self._load(tmp_path, 'model_card: {users: [a, b]}\n')

  def test_a_card_without_definition_text_reads_not_stated_in_html_and_markdown(self):
    card = model_card.ModelCard('taxi', 7, considerations=[(f, None) for f in MODEL_CARD_FIELDS])
    html_text, markdown = model_card.to_html(card), model_card.to_markdown(card)
    assert html_text.count(f'>{model_card.NOT_STATED}</p>') == len(MODEL_CARD_FIELDS)
    assert markdown.count(f'_{model_card.NOT_STATED}_') == len(MODEL_CARD_FIELDS)
    assert 'No pipeline definition of this model is readable' in markdown
