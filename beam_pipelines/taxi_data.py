"""Writes synthetic, deterministic (seeded) taxi trips as daily CSV spans, with drift/anomaly knobs.

Columns match ``pipelines/taxi/spec.yaml``: trip_id, trip_start_timestamp, fare, trip_miles,
trip_seconds, trip_start_hour, trip_start_day_of_week (1 = Monday), payment_type, company,
big_tip (1 when the tip is more than 20% of the fare). The label is learnable: card and mobile
payments tip big far more often than cash, late-evening and longer trips a little more.

    python -m beam_pipelines.taxi_data --output DIR [--rows 10000] [--days 1] [--start 2026-11-01]
        [--seed 0] [--shards 1] [--missing 0.01]
        [--payment_shift 0.3] [--scale fare=1.5]            # drift
        [--drop_column company] [--add_column tolls] [--unknown_category 0.05]  # anomalies
        [--long_tail 20]                                   # rare company names (< 1% each)
        [--malformed 10]                                   # rows the CSV reader must dead-letter

Layout: ``DIR/span-YYYY-MM-DD/data-SSSSS-of-NNNNN.csv`` (header row in every shard). The same
seed, date and knobs give byte-identical files. ``sample_path()`` is the bundled 3,000-row span.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import io
import os
import sys
from typing import Dict, List, Optional, Sequence

from beam_pipelines import runtime
from beam_pipelines.ml import spec as spec_lib
from beam_pipelines.store import bucket
from beam_pipelines.store.console import progress
from beam_pipelines.store.errors import Refusal


class KnobError(Refusal, ValueError):
  """A generator knob that does not fit the data (an unknown column, too many rare names)."""

COLUMNS = ('trip_id', 'trip_start_timestamp', 'fare', 'trip_miles', 'trip_seconds',
           'trip_start_hour', 'trip_start_day_of_week', 'payment_type', 'company', 'big_tip')
NUMERIC = ('fare', 'trip_miles', 'trip_seconds', 'trip_start_hour', 'trip_start_day_of_week')
PAYMENT_TYPES = ('Credit Card', 'Cash', 'Mobile', 'Prcard', 'No Charge', 'Dispute')
PAYMENT_MIX = (0.45, 0.38, 0.08, 0.05, 0.03, 0.01)
PAYMENT_EFFECT = (2.4, -3.5, 1.8, 1.0, -2.0, -2.0)  # log-odds of a big tip
COMPANIES = ('Flash Cab', 'Taxi Affiliation Services, LLC', 'Sun Taxi', 'City Service',
             'Chicago Carriage Cab Corp', 'Medallion Leasin', 'Star North Management LLC',
             'Globe Taxi', 'Blue Ribbon Taxi Association Inc.', 'Choice Taxi Association',
             'Yellow Cab', '5 Star Taxi')
UNKNOWN_COMPANY = 'Zebra Cab Co (new)'
RARE_COMPANY = 'Rare Cab {:03d}'  # the long tail's names
LONG_TAIL_HEAD = 0.005  # share of rows of the most frequent rare name; name i gets HEAD / i
SAMPLE_DATE = datetime.date(2026, 11, 1)
SAMPLE_ROWS = 3000
SAMPLE_MALFORMED = 5
MALFORMED_KINDS = ('too_few_fields', 'too_many_fields', 'bad_number', 'bad_label',
                   'quoted_newline')


@dataclasses.dataclass(frozen=True)
class Knobs:
  """What to inject into a span besides clean trips."""

  missing: float = 0.01  # fraction of empty trip_seconds and company cells
  payment_shift: float = 0.0  # fraction of card payments moved to cash (categorical drift)
  scale: Dict[str, float] = dataclasses.field(default_factory=dict)  # numeric drift
  drop_column: Optional[str] = None
  add_column: Optional[str] = None
  unknown_category: float = 0.0  # fraction of rows with a company never seen before
  malformed: int = 0
  long_tail: int = 0  # rare company names: name i on max(1, round(rows * 0.005 / i)) rows


def sample_path() -> str:
  """The bundled sample span (3,000 trips, 5 malformed rows): every ML command's default input."""
  return spec_lib.default_sample_path()


def render_sample() -> str:
  """The bundled sample's text, as ``sample_path()`` holds it (a test checks they agree)."""
  return render_span(SAMPLE_ROWS, SAMPLE_DATE, 0, Knobs(malformed=SAMPLE_MALFORMED))[0]


def _frame(rows: int, date: datetime.date, seed: int, knobs: Knobs):
  """Clean trips of one day as a pandas DataFrame (vectorised; 1M rows in about a second)."""
  import numpy as np
  import pandas as pd
  rng = np.random.default_rng([seed, date.toordinal()])
  hour_weight = np.array([3, 2, 1.5, 1, 1, 1.5, 3, 5, 7, 6, 5, 5, 6, 6, 6, 7, 8, 9, 9, 8, 7, 6, 5, 4])
  hour = rng.choice(24, size=rows, p=hour_weight / hour_weight.sum())
  seconds_of_day = hour * 3600 + rng.integers(0, 3600, size=rows)
  stamps = np.datetime64(date.isoformat(), 's') + seconds_of_day.astype('timedelta64[s]')
  miles = np.clip(rng.lognormal(0.8, 0.8, size=rows), 0.1, 60.0)
  seconds = np.maximum(60, miles * rng.normal(240, 40, size=rows) + rng.normal(180, 60, size=rows))
  fare = 3.25 + 2.25 * miles + seconds / 144 + rng.normal(0, 1.0, size=rows)
  mix = np.array(PAYMENT_MIX)
  if knobs.payment_shift:
    moved = mix[0] * knobs.payment_shift
    mix[0] -= moved
    mix[1] += moved
  payment = rng.choice(len(PAYMENT_TYPES), size=rows, p=mix)
  company_weight = 1.0 / np.arange(1, len(COMPANIES) + 1)
  company = rng.choice(len(COMPANIES), size=rows, p=company_weight / company_weight.sum())
  late = ((hour >= 20) | (hour <= 2)).astype(float)
  logit = (-1.0 + np.array(PAYMENT_EFFECT)[payment] + 0.6 * late + 0.05 * (fare - 15)
           + 0.15 * (company % 3 - 1))
  big_tip = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int64)
  frame = pd.DataFrame({
      'trip_id': np.char.add(f'{date:%Y%m%d}-', np.char.zfill(np.arange(rows).astype(str), 7)),
      'trip_start_timestamp': np.datetime_as_string(stamps, unit='s'),
      'fare': np.round(np.maximum(fare, 3.25), 2),
      'trip_miles': np.round(miles, 2),
      'trip_seconds': np.round(seconds).astype(np.int64).astype(float),
      'trip_start_hour': hour,
      'trip_start_day_of_week': np.full(rows, date.isoweekday()),
      'payment_type': np.array(PAYMENT_TYPES, dtype=object)[payment],
      'company': np.array(COMPANIES, dtype=object)[company],
      'big_tip': big_tip,
  }, columns=list(COLUMNS))
  for column, factor in knobs.scale.items():
    if column not in NUMERIC:
      raise KnobError(f'--scale {column}: not a numeric column {list(NUMERIC)}')
    frame[column] = np.round(frame[column] * factor, 2)
  if knobs.missing:
    frame.loc[rng.random(rows) < knobs.missing, 'trip_seconds'] = np.nan
    frame.loc[rng.random(rows) < knobs.missing, 'company'] = None
  if knobs.long_tail:
    _add_long_tail(frame, knobs.long_tail, np.random.default_rng([seed, date.toordinal(), 2]))
  if knobs.unknown_category:
    frame.loc[rng.random(rows) < knobs.unknown_category, 'company'] = UNKNOWN_COMPANY
  if knobs.add_column:
    frame[knobs.add_column] = np.round(rng.random(rows) * 10, 2)
  if knobs.drop_column:
    if knobs.drop_column not in frame.columns:
      raise KnobError(f'--drop_column {knobs.drop_column}: no such column {list(COLUMNS)}')
    frame = frame.drop(columns=[knobs.drop_column])
  return frame


def long_tail_counts(rows: int, names: int) -> List[int]:
  """Rows of each rare name: a Zipf tail, 0.5% of the rows for the first, at least one each."""
  return [max(1, round(rows * LONG_TAIL_HEAD / rank)) for rank in range(1, names + 1)]


def _add_long_tail(frame, names: int, rng) -> None:
  """Gives ``names`` rare company names to disjoint random rows (in place).

  With a 20% eval split, a name on one or two rows often lands in only one of the splits: what a
  real categorical column's long tail does to a schema inferred from the train split.
  """
  counts = long_tail_counts(len(frame), names)
  if sum(counts) > len(frame) // 2:
    raise KnobError(f'--long_tail {names}: {sum(counts)} rows of rare names is more than half '
                     f'of a {len(frame)}-row span')
  chosen = rng.permutation(len(frame))[:sum(counts)]
  names_of_rows = [RARE_COMPANY.format(rank) for rank, count in enumerate(counts, 1)
                   for _ in range(count)]
  frame.loc[frame.index[chosen], 'company'] = names_of_rows


def _malformed_line(kind: str, good_line: str, columns: Sequence[str]) -> str:
  """Turns a rendered good row into one malformed the named way (no trailing newline)."""
  fields = next(csv.reader([good_line]))
  if kind == 'too_few_fields':
    fields = fields[:-1]
  elif kind == 'too_many_fields':
    fields = fields + ['extra']
  elif kind == 'bad_number' and 'fare' in columns:
    fields[columns.index('fare')] = 'twelve dollars'
  elif kind == 'bad_label' and 'big_tip' in columns:
    fields[columns.index('big_tip')] = 'maybe'
  else:  # quoted_newline: a quoted value with a comma and a newline, and one field too many
    fields = fields + ['Broken\nCab, Inc.']
  buffer = io.StringIO()
  csv.writer(buffer, lineterminator='\n').writerow(fields)
  return buffer.getvalue().rstrip('\n')


def render_span(rows: int, date: datetime.date, seed: int = 0, knobs: Knobs = Knobs(),
                shards: int = 1) -> List[str]:
  """The CSV text of each shard of one span; malformed rows replace rows spread over the span."""
  import numpy as np
  frame = _frame(rows, date, seed, knobs)
  columns = list(frame.columns)
  rng = np.random.default_rng([seed, date.toordinal(), 1])
  bad_rows = set(rng.choice(rows, size=min(knobs.malformed, rows), replace=False).tolist())
  bounds = np.linspace(0, rows, shards + 1).astype(int)
  texts = []
  for shard in range(shards):
    start, stop = int(bounds[shard]), int(bounds[shard + 1])
    cuts = sorted(i for i in bad_rows if start <= i < stop)
    buffer = io.StringIO()
    buffer.write(','.join(columns) + '\n')
    position = start
    for cut in cuts + [stop]:
      if cut > position:
        frame.iloc[position:cut].to_csv(buffer, header=False, index=False, lineterminator='\n')
      if cut < stop:
        good = frame.iloc[cut:cut + 1].to_csv(header=False, index=False, lineterminator='\n')
        kind = MALFORMED_KINDS[sorted(bad_rows).index(cut) % len(MALFORMED_KINDS)]
        buffer.write(_malformed_line(kind, good.rstrip('\n'), columns) + '\n')
      position = cut + 1
    texts.append(buffer.getvalue())
  return texts


def span_dir(output: str, date: datetime.date) -> str:
  return os.path.join(output, f'span-{date.isoformat()}')


def write_span(output: str, date: datetime.date, rows: int, seed: int = 0, knobs: Knobs = Knobs(),
               shards: int = 1) -> List[str]:
  """Writes one span's shards atomically (temp file, then rename); returns their paths."""
  directory = span_dir(output, date)
  paths = []
  for shard, text in enumerate(render_span(rows, date, seed, knobs, shards)):
    path = os.path.join(directory, f'data-{shard:05d}-of-{shards:05d}.csv')
    bucket.write_bytes(path, text.encode('utf-8'))
    paths.append(path)
  return paths


def _parse_scale(values: Sequence[str]) -> Dict[str, float]:
  scale = {}
  for value in values:
    column, _, factor = value.partition('=')
    try:
      scale[column] = float(factor)
    except ValueError:
      raise SystemExit(f'--scale expects COLUMN=FACTOR, got {value!r}') from None
  return scale


def _count(minimum: int):
  """An argparse type: an integer >= minimum, else a clear usage error."""
  def parse(text: str) -> int:
    try:
      value = int(text)
    except ValueError:
      raise argparse.ArgumentTypeError(f'{text!r} is not an integer') from None
    if value < minimum:
      raise argparse.ArgumentTypeError(f'{value} is below {minimum}')
    return value
  return parse


def _fraction(text: str) -> float:
  """An argparse type: a number in [0, 1]."""
  try:
    value = float(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f'{text!r} is not a number') from None
  if not 0.0 <= value <= 1.0:
    raise argparse.ArgumentTypeError(f'{value} is not a fraction in [0, 1]')
  return value


def run(argv: Optional[Sequence[str]] = None) -> List[str]:
  """Writes the spans; returns the paths written."""
  parser = argparse.ArgumentParser(prog='python -m beam_pipelines.taxi_data',
                                   description=__doc__.split('\n')[0])
  parser.add_argument('--output', default='outputs/taxi_spans', help='Directory of the spans.')
  parser.add_argument('--rows', type=_count(1), default=10000, help='Rows per span (malformed included).')
  parser.add_argument('--days', type=_count(1), default=1, help='Number of daily spans.')
  parser.add_argument('--start', type=datetime.date.fromisoformat, default=SAMPLE_DATE,
                      help='Date of the first span (YYYY-MM-DD).')
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--shards', type=_count(1), default=1, help='CSV files per span.')
  parser.add_argument('--missing', type=_fraction, default=0.01,
                      help='Fraction of empty trip_seconds and company cells.')
  parser.add_argument('--payment_shift', type=_fraction, default=0.0,
                      help='Drift: fraction of card payments moved to cash.')
  parser.add_argument('--scale', action='append', default=[], metavar='COLUMN=FACTOR',
                      help='Drift: multiply a numeric column (repeatable).')
  parser.add_argument('--drop_column', default=None, help='Anomaly: leave a column out.')
  parser.add_argument('--add_column', default=None, help='Anomaly: add a new numeric column.')
  parser.add_argument('--unknown_category', type=_fraction, default=0.0,
                      help=f'Anomaly: fraction of rows with company {UNKNOWN_COMPANY!r}.')
  parser.add_argument('--long_tail', type=_count(0), default=0,
                      help=f'Rare company names ({RARE_COMPANY.format(1)!r}, ...), each on well '
                           'under 1%% of the rows.')
  parser.add_argument('--malformed', type=_count(0), default=0,
                      help=f'Malformed rows per span, cycling through {list(MALFORMED_KINDS)}.')
  args = parser.parse_args(argv)
  knobs = Knobs(args.missing, args.payment_shift, _parse_scale(args.scale), args.drop_column,
                args.add_column, args.unknown_category, args.malformed, args.long_tail)
  paths = []
  for day in range(args.days):
    date = args.start + datetime.timedelta(days=day)
    paths += write_span(args.output, date, args.rows, args.seed, knobs, args.shards)
    progress(f'taxi_data: span {date} ({args.rows} rows, {args.malformed} malformed) '
             f'-> {span_dir(args.output, date)}')
  progress(f'taxi_data: done: {args.days} span(s), {len(paths)} file(s) under {args.output}')
  return paths


def main(argv: Optional[Sequence[str]] = None) -> int:
  """CLI entry: a knob that does not fit the data is one line and exit status 2."""
  return runtime.main('taxi_data', run, argv)


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
