"""Runs a workflow from a *deployed* wheel: download it from the bucket, check its sha256, install it
into an isolated directory (a local cache keyed by sha256), run the module from there.

The run is a subprocess with ``PYTHONPATH=<install dir>`` and without the signing key in its
environment, started from a temporary directory outside the repository; a launcher checks that ``beam_pipelines`` was imported from the install
directory (not the source tree) before running the module, and the caller checks it again.

The install directory is a cache on this machine, so it is checked before every use against the
verified wheel's own ``RECORD`` (each file's sha256, and no file the wheel does not ship): a
changed or added file there makes it reinstall, with a message. Nothing is byte-compiled into it
(``--no-compile``, and runs set ``PYTHONDONTWRITEBYTECODE``), so there is nothing unrecorded to run.
"""

from __future__ import annotations

import base64
import csv
import importlib.util
import io
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from beam_pipelines.harness.errors import HarnessError
from beam_pipelines.store import bucket, layout, signing
from beam_pipelines.store.console import progress
from beam_pipelines.store.identity import INSTALLED_MARKER

ORIGIN_TAG = 'deployed-wheel-origin='

LAUNCHER = '''
import runpy, sys
site, module = sys.argv[1], sys.argv[2]
import beam_pipelines
origin = beam_pipelines.__file__
if not origin.startswith(site.rstrip("/") + "/"):
  sys.exit(f"deployed-wheel check failed: beam_pipelines was imported from {origin}, not {site}")
print("[beam-pipelines] %s%s" % ("''' + ORIGIN_TAG + '''", origin), file=sys.stderr, flush=True)
sys.argv = [module] + sys.argv[3:]
runpy.run_module(module, run_name="__main__", alter_sys=True)
'''


def installer_command(target: pathlib.Path, wheel: pathlib.Path) -> List[str]:
  """``pip install --no-deps --target``; uv's pip when this interpreter has no pip (uv venvs)."""
  if importlib.util.find_spec('pip') is not None:
    return [sys.executable, '-m', 'pip', 'install', '--quiet', '--no-deps', '--no-index',
            '--no-compile', '--disable-pip-version-check', '--target', str(target), str(wheel)]
  uv = shutil.which('uv') or str(pathlib.Path(sys.executable).with_name('uv'))
  if not os.path.exists(uv):
    raise HarnessError('neither pip nor uv is available to install the deployed wheel')
  return [uv, 'pip', 'install', '--quiet', '--no-deps', '--no-index', '--python', sys.executable,
          '--target', str(target), str(wheel)]


def install(wheel_url: str, sha256: str, cache_root: pathlib.Path) -> pathlib.Path:
  """Verifies the wheel in the bucket and installs it (once per sha256); returns the install dir."""
  home = cache_root / 'wheels' / sha256
  site = home / 'site'
  bucket.remove_stale_temps(str(home), 'install')
  wheel = pathlib.Path(bucket.fetch_verified(
      wheel_url, sha256, str(home / wheel_url.rsplit('/', 1)[-1]), 'deployed wheel'))
  marker = site / INSTALLED_MARKER
  if marker.is_file() and marker.read_text().strip() == sha256:
    problem = site_problem(site, wheel)
    if problem is None:
      progress(f'install: wheel {sha256[:12]} already installed in {site} (files verified)')
      return site
    progress(f'install: the installed copy in {site} is not the wheel\'s ({problem}); '
             f'installing it again')
  staging = home / bucket.temp_name(directory=True)
  staging.mkdir(mode=0o700)
  command = installer_command(staging, wheel)
  progress(f'install: {" ".join(command[:3])} --no-deps --target {site} {wheel.name} '
           f'(sha256 verified)')
  done = subprocess.run(command, capture_output=True, text=True)
  problem = site_problem(staging, wheel) if done.returncode == 0 else done.stderr.strip()
  if problem is not None:
    shutil.rmtree(staging, ignore_errors=True)
    raise HarnessError(f'could not install {wheel}: {problem}')
  (staging / INSTALLED_MARKER).write_text(sha256 + '\n')
  if site.exists():  # a half-finished earlier install (no marker): replace it
    shutil.rmtree(site)
  staging.rename(site)
  return site


def wheel_record(wheel: pathlib.Path) -> Dict[str, Optional[str]]:
  """{installed relative path: 'sha256=<urlsafe base64>' or None} from the wheel's RECORD."""
  with zipfile.ZipFile(wheel) as archive:
    names = [n for n in archive.namelist() if n.endswith('.dist-info/RECORD') and n.count('/') == 1]
    if len(names) != 1:
      raise HarnessError(f'{wheel} has no single .dist-info/RECORD: not a wheel')
    rows = csv.reader(io.StringIO(archive.read(names[0]).decode('utf-8')))
    return {row[0]: (row[1] or None) for row in rows if row}


def _record_hash(path: pathlib.Path) -> str:
  digest = bucket.sha256_of(str(path))
  return 'sha256=' + base64.urlsafe_b64encode(bytes.fromhex(digest)).rstrip(b'=').decode()


def site_problem(site: pathlib.Path, wheel: pathlib.Path) -> Optional[str]:
  """None when ``site`` holds exactly the wheel's files with their RECORD hashes, else the first
  difference. Allowed besides: the installer's own metadata files in the ``.dist-info`` folder and
  the marker of a finished install."""
  record = wheel_record(wheel)
  for name, expected in sorted(record.items()):
    path = site / name
    if not path.is_file():
      return f'{name} is missing'
    if expected is not None and _record_hash(path) != expected:
      return f'{name} was changed'
  dist_info = {name.split('/', 1)[0] for name in record if '.dist-info/' in name}
  for path in sorted(site.rglob('*')):
    name = path.relative_to(site).as_posix()
    if path.is_dir() or name in record or name == INSTALLED_MARKER:
      continue
    if name.split('/', 1)[0] in dist_info and name.count('/') == 1 and not name.endswith('.py'):
      continue  # INSTALLER, REQUESTED, direct_url.json: written by the installer, never run
    return f'{name} is not a file of the wheel'
  return None


def workflow_environment() -> Dict[str, str]:
  """This process's environment without the signing key: it stays in the process that signs."""
  return {k: v for k, v in os.environ.items() if k != signing.SIGNING_KEY_ENV_VAR}


class Launched(NamedTuple):
  """A workflow that ran from a deployed wheel: where the package came from, its exit status,
  the lines it printed (stdout and stderr, in order)."""
  origin: str
  returncode: int
  output: Tuple[str, ...] = ()


def launch(site: pathlib.Path, module: str, args: List[str],
           accept: Sequence[int] = (0,)) -> Launched:
  """Runs ``python -m module args`` from ``site`` only; an exit status not in ``accept`` is a
  HarnessError with the output's tail (a status in it is the workflow's answer, e.g. ct's)."""
  env = dict(workflow_environment(), PYTHONPATH=str(site), PYTHONDONTWRITEBYTECODE='1')
  origin, output = None, []
  with tempfile.TemporaryDirectory(prefix='beam-pipelines-run-') as cwd:
    with subprocess.Popen([sys.executable, '-c', LAUNCHER, str(site), module, *args], cwd=cwd,
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True) as child:
      assert child.stdout is not None  # stdout=PIPE
      for line in child.stdout:  # progress lines are relayed as they come, not at the end
        line = line.rstrip('\n')
        output.append(line)
        if ORIGIN_TAG in line:
          origin = line.split(ORIGIN_TAG, 1)[1].strip()
        elif line.startswith('[beam-pipelines]'):
          print(line, file=sys.stderr, flush=True)
    returncode = child.wait()
  if returncode not in accept:
    tail = '\n'.join(output[-30:]).strip()
    raise HarnessError(f'workflow {module} failed (exit {returncode}):\n{tail}')
  if origin is None or not origin.startswith(str(site) + os.sep):
    raise HarnessError(f'{module} did not run from the deployed wheel at {site} (came from {origin})')
  progress(f'workflow: {module} ran from the deployed wheel: {origin}')
  return Launched(origin, returncode, tuple(output))


def cache_root(repo: pathlib.Path) -> pathlib.Path:
  """$BEAM_PIPELINES_CACHE, else ``<repo>/.harness-cache`` (gitignored)."""
  return pathlib.Path(os.environ.get(layout.CACHE_ENV_VAR) or repo / layout.CACHE_DIR)
