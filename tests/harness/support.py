"""Helpers of the harness tests: a frozen copy of the project, the real `invoke` CLI.

The integration tests never touch the shared working tree or its bucket: a session fixture copies
the source tree (as git sees it) into a temporary git repository with one commit, and every
`invoke` runs there, on a temporary bucket.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

from beam_pipelines.harness.build import snapshot
from beam_pipelines.store import layout

REPO = pathlib.Path(__file__).resolve().parents[2]


def make_project(destination: pathlib.Path) -> pathlib.Path:
  """A git repository holding one commit of the current source tree."""
  snapshot(REPO, destination)
  git = ['git', '-c', 'user.name=harness-test', '-c', 'user.email=harness@test.invalid']
  env = dict(os.environ, GIT_AUTHOR_DATE='2026-01-02T03:04:05Z',
             GIT_COMMITTER_DATE='2026-01-02T03:04:05Z')
  for command in (['init', '-q'], ['add', '-A'], ['commit', '-q', '-m', 'snapshot']):
    subprocess.run(git + command, cwd=destination, env=env, check=True, capture_output=True)
  return destination


def commit_all(project: pathlib.Path, message: str) -> None:
  """Commits every change of ``project`` as a team member would (a new pipeline folder)."""
  git = ['git', '-c', 'user.name=team', '-c', 'user.email=team@test.invalid']
  subprocess.run(git + ['add', '-A'], cwd=project, check=True)
  subprocess.run(git + ['commit', '-q', '-m', message], cwd=project, check=True)


def logged_runs(project: pathlib.Path, bucket: pathlib.Path, done: dict, logs: pathlib.Path,
                **env_extra: str):
  """``run(name, *args)``: the real `invoke` CLI (with ``env_extra`` in its environment), its
  result kept in ``done[name]`` and its output written to ``logs/<name>.log`` for a person to
  read."""
  logs.mkdir(parents=True, exist_ok=True)

  def run(name: str, *args: str):
    done[name] = invoke(project, bucket, *args, **env_extra)
    (logs / f'{name}.log').write_text(f'$ invoke {" ".join(args)}\n{done[name].stdout}'
                                      f'{done[name].stderr}(exit status {done[name].returncode})\n')
    return done[name]
  return run


def invoke(project: pathlib.Path, bucket: pathlib.Path, *args: str, **env_extra: str):
  """Runs the real `invoke` CLI in ``project`` on ``bucket``; returns the CompletedProcess."""
  env = dict(os.environ, **{layout.BUCKET_ENV_VAR: str(bucket)}, **env_extra)
  env.pop('PYTHONPATH', None)
  return subprocess.run([sys.executable, '-m', 'invoke', *args], cwd=project, env=env,
                        capture_output=True, text=True, timeout=900)


def prod_variables(bucket: pathlib.Path) -> dict:
  return json.loads((bucket / 'prod' / 'variables.json').read_text())


