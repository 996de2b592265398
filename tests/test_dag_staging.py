"""Staging DAG files per environment: the helper modules renamed, the imports rewritten."""

from __future__ import annotations

import pytest

from beam_pipelines.harness import dags
from beam_pipelines.harness.errors import HarnessError

from conftest import REPO

SOURCE = {path.name: path.read_bytes() for path in (REPO / 'build' / 'dags').glob('*.py')}


def test_every_shared_import_names_the_environments_copy():
  text = ('import beam_pipelines_tasks as tasks\nfrom beam_pipelines_support import x\n'
          'import beam_pipelines_tasks_extra\n')
  assert dags.rename_imports(text, 'test') == (
      'import beam_pipelines_test_tasks as tasks\nfrom beam_pipelines_test_support import x\n'
      'import beam_pipelines_tasks_extra\n')


@pytest.mark.parametrize('env', ['test', 'prod'])
def test_a_staged_folder_imports_nothing_of_another_environment(env):
  staged = dags.stage(SOURCE, env)
  other = 'prod' if env == 'test' else 'test'
  assert not any(name.startswith(f'beam_pipelines_{other}') for name in staged)
  for name, data in staged.items():
    text = data.decode()
    for helper in dags.HELPERS:
      assert f'import {helper} ' not in text and f'import {helper}\n' not in text, name
      assert f'beam_pipelines_{other}_' not in text, name


def test_the_test_environment_never_gets_the_prod_or_ct_dag():
  assert set(dags.stage(SOURCE, 'test')) == {
      'beam_pipelines_test_dag.py', 'beam_pipelines_test_tasks.py',
      'beam_pipelines_test_support.py'}


def test_a_build_without_a_dag_file_is_refused():
  with pytest.raises(HarnessError, match='beam_pipelines_ct_dag.py'):
    dags.stage({k: v for k, v in SOURCE.items() if k != 'beam_pipelines_ct_dag.py'}, 'prod')
