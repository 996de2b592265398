"""The command line for people and for scripts, on a real temporary bucket (a registry and lineage
records written by the real writers, no training): `--json` prints one JSON object that parses,
human output holds no Python repr, read-only tasks and `ct --help` import no Beam, every task's
`--help` prints help and does nothing, and several declared pipelines need `--pipeline`."""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import textwrap

import pytest
from invoke import Collection

import tasks
from beam_pipelines.ct import cli as ct_cli
from beam_pipelines.ct import registry
from beam_pipelines.ct.definition import DefinitionError, choose_pipeline, load_definition
from beam_pipelines.harness.build import snapshot
from beam_pipelines.store import console

import ctdata

REPO = pathlib.Path(__file__).resolve().parents[1]
HEAVY = ('apache_beam', 'tensorflow', 'tensorflow_data_validation', 'sklearn', 'pyarrow')
@pytest.fixture(scope='module')
def bucket(tmp_path_factory) -> pathlib.Path:
  return ctdata.build_bucket(tmp_path_factory.mktemp('cli') / 'bucket')


def invoke(*args: str, bucket: pathlib.Path, cwd: pathlib.Path = REPO) -> subprocess.CompletedProcess:
  env = dict(os.environ, PYTHONPATH=str(cwd), BEAM_PIPELINES_BUCKET=str(bucket))
  return subprocess.run([sys.executable, '-m', 'invoke', *args], cwd=cwd, env=env,
                        capture_output=True, text=True, timeout=120)


def as_json(done: subprocess.CompletedProcess) -> dict:
  assert done.returncode == 0, done.stdout + done.stderr
  value = json.loads(done.stdout)  # the whole of stdout: one JSON object and nothing else
  assert isinstance(value, dict)
  return value


@pytest.mark.integration
class TestJson:

  def test_model_list(self, bucket):
    view = as_json(invoke('model-list', '--json', bucket=bucket))
    assert view['pipeline'] == 'taxi'
    assert view['registry'] == str(bucket / 'prod' / 'registry' / 'taxi')
    assert view['aliases'] == {'production': 2, 'candidate': 2}
    assert [v['version'] for v in view['versions']] == [1, 2]
    assert view['versions'][0]['metrics']['auc'] == ctdata.AUC[1]
    assert [e['moves']['production']['to'] for e in view['history']] == [1, 2]

  def test_lineage(self, bucket):
    view = as_json(invoke('lineage', '--model', 'candidate', '--json', bucket=bucket))
    assert (view['model'], view['version']) == ('candidate', 2)
    assert view['record']['run_id'] == view['lineage']['run_id'] == '20261102T000000Z-000002'
    assert view['lineage_path'].endswith('/20261102T000000Z-000002/lineage.json')
    assert view['lineage']['parameters']['train'] == load_definition('taxi').train
    assert as_json(invoke('lineage', '--model', '1', '--json', bucket=bucket))['version'] == 1

  def test_status(self, bucket):
    view = as_json(invoke('status', '--json', bucket=bucket))
    assert view['bucket'] == str(bucket)
    assert {n: e['deployed'] for n, e in view['environments'].items()} == {'test': False,
                                                                           'prod': False}
    assert view['models']['taxi']['production'] == 2
    assert view['models']['taxi']['production_auc'] == ctdata.AUC[2]
    assert view['models']['taxi']['versions'] == 2
    assert (view['last_test'], view['passed_builds'], view['approval_required']) == (None, [], False)
    assert view['lock']['state'] == 'free' and view['history']['events'] == []

  def test_a_refusal_prints_no_json_and_exits_2(self, bucket):
    done = invoke('lineage', '--model', '7', '--json', bucket=bucket)
    assert done.returncode == 2 and done.stdout == ''
    assert 'model version 7 does not exist' in done.stderr and '(versions: 1, 2)' in done.stderr

  def test_ct_ends_with_one_json_line(self, tmp_path):
    done = subprocess.run([sys.executable, '-m', 'beam_pipelines.ct', '--json', '--bucket',
                           str(tmp_path)], cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 1
    line = json.loads(done.stdout)
    assert (line['exit_status'], line['result'], line['mode'], line['pipeline']) == (
        0, 'done', 'run', 'taxi')
    assert [o['outcome'] for o in line['outcomes']] == ['no_trigger']
    assert line['production'] is None and line['error'] is None

  def test_a_ct_error_is_a_json_line_too(self):
    done = subprocess.run([sys.executable, '-m', 'beam_pipelines.ct', '--json', 'stray'],
                          cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    line = json.loads(done.stdout.splitlines()[-1])
    assert (line['exit_status'], line['result']) == (2, 'error')
    assert "unexpected argument 'stray'" in line['error'] and line['outcomes'] == []



def test_the_ct_json_line_names_every_exit_status():
  for status in (0, 1, 2, 3):
    assert json.loads(ct_cli.json_line(status, [], {}))['result'] == ct_cli.EXIT_RESULTS[status]


class TestForPeople:

  @pytest.mark.integration
  def test_no_python_reprs_in_model_list_lineage_or_status(self, bucket):
    for args in (('model-list',), ('lineage',), ('lineage', '--model', '1'), ('status',)):
      done = invoke(*args, bucket=bucket)
      assert done.returncode == 0, done.stderr
      assert not re.search(r"[{\[]'|[{}\[\]]", done.stdout), (args, done.stdout)
      assert 'None' not in done.stdout and 'True' not in done.stdout, (args, done.stdout)

  @pytest.mark.integration
  def test_model_list_and_lineage_read_as_sentences(self, bucket):
    listed = invoke('model-list', bucket=bucket).stdout
    assert 'aliases: production v2, candidate v2' in listed
    assert 'candidate v1 -> v2, production v1 -> v2' in listed
    shown = invoke('lineage', bucket=bucket).stdout
    assert 'auc 0.9177' in shown and 'train.classifier logistic' in shown
    assert 'policy.retrain every_span' in shown

  def test_numbers_and_counts_for_people(self):
    assert console.counts({'eval': 401, 'train': 1596}, 'rows') == '1,596 train + 401 eval rows'
    assert console.number(ctdata.AUC[1]) == '0.9077'
    assert console.number({'b': None, 'a': True}) == 'b n/a, a yes'
    assert console.fields({'t': {'C': 1.0, 'k': ['x', 'y']}, 'w': 2}) == [
        ('t.C', '1.0000'), ('t.k', 'x, y'), ('w', '2')]
    assert registry.describe_moves({'production': {'from': None, 'to': 3}}) == 'production - -> v3'


FRESH = textwrap.dedent('''
    import runpy, sys
    sys.argv = {argv!r}
    try:
        {call}
    except SystemExit as stop:
        assert not stop.code, stop.code
    print(sorted(m for m in {heavy!r} if m in sys.modules))
''')


def imported_heavy(call: str, argv, bucket: pathlib.Path) -> list:
  """The heavy packages a fresh interpreter has imported after ``call`` (stdout's last line)."""
  done = subprocess.run([sys.executable, '-c', FRESH.format(argv=list(argv), call=call,
                                                            heavy=HEAVY)],
                        cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO),
                                           BEAM_PIPELINES_BUCKET=str(bucket)),
                        capture_output=True, text=True, timeout=120)
  assert done.returncode == 0, done.stderr
  return json.loads(done.stdout.splitlines()[-1].replace("'", '"'))


@pytest.mark.integration
class TestNoHeavyImports:

  @pytest.mark.parametrize('args', [('status',), ('status', '--json'), ('model-list',),
                                    ('model-list', '--json'), ('lineage',), ('lineage', '--json')])
  def test_read_only_tasks_on_a_local_bucket(self, bucket, args):
    assert imported_heavy("runpy.run_module('invoke', run_name='__main__')",
                          ['invoke', *args], bucket) == []

  def test_ct_help(self, bucket):
    assert imported_heavy("runpy.run_module('beam_pipelines.ct', run_name='__main__')",
                          ['ct', '--help'], bucket) == []

  def test_ct_help_prints_the_flags(self):
    done = subprocess.run([sys.executable, '-m', 'beam_pipelines.ct', '--help'], cwd=REPO,
                          env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and '--json' in done.stdout and 'exit status' in done.stdout


@pytest.mark.integration
class TestTaskHelp:

  @pytest.mark.parametrize('name', sorted(Collection.from_module(tasks).task_names))
  def test_help_prints_help_and_does_nothing(self, name, tmp_path):
    done = invoke(name, '--help', bucket=tmp_path / 'bucket')
    assert done.returncode == 0, done.stdout + done.stderr
    assert 'Usage' in done.stdout and 'REFUSED' not in done.stdout + done.stderr
    assert list(tmp_path.iterdir()) == []

  def test_help_given_where_a_value_is_expected(self, tmp_path):
    for args in (('run', '--help'), ('model-promote', '--version', '--help'),
                 ('lineage', '--model', '-h')):
      done = invoke(*args, bucket=tmp_path / 'bucket')
      assert done.returncode == 0 and 'Usage' in done.stdout, (args, done.stderr)
    assert list(tmp_path.iterdir()) == []

  def test_model_promote_without_a_version_is_refused(self, tmp_path):
    done = invoke('model-promote', bucket=tmp_path / 'bucket')
    assert done.returncode == 2 and '--version must be a registered version number' in done.stderr


class TestSeveralPipelines:

  def test_choose_pipeline(self):
    assert choose_pipeline(None, ['taxi']) == 'taxi'
    assert choose_pipeline('b', ['a', 'b']) == 'b'
    with pytest.raises(DefinitionError, match=r'2 pipelines are declared \(a, taxi\): say which '
                                              r'with --pipeline NAME'):
      choose_pipeline(None, ['a', 'taxi'])
    with pytest.raises(DefinitionError, match='no pipeline is declared'):
      choose_pipeline(None, [])

  @pytest.mark.integration
  def test_a_model_task_or_ct_without_pipeline_lists_the_choices(self, bucket, tmp_path):
    project = tmp_path / 'project'
    snapshot(REPO, project)
    pipelines = project / 'beam_pipelines' / 'pipelines'
    shutil.copytree(pipelines / 'taxi', pipelines / 'rides')
    for task in ('model-list', 'model-rollback', 'lineage'):
      done = invoke(task, bucket=bucket, cwd=project)
      assert done.returncode == 2, done.stdout + done.stderr
      assert done.stderr.strip().splitlines() == [
          '[beam-pipelines] REFUSED: 2 pipelines are declared (rides, taxi): say which with '
          '--pipeline NAME']
    assert 'production v2' in invoke('model-list', '--pipeline', 'taxi', bucket=bucket,
                                     cwd=project).stdout
    assert set(as_json(invoke('status', '--json', bucket=bucket, cwd=project))['models']) == {
        'rides', 'taxi'}
    done = subprocess.run([sys.executable, '-m', 'beam_pipelines.ct', '--json', '--bucket',
                           str(tmp_path / 'other')], cwd=project,
                          env=dict(os.environ, PYTHONPATH=str(project)), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 2
    assert 'say which with --pipeline NAME' in json.loads(done.stdout)['error']
    assert registry.Registry(str(bucket / 'prod' / 'registry' / 'taxi')).aliases()[
        'production'] == 2
