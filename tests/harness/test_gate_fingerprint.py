"""The unit-test gate's fingerprint: the same tree gives the same one, any change another."""

from __future__ import annotations

from beam_pipelines.harness import build


def test_fingerprint_is_stable_and_changes_with_any_file_or_selection(tmp_path):
  (tmp_path / 'pkg').mkdir()
  (tmp_path / 'pkg' / 'code.py').write_text('x = 1\n')
  (tmp_path / 'tests.py').write_text('def test_x():\n  pass\n')
  first = build.gate_fingerprint(tmp_path, [])
  assert build.gate_fingerprint(tmp_path, []) == first
  assert build.gate_fingerprint(tmp_path, ['tests.py']) != first
  (tmp_path / 'pkg' / 'code.py').write_text('x = 2\n')
  changed = build.gate_fingerprint(tmp_path, [])
  assert changed != first
  (tmp_path / 'pkg' / 'new.py').write_text('')
  assert build.gate_fingerprint(tmp_path, []) not in (first, changed)


def test_a_passed_gate_is_recorded_under_the_cache_never_in_the_tree(tmp_path, monkeypatch):
  monkeypatch.setenv('BEAM_PIPELINES_CACHE', str(tmp_path / 'cache'))
  stamp = build.gate_stamp(tmp_path / 'src', 'f' * 64)
  assert stamp == tmp_path / 'cache' / 'unit-tests-passed' / ('f' * 64)
