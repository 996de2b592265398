"""Continuous-training state on real runs (`python -m beam_pipelines.ct`, a temporary bucket, a
pipeline with a training window of 2): a span missing a column stops even when the other span of
its window has it; stopped, failed and NOT_BLESSED spans stay out of later windows and drift
baselines until re-admitted; a failed span is recorded and skipped; stopped and failed spans run
again by themselves after a schema change; an older span never moves production back.

One scenario (module fixture), several tests asserting on it."""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import types

import pytest
from test_ct import ct, lineage_of

from beam_pipelines.ct import demo, registry
from beam_pipelines.ct.definition import load_definition
from beam_pipelines.ct.paths import CtPaths
from beam_pipelines.taxi_data import Knobs

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NAME = 'windowed'
MISSING = demo.DemoSpan('company missing', datetime.date(2026, 11, 3), Knobs(drop_column='company'))
DRIFTED = demo.DemoSpan('drifted', datetime.date(2026, 11, 4), Knobs(payment_shift=0.3))
SAME = demo.DemoSpan('same distribution', datetime.date(2026, 11, 6), Knobs(malformed=5))
FAILING = demo.DemoSpan('its run errors', datetime.date(2026, 11, 5), Knobs(malformed=5))
FULL_DISK_HOOK = """
from beam_pipelines.ct import steps

real = steps.run_steps

def run_steps(definition, patterns, *args, **kwargs):
  if '2026-11-05' in patterns[-1]:
    raise OSError(28, 'No space left on device')
  return real(definition, patterns, *args, **kwargs)

steps.run_steps = run_steps
"""


def span_records(bucket):
  records = [json.loads(p.read_text())
             for p in (bucket / 'prod' / 'ct' / NAME / 'spans').glob('*.json')]
  return {r['span'].rsplit('/', 1)[-1]: r for r in sorted(records, key=lambda r: r['at'])}


@pytest.fixture(scope='module')
def s(tmp_path_factory):
  root = tmp_path_factory.mktemp('ct-state')
  folder = root / NAME
  folder.mkdir()
  (folder / 'pipeline.yaml').write_text(
      f'spec: {load_definition("taxi").spec_path}\n'
      f'train: {{classifier: logistic, C: 1.0, random_state: 0}}\nwindow: 2\n')
  s = types.SimpleNamespace(bucket=root / 'bucket', pipeline=str(folder / 'pipeline.yaml'),
                            done={}, records={})
  paths = CtPaths(str(s.bucket), NAME)
  s.registry = registry.Registry(paths.registry)

  hook = root / 'hook'  # the run of span 2026-11-05 errors: a full disk, in every ct process
  hook.mkdir()
  (hook / 'sitecustomize.py').write_text(FULL_DISK_HOOK)
  repo = pathlib.Path(__file__).resolve().parent.parent
  env = {'PYTHONPATH': f'{hook}{os.pathsep}{repo}'}

  def run(name, *args):
    s.done[name] = ct(s.bucket, '--pipeline', s.pipeline, *args, **env)
    s.records[name] = span_records(s.bucket)
    return s.done[name]

  s.first = demo.land(paths.landing, demo.DEMO_SPANS[0])
  run('first')
  s.missing = demo.land(paths.landing, MISSING)
  run('missing')
  s.drifted = demo.land(paths.landing, DRIFTED)
  run('drifted')
  demo.land(paths.landing, FAILING)
  run('failed')
  s.same = demo.land(paths.landing, SAME)
  run('after_failed')
  run('again')
  s.production = s.registry.aliases().get(registry.PRODUCTION)
  schema = s.bucket / 'prod' / 'ct' / NAME / 'schema.pbtxt'
  schema.write_text(schema.read_text() + '\n# reviewed\n')  # a schema change
  run('schema_changed')
  run('readmit', '--readmit', 'span-2026-11-03', '--reason', 'the column is known to be absent')
  s.versions_after_readmit = s.registry.numbers()
  run('window_with_readmitted', '--span', s.drifted, '--force')
  s.aliases_before_old = s.registry.aliases()
  run('old_span', '--span', s.first, '--force')
  return s


def test_a_column_missing_from_one_span_of_the_window_stops_the_run(s):
  assert s.done['first'].returncode == 0, s.done['first'].out[-3000:]
  done = s.done['missing']
  assert done.returncode == 1, done.out[-3000:]
  assert ('STOPPED at validation (a column missing from a file of the training window): '
          'column(s) company missing from ') in done.out
  assert 'span-2026-11-03/data-00000-of-00001.csv' in done.out
  assert 'step training' not in done.out and s.registry.numbers()[:1] == [1]
  assert s.records['missing']['span-2026-11-03']['outcome'] == 'stopped'


def test_a_stopped_span_is_in_no_later_window_nor_drift_baseline(s):
  done = s.done['drifted']
  assert done.returncode in (0, 3), done.out[-3000:]
  assert 'training window leaves out refused span(s)' in done.out
  assert 'span-2026-11-03 (stopped)' in done.out
  assert 'drift baseline: span ' in done.out and 'span-2026-11-01 (the one before' in done.out
  window = lineage_of(s.bucket, done.out)['data']['window']
  assert [w.rsplit('/', 1)[-1] for w in window] == ['span-2026-11-01', 'span-2026-11-04']


def test_a_span_that_errors_is_recorded_failed_with_its_error(s):
  done = s.done['failed']
  assert done.returncode == 2, done.out[-3000:]
  record = s.records['failed']['span-2026-11-05']
  assert record['outcome'] == 'failed'
  assert record['error'] == 'OSError: [Errno 28] No space left on device'
  assert 'ct: error: OSError: [Errno 28] No space left on device' in done.out
  assert record['code_fingerprint'] and record['spec_fingerprint']
  assert 'recorded as failed' in done.out


def test_later_runs_skip_a_failed_span_in_one_line_and_go_on(s):
  done = s.done['after_failed']
  assert done.returncode in (0, 3), done.out[-3000:]
  skipped = [line for line in done.out.splitlines() if 'skipping span' in line]
  assert len(skipped) == 1 and 'span-2026-11-05' in skipped[0] and '--readmit' in skipped[0]
  assert s.records['after_failed']['span-2026-11-06']['outcome'] != 'failed'
  window = lineage_of(s.bucket, done.out)['data']['window']
  assert 'span-2026-11-05' not in ' '.join(window)
  again = s.done['again']
  assert again.returncode == 0, again.out[-3000:]
  assert 'skipping span' in again.out and 'step features' not in again.out


def test_stopped_and_failed_spans_run_again_after_a_schema_change(s):
  done = s.done['schema_changed']
  assert 'span-2026-11-03 stopped in run' in done.out and 'under another schema' in done.out
  assert 'span-2026-11-05 failed in run' in done.out
  assert done.returncode == 2  # span 5 errors again, after span 3 stopped again
  records = s.records['schema_changed']
  assert records['span-2026-11-03']['run_id'] != s.records['again']['span-2026-11-03']['run_id']
  assert records['span-2026-11-05']['run_id'] != s.records['again']['span-2026-11-05']['run_id']
  assert records['span-2026-11-06'] == s.records['again']['span-2026-11-06']  # accepted: kept
  rerun = json.loads(open(
      s.bucket / 'prod' / 'ct' / NAME / 'runs' / records['span-2026-11-03']['run_id'] /
      'lineage.json').read())
  assert rerun['trigger'] == ['changed']


def test_readmit_records_who_and_why_without_retraining(s):
  done = s.done['readmit']
  assert done.returncode == 0, done.out[-3000:]
  readmitted = s.records['readmit']['span-2026-11-03']['readmitted']
  assert readmitted['reason'] == 'the column is known to be absent' and '@' in readmitted['by']
  lineage = json.loads(open(readmitted['lineage']).read())
  assert lineage['status'] == 'readmitted' and lineage['trigger'] == ['readmitted']
  assert s.versions_after_readmit == s.registry.numbers()[:len(s.versions_after_readmit)]
  assert 'step ' not in done.out  # nothing ran


def test_a_readmitted_span_is_in_later_windows_and_still_checked(s):
  done = s.done['window_with_readmitted']
  window = lineage_of(s.bucket, done.out)['data']['window']
  assert [w.rsplit('/', 1)[-1] for w in window] == ['span-2026-11-03', 'span-2026-11-04']
  assert done.returncode == 1 and 'column(s) company missing' in done.out  # its files checked


def test_force_on_an_older_span_never_moves_production_back(s):
  done = s.done['old_span']
  assert done.returncode in (0, 3), done.out[-3000:]
  assert s.registry.aliases()[registry.PRODUCTION] == s.aliases_before_old[registry.PRODUCTION]
  live = s.registry.aliases()[registry.PRODUCTION]
  if live != 1 and 'BLESSED' in done.out and done.returncode == 0:
    assert 'production stays' in done.out and 'invoke model-promote --version' in done.out
  for alias, number in s.registry.aliases().items():  # no alias on a version not BLESSED
    assert registry.blessing_status(s.registry.record(number)) == 'BLESSED', alias
  assert s.registry.promote(live) is None  # model-promote accepts what is live
