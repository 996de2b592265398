"""The bucket-layout contract: build ids (format, order, hostile ids) and environment paths."""

from __future__ import annotations

import datetime

import pytest

from beam_pipelines.store import layout
from beam_pipelines.store.errors import InvalidNameError


class TestBuildId:

  def test_new_build_id_has_the_format_and_validates(self):
    build_id = layout.new_build_id('5bea069aa0123456789')
    assert layout.validate_build_id(build_id) == build_id
    assert build_id.split('-')[1] == '5bea069'

  def test_build_ids_sort_by_time(self):
    early = layout.new_build_id('abcdef0', datetime.datetime(2026, 1, 1, 9, 0, 0))
    late = layout.new_build_id('0000001', datetime.datetime(2026, 1, 1, 10, 0, 0))
    assert sorted([late, early]) == [early, late]

  def test_build_ids_are_unique_within_a_second(self):
    now = datetime.datetime(2026, 1, 1)
    assert len({layout.new_build_id('abcdef0', now) for _ in range(50)}) == 50

  def test_without_git_the_commit_part_is_zeros(self):
    assert layout.new_build_id(None).split('-')[1] == layout.NO_COMMIT

  @pytest.mark.parametrize('hostile', [
      '../x', '..', '', 'a/b', '/etc/passwd', '20261126T153000Z-5bea069-3f9a1c/../../x',
      '20261126T153000Z-5bea069-3f9a1c\n', '20261126T153000Z-5BEA069-3f9a1c', 'latest', None])
  def test_hostile_or_malformed_build_ids_are_refused(self, hostile):
    with pytest.raises(InvalidNameError, match='invalid build id'):
      layout.validate_build_id(hostile)


class TestEnv:

  def test_paths_of_an_environment(self):
    env = layout.Env('gs://my-bucket/', 'prod')
    build_id = '20261126T153000Z-5bea069-3f9a1c'
    assert env.variables == 'gs://my-bucket/prod/variables.json'
    assert env.artifact(build_id, 'w.whl') == f'gs://my-bucket/prod/artifacts/{build_id}/w.whl'
    assert env.workflows(build_id) == f'gs://my-bucket/prod/workflows/{build_id}'
    assert env.passed(build_id) == f'gs://my-bucket/prod/passed/{build_id}.json'
    assert env.lock == 'gs://my-bucket/prod/deploy.lock'

  def test_paths_refuse_hostile_names(self):
    env = layout.Env('/tmp/b', 'test')
    with pytest.raises(InvalidNameError):
      env.artifacts('../x')
    with pytest.raises(InvalidNameError):
      env.artifact('20261126T153000Z-5bea069-3f9a1c', '../../prod/variables.json')

  def test_unknown_environment_is_refused(self):
    with pytest.raises(InvalidNameError, match='unknown environment'):
      layout.Env('/tmp/b', 'staging')

  def test_location_variables_point_inside_the_environment(self):
    values = layout.Env('/tmp/b', 'test').location_variables()
    assert values[layout.VAR_INPUT_LOCATION] == '/tmp/b/test/inputs'
    assert values[layout.VAR_STAGING_LOCATION] == '/tmp/b/test/staging'
