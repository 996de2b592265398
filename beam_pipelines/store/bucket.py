"""Bucket I/O through Beam's ``FileSystems`` (local paths and ``gs://`` alike): atomic writes, sha256.

Local reads (``exists``, ``read_bytes``, ``sha256_of``, listings) use the file system directly,
exactly as Beam's ``LocalFileSystem`` does, so that read-only commands never import Beam.

Atomic writes: on a local filesystem, a temporary sibling object is written then renamed over the
target (POSIX rename is atomic); on an object store (``gs://``) a single-object put is atomic, so
the object is written directly. Readers therefore see the old or the new content, never half.
Every temporary name is ``temp_name()``'s: ``.beam-pipelines-tmp-<pid>-<16 hex>`` (``.site`` for an
install's staging directory), matched exactly by ``TEMP_NAME``; ``clean_stale_temps`` removes those
of writers that are gone and nothing else, so a user's ``notes.tmp-1-v2`` or ``site-9-east`` stays.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import re
import secrets
import shutil
import socket
import urllib.parse
import warnings
from typing import BinaryIO, Iterable, List, Mapping, Optional, Set, Tuple

from beam_pipelines.store import layout
from beam_pipelines.store.console import progress
from beam_pipelines.store.errors import StorageError

_CHUNK = 1 << 20
# The temporary names of this module's writers and the installer's staging dirs (group 1: the
# writer's pid; ``.site``: a directory). Nothing else is ever cleaned as temporary.
TEMP_PREFIX = '.beam-pipelines-tmp-'
TEMP_DIR_SUFFIX = '.site'
TEMP_NAME = re.compile(re.escape(TEMP_PREFIX) + r'([1-9][0-9]{0,9})-[0-9a-f]{16}'
                       + f'({re.escape(TEMP_DIR_SUFFIX)})?')
EMULATOR_ENV_VAR = 'STORAGE_EMULATOR_HOST'  # a local GCS server (google-cloud-storage's variable)
_credentials_checked = False


def temp_name(directory: bool = False) -> str:
  """A fresh temporary name of this process (``TEMP_NAME``): pid and 64 random bits."""
  return f'{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(8)}{TEMP_DIR_SUFFIX if directory else ""}'


def is_temp_name(name: str) -> bool:
  """Whether a file or folder name (no directory) is one of ``temp_name``'s."""
  return TEMP_NAME.fullmatch(name) is not None


def _create_temp(directory: str) -> Tuple[int, str]:
  """(fd, path) of a new private temporary file in ``directory`` (like ``tempfile.mkstemp``)."""
  while True:
    path = os.path.join(directory, temp_name())
    try:
      return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600), path
    except FileExistsError:
      continue


def _fs(path: str):
  """Beam's FileSystems, for ``path`` (a gs:// path first settles the credential question)."""
  from apache_beam.io.filesystems import FileSystems  # imports apache_beam (~2 s): only when used
  if path.startswith('gs://'):
    avoid_credential_retries()
  return FileSystems


def avoid_credential_retries() -> None:
  """Spares this process Beam's ~20 s of credential retries when there are none to find.

  Beam looks up Google's default credentials with four retries (1.3 + 3.5 + 5.6 + 9.5 s) before
  it falls back to an anonymous GCS client. With a local GCS server (``$STORAGE_EMULATOR_HOST``),
  or when one look-up finds no credentials, that outcome is known at once: it is recorded in
  Beam's credential cache (``auth._Credentials``, which caches exactly that result), so gs:// is
  reached anonymously without the wait. With credentials, nothing changes.
  """
  global _credentials_checked
  if _credentials_checked:
    return
  _credentials_checked = True
  try:
    import google.auth
    from apache_beam.internal.gcp import auth
  except ImportError:
    return
  if not os.environ.get(EMULATOR_ENV_VAR):
    try:
      google.auth.default()
      return
    except google.auth.exceptions.DefaultCredentialsError:
      pass
  with auth._Credentials._credentials_lock:
    if not auth._Credentials._credentials_init:
      auth._Credentials._credentials = None
      auth._Credentials._credentials_init = True


def _uncompressed():
  from apache_beam.io.filesystem import CompressionTypes
  return CompressionTypes.UNCOMPRESSED  # never let a '.gz' name compress/decompress our bytes


def is_local(path: str) -> bool:
  return '://' not in path


def resolve_bucket(bucket: Optional[str], repo_root: pathlib.Path) -> str:
  """``--bucket`` if given, else $BEAM_PIPELINES_BUCKET, else ``<repo>/bucket``; local dirs absolute."""
  url = bucket or os.environ.get(layout.BUCKET_ENV_VAR) or str(repo_root / layout.DEFAULT_BUCKET_DIR)
  if is_local(url):
    url = str(pathlib.Path(url).expanduser().resolve())
  return url.rstrip('/')


REACH_TIMEOUT_SECONDS = 5.0
GCS_HOST = ('storage.googleapis.com', 443)


def check_reachable(url: str, timeout: float = REACH_TIMEOUT_SECONDS) -> None:
  """For a ``gs://`` bucket, refuses within ``timeout`` seconds when the storage endpoint (or
  $STORAGE_EMULATOR_HOST) cannot be reached, instead of minutes of client retries. A local
  bucket that is a file is refused."""
  if is_local(url):
    if os.path.exists(url) and not os.path.isdir(url):
      raise StorageError(f'the bucket {url} is a file, not a directory: give a directory or '
                         f'gs:// URL. Nothing was done.')
    return
  if not url.startswith('gs://'):
    return
  emulator = os.environ.get('STORAGE_EMULATOR_HOST')
  if emulator:
    check_emulator_host(emulator)
    parsed = urllib.parse.urlsplit(emulator)
    host, port = parsed.hostname or '', parsed.port or (443 if parsed.scheme == 'https' else 80)
  else:
    host, port = GCS_HOST
  try:
    socket.create_connection((host, port), timeout=timeout).close()
  except OSError as error:
    raise StorageError(f'cannot reach {host}:{port} for {url} within {timeout:.0f} s '
                       f'({error.strerror or error}): check the network'
                       f'{" and $STORAGE_EMULATOR_HOST" if emulator else ""}. '
                       f'Nothing was done.') from None


def check_emulator_host(value: str) -> None:
  """Refuses a $STORAGE_EMULATOR_HOST that is not ``http(s)://host[:port]``: google-cloud-storage
  needs the scheme, and without it every request fails far from the cause."""
  try:
    parsed = urllib.parse.urlsplit(value)
    port_ok = parsed.port is None or parsed.port > 0
  except ValueError:
    parsed, port_ok = None, False
  if parsed is None or parsed.scheme not in ('http', 'https') or not parsed.hostname or not port_ok:
    raise StorageError(f'${EMULATOR_ENV_VAR} is {value!r}: expected http://HOST:PORT or '
                       f'https://HOST:PORT (with the scheme), e.g. http://localhost:9023. '
                       f'Nothing was done.')


GS_BUCKET = re.compile(r'gs://([a-z0-9][a-z0-9._-]*)', re.IGNORECASE)
_reached: Set[str] = set()  # gs:// buckets this process has reached


def gs_buckets(values: Iterable[object]) -> List[str]:
  """The distinct ``gs://<bucket>`` named anywhere in ``values`` (flags, ``--k=v``, lists)."""
  found: List[str] = []
  for value in values:
    for name in GS_BUCKET.findall(str(value)):
      if f'gs://{name}' not in found:
        found.append(f'gs://{name}')
  return found


def refuse_unreachable(values: Iterable[object]) -> None:
  """``check_reachable`` for each gs:// bucket named in ``values`` (a command line's arguments):
  what every entry point runs first, so an unreachable bucket is one line in seconds."""
  for url in gs_buckets(values):
    if url not in _reached:
      check_reachable(url)
      _reached.add(url)


def exists(path: str) -> bool:
  if is_local(path):
    return os.path.exists(path)  # what Beam's LocalFileSystem does, without importing Beam
  return _fs(path).exists(path)


def _open_read(path: str) -> BinaryIO:
  """A binary reader of ``path``: the file itself locally, Beam's FileSystems elsewhere."""
  if is_local(path):
    return open(path, 'rb')  # Beam's LocalFileSystem.open of an uncompressed file is exactly this
  return _fs(path).open(path, compression_type=_uncompressed())


def read_bytes(path: str, what: str = 'object') -> bytes:
  if not exists(path):
    raise StorageError(f'{what} not found: {path}')
  with _open_read(path) as handle:
    return handle.read()


def read_json(path: str, what: str = 'JSON object') -> dict:
  """Reads a JSON object; a missing or invalid file is a StorageError naming the path and the fix."""
  data = read_bytes(path, what)
  try:
    value = json.loads(data.decode('utf-8'))
  except (UnicodeDecodeError, json.JSONDecodeError) as error:
    raise StorageError(
        f'{what} at {path} is not valid JSON ({error}). The harness writes it atomically, so it was '
        f'edited by hand or by another tool: inspect it, then restore or delete it. '
        f'Nothing was changed.') from None
  if not isinstance(value, dict):
    raise StorageError(f'{what} at {path} is not a JSON object. Nothing was changed.')
  return value


def write_bytes(path: str, data: bytes) -> None:
  """Writes ``data`` to ``path`` atomically (temp + rename locally, single put on object stores)."""
  fs = _fs(path)
  target = path
  if is_local(path):
    target = os.path.join(os.path.dirname(path), temp_name())
  with fs.create(target, mime_type='application/octet-stream',
                 compression_type=_uncompressed()) as handle:
    handle.write(data)
  if target != path:
    fs.rename([target], [path])


def write_json(path: str, value: Mapping[str, object]) -> None:
  write_bytes(path, (json.dumps(value, indent=2, sort_keys=True) + '\n').encode('utf-8'))


def sha256_bytes(data: bytes) -> str:
  return hashlib.sha256(data).hexdigest()


def sha256_of(path: str) -> str:
  """sha256 of an object, streamed."""
  if not exists(path):
    raise StorageError(f'artifact missing: {path}')
  digest = hashlib.sha256()
  with _open_read(path) as handle:
    for chunk in iter(lambda: handle.read(_CHUNK), b''):
      digest.update(chunk)
  return digest.hexdigest()


def verify(path: str, expected_sha256: str, what: str = 'artifact') -> None:
  """Raises unless ``path`` exists, is not empty and has ``expected_sha256``."""
  if not exists(path):
    raise StorageError(f'{what} missing: {path}')
  if size(path) == 0:
    raise StorageError(f'{what} is empty (0 bytes): {path}')
  actual = sha256_of(path)
  if actual != expected_sha256:
    raise StorageError(
        f'{what} bytes changed: {path} has sha256 {actual}, expected {expected_sha256} '
        f'(recorded at build time). Refusing to use it.')


def fetch_verified(url: str, expected_sha256: str, local_path: str, what: str = 'artifact') -> str:
  """Copies the object at ``url`` to the local file ``local_path``, hashing while it streams; the
  file appears (renamed into place) only when its sha256 is ``expected_sha256``. Returns the path."""
  if not exists(url):
    raise StorageError(f'{what} missing: {url}')
  directory = os.path.dirname(os.path.abspath(local_path))
  os.makedirs(directory, exist_ok=True)
  fd, scratch = _create_temp(directory)
  digest = hashlib.sha256()
  try:
    with os.fdopen(fd, 'wb') as target, _open_read(url) as source:
      for chunk in iter(lambda: source.read(_CHUNK), b''):
        digest.update(chunk)
        target.write(chunk)
    if digest.hexdigest() != expected_sha256:
      raise StorageError(
          f'{what} bytes changed: {url} has sha256 {digest.hexdigest()}, expected '
          f'{expected_sha256} (recorded at build time). Refusing to use it.')
    os.replace(scratch, local_path)
  finally:
    if os.path.exists(scratch):
      os.unlink(scratch)
  return os.path.abspath(local_path)


def escape_pattern(path: str) -> str:
  """``path`` as a literal in a FileSystems match pattern: ``[``, ``*``, ``?`` in a bucket or
  object name (``runs[1]``) match themselves, not a character class."""
  return re.sub(r'([\[*?])', r'[\1]', path)


def check_bucket_name(url: str) -> None:
  """Refuses a bucket whose path holds ``[``, ``*`` or ``?``: Beam's file sinks match their own
  output paths as patterns, so no pipeline could write in it (the harness's own I/O is literal)."""
  odd = sorted({c for c in url if c in '[*?'})
  if odd:
    raise StorageError(f'the bucket path {url} holds {" ".join(repr(c) for c in odd)}: Beam\'s file '
                       f'writers read their output paths as patterns, so no pipeline could write '
                       f'there; use a path without [, * or ?. Nothing was done.')


def size(path: str) -> int:
  if is_local(path):
    return os.path.getsize(path) if os.path.isfile(path) else 0
  with warnings.catch_warnings():
    warnings.simplefilter('ignore', FutureWarning)
    metadata = _fs(path).match([escape_pattern(path)])[0].metadata_list
  return metadata[0].size_in_bytes if metadata else 0


def copy_verified(source: str, destination: str, expected_sha256: str, what: str) -> None:
  """Copies ``source`` to ``destination`` atomically, checking sha256 on both sides."""
  verify(source, expected_sha256, what)
  data = read_bytes(source, what)
  if sha256_bytes(data) != expected_sha256:  # changed between the check and the read
    raise StorageError(f'{what} changed while being copied: {source}. Refusing.')
  write_bytes(destination, data)
  verify(destination, expected_sha256, f'copy of {what}')


def _match(pattern: str) -> List[str]:
  """Paths of the objects matching an object-store pattern (escaped parts match literally)."""
  with warnings.catch_warnings():  # Beam's translation of an escaped '[' warns "nested set"
    warnings.simplefilter('ignore', FutureWarning)
    return [m.path for m in _fs(pattern).match([pattern])[0].metadata_list]


def list_files(prefix: str) -> List[str]:
  """Objects directly under ``prefix`` (a directory-like prefix), sorted by name; temporary
  objects of the atomic writer are not listed. Names with ``[``, ``*``, ``?`` are literal."""
  if is_local(prefix):
    directory = prefix.rstrip('/')
    names = os.listdir(directory) if os.path.isdir(directory) else []
    paths = [os.path.join(directory, n) for n in names if os.path.isfile(os.path.join(directory, n))]
  else:
    paths = _match(layout.join(escape_pattern(prefix), '*'))
  return sorted(p for p in paths if not is_temp_name(p.rsplit('/', 1)[-1]))


def list_tree(prefix: str) -> List[str]:
  """Every object under ``prefix``, recursively, sorted."""
  if is_local(prefix):
    return sorted(os.path.join(root, name) for root, _, names in os.walk(prefix.rstrip('/'))
                  for name in names)
  return sorted(_match(layout.join(escape_pattern(prefix), '**')))


def delete(path: str) -> None:
  """Deletes ``path`` if it exists; one already gone (another process was faster) is no error."""
  if is_local(path):
    try:
      os.unlink(path)
    except FileNotFoundError:
      pass
    return
  if exists(path):
    _fs(path).delete([path])


def create_exclusive(path: str, data: bytes) -> bool:
  """Creates ``path`` only if it does not exist. Returns False if it already exists.

  Locally: ``open(O_CREAT | O_EXCL)``, atomic on POSIX. On GCS: an upload with the precondition
  ``if_generation_match=0`` ("only if no live object"), which GCS evaluates atomically; a second
  writer gets HTTP 412 (tests/test_gcs.py races it on a local GCS server that enforces it).
  """
  if is_local(path):
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    # Written in full under a private name, then hard-linked into place: link() fails if the
    # name exists (atomic on POSIX), so no reader ever sees a half-written object.
    fd, scratch = _create_temp(directory)
    try:
      with os.fdopen(fd, 'wb') as handle:
        handle.write(data)
      os.chmod(scratch, 0o644)
      try:
        os.link(scratch, path)
      except FileExistsError:
        return False
      return True
    finally:
      os.unlink(scratch)
  if path.startswith('gs://'):
    from google.api_core.exceptions import PreconditionFailed
    try:
      _gcs_blob(path).upload_from_string(data, if_generation_match=0)
    except PreconditionFailed:
      return False
    return True
  raise StorageError(f'exclusive create is not implemented for {path}: use a local dir or gs://')


def _pid_running(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except (PermissionError, OverflowError):
    return True
  return True


def clean_stale_temps(prefix: str) -> List[str]:
  """Removes the temporary files (and install staging dirs) under the local ``prefix`` whose
  writer process no longer runs on this host; returns their paths. Only names ``TEMP_NAME``
  matches exactly are touched, and a folder only when named as one; symlinks are never followed.
  Object stores have none."""
  if not is_local(prefix) or not os.path.isdir(prefix):
    return []
  removed = []
  for root, dirs, files in os.walk(prefix):
    for name in list(files) + list(dirs):
      match = TEMP_NAME.fullmatch(name)
      if not match or _pid_running(int(match.group(1))):
        continue
      path = os.path.join(root, name)
      is_dir = os.path.isdir(path) and not os.path.islink(path)
      if is_dir != bool(match.group(2)):
        continue
      if is_dir:
        shutil.rmtree(path, ignore_errors=True)
        dirs.remove(name)
      else:
        try:
          os.unlink(path)
        except FileNotFoundError:
          continue
      removed.append(path)
  return removed


def remove_stale_temps(prefix: str, step: str) -> List[str]:
  """``clean_stale_temps`` with one progress line naming what ``step`` removed (nothing: silent)."""
  removed = clean_stale_temps(prefix)
  if removed:
    shown = ', '.join(removed[:3]) + (f' and {len(removed) - 3} more' if len(removed) > 3 else '')
    progress(f'{step}: removed {len(removed)} temporary file(s) left by writers that are gone: '
             f'{shown}')
  return removed


def _gcs_blob(path: str):
  """The google-cloud-storage blob of a gs:// path (anonymous without credentials)."""
  from google.auth.exceptions import DefaultCredentialsError
  from google.cloud.storage import Client
  bucket_name, _, name = path[len('gs://'):].partition('/')
  try:
    client = Client()
  except DefaultCredentialsError:
    client = Client.create_anonymous_client()
  return client.bucket(bucket_name).blob(name)


def read_versioned(path: str) -> Tuple[Optional[bytes], Optional[int]]:
  """(content, generation) of an object; (None, None) if absent. Locally the generation is None."""
  if not path.startswith('gs://'):
    try:
      return (read_bytes(path) if exists(path) else None), None
    except StorageError:  # removed between the two calls
      return None, None
  from google.api_core.exceptions import NotFound
  blob = _gcs_blob(path)
  try:
    data = blob.download_as_bytes()
  except NotFound:
    return None, None
  return data, blob.generation


def delete_if_unchanged(path: str, generation: Optional[int], content: bytes) -> bool:
  """Deletes ``path`` only if it is still the object that was read; True if deleted.

  On GCS: a delete with ``if_generation_match=<generation read>``, which GCS evaluates atomically
  (a lock re-taken meanwhile has a new generation and survives). Locally: the content is compared
  just before the delete (a window of microseconds).
  """
  if path.startswith('gs://'):
    from google.api_core.exceptions import NotFound, PreconditionFailed
    try:
      _gcs_blob(path).delete(if_generation_match=generation)
    except (PreconditionFailed, NotFound):
      return False
    return True
  if not exists(path) or read_bytes(path) != content:
    return False
  delete(path)
  return True


def replace_if_unchanged(path: str, generation: Optional[int], expected: bytes,
                         data: bytes) -> bool:
  """Replaces the object that was read (``expected``, ``generation``) by ``data``; True if done.

  On GCS: one upload with ``if_generation_match=<generation read>``, evaluated atomically: if
  anyone replaced or removed the object since it was read, nothing is written and this returns
  False. Locally: ``delete_if_unchanged`` then ``create_exclusive`` (of two replacers, one wins).
  """
  if path.startswith('gs://'):
    from google.api_core.exceptions import NotFound, PreconditionFailed
    try:
      _gcs_blob(path).upload_from_string(data, if_generation_match=generation)
    except (PreconditionFailed, NotFound):
      return False
    return True
  return delete_if_unchanged(path, None, expected) and create_exclusive(path, data)
