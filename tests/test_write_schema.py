"""`ct --write_schema`: scratch outputs per pipeline (two pipelines never share them), and a
review hint that names presence (min_fraction, shape) as well as domains. The Beam and TFDV cores
are stood in for: what is checked is where the command points them and what it says."""

from __future__ import annotations

import pytest

from beam_pipelines import features, validate
from beam_pipelines.ct import cli as ct_cli
from beam_pipelines.ct.definition import load_definition
from beam_pipelines.ml.results import Verdict

pytestmark = pytest.mark.slow  # imports TFDV (validate)


def pipeline(root, name):
  folder = root / name
  folder.mkdir()
  (folder / 'pipeline.yaml').write_text(
      f'spec: {load_definition("taxi").spec_path}\ntrain: {{classifier: logistic}}\n')
  return str(folder / 'pipeline.yaml')


def test_each_pipeline_has_its_own_scratch_outputs_and_the_hint_names_presence(
    tmp_path, monkeypatch, capsys):
  monkeypatch.chdir(tmp_path)
  (tmp_path / 'span').mkdir()
  (tmp_path / 'span' / 'data.csv').write_text('trip_id\n1\n')
  calls = []
  monkeypatch.setattr(features, 'extract', lambda patterns, spec, output: calls.append(output))
  monkeypatch.setattr(validate, 'validate',
                      lambda *args, **kwargs: Verdict('ok', 'no anomalies'))
  for name in ('first', 'second'):
    ct_cli.write_schema(pipeline(tmp_path, name), str(tmp_path / 'span'))
  assert calls == ['outputs/write-schema/first/features', 'outputs/write-schema/second/features']
  hint = capsys.readouterr().err
  for word in ('domains', 'min_domain_mass', 'presence', 'min_fraction', 'shape'):
    assert word in hint, word
