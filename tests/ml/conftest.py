"""Shared ML fixtures: one synthetic feature set and models trained once per session."""

from __future__ import annotations

import pathlib

import mldata
import pytest

from beam_pipelines import train


@pytest.fixture(scope='session')
def features_dir(tmp_path_factory) -> pathlib.Path:
  """Good features: label learnable from payment type, fare and hour."""
  return mldata.write_features(tmp_path_factory.mktemp('features'))


@pytest.fixture(scope='session')
def shuffled_features_dir(tmp_path_factory, features_dir) -> pathlib.Path:
  """Same eval split as ``features_dir``; train labels shuffled (nothing to learn)."""
  return mldata.write_features(tmp_path_factory.mktemp('shuffled'), shuffle_train_labels=True,
                               eval_seed=107)


@pytest.fixture(scope='session')
def good_model_dir(tmp_path_factory, features_dir) -> pathlib.Path:
  output = tmp_path_factory.mktemp('good_model')
  train.run(['--features', str(features_dir), '--output', str(output)])
  return output


@pytest.fixture(scope='session')
def bad_model_dir(tmp_path_factory, shuffled_features_dir) -> pathlib.Path:
  output = tmp_path_factory.mktemp('bad_model')
  train.run(['--features', str(shuffled_features_dir), '--output', str(output)])
  return output
