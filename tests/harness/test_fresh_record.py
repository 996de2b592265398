"""`invoke test` records only what its own run produced: a report already in `test/` (anyone who
can write there may have written it) gives at most its failed results, which can only block."""

from __future__ import annotations

import json

from beam_pipelines.harness import results
from beam_pipelines.store import layout, signing

BUILD = '20260102T030405Z-abcdef0-123456'
SHA = 'a' * 64
MINE = [{'workflow': 'ml_test', 'check': 'ml_model', 'passed': True, 'message': 'mine',
         'details': {}}]


def seed(bucket, **fields) -> None:
  path = bucket / 'test' / 'results' / BUILD / 'report.json'
  path.parent.mkdir(parents=True)
  path.write_text(json.dumps(dict({
      'build_id': BUILD, 'sha256': SHA, 'wheel_file': 'w.whl', 'status': 'passed',
      'tested_at': '2026-01-01T00:00:00+00:00', 'tested_by': 'attacker', 'manifest_sha256': None,
      'module_origins': {'ml_test': 'attacker'}, 'results': [], 'ml': None}, **fields)))


def record(bucket, **ml):
  return results.record_results(str(bucket), BUILD, SHA, 'w.whl', MINE, 'ci',
                                ml=ml or None, manifest_sha256='m' * 64, fresh=True)


def test_a_seeded_blessed_verdict_is_neither_merged_nor_signed(tmp_path, monkeypatch):
  monkeypatch.setenv(signing.SIGNING_KEY_ENV_VAR, 'ci-secret')
  seed(tmp_path, results=[{'check': 'ml_model', 'passed': True, 'message': 'attacker',
                           'details': {}}],
       ml={'taxi': {'status': 'BLESSED', 'model_dir': '/attacker', 'model_sha256': 'b' * 64}})
  report = record(tmp_path, taxi={'status': 'NOT_BLESSED', 'model_dir': '/mine'})
  assert report.passed and report.results[0]['message'] == 'mine' and len(report.results) == 1
  passed = (tmp_path / 'test' / 'passed' / f'{BUILD}.json').read_text()
  assert 'attacker' not in passed and 'b' * 64 not in passed
  assert results.read_passed(str(tmp_path), BUILD).ml_by_pipeline['taxi']['model_dir'] == '/mine'


def test_a_recorded_failure_still_blocks(tmp_path):
  seed(tmp_path, status='failed', results=[
      {'check': 'golden_counts', 'passed': False, 'message': 'wrong counts', 'details': {}},
      {'check': 'ml_model', 'passed': True, 'message': 'attacker', 'details': {}}, 'junk'])
  report = record(tmp_path)
  assert not report.passed
  assert [r['message'] for r in report.results] == ['wrong counts', 'mine']
  assert not (tmp_path / 'test' / 'passed' / f'{BUILD}.json').exists()
  assert layout.STATUS_FAILED == report.status
