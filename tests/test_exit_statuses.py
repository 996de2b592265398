"""Every command line follows the project's one exit-status table (README, "Exit statuses"):

    0 done   1 a data verdict that stops   2 usage error, refusal or error   3 NOT_BLESSED

Each CLI's ``main`` is driven into each kind of failure that applies to it, on real data and
real models; a refusal is one line and no traceback, an unexpected error names its type and a
log that holds the traceback. The ``python -m`` wiring is checked once per module.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

from beam_pipelines import (
  evaluate,
  features,
  predict,
  runtime,
  taxi_data,
  train,
  validate,
  wordcount,
)
from beam_pipelines.ct import cli as ct_cli
from beam_pipelines.ml import artifacts

import mldata

pytestmark = pytest.mark.slow  # trains models (session fixtures) and runs TFDV
features_dir, good_model_dir = mldata.features_dir, mldata.good_model_dir  # session fixtures
bad_model_dir = mldata.bad_model_dir

USAGE, REFUSAL, STOPPED, NOT_BLESSED, UNEXPECTED, DONE = (
    'usage', 'refusal', 'stopped', 'not_blessed', 'unexpected', 'done')
EXPECTED = {DONE: 0, STOPPED: 1, USAGE: 2, REFUSAL: 2, UNEXPECTED: 2, NOT_BLESSED: 3}


def test_the_table_is_the_runtimes():
  assert (runtime.EXIT_OK, runtime.EXIT_STOPPED, runtime.EXIT_ERROR,
          runtime.EXIT_NOT_BLESSED) == (0, 1, 2, 3)
  assert (ct_cli.EXIT_OK, ct_cli.EXIT_STOPPED, ct_cli.EXIT_NOT_BLESSED) == (0, 1, 3)


def corrupt_features(root: pathlib.Path) -> pathlib.Path:
  """A features directory whose summary is fine and whose Parquet shards are not Parquet."""
  source = root / 'source'
  mldata.write_features(source, train_rows=60, eval_rows=30)
  corrupt = root / 'corrupt'
  for split in artifacts.SPLITS:
    (corrupt / split).mkdir(parents=True)
    (corrupt / split / f'part-00000-of-00001{artifacts.FEATURES_SUFFIX}').write_bytes(b'not parquet')
  summary = {'spec': {'label': 'big_tip', 'key': 'trip_id', 'numeric': ['fare'],
                      'categorical': ['payment_type']},
             'rows_written': {'train': 60, 'eval': 30}, 'rows_dead_lettered': 0,
             'missing_columns': [], 'extra_columns': []}
  (corrupt / artifacts.SUMMARY_FILE).write_text(json.dumps(summary))
  return corrupt


@pytest.fixture(scope='module')
def data(tmp_path_factory, features_dir, good_model_dir, bad_model_dir):
  root = tmp_path_factory.mktemp('exit_statuses')
  (root / 'words.txt').write_text('one two two\n')
  (root / 'bad_spec.yaml').write_text('label: [not, a, name]\n')
  anomalous = root / 'anomalous.json'
  anomalous.write_text(json.dumps({'status': 'anomalous', 'message': 'fare is missing'}))
  dropped = root / 'dropped'
  taxi_data.run(['--output', str(dropped), '--rows', '400', '--days', '1',
                 '--drop_column', 'company'])
  spans = sorted(p for p in dropped.iterdir() if p.is_dir())
  features.run(['--input', str(spans[0] / '*.csv'), '--output', str(root / 'dropped_features')])
  return {'root': root, 'features': features_dir, 'good': good_model_dir, 'bad': bad_model_dir,
          'anomalous_verdict': anomalous, 'dropped_features': root / 'dropped_features',
          'corrupt': corrupt_features(root)}


def cases(d):
  """(CLI main, kind of failure, argv) for every CLI and every kind that applies to it."""
  r, out = d['root'], lambda name: str(d['root'] / 'out' / name)
  missing = str(r / 'nothing-here' / '*.csv')
  return [
      (wordcount.main, DONE, ['--input', str(r / 'words.txt'), '--output', out('wc/counts')]),
      (wordcount.main, USAGE, ['--num_shard', '2']),
      (wordcount.main, REFUSAL, ['--input', missing, '--output', out('wc2/counts')]),
      (features.main, USAGE, ['--no_such_flag', '1']),
      (features.main, REFUSAL, ['--input', missing, '--output', out('f')]),
      (features.main, REFUSAL, ['--spec', str(r / 'bad_spec.yaml'), '--output', out('f2')]),
      (validate.main, USAGE, ['--featurez', 'x']),
      (validate.main, REFUSAL, ['--features', str(r), '--output', out('v')]),
      (validate.main, STOPPED, ['--features', str(d['dropped_features']), '--output', out('v2')]),
      (validate.main, UNEXPECTED, ['--features', str(d['corrupt']), '--output', out('v3')]),
      (train.main, USAGE, ['--features', str(d['features']), '--output', out('t'),
                           '--classifier', 'forest']),
      (train.main, REFUSAL, ['--features', str(d['features']), '--output', out('t2'),
                             '--verdict', str(d['anomalous_verdict'])]),
      (train.main, UNEXPECTED, ['--features', str(d['corrupt']), '--output', out('t3')]),
      (evaluate.main, USAGE, ['--model', str(d['good']), '--output', out('e'), '--slice', 'x']),
      (evaluate.main, REFUSAL, ['--features', str(d['features']), '--model', str(r / 'no-model'),
                                '--output', out('e2')]),
      (evaluate.main, DONE, ['--features', str(d['features']), '--model', str(d['good']),
                             '--baseline_model', str(d['bad']), '--output', out('e3')]),
      (evaluate.main, NOT_BLESSED, ['--features', str(d['features']), '--model', str(d['bad']),
                                    '--baseline_model', str(d['good']), '--output', out('e4')]),
      (predict.main, USAGE, ['--input', missing, '--model', str(d['good'])]),
      (predict.main, REFUSAL, ['--input', str(taxi_data.sample_path()), '--model', str(d['good']),
                               '--model_sha256', 'f' * 64, '--output', out('p')]),
      (taxi_data.main, REFUSAL, ['--output', out('td'), '--drop_column', 'no_such_column']),
      (ct_cli.main, USAGE, ['--no_such_flag']),
      (ct_cli.main, REFUSAL, ['--bucket', str(r / 'empty-bucket'), '--span', missing]),
  ]


def run_main(main, argv):
  """The exit status of ``main(argv)``, as ``sys.exit(main())`` would give it."""
  try:
    return main(argv)
  except SystemExit as exit_info:  # argparse's usage errors
    return exit_info.code


def test_every_cli_exits_by_the_table_in_every_kind_of_failure(data, capsys, tmp_path,
                                                              monkeypatch):
  monkeypatch.setenv(runtime.LOG_DIR_VARIABLE, str(tmp_path / 'logs'))
  wrong = []
  for main, kind, argv in cases(data):
    status = run_main(main, argv)
    err = capsys.readouterr().err
    name = 'ct' if main is ct_cli.main else main.__module__.rsplit('.', 1)[-1]
    if status != EXPECTED[kind]:
      wrong.append(f'{main.__module__} {kind}: exit {status}, expected {EXPECTED[kind]}: '
                   f'{err[-600:]}')
      continue
    assert 'Traceback' not in err, (main.__module__, kind, err)
    if kind == REFUSAL:
      assert re.search(rf'^\[beam-pipelines\] {name}: error: ', err, re.M), (name, err)
    if kind == UNEXPECTED:
      found = re.search(rf'{name}: unexpected error (\w+): .* \(traceback: (\S+)\)', err)
      assert found, (name, err)
      assert 'Traceback' in pathlib.Path(found.group(2)).read_text()
    if kind == USAGE:
      assert 'usage:' in err or 'error:' in err, (name, err)
  assert not wrong, '\n'.join(wrong)


@pytest.mark.parametrize('module, argv, status', [
    ('wordcount', ['--num_shard', '2'], 2),
    ('taxi_data', ['--output', '{tmp}/td', '--drop_column', 'no_such_column'], 2),
    ('ct', ['--no_such_flag'], 2),
    ('submission', ['--pipeline', '../escape'], 2),  # the DAGs' entry point: refused
    ('submission', ['--pipeline', 'wordcount', '--input', '{tmp}/none*.txt',
                    '--output', '{tmp}/counts'], 2),  # the pipeline's own main decides
])
def test_python_m_exits_with_mains_status(module, argv, status, tmp_path):
  done = subprocess.run([sys.executable, '-m', f'beam_pipelines.{module}',
                         *(a.format(tmp=tmp_path) for a in argv)],
                        capture_output=True, text=True, timeout=300)
  assert done.returncode == status, done.stderr[-2000:]
  assert 'Traceback' not in done.stderr


@pytest.mark.parametrize('task, status', [
    (['status'], 0),
    (['lineage', '--model', '7'], 2),  # a refusal: no such version
    (['model-promote'], 2),  # a refusal: no version given
    (['deploy', '--build-id', '../escape'], 2),  # a refusal: a hostile build id
])
def test_invoke_tasks_exit_by_the_table(task, status, tmp_path):
  done = subprocess.run([sys.executable, '-m', 'invoke', *task, '--bucket',
                         str(tmp_path / 'bucket')], capture_output=True, text=True,
                        cwd=pathlib.Path(__file__).resolve().parent.parent, timeout=300)
  assert done.returncode == status, done.stdout + done.stderr
  assert 'Traceback' not in done.stderr
  if status == 2:
    assert 'REFUSED' in done.stderr, done.stderr


def test_ct_status_comes_from_its_result_line_and_a_crash_is_an_error():
  line = ct_cli.json_line(1, [], {'mode': 'run'})
  assert ct_cli.read_result(1, ['progress', line]) == (1, None)
  assert ct_cli.read_result(0, [ct_cli.json_line(0, [], {})]) == (0, None)
  refused = ct_cli.json_line(2, [], {}, 'span x: no CSV file matches x/*.csv')
  assert ct_cli.read_result(2, [refused]) == (2, 'span x: no CSV file matches x/*.csv')
  crash = ['Traceback (most recent call last):', '  File "x.py", line 1',
           'pickle.UnpicklingError: invalid load key, \'x\'.']
  status, error = ct_cli.read_result(1, crash)  # a crash outside ct's main: Python's status 1
  assert status == 2 and "UnpicklingError: invalid load key, 'x'." in error
  assert 'exit status 1 and no result line' in error
  assert ct_cli.read_result(-9, ['[beam-pipelines] ct: step features'])[0] == 2  # killed
  assert ct_cli.read_result(3, [line])[0] == 2  # a line that says another status: not trusted


CRASH_HOOK = """
import pickle
from beam_pipelines.ct import lineage

def crash(*args, **kwargs):
  raise pickle.UnpicklingError("invalid load key, 'x'.")

lineage.file_entries = crash
"""


def test_invoke_ct_from_the_source_tree_exits_as_python_m_ct(tmp_path):
  """A crash inside ct (an unpickling error, put in by a sitecustomize hook): exit 2 with its type
  and message, the same through `invoke ct --source` as `python -m beam_pipelines.ct`."""
  repo = pathlib.Path(__file__).resolve().parent.parent
  (tmp_path / 'hook').mkdir()
  (tmp_path / 'hook' / 'sitecustomize.py').write_text(CRASH_HOOK)
  env = dict(os.environ, PYTHONPATH=f'{tmp_path / "hook"}{os.pathsep}{repo}')
  bucket = tmp_path / 'bucket'
  landed = bucket / 'prod' / 'inputs' / 'ct' / 'taxi' / 'span-2026-11-01'
  landed.mkdir(parents=True)
  (landed / 'data.csv').write_text('trip_id\n1\n')
  flags = ['--pipeline', 'taxi', '--bucket', str(bucket)]
  direct = subprocess.run([sys.executable, '-m', 'beam_pipelines.ct', *flags], env=env,
                          capture_output=True, text=True, timeout=300)
  invoked = subprocess.run([sys.executable, '-m', 'invoke', 'ct', '--source', *flags], env=env,
                           capture_output=True, text=True, cwd=repo, timeout=300)
  assert direct.returncode == invoked.returncode == 2, direct.stderr + invoked.stderr
  for done in (direct, invoked):
    assert "unexpected error UnpicklingError: invalid load key, 'x'." in done.stderr, done.stderr
    assert 'Traceback' not in done.stderr and 'ct: done' not in done.stderr
