"""The signing key stays in the process that signs: a workflow the harness launches (its own launch
path, a real subprocess) does not have it in its environment."""

from __future__ import annotations

import os

from beam_pipelines.harness import install
from beam_pipelines.store import signing

SHOW_ENV = f'import os\nprint("ENV=" + repr(os.environ.get({signing.SIGNING_KEY_ENV_VAR!r})))\n'


def test_a_workflow_launched_by_the_harness_cannot_read_the_signing_key(tmp_path, monkeypatch):
  site = tmp_path / 'site'
  (site / 'beam_pipelines').mkdir(parents=True)
  (site / 'beam_pipelines' / '__init__.py').write_text('')
  (site / 'beam_pipelines' / 'show_env.py').write_text(SHOW_ENV)
  monkeypatch.setenv(signing.SIGNING_KEY_ENV_VAR, 'the-ci-secret')
  launched = install.launch(site, 'beam_pipelines.show_env', [])
  assert 'ENV=None' in launched.output, launched.output
  assert not any('the-ci-secret' in line for line in launched.output)
  assert os.environ[signing.SIGNING_KEY_ENV_VAR] == 'the-ci-secret'  # the harness keeps it
