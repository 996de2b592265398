"""A new team, a real time-ordered dataset, no schema file touched: COVID-19 tests of a children's
hospital in 2020 (``tests/real_covid.py``: empty cells in half the rows, clinics that keep opening,
a turnaround time with a 61,370-hour row, a column that leaks the label). A pipeline folder with
a spec written from the CSV header (``numeric: all``, an ``ignore`` list), `invoke build test
deploy`, then `invoke ct --pipeline covid` after each of three four-week spans: each reaches
production, and the leaking column is flagged in the validation output."""

from __future__ import annotations

import json
import pathlib
import subprocess
import types

import pytest

from beam_pipelines.ct import registry
from beam_pipelines.ct.paths import CtPaths

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
