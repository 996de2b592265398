"""`invoke ct --json` runs the deployed build's ct and relays its JSON line: all of stdout."""

from __future__ import annotations

import json

import pytest

from .support import invoke

pytestmark = pytest.mark.integration  # it needs the loop: never in the unit-test gate the loop runs


def test_invoke_ct_json_relays_the_deployed_builds_line(project, bucket_copy, loop):
  done = invoke(project, bucket_copy, 'ct', '--json')
  assert done.returncode == 0, done.stderr
  line = json.loads(done.stdout)
  assert (line['exit_status'], line['result'], line['pipeline']) == (0, 'done', 'taxi')
  assert [o['outcome'] for o in line['outcomes']] == ['no_trigger']
  assert 'ran from the deployed wheel' in done.stderr


def test_invoke_ct_json_relays_an_error_line_with_exit_status_2(project, bucket_copy, loop):
  done = invoke(project, bucket_copy, 'ct', '--json', '--span', str(bucket_copy / 'no-such-span'))
  assert done.returncode == 2, done.stdout + done.stderr
  line = json.loads(done.stdout)
  assert (line['exit_status'], line['result']) == (2, 'error') and 'no-such-span' in line['error']
