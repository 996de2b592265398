"""Optional signing of records with a key kept outside the bucket ($BEAM_PIPELINES_SIGNING_KEY).

Without a key nothing is signed or checked: a "test passed" record is trusted as far as the
bucket's write permissions go (docs/harness.md, "Trust and threat model"). With a key, the test
step signs the record (HMAC-SHA256 over its canonical JSON, the signature field left out) and
deploy refuses a record that is unsigned or signed with another key, so write access to the test
area is no longer enough to make a build deployable. On GCP the key would live in Secret Manager
(or the HMAC be replaced by a Cloud KMS MAC key) and be given only to CI and deployers.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from typing import Any, Mapping, Optional

from beam_pipelines.store.errors import StorageError

SIGNING_KEY_ENV_VAR = 'BEAM_PIPELINES_SIGNING_KEY'
SIGNATURE = 'signature'  # the field of a signed record
UNSIGNED_HINT = (' (a record written before the key was set: see docs/harness.md, "Turning signing '
                 'on over an existing bucket")')


def signing_key() -> Optional[bytes]:
  """The key, or None when signing is off."""
  key = os.environ.get(SIGNING_KEY_ENV_VAR, '')
  return key.encode('utf-8') if key else None


def signature(record: Mapping[str, Any], key: bytes) -> str:
  """HMAC-SHA256 of ``record`` without its signature field, as canonical JSON."""
  body = {k: v for k, v in record.items() if k != SIGNATURE}
  canonical = json.dumps(body, sort_keys=True, separators=(',', ':'), default=str)
  return 'hmac-sha256:' + hmac.new(key, canonical.encode('utf-8'), hashlib.sha256).hexdigest()


def sign(record: Mapping[str, Any]) -> dict:
  """``record`` with its signature when a key is set; unchanged (no field) otherwise."""
  key = signing_key()
  return dict(record, **({SIGNATURE: signature(record, key)} if key else {}))


def check(record: Mapping[str, Any], what: str) -> None:
  """Refuses ``record`` when a key is set and it is not signed with that key."""
  key = signing_key()
  if key is None:
    return
  given = record.get(SIGNATURE)
  if not isinstance(given, str) or not hmac.compare_digest(given, signature(record, key)):
    raise StorageError(f'{what} is {"not signed" if not given else "signed with another key"} '
                       f'(${SIGNING_KEY_ENV_VAR} is set): it was not written by a test step '
                       f'holding the key. Refusing to use it{UNSIGNED_HINT if not given else ""}.')
