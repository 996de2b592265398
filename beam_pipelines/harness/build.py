"""``invoke build``: lint, type and unit-test gates, a reproducible wheel + sdist, and the build manifest.

The gates (ruff, mypy, unit tests) run in the checkout, as Maven's do. The wheel is built from a snapshot
of the source tree (tracked and untracked-but-not-ignored files, as git sees them) in a temporary
directory, so no stale ``build/``/``*.egg-info`` output or ignored file leaks into it. Timestamps inside the wheel come
from a fixed ``SOURCE_DATE_EPOCH`` (``identity.wheel_epoch``: 1980-01-01 unless the variable is set,
as Maven's fixed ``outputTimestamp``), so building the same commit twice, with or without ``.git``
(a checkout, a Cloud Build trigger, a ``gcloud builds submit`` upload), gives byte-identical wheels. The build id is only in the manifest and in the
bucket path, never inside the wheel.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import pathlib
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import zipfile
from email.parser import Parser
from typing import Dict, List, Optional, Tuple

from beam_pipelines.harness.errors import HarnessError
from beam_pipelines.store import layout, records
from beam_pipelines.store.bucket import sha256_bytes
from beam_pipelines.store.console import LiveLine, progress
from beam_pipelines.store.identity import git, git_info, wheel_epoch

UNIT_TEST_MARKERS = 'not integration and not slow'
# What a passed gate stamp vouches for (part of the fingerprint: a new check invalidates old stamps).
FINGERPRINTED_CHECKS = ('mypy', 'pytest')
_NO_GIT_EXCLUDES = {'.git', '.venv', '.venv-airflow', 'dist', 'bucket', 'outputs', '.harness-cache', '__pycache__',
                    '.setuptools-build', '.pytest_cache', '.ruff_cache', '.mypy_cache', '.benchmarks'}


def source_files(repo: pathlib.Path) -> List[str]:
  """Repository-relative files of the source tree: git's view (tracked + untracked, not ignored)."""
  listed = git(repo, 'ls-files', '-z', '--cached', '--others', '--exclude-standard')
  if listed is not None:
    names = sorted(set(n for n in listed.split('\0') if n))
    # A virtualenv that someone forgot to ignore is never source (it has a pyvenv.cfg).
    venvs = tuple(n[:-len('pyvenv.cfg')] for n in names if n.endswith('pyvenv.cfg'))
    return [n for n in names
            if not (venvs and n.startswith(venvs)) and (repo / n).is_file()]
  names = []
  for root, dirs, files in os.walk(repo):
    dirs[:] = sorted(d for d in dirs if d not in _NO_GIT_EXCLUDES and not d.endswith('.egg-info'))
    names.extend(os.path.relpath(os.path.join(root, f), repo) for f in files)
  return sorted(names)


def snapshot(repo: pathlib.Path, destination: pathlib.Path) -> None:
  """Copies the source tree into ``destination`` (file modes kept)."""
  for name in source_files(repo):
    target = destination / name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(repo / name, target)


def _check(command: List[str], cwd: pathlib.Path, what: str, env: Optional[dict] = None) -> None:
  done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
  if done.returncode != 0:
    output = (done.stdout + done.stderr).strip()
    tail = '\n'.join(output.splitlines()[-40:])
    raise HarnessError(f'build: {what} failed ({" ".join(command[2:])}); nothing was built:\n{tail}')


def gate_fingerprint(source: pathlib.Path, paths: List[str]) -> str:
  """sha256 of everything the type check's and the unit tests' results depend on: every source
  file (git's view, as the wheel; pyproject.toml holds mypy's config), the interpreter, the
  installed distributions (mypy and the typed libraries among them) and the tests selected."""
  digest = hashlib.sha256()
  installed = sorted(f'{d.metadata["Name"]}=={d.version}'
                     for d in importlib.metadata.distributions())
  for part in (*FINGERPRINTED_CHECKS, UNIT_TEST_MARKERS, *paths, sys.version, *installed):
    digest.update(part.encode() + b'\0')
  for name in source_files(source):
    digest.update(name.encode() + b'\0' + sha256_bytes((source / name).read_bytes()).encode())
  return digest.hexdigest()


def gate_stamp(source: pathlib.Path, fingerprint: str) -> pathlib.Path:
  """Where a passed gate is recorded: ``$BEAM_PIPELINES_CACHE`` or ``.harness-cache`` (never in a
  clean clone, so CI always runs the gate)."""
  cache = pathlib.Path(os.environ.get(layout.CACHE_ENV_VAR) or source / layout.CACHE_DIR)
  return cache / 'unit-tests-passed' / fingerprint


def parallel_arguments() -> List[str]:
  """pytest-xdist's ``-n N`` (one worker per core, at most 4), when installed and worth it."""
  workers = min(os.cpu_count() or 1, 4)
  if workers < 2 or importlib.util.find_spec('xdist') is None:
    return []
  return ['-n', str(workers)]


def type_check(source: pathlib.Path) -> None:
  """mypy with ``source``'s pyproject.toml config; a HarnessError with mypy's lines on any error.

  mypy's incremental cache (``.mypy_cache``, ignored by git) makes a re-check of a barely changed
  tree take about a second."""
  _check([sys.executable, '-m', 'mypy', '--config-file', 'pyproject.toml'], source, 'type check',
         dict(os.environ, PYTHONPATH=str(source)))


def run_gates(source: pathlib.Path) -> None:
  """Lint (ruff), then type check (mypy), then unit tests (pytest -m 'not integration and not
  slow') in ``source``.

  $BEAM_PIPELINES_UNIT_TESTS narrows the unit tests to some paths (the harness's own integration
  tests use it so as not to re-run the whole suite they are part of); unset, all tests run.
  The unit tests run on every core (pytest-xdist). A tree whose exact content already passed
  the type check and them, with the same interpreter and packages (``gate_fingerprint``), is not
  checked again.
  """
  env = dict(os.environ, PYTHONPATH=str(source))
  progress('build: lint (ruff check)')
  _check([sys.executable, '-m', 'ruff', 'check', '--no-cache', '.'], source, 'lint', env)
  paths = shlex.split(os.environ.get(layout.UNIT_TESTS_ENV_VAR, ''))
  fingerprint = gate_fingerprint(source, paths)
  stamp = gate_stamp(source, fingerprint)
  if stamp.exists():
    progress(f'build: type check and unit tests passed on this exact tree before (fingerprint '
             f'{fingerprint[:12]}, {stamp.read_text().strip()}): not run again')
    return
  progress('build: type check (mypy)')
  type_check(source)
  parallel = parallel_arguments()
  progress(f'build: unit tests (pytest -m "{UNIT_TEST_MARKERS}"{" " if paths else ""}'
           f'{" ".join(paths)}{" " + " ".join(parallel) if parallel else ""})')
  command = [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', '-m',
             UNIT_TEST_MARKERS, *parallel, *paths]
  summary, output = run_tests_live(command, source, env)
  if summary is None:
    tail = '\n'.join(output.strip().splitlines()[-40:])
    raise HarnessError(f'build: unit tests failed ({" ".join(command[2:])}); nothing was built:'
                       f'\n{tail}')
  stamp.parent.mkdir(parents=True, exist_ok=True)
  stamp.write_text(f'passed {layout.now_utc()}\n')


def run_tests_live(command: List[str], cwd: pathlib.Path, env: Optional[dict] = None,
                   label: str = 'build: unit tests') -> Tuple[Optional[str], str]:
  """Runs pytest -q, showing a live line (tests done, failures; terminal only) and ending with
  pytest's own summary and the time. Returns (summary, or None when it failed; whole output)."""
  line = LiveLine(label)
  process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, bufsize=1)
  stdout = process.stdout
  assert stdout is not None  # stdout=PIPE
  counts = {'.': 0, 'F': 0, 'E': 0, 's': 0, 'x': 0}
  output, at_line_start = [], True
  for char in iter(lambda: stdout.read(1), ''):
    output.append(char)
    if at_line_start and char in counts:  # progress lines are runs of outcome characters
      counts[char] += 1
      line.update(f'{counts["."]} passed, {counts["F"] + counts["E"]} failed, '
                  f'{counts["s"]} skipped')
      continue
    at_line_start = char == '\n' or (at_line_start and char in counts)
  returncode = process.wait()
  text = ''.join(output)
  last = next((t for t in reversed(text.strip().splitlines()) if t.strip()), 'no output')
  summary = last.strip('= ')
  line.finish(summary if returncode == 0 else f'FAILED: {summary}')
  return (summary if returncode == 0 else None), text


def build_distributions(source: pathlib.Path, out_dir: pathlib.Path, epoch: int) -> None:
  """``python -m build --no-isolation``: sdist, then the wheel from it, into ``out_dir``."""
  env = dict(os.environ, SOURCE_DATE_EPOCH=str(epoch), PYTHONPATH=str(source))
  _check([sys.executable, '-m', 'build', '--no-isolation', '--outdir', str(out_dir), str(source)],
         source, 'python -m build', env)


def wheel_metadata(wheel: pathlib.Path) -> Dict[str, str]:
  """Name and Version from the wheel's METADATA."""
  with zipfile.ZipFile(wheel) as archive:
    name = next(n for n in archive.namelist() if n.endswith('.dist-info/METADATA'))
    headers = Parser().parsestr(archive.read(name).decode('utf-8'), headersonly=True)
  return {'name': headers['Name'], 'version': headers['Version']}


def file_entries(out_dir: pathlib.Path) -> Dict[str, records.FileEntry]:
  entries = {}
  for path in sorted(p for p in out_dir.rglob('*') if p.is_file()):
    data = path.read_bytes()
    entries[path.relative_to(out_dir).as_posix()] = records.FileEntry(sha256_bytes(data), len(data))
  return entries


def make_manifest(out_dir: pathlib.Path, build_id: str, commit: Optional[str], dirty: bool,
                  epoch: int) -> records.Manifest:
  wheels = sorted(out_dir.glob('*.whl'))
  sdists = sorted(out_dir.glob('*.tar.gz'))
  if len(wheels) != 1 or len(sdists) != 1:
    raise HarnessError(f'build: expected one wheel and one sdist in {out_dir}, found '
                       f'{[p.name for p in wheels + sdists]}')
  meta = wheel_metadata(wheels[0])
  return records.Manifest(
      name=meta['name'], version=meta['version'], build_id=build_id, wheel=wheels[0].name,
      sdist=sdists[0].name, files=file_entries(out_dir), created_at=layout.now_utc(),
      git_commit=commit, git_dirty=dirty, source_date_epoch=epoch,
      python_version=platform.python_version(),
      beam_version=importlib.metadata.version('apache-beam'))


def _replace_dir(new: pathlib.Path, target: pathlib.Path) -> None:
  """Copies ``new`` beside ``target`` then swaps it in (renames); the old copy is then deleted."""
  staged = target.with_name(f'{target.name}.new-{os.getpid()}')
  old = target.with_name(f'{target.name}.old-{os.getpid()}')
  shutil.copytree(new, staged)
  if target.exists():
    target.rename(old)
  staged.rename(target)
  shutil.rmtree(old, ignore_errors=True)


def build(repo: pathlib.Path, checks: bool = True) -> records.Manifest:
  """Runs the build; returns the manifest, also written to ``dist/manifest.json``."""
  commit, dirty, _ = git_info(repo)
  epoch = wheel_epoch()
  build_id = layout.new_build_id(commit)
  progress(f'build: {build_id} (commit {commit[:7] if commit else "none"}'
           f'{", dirty tree" if dirty else ""}; SOURCE_DATE_EPOCH={epoch})')
  dist = repo / layout.DIST_DIR
  if checks:
    run_gates(repo)
  else:
    progress('build: lint, type check and unit tests SKIPPED (--no-checks)')
  with tempfile.TemporaryDirectory(prefix='beam-pipelines-build-') as tmp:
    source = pathlib.Path(tmp) / 'src'
    snapshot(repo, source)
    progress('build: wheel + sdist (python -m build --no-isolation)')
    out_dir = pathlib.Path(tmp) / 'out'
    build_distributions(source, out_dir, epoch)
    workflows = source / layout.WORKFLOWS_SOURCE_DIR
    for definition in sorted(workflows.glob('*.json')):
      json.loads(definition.read_text(encoding='utf-8'))  # must be valid JSON to be shipped
      (out_dir / layout.WORKFLOWS).mkdir(exist_ok=True)
      shutil.copy2(definition, out_dir / layout.WORKFLOWS / definition.name)
    for dag_file in sorted((source / layout.DAGS_SOURCE_DIR).glob('*.py')):  # Composer's files
      (out_dir / layout.DAGS).mkdir(exist_ok=True)
      shutil.copy2(dag_file, out_dir / layout.DAGS / dag_file.name)
    shutil.copy2(source / layout.LOCK_SOURCE, out_dir / layout.LOCK_FILE)  # pins every install
    manifest = make_manifest(out_dir, build_id, commit, dirty, epoch)
    (out_dir / layout.MANIFEST_FILE).write_text(
        json.dumps(manifest.to_dict(), indent=2, sort_keys=True) + '\n', encoding='utf-8')
    _replace_dir(out_dir, dist)
  progress(f'build: done: {dist / manifest.wheel} (sha256 {manifest.wheel_sha256}), '
           f'manifest {dist / layout.MANIFEST_FILE}')
  return manifest


def load_local_manifest(repo: pathlib.Path) -> records.Manifest:
  """The manifest of the last ``invoke build`` (``dist/manifest.json``), checked against dist/."""
  path = repo / layout.DIST_DIR / layout.MANIFEST_FILE
  if not path.exists():
    raise HarnessError(f'no build found ({path} missing): run `invoke build` first')
  manifest = records.read_manifest(str(path), 'the local build manifest')
  for name, entry in manifest.files.items():
    local = path.parent / name
    if not local.is_file() or sha256_bytes(local.read_bytes()) != entry.sha256:
      raise HarnessError(f'{local} is missing or differs from its manifest: run `invoke build` again')
  return manifest
