"""The continuous-training loop end to end on the bundled sample, in one command.

``python -m beam_pipelines.ct --demo`` lands four daily spans in the bucket's landing area, one at
a time, and runs continuous training after each: span 1 is the bundled sample (first model,
rubber-stamped to production), span 2 the same distribution (blessed or not by the rule), span 3
lacks a column (stopped at validation), span 4 has drifted (retraining triggered by drift).
"""

from __future__ import annotations

import datetime
import os
import shutil
from typing import List, NamedTuple, Optional

from beam_pipelines import taxi_data
from beam_pipelines.ct.loop import ContinuousTraining
from beam_pipelines.ct.outcomes import SpanOutcome
from beam_pipelines.store import bucket, layout
from beam_pipelines.store.console import progress

DEMO_BUCKET = 'outputs/ct-demo/bucket'


def fresh_demo_bucket() -> str:
  """The demo's own local bucket (``outputs/ct-demo/bucket``), emptied first: the demo registers
  models and moves ``production``, so it never touches the real bucket, and it can be re-run."""
  path = os.path.abspath(DEMO_BUCKET)
  shutil.rmtree(path, ignore_errors=True)
  os.makedirs(path)
  return path


class DemoSpan(NamedTuple):
  title: str
  date: datetime.date
  knobs: Optional[taxi_data.Knobs]  # None: the bundled sample itself


DEMO_SPANS = (
    DemoSpan('span 1: the bundled sample', datetime.date(2026, 11, 1), None),
    DemoSpan('span 2: same distribution', datetime.date(2026, 11, 2), taxi_data.Knobs(malformed=5)),
    DemoSpan('span 3: column "company" missing', datetime.date(2026, 11, 3),
             taxi_data.Knobs(drop_column='company')),
    DemoSpan('span 4: drift, 30% of card payments moved to cash', datetime.date(2026, 11, 4),
             taxi_data.Knobs(payment_shift=0.3)),
)


def span_text(span: DemoSpan, rows: int) -> bytes:
  """The CSV bytes of a demo span (deterministic)."""
  if span.knobs is None:
    return taxi_data.render_sample().encode('utf-8')
  return taxi_data.render_span(rows, span.date, 0, span.knobs)[0].encode('utf-8')


def land(landing: str, span: DemoSpan, rows: int = 3000) -> str:
  """Writes one span into the landing area (atomically); returns its directory."""
  directory = layout.join(landing, f'span-{span.date.isoformat()}')
  bucket.write_bytes(layout.join(directory, 'data-00000-of-00001.csv'), span_text(span, rows))
  return directory


def run_demo(ct: ContinuousTraining, rows: int = 3000) -> List[SpanOutcome]:
  """Lands each demo span and runs ``ct`` (a ContinuousTraining) on it; prints what happened."""
  outcomes = []
  for span in DEMO_SPANS:
    directory = land(ct.paths.landing, span, rows)
    progress(f'demo: {span.title} landed at {directory}')
    outcomes += ct.run([directory])
  progress('demo: what happened:')
  for span, outcome in zip(DEMO_SPANS, outcomes):
    what = {'stopped': f'stopped at validation; report {outcome.report}',
            'no_trigger': 'no trigger (already processed)'}.get(
        outcome.outcome, f'v{outcome.version} {outcome.blessing} -> '
                            f'{outcome.outcome}; production v{outcome.production}')
    progress(f'demo:   {span.title}: verdict {outcome.verdict or "-"}; {what}')
  return outcomes
