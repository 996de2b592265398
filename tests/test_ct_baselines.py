"""`ct --check --baselines`: a registered baseline must have its registry record's model sha256,
checked before any model is loaded."""

from __future__ import annotations

import json

import pytest

from beam_pipelines.ct import cli
from beam_pipelines.store.errors import Refusal

pytestmark = pytest.mark.slow  # reading baselines imports the loop (Beam, TFDV)


def baselines(tmp_path, recorded: str) -> str:
  (tmp_path / 'version.json').write_text(json.dumps({'model_sha256': recorded}))
  path = tmp_path / 'baselines.json'
  path.write_text(json.dumps({'taxi': {'model_dir': str(tmp_path / 'm'), 'model_sha256': 'a' * 64,
                                       'record_path': str(tmp_path / 'version.json')},
                              'churn': None}))
  return str(path)


def test_a_baseline_with_its_records_sha256_is_read(tmp_path):
  read = cli.read_baselines(baselines(tmp_path, 'a' * 64))
  assert list(read) == ['taxi'] and read['taxi'].model_sha256 == 'a' * 64


def test_a_baseline_whose_record_names_other_bytes_is_refused(tmp_path):
  with pytest.raises(Refusal, match='is not the one its registry record'):
    cli.read_baselines(baselines(tmp_path, 'b' * 64))
