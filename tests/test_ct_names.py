"""Names are literal: a landed span folder holding `[`, `?` or `*` is that folder, never a pattern;
a symbolic link in a local span is refused, never followed; a bucket path with glob characters is
refused in one line before any pipeline runs."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

from beam_pipelines.ct import loop
from beam_pipelines.ct.paths import CtPaths
from beam_pipelines.store import bucket, layout
from beam_pipelines.store.errors import Refusal

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.parametrize('name', ['2026-11-01[a]', 'span?1', 'span*', '[x]'])
def test_a_landed_span_with_glob_characters_is_its_own_folder(tmp_path, name):
  paths = CtPaths(str(tmp_path / 'bucket'))
  span = pathlib.Path(paths.landing) / name
  span.mkdir(parents=True)
  (span / 'data.csv').write_text('a,y\n1,0\n')
  other = pathlib.Path(paths.landing) / '2026-11-01a'  # what `[a]` would match as a pattern
  other.mkdir()
  (other / 'other.csv').write_text('a,y\n2,1\n')
  assert str(span) in loop.landed_spans(paths)
  assert loop.span_files(str(span)) == [str(span / 'data.csv')]
  assert loop.span_files(str(span / 'data.csv')) == [str(span / 'data.csv')]


def test_a_symbolic_link_in_a_local_span_is_refused(tmp_path):
  span = tmp_path / 'span'
  span.mkdir()
  (span / 'data.csv').write_text('a,y\n1,0\n')
  (span / 'secrets.csv').symlink_to('/etc/passwd')
  with pytest.raises(Refusal, match='secrets.csv is a symbolic link') as refused:
    loop.span_files(str(span))
  assert '\n' not in str(refused.value)
  linked = tmp_path / 'linked'
  linked.symlink_to(span)
  os.unlink(span / 'secrets.csv')
  with pytest.raises(Refusal, match='linked is a symbolic link'):
    loop.span_files(str(linked))


@pytest.mark.parametrize('url', ['/tmp/runs[1]/bucket', 'gs://b/runs*', '/tmp/a?b'])
def test_a_bucket_path_with_glob_characters_is_refused_in_one_line(url):
  with pytest.raises(Refusal, match='no pipeline could write there') as refused:
    bucket.check_bucket_name(url)
  assert '\n' not in str(refused.value)


@pytest.mark.integration
def test_invoke_test_on_a_bucket_path_with_brackets_is_refused_before_beam(tmp_path):
  env = dict(os.environ, **{layout.BUCKET_ENV_VAR: str(tmp_path / 'runs[1]' / 'bucket')})
  env.pop('PYTHONPATH', None)
  done = subprocess.run([sys.executable, '-m', 'invoke', 'test'], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=120)
  assert done.returncode == 2, done.stderr
  assert 'Traceback' not in done.stderr and 'BeamIOError' not in done.stderr
  assert done.stderr.strip().splitlines()[-1].startswith('[beam-pipelines] REFUSED: the bucket path')
  assert not (tmp_path / 'runs[1]').exists()
