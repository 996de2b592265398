"""Turning signing on over a bucket whose records were written without a key, as docs/harness.md
("Turning signing on over an existing bucket") says: older unsigned records are refused, and the
documented way on (move them aside, test a new build with the key, deploy it) works."""

from __future__ import annotations

import json
import os
import pathlib
import shutil

import pytest

from beam_pipelines.store import layout, signing

from .support import invoke, make_project, prod_variables

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KEY = {signing.SIGNING_KEY_ENV_VAR: 'ci-secret-of-the-test'}


def test_turning_signing_on_over_an_unsigned_bucket(tmp_path):
  project = make_project(tmp_path / 'project')
  bucket = tmp_path / 'bucket'
  first = invoke(project, bucket, 'build', '--no-checks', 'test', 'deploy')
  assert first.returncode == 0, first.stderr[-3000:]
  old = prod_variables(bucket)['build_id']
  passed_dir = bucket / layout.TEST / layout.PASSED
  assert json.loads((passed_dir / f'{old}.json').read_text()).get(signing.SIGNATURE) is None

  # With the key, prod's unsigned record is refused, in one line that says where to read on.
  refused = invoke(project, bucket, 'test', **KEY)
  said = refused.stderr + refused.stdout
  assert refused.returncode == 2 and 'Traceback' not in said
  assert f'{passed_dir / old}.json is not signed' in said and 'docs/harness.md' in said

  # The way on: move the unsigned records out of test/passed/, then test and deploy a new build.
  aside = bucket / layout.TEST / 'passed-unsigned'
  shutil.move(str(passed_dir), str(aside))
  (project / 'CHANGES.txt').write_text('a change, so that the next build is a new one\n')
  tested = invoke(project, bucket, 'build', '--no-checks', 'test', **KEY)
  assert tested.returncode == 0, tested.stderr[-3000:]
  new = json.loads((project / 'dist' / 'manifest.json').read_text())['build_id']
  assert new != old
  record = json.loads((passed_dir / f'{new}.json').read_text())
  assert record[signing.SIGNATURE].startswith('hmac-sha256:')
  deployed = invoke(project, bucket, 'deploy', **KEY)
  assert deployed.returncode == 0, deployed.stderr[-3000:]
  assert prod_variables(bucket)['build_id'] == new

  # A build tested before the key cannot be rolled back to until it is tested again with it.
  back = invoke(project, bucket, 'rollback', **KEY)
  assert back.returncode == 2 and f'build {old} did not pass test' in back.stderr + back.stdout
  assert prod_variables(bucket)['build_id'] == new
  assert os.path.exists(aside / f'{old}.json')  # kept, for the record
  assert not pathlib.Path(passed_dir / f'{old}.json').exists()
