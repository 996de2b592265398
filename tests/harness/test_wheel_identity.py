"""One commit, one wheel: the bytes do not depend on whether the tree has ``.git``.

A Cloud Build trigger or a ``gcloud builds submit`` upload builds from a tree without ``.git``
(the commit comes from ``$COMMIT_SHA`` or ``SOURCE_VERSION``); a person rebuilds the same commit
from a checkout to confirm the artifact. Both real builds (``harness.build.build``, gates off) must
give the same wheel sha256.
"""

from __future__ import annotations

import shutil

import pytest

from beam_pipelines.harness import build
from beam_pipelines.store import identity

from harness.support import make_project

pytestmark = pytest.mark.integration


def test_the_same_commit_gives_the_same_wheel_with_and_without_git(tmp_path, monkeypatch):
  monkeypatch.delenv('SOURCE_DATE_EPOCH', raising=False)
  checkout = make_project(tmp_path / 'checkout')
  commit, dirty, _ = identity.git_info(checkout)
  assert commit and not dirty
  upload = tmp_path / 'upload'
  shutil.copytree(checkout, upload, ignore=shutil.ignore_patterns('.git'))
  monkeypatch.setenv('COMMIT_SHA', commit)  # what a trigger gives the build step
  from_checkout = build.build(checkout, checks=False)
  from_upload = build.build(upload, checks=False)
  assert from_upload.git_commit == from_checkout.git_commit == commit
  assert from_upload.wheel_sha256 == from_checkout.wheel_sha256
  assert from_checkout.source_date_epoch == identity.WHEEL_EPOCH


def test_source_date_epoch_when_set_is_the_wheels_time(monkeypatch):
  monkeypatch.setenv('SOURCE_DATE_EPOCH', '1767323045')
  assert identity.wheel_epoch() == 1767323045
  monkeypatch.setenv('SOURCE_DATE_EPOCH', 'yesterday')
  with pytest.raises(ValueError, match='SOURCE_DATE_EPOCH'):
    identity.wheel_epoch()
  monkeypatch.delenv('SOURCE_DATE_EPOCH')
  assert identity.wheel_epoch() == identity.WHEEL_EPOCH
