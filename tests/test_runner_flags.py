"""Runner flags reach what runs on a runner: `ct` hands Beam options to its pipeline steps, and
`train` (scikit-learn in this process) refuses Dataflow flags instead of ignoring them."""

from __future__ import annotations

import pytest

from beam_pipelines import train
from beam_pipelines.ct import cli

DATAFLOW = ['--runner', 'DataflowRunner', '--project', 'my-project', '--region', 'us-central1',
            '--temp_location', 'gs://my-bucket-123/tmp']


def test_train_refuses_dataflow_flags_before_doing_anything(tmp_path):
  with pytest.raises(train.TrainingRefused, match='does not run on Dataflow'):
    train.run(['--features', str(tmp_path / 'none'), '--output', str(tmp_path / 'm'), *DATAFLOW])
  assert not (tmp_path / 'm').exists()


def test_train_refuses_other_unknown_flags(tmp_path):
  with pytest.raises(train.TrainingRefused, match='unknown flags --direct_num_workers 2'):
    train.run(['--features', str(tmp_path), '--output', str(tmp_path / 'm'),
               '--direct_num_workers', '2'])


def test_train_main_says_so_in_one_line(tmp_path, capsys):
  # Without the gs:// temp location: main refuses an unreachable bucket before anything else.
  assert train.main(['--features', str(tmp_path), '--output', str(tmp_path / 'm'),
                     *DATAFLOW[:-2]]) == 2
  assert 'train: error: train fits scikit-learn in this process' in capsys.readouterr().err


def test_ct_accepts_beam_options():
  args = cli.parse_args(['--force', *DATAFLOW, '--max_num_workers', '3'])
  assert args.force and args.beam_args == (*DATAFLOW, '--max_num_workers', '3')
  with pytest.raises(cli.UsageError, match="unexpected argument 'stray'"):
    cli.parse_args(['stray'])


def test_ct_hands_its_beam_options_to_the_pipeline_steps(tmp_path):
  """An unknown runner, given to `ct --check`, is what the features step's pipeline refuses."""
  with pytest.raises(ValueError, match='NoSuchRunner'):
    cli.run(['--check', '--pipeline', 'taxi', '--output', str(tmp_path / 'out'),
             '--runner', 'NoSuchRunner'])
