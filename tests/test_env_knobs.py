"""Environment knobs are validated: a bad value is refused in one line naming the variable, never
silently replaced by a default or reported as something else."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from beam_pipelines.store import bucket, text_lines
from beam_pipelines.store.errors import Refusal

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize('value', ['0', '-3', '1MiB', '1.5', '٣', 'x'])
def test_an_invalid_max_record_bytes_is_refused_naming_the_variable(monkeypatch, value):
  monkeypatch.setenv(text_lines.MAX_RECORD_ENV_VAR, value)
  with pytest.raises(Refusal, match=r'\$BEAM_PIPELINES_MAX_RECORD_BYTES is'):
    text_lines.max_record_chars()


def test_a_valid_or_unset_max_record_bytes(monkeypatch):
  monkeypatch.setenv(text_lines.MAX_RECORD_ENV_VAR, '4096')
  assert text_lines.max_record_chars() == 4096
  monkeypatch.delenv(text_lines.MAX_RECORD_ENV_VAR)
  assert text_lines.max_record_chars() == text_lines.DEFAULT_MAX_RECORD


def test_a_pipeline_refuses_an_invalid_max_record_bytes_in_one_line(tmp_path):
  env = dict(os.environ, **{text_lines.MAX_RECORD_ENV_VAR: '1MiB'}, PYTHONPATH=REPO)
  done = subprocess.run([sys.executable, '-m', 'beam_pipelines.wordcount', '--output',
                         str(tmp_path / 'out')], env=env, capture_output=True, text=True,
                        timeout=120, cwd=tmp_path)
  assert done.returncode == 2 and 'Traceback' not in done.stderr
  assert '$BEAM_PIPELINES_MAX_RECORD_BYTES is' in done.stderr.strip().splitlines()[-1]
  assert not list(tmp_path.glob('out*'))


@pytest.mark.parametrize('value', ['localhost:9023', '127.0.0.1', 'ftp://h:1', 'http://', 'http://h:x'])
def test_an_emulator_host_without_its_scheme_says_so(monkeypatch, value):
  monkeypatch.setenv(bucket.EMULATOR_ENV_VAR, value)
  with pytest.raises(Refusal, match=r'\$STORAGE_EMULATOR_HOST is .*expected http://HOST:PORT'):
    bucket.check_reachable('gs://b')
