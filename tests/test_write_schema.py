"""The life cycle of a committed schema, on real data (COVID-19 tests, ``tests/real_covid.py``):
`ct --write_schema` writes a schema that passes the span it was inferred from, with scratch
outputs per pipeline (two pipelines never share them) and a review hint that names presence as
well as domains; `ct --update_schema` folds a later span's new clinics into it."""

from __future__ import annotations

import json
import types

import pytest

from beam_pipelines.ct import cli as ct_cli

import real_covid

pytestmark = pytest.mark.slow

FIRST, SECOND = list(real_covid.SPANS)[:2]


def _pipeline_folder(root, name):
  folder = root / name
  folder.mkdir()
  (folder / 'pipeline.yaml').write_text(real_covid.PIPELINE_YAML)
  (folder / 'spec.yaml').write_text(real_covid.SPEC_YAML)
  return folder


def _ct(capsys, *argv):
  status = ct_cli.main([*argv, '--json'])
  captured = capsys.readouterr()
  return types.SimpleNamespace(status=status, err=captured.err,
                               line=json.loads(captured.out.strip().splitlines()[-1]))


@pytest.fixture(scope='module')
def lifecycle(tmp_path_factory):
  root = tmp_path_factory.mktemp('schema-life')
  landing = root / 'landing'
  spans = {name: str(real_covid.land(landing, name)) for name in (FIRST, SECOND)}
  folders = {name: _pipeline_folder(root, name) for name in ('first', 'second')}
  return types.SimpleNamespace(root=root, spans=spans, folders=folders)


def test_write_then_update_a_schema(lifecycle, capsys, monkeypatch):
  monkeypatch.chdir(lifecycle.root)
  written = {}
  for name, folder in lifecycle.folders.items():
    written[name] = _ct(capsys, '--write_schema', '--pipeline', str(folder / 'pipeline.yaml'),
                        '--span', lifecycle.spans[FIRST])
    assert written[name].status == 0, written[name].err[-3000:]
    assert written[name].line['schema'] == str(folder / 'schema.pbtxt')
  for name in lifecycle.folders:  # one scratch folder per pipeline
    assert (lifecycle.root / 'outputs' / 'write-schema' / name / 'features' / 'summary.json').exists()
  hint = written['first'].err
  for word in ('domains', 'min_domain_mass', 'presence', 'min_fraction', 'shape',
               'the span passes under it'):
    assert word in hint, word
  schema_text = (lifecycle.folders['first'] / 'schema.pbtxt').read_text()
  assert 'shape' not in schema_text and 'min_fraction: 1.0' not in schema_text
  refused = _ct(capsys, '--write_schema', '--pipeline',
                str(lifecycle.folders['first'] / 'pipeline.yaml'), '--span', lifecycle.spans[FIRST])
  assert refused.status == 2 and '--update_schema' in refused.line['error']

  updated = _ct(capsys, '--update_schema', '--pipeline',
                str(lifecycle.folders['first'] / 'pipeline.yaml'), '--span', lifecycle.spans[SECOND])
  assert updated.status == 0, updated.err[-3000:]
  assert any(c.startswith('clinic_name: ') and 'added to its domain' in c
             for c in updated.line['changes']), updated.line['changes']
  again = _ct(capsys, '--update_schema', '--pipeline',
              str(lifecycle.folders['first'] / 'pipeline.yaml'), '--span', lifecycle.spans[SECOND])
  assert again.status == 0 and again.line['changes'] == []
  assert 'already accepts' in again.err
