"""A small seeded synthetic taxi dataset with a learnable label, written as feature Parquet shards.

Columns and types follow ``beam_pipelines/data/taxi_spec.yaml`` and the features contract in
``beam_pipelines.ml.artifacts``: numeric float64, categorical string, label int64, key and
timestamp strings; a few missing values in each feature column.
"""

from __future__ import annotations

import pathlib
from typing import Callable, Dict, Optional

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

PAYMENT_TYPES = ['Credit Card', 'Cash', 'Mobile', 'No Charge']
COMPANIES = ['Flash Cab', 'Taxi Affiliation', 'Sun Taxi', 'City Service']
NUMERIC = ['fare', 'trip_miles', 'trip_seconds', 'trip_start_hour', 'trip_start_day_of_week']
CATEGORICAL = ['payment_type', 'company']
SCHEMA = pa.schema(
    [('trip_id', pa.string()), ('trip_start_timestamp', pa.string())]
    + [(c, pa.float64()) for c in NUMERIC] + [(c, pa.string()) for c in CATEGORICAL]
    + [('big_tip', pa.int64())])


def taxi_frame(rows: int, seed: int, id_offset: int = 0) -> pd.DataFrame:
  """Trips whose big_tip depends mostly on payment type, fare and hour (AUC well above 0.5)."""
  rng = np.random.default_rng(seed)
  payment = rng.choice(PAYMENT_TYPES, rows, p=[0.5, 0.35, 0.1, 0.05])
  company = rng.choice(COMPANIES, rows)
  miles = rng.gamma(2.0, 2.0, rows)
  fare = 3.25 + 2.25 * miles + rng.normal(0, 1.5, rows)
  hour = rng.integers(0, 24, rows).astype(float)
  logit = (2.2 * (payment == 'Credit Card') - 2.0 * (payment == 'Cash') + 0.8 * (payment == 'Mobile')
           + 0.12 * (fare - 12) + 0.6 * np.sin(hour / 24 * 2 * np.pi) - 0.3)
  label = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype('int64')
  frame = pd.DataFrame({
      'trip_id': [f'trip-{id_offset + i:07d}' for i in range(rows)],
      'trip_start_timestamp': pd.date_range('2026-01-01', periods=rows, freq='37s').strftime(
          '%Y-%m-%d %H:%M:%S'),
      'fare': fare.round(2), 'trip_miles': miles.round(2),
      'trip_seconds': (miles * 180 + rng.normal(0, 60, rows)).round(),
      'trip_start_hour': hour, 'trip_start_day_of_week': rng.integers(1, 8, rows).astype(float),
      'payment_type': payment.astype(object), 'company': company.astype(object),
      'big_tip': label})
  for column in NUMERIC + CATEGORICAL:  # ~1% missing values
    frame.loc[rng.random(rows) < 0.01, column] = None
  return frame


def write_shards(frame: pd.DataFrame, directory: pathlib.Path, shards: int) -> None:
  directory.mkdir(parents=True, exist_ok=True)
  for index, part in enumerate(np.array_split(np.arange(len(frame)), shards)):
    table = pa.Table.from_pandas(frame.iloc[part], schema=SCHEMA, preserve_index=False)
    pq.write_table(table, directory / f'part-{index:05d}-of-{shards:05d}.parquet')


def write_features(root: pathlib.Path, train_rows: int = 3000, eval_rows: int = 1500, seed: int = 7,
                   shuffle_train_labels: bool = False, eval_seed: Optional[int] = None) -> pathlib.Path:
  """Writes root/train (2 shards) and root/eval (2 shards); returns root."""
  train = taxi_frame(train_rows, seed)
  if shuffle_train_labels:
    train['big_tip'] = np.random.default_rng(seed + 1).permutation(train['big_tip'].to_numpy())
  write_shards(train, root / 'train', 2)
  write_shards(taxi_frame(eval_rows, eval_seed if eval_seed is not None else seed + 100,
                          id_offset=train_rows), root / 'eval', 2)
  return root


# Session-wide fixtures for the ML tests. Test modules import them (``from mldata import ...``);
# the results are cached here, so the data is written and each model trained once per session
# whichever module asks first (a nested conftest.py would shadow tests/conftest.py's helpers).
_CACHE: Dict[str, pathlib.Path] = {}


def _cached(name: str, tmp_path_factory, make: Callable[[pathlib.Path], None]) -> pathlib.Path:
  if name not in _CACHE:
    path = tmp_path_factory.mktemp(name)
    make(path)
    _CACHE[name] = path
  return _CACHE[name]


def _train(features: pathlib.Path, output: pathlib.Path, *extra: str) -> None:
  from beam_pipelines import train
  train.run(['--features', str(features), '--output', str(output), *extra])


def _features(factory) -> pathlib.Path:
  return _cached('features', factory, write_features)


def _shuffled(factory) -> pathlib.Path:
  return _cached('shuffled', factory, lambda root: write_features(
      root, shuffle_train_labels=True, eval_seed=107))


# The fixtures take only tmp_path_factory, so a test module needs to import just those it uses.
@pytest.fixture(scope='session')
def features_dir(tmp_path_factory) -> pathlib.Path:
  """Good features: the label is learnable from payment type, fare and hour."""
  return _features(tmp_path_factory)


@pytest.fixture(scope='session')
def shuffled_features_dir(tmp_path_factory) -> pathlib.Path:
  """Train labels shuffled (nothing to learn); the eval split equals ``features_dir``'s."""
  return _shuffled(tmp_path_factory)


@pytest.fixture(scope='session')
def good_model_dir(tmp_path_factory) -> pathlib.Path:
  """A logistic regression trained on ``features_dir`` (AUC about 0.87 on its eval split)."""
  features = _features(tmp_path_factory)
  return _cached('good_model', tmp_path_factory, lambda out: _train(features, out))


@pytest.fixture(scope='session')
def bad_model_dir(tmp_path_factory) -> pathlib.Path:
  """The same model trained on shuffled labels (AUC about 0.5)."""
  features = _shuffled(tmp_path_factory)
  return _cached('bad_model', tmp_path_factory, lambda out: _train(features, out))
