"""End to end from the command line: features -> train -> evaluate -> predict, each as
``python -m beam_pipelines.<name>`` in its own process, on the bundled sample and on a user CSV."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from beam_pipelines import taxi_data
from beam_pipelines.ml import artifacts

pytestmark = [pytest.mark.integration, pytest.mark.slow]


EXIT_STATUSES = {}  # (module, output) -> exit status, for the tests of the exit statuses


def cli(module, *args, allowed=(0,)):
  """Runs a pipeline CLI; returns its stderr (progress lines). Fails the test on an exit status
  outside ``allowed``."""
  done = subprocess.run([sys.executable, '-m', f'beam_pipelines.{module}', *map(str, args)],
                        capture_output=True, text=True, timeout=300)
  assert done.returncode in allowed, f'{module} exited {done.returncode}:\n{done.stderr[-3000:]}'
  EXIT_STATUSES[module, str(args[args.index('--output') + 1])] = done.returncode
  return done.stderr


@pytest.fixture(scope='module')
def sample_run(tmp_path_factory):
  """The whole chain once on the bundled 3,000-row taxi sample; logs kept for several tests."""
  root = tmp_path_factory.mktemp('sample')
  logs = {'features': cli('features', '--output', root / 'features')}
  logs['train'] = cli('train', '--features', root / 'features', '--output', root / 'model')
  logs['train_gbt'] = cli('train', '--features', root / 'features', '--output', root / 'gbt',
                          '--classifier', 'gbt', '--max_iter', 50)
  logs['evaluate_first'] = cli('evaluate', '--features', root / 'features', '--model', root / 'model',
                               '--output', root / 'eval_first')
  logs['evaluate'] = cli('evaluate', '--features', root / 'features', '--model', root / 'gbt',
                         '--baseline_model', root / 'model', '--output', root / 'eval',
                         allowed=(0, 3))  # 3: NOT_BLESSED
  logs['predict'] = cli('predict', '--input', taxi_data.sample_path(), '--model', root / 'model',
                        '--output', root / 'predictions')
  return root, logs


def test_train_prints_progress_and_a_summary(sample_run):
  root, logs = sample_run
  assert 'train: reading the train split' in logs['train']
  assert 'train: fitting' in logs['train']
  assert 'train: done:' in logs['train'] and str(root / 'model' / artifacts.MODEL_FILE) in logs['train']


def test_first_model_on_the_sample_is_rubber_stamped(sample_run):
  root, logs = sample_run
  assert 'rubber-stamped' in logs['evaluate_first']
  assert (root / 'eval_first' / artifacts.BLESSED).exists()
  auc = json.loads((root / 'eval_first' / artifacts.METRICS_FILE).read_text())[
      'models']['candidate']['overall']['auc']
  assert auc > 0.75


def test_candidate_against_baseline_gets_a_verdict_by_the_rule(sample_run):
  root, logs = sample_run
  record = json.loads((root / 'eval' / artifacts.BLESSING_FILE).read_text())
  metrics = json.loads((root / 'eval' / artifacts.METRICS_FILE).read_text())['models']
  diff = metrics['candidate']['overall']['auc'] - metrics['baseline']['overall']['auc']
  assert record['status'] == (artifacts.BLESSED if diff >= -1e-10 else artifacts.NOT_BLESSED)
  assert (root / 'eval' / record['status']).exists()
  assert f'evaluate: done: {record["status"]}' in logs['evaluate']
  assert 'evaluate: candidate: accuracy' in logs['evaluate']
  expected = 0 if record['status'] == artifacts.BLESSED else 3
  assert EXIT_STATUSES['evaluate', str(root / 'eval')] == expected


def test_predict_on_the_sample_reconciles_with_its_malformed_rows(sample_run):
  root, logs = sample_run
  summary = json.loads((root / 'predictions' / artifacts.SUMMARY_FILE).read_text())
  dead = [json.loads(line) for path in (root / 'predictions' / artifacts.DEAD_LETTER_DIR).iterdir()
          for line in path.read_text().splitlines()]
  # Inference needs no label: of the sample's malformed rows, the bad-label one is predicted.
  assert summary['rows_dead_lettered'] == len(dead) == taxi_data.SAMPLE_MALFORMED - 1
  assert not [d for d in dead if 'label' in d['reason']]
  assert summary['rows_read'] == summary['predictions_written'] + summary['rows_dead_lettered']
  assert 'predict: done:' in logs['predict'] and 'predict: outputs:' in logs['predict']


def test_a_user_csv_and_spec_run_through_the_whole_chain(tmp_path):
  rng = np.random.default_rng(5)
  rows = 1200
  tenure = rng.integers(1, 72, rows)
  contract = rng.choice(['month-to-month', 'one year', 'two year'], rows)
  charges = rng.normal(70, 20, rows).round(2)
  logit = -0.05 * tenure + 1.5 * (contract == 'month-to-month') + 0.01 * (charges - 70)
  churned = np.where(rng.random(rows) < 1 / (1 + np.exp(-logit)), 'yes', 'no')
  frame = pd.DataFrame({'customer': [f'c{i}' for i in range(rows)], 'tenure': tenure,
                        'monthly_charges': charges, 'contract': contract, 'churned': churned})
  frame.to_csv(tmp_path / 'churn.csv', index=False)
  (tmp_path / 'spec.yaml').write_text(
      'name: churn\nlabel: churned\nkey: customer\ncategorical: [contract]\nnumeric: all\n')
  spec = tmp_path / 'spec.yaml'
  cli('features', '--input', tmp_path / 'churn.csv', '--spec', spec, '--output', tmp_path / 'f')
  log = cli('train', '--features', tmp_path / 'f', '--output', tmp_path / 'm')
  assert 'using the dataset spec recorded in' in log  # --spec is given once, to features
  log = cli('evaluate', '--features', tmp_path / 'f', '--model', tmp_path / 'm',
            '--output', tmp_path / 'e')
  assert 'sliced by contract' in log
  slices = json.loads((tmp_path / 'e' / artifacts.METRICS_FILE).read_text())[
      'models']['candidate']['slices']
  assert set(slices) == {'month-to-month', 'one year', 'two year'}
  frame.drop(columns='churned').head(50).to_csv(tmp_path / 'new.csv', index=False)
  cli('predict', '--input', tmp_path / 'new.csv', '--model', tmp_path / 'm',
      '--output', tmp_path / 'p')
  summary = json.loads((tmp_path / 'p' / artifacts.SUMMARY_FILE).read_text())
  assert summary['predictions_written'] == 50 and summary['reconciled']


@pytest.mark.parametrize('module, flag', [('train', '--classifier'), ('evaluate', '--baseline_model'),
                                          ('predict', '--model')])
def test_help_answers_without_importing_beam(module, flag):
  code = ('import runpy, sys\n'
          f'sys.argv = ["{module}", "--help"]\n'
          'try:\n'
          f'  runpy.run_module("beam_pipelines.{module}", run_name="__main__")\n'
          'except SystemExit:\n'
          '  pass\n'
          'assert "apache_beam" not in sys.modules and "sklearn" not in sys.modules\n')
  out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
  assert flag in out.stdout
