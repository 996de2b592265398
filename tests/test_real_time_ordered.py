"""A new team, a real time-ordered dataset, no schema file touched: COVID-19 tests of a children's
hospital in 2020 (``tests/real_covid.py``: empty cells in half the rows, clinics that keep opening,
a turnaround time with a 61,370-hour row, a column that leaks the label). A pipeline folder with
a spec written from the CSV header (``numeric: all``, an ``ignore`` list), `invoke build test
deploy`, then `invoke ct --pipeline covid` after each of three four-week spans: each reaches
production, and the leaking column is flagged in the validation output. From the second span on,
production is scored on each new span before training (forward evaluation): its AUC equals a
plain scikit-learn computation of the same model on the same rows and is drawn on the site's
trend chart; every version is scored on the same fixed holdout (the integration CSV)."""

from __future__ import annotations

import hashlib
import json
import pathlib
import re
import subprocess
import types

import joblib
import pandas as pd
import pytest
from browser import assert_clean, browser
from sklearn.metrics import roc_auc_score

from beam_pipelines.ct import registry
from beam_pipelines.ct.paths import CtPaths
from beam_pipelines.harness import site
from beam_pipelines.store.console import number

import real_covid
from conftest import REPO
from harness.support import commit_all, logged_runs, make_project

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def out(done) -> str:
  return done.stdout + done.stderr


@pytest.fixture(scope='module')
def team(tmp_path_factory):
  root = tmp_path_factory.mktemp('real-time-ordered')
  s = types.SimpleNamespace(project=make_project(root / 'project'), bucket=root / 'bucket',
                            done={}, aliases={})
  folder = real_covid.write_pipeline_folder(s.project)
  s.schema_files = sorted(folder.glob('*.pbtxt'))
  commit_all(s.project, 'add the covid pipeline')
  paths = CtPaths(str(s.bucket), real_covid.NAME)
  s.registry = registry.Registry(paths.registry)
  # logs for a person to read (gitignored)
  run = logged_runs(s.project, s.bucket, s.done, REPO / 'outputs' / 'real-time-ordered')

  run('loop', 'build', '--no-checks', 'test', 'deploy')
  for span in real_covid.SPANS:
    real_covid.land(pathlib.Path(paths.landing), span)
    run(span, 'ct', '--pipeline', real_covid.NAME, '--json')
    s.aliases[span] = s.registry.aliases()
  s.landing = pathlib.Path(paths.landing)
  s.site = pathlib.Path(site.build_site(str(s.bucket), real_covid.NAME)).parent
  return s


def _json_line(done) -> dict:
  return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_build_tests_and_deploys_the_new_pipeline(team):
  assert team.done['loop'].returncode == 0, out(team.done['loop'])[-4000:]
  assert 'covid' in out(team.done['loop'])


def test_each_of_three_time_ordered_spans_reaches_production(team):
  versions = []
  for span in real_covid.SPANS:
    done = team.done[span]
    assert done.returncode == 0, out(done)[-4000:]
    line = _json_line(done)
    [outcome] = line['outcomes']
    assert outcome['outcome'] == 'pushed', (span, outcome)
    assert team.aliases[span][registry.PRODUCTION] == outcome['version']
    versions.append(outcome['version'])
  assert versions == sorted(set(versions))  # three versions, each newer than the last


def test_no_schema_file_was_written_or_edited_in_the_pipeline_folder(team):
  folder = team.project / 'beam_pipelines' / 'pipelines' / real_covid.NAME
  assert sorted(folder.glob('*.pbtxt')) == team.schema_files == []
  status = subprocess.run(['git', 'status', '--porcelain', str(folder)], cwd=team.project,
                          capture_output=True, text=True, check=True)
  assert status.stdout == ''


def test_growing_clinics_are_warnings_and_the_leaking_column_is_flagged(team):
  for span in real_covid.SPANS:
    log = out(team.done[span])
    assert 'clinic_name' in log and 'not in the schema\'s domain' in log, span
    assert f'{real_covid.LEAK}\' alone predicts' in log, span
  line = _json_line(team.done[list(real_covid.SPANS)[0]])
  lineage = json.loads(pathlib.Path(line['outcomes'][0]['lineage']).read_text())
  validation_dir = lineage['steps']['validation']['outputs']
  verdict = json.loads((pathlib.Path(validation_dir) / 'verdict.json').read_text())
  leaks = [w for w in verdict['warnings'] if 'LABEL_LEAKAGE' in w['types']]
  assert [w['feature'] for w in leaks] == [real_covid.LEAK]
  assert verdict['leakage'][real_covid.LEAK] >= 0.98


def _lineage(team, span: str) -> dict:
  [outcome] = _json_line(team.done[span])['outcomes']
  return json.loads(pathlib.Path(outcome['lineage']).read_text())


def _sklearn_auc(team, version: int, span: str):
  """(AUC, labelled rows) of registered ``version`` on ``span``'s labelled rows, with pandas and
  scikit-learn alone, the model loaded with joblib after its sha256 checks."""
  record = team.registry.record(version)
  directory = pathlib.Path(team.registry.version_dir(version))
  payload = (directory / 'model.joblib').read_bytes()
  assert hashlib.sha256(payload).hexdigest() == record['model_sha256'] == record['files'][
      'model.joblib']
  model = joblib.load(directory / 'model.joblib')
  metadata = json.loads((directory / 'model.json').read_text())
  frame = pd.read_csv(team.landing / span / f'{real_covid.NAME}.csv',
                      dtype={c: str for c in metadata['categorical']})
  frame = frame[frame[real_covid.LABEL].notna()]
  features = frame[metadata['features']].astype({c: 'float64' for c in metadata['numeric']})
  scores = model.predict_proba(features)[:, 1]
  return roc_auc_score(frame[real_covid.LABEL].astype(int), scores), len(frame)


def test_production_is_scored_on_each_new_span_before_training_as_scikit_learn_scores_it(team):
  spans = list(real_covid.SPANS)
  assert 'forward_evaluation' not in _lineage(team, spans[0])['steps']  # no production yet
  exact = []
  for before, span in zip(spans, spans[1:]):
    steps = _lineage(team, span)['steps']
    forward = steps['forward_evaluation']
    production = team.aliases[before][registry.PRODUCTION]
    assert forward['status'] == 'ran' and forward['model_version'] == production
    assert steps['validation']['finished_at'] <= forward['started_at']
    assert forward['finished_at'] <= steps['training']['started_at']  # before training ran
    metrics = forward['result']['metrics']
    expected, rows = _sklearn_auc(team, production, span)
    assert forward['result']['rows_scored'] == rows == metrics['example_count']
    assert abs(metrics['auc'] - expected) <= 1e-6, (span, metrics, expected)
    if 'histogram_auc' in metrics:  # the histogram's bound exceeded 1e-6: recomputed exactly
      exact.append(span)
      assert metrics['auc_error_bound'] == 0.0
    else:
      assert metrics['auc_error_bound'] <= 1e-6
    assert f'production v{production} on {span} before training: AUC' in out(team.done[span])
    assert forward['summary'] == (f'production v{production} on {span} before training: AUC '
                                  f'{number(metrics["auc"], 3)}, log loss '
                                  f'{number(metrics["log_loss"], 3)} on {rows:,} labelled rows')
  # on day085-107 the histogram's bound is 1.5e-6 (scores piled near 0 and 1): the exact AUC
  assert exact == spans[2:]


def test_the_forward_auc_is_drawn_on_the_sites_trend_chart(team):
  html = (team.site / site.model_page(real_covid.NAME)).read_text()
  with browser() as chromium:
    view = chromium.open(team.site / site.model_page(real_covid.NAME), 'real-covid-trend')
  assert_clean(view, ['forward-auc', 'forward-log-loss'])
  spans = list(real_covid.SPANS)[1:]
  assert view.chart('forward-auc')['marks'] == len(spans) + 1  # a point per span and the line
  [svg] = re.findall(r'<svg[^>]*data-chart="forward-auc".*?</svg>', html)
  for span in spans:
    forward = _lineage(team, span)['steps']['forward_evaluation']
    auc = forward['result']['metrics']['auc']
    assert f'<title>production AUC: {auc:.4f}</title>' in svg
    assert f'{span} v{forward["model_version"]}' in svg  # the span and the version that scored it
    assert view.values[f'forward.{span}.auc'] == number(auc)
    validation = _lineage(team, span)['steps']['validation']['result']
    for distance in validation['drift']:
      assert view.values[f'drift.{span}.{distance["feature"]}'] == number(distance['value'])


def test_every_version_is_scored_on_the_same_holdout_rows_as_production(team):
  versions = {n: team.registry.record(n) for n in team.registry.numbers()}
  assert len(versions) == 3
  holdouts = [record['holdout'] for record in versions.values()]
  assert len({(h['sha256'], h['rows']) for h in holdouts}) == 1  # the same rows for every version
  labelled = int(real_covid.integration()[real_covid.LABEL].notna().sum())
  assert holdouts[0]['rows'] == labelled
  for number_, record in versions.items():
    if number_ == 1:
      assert 'production' not in record['holdout']
      continue
    beside = record['holdout']['production']  # production, scored in the same run on those rows
    assert beside['metrics'] == versions[beside['version']]['holdout']['metrics']
    blessing = record['blessing']
    assert blessing['holdout']['status'] == blessing['eval_split']['status'] == 'BLESSED'
    assert "production's registered" not in blessing['message']  # judged on the holdout instead
    steps = json.loads(pathlib.Path(record['lineage']).read_text())['steps']
    assert steps['holdout_evaluation']['judged'] is True
    assert steps['holdout_evaluation']['result']['rows_scored'] == labelled
