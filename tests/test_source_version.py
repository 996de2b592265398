"""A source tree uploaded without ``.git`` (``gcloud builds submit``) still knows its commit."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from beam_pipelines.harness import build
from beam_pipelines.store import identity, layout

from conftest import REPO

COMMIT = '0123456789abcdef0123456789abcdef01234567'


@pytest.fixture
def uploaded(tmp_path, monkeypatch) -> pathlib.Path:
  """The files `gcloud builds submit` uploads: the source tree, no ``.git``."""
  for name in ('COMMIT_SHA', 'SHORT_SHA', 'SOURCE_DATE_EPOCH'):
    monkeypatch.delenv(name, raising=False)
  tree = tmp_path / 'upload'
  for name in build.source_files(REPO):
    (tree / name).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO / name, tree / name)
  assert not (tree / '.git').exists()
  return tree


def test_source_version_file_gives_commit_epoch_and_build_id(uploaded):
  (uploaded / identity.SOURCE_VERSION_FILE).write_text(f'{COMMIT} 1764000000\n')
  commit, dirty, epoch = identity.git_info(uploaded)
  assert (commit, dirty, epoch) == (COMMIT, False, 1764000000)
  assert layout.new_build_id(commit).split('-')[1] == COMMIT[:7]


def test_cloud_builds_commit_sha_is_used_without_the_file(uploaded, monkeypatch):
  monkeypatch.setenv('COMMIT_SHA', COMMIT)
  assert identity.git_info(uploaded)[:2] == (COMMIT, False)


def test_nothing_known_is_an_unknown_dirty_commit(uploaded):
  assert identity.git_info(uploaded) == (None, True, identity.FALLBACK_EPOCH)


def test_a_malformed_source_version_is_refused(uploaded):
  (uploaded / identity.SOURCE_VERSION_FILE).write_text('not-a-commit\n')
  with pytest.raises(ValueError, match='SOURCE_VERSION'):
    identity.git_info(uploaded)


def test_lineage_of_the_uploaded_tree_names_its_commit(uploaded):
  """The unit test that failed in a simulated upload: the source tree's lineage identity."""
  (uploaded / identity.SOURCE_VERSION_FILE).write_text(f'{COMMIT} 1764000000\n')
  code = ('import json; from beam_pipelines.ct import lineage; '
          'print(json.dumps(lineage.code_identity()))')
  done = subprocess.run([sys.executable, '-c', code], cwd=uploaded, capture_output=True, text=True,
                        env=dict(os.environ, PYTHONPATH=str(uploaded)), timeout=120)
  assert done.returncode == 0, done.stderr[-2000:]
  found = json.loads(done.stdout.strip().splitlines()[-1])
  assert found['source'] == 'source-tree' and found['git_commit'] == COMMIT
