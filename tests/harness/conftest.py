"""Fixtures of the harness tests: one frozen project, one loop of builds, private bucket copies.

The integration tests never touch the shared working tree or its bucket: the project fixture copies
the source tree (as git sees it) into a temporary git repository with one commit, and every
`invoke` runs there, on a temporary bucket.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import types

import pytest

from beam_pipelines.store import layout

from .support import invoke, make_project


@pytest.fixture(scope='session')
def project(tmp_path_factory) -> pathlib.Path:
  return make_project(tmp_path_factory.mktemp('harness') / 'project')


@pytest.fixture(scope='session')
def loop(project, tmp_path_factory):
  """`invoke build test deploy` twice (build A, then B) on one bucket; shared by many tests.

  The first loop is README command 1 with its gates (lint on the whole tree, unit tests narrowed
  to tests/harness: the suite running this test runs the other unit tests itself). The second
  skips the gates (`build --no-checks`): the same tree already passed them.
  """
  bucket = tmp_path_factory.mktemp('loop') / 'bucket'
  first = invoke(project, bucket, 'build', 'test', 'deploy',
                 **{layout.UNIT_TESTS_ENV_VAR: 'tests/harness'})
  assert first.returncode == 0, first.stdout + first.stderr
  manifest_a = json.loads((project / 'dist' / 'manifest.json').read_text())
  second = invoke(project, bucket, 'build', '--no-checks', 'test', 'deploy')
  assert second.returncode == 0, second.stdout + second.stderr
  manifest_b = json.loads((project / 'dist' / 'manifest.json').read_text())
  return types.SimpleNamespace(
      bucket=bucket, first=first, second=second, manifest_a=manifest_a, manifest_b=manifest_b,
      a=manifest_a['build_id'], b=manifest_b['build_id'])


@pytest.fixture
def bucket_copy(loop, tmp_path) -> pathlib.Path:
  """A private copy of the loop's bucket (prod on build B, A and B passed) to change freely."""
  copy = tmp_path / 'bucket'
  shutil.copytree(loop.bucket, copy)
  for record in copy.rglob('*.json'):  # records name objects by URL: point them at the copy
    if not {'artifacts', 'workflows'} & set(record.relative_to(copy).parts):
      record.write_text(record.read_text().replace(str(loop.bucket), str(copy)))
  return copy
