"""The build gate's type check: mypy passes on the package and stops the gate on a type error."""

from __future__ import annotations

import pathlib
import shutil

import pytest

from beam_pipelines.harness import build
from beam_pipelines.harness.errors import HarnessError


@pytest.fixture
def tree(repo_root, tmp_path) -> pathlib.Path:
  """A copy of the source tree (git's view, as the wheel) with the checkout's mypy cache, if any:
  mypy re-checks every module whose file differs from its cache entry, so the cache only saves
  time."""
  source = tmp_path / 'src'
  build.snapshot(repo_root, source)
  if (repo_root / '.mypy_cache').is_dir():
    shutil.copytree(repo_root / '.mypy_cache', source / '.mypy_cache')
  return source


def test_the_package_type_checks_and_a_type_error_fails_the_gate(tree, tmp_path, monkeypatch):
  build.type_check(tree)  # the package as it is: 0 errors

  (tree / 'beam_pipelines' / 'mistyped.py').write_text("x: int = 'a'\n")
  monkeypatch.setenv('BEAM_PIPELINES_CACHE', str(tmp_path / 'cache'))
  with pytest.raises(HarnessError) as failed:
    build.run_gates(tree)
  message = str(failed.value)
  assert message.startswith('build: type check failed') and 'nothing was built' in message
  assert ('beam_pipelines/mistyped.py:1: error: Incompatible types in assignment (expression has '
          'type "str", variable has type "int")') in message
  assert not (tmp_path / 'cache').exists()  # no gate stamp: the unit tests never ran
