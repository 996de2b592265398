"""Putting a build into an environment: its files, its workflow definitions, its variables.

Shared by ``invoke test`` (the test environment) and ``deploy``/``rollback`` (prod). Every copy is
sha256-checked against the build's manifest on both sides.
"""

from __future__ import annotations

import pathlib

from beam_pipelines.store import bucket, layout, records
from beam_pipelines.store.identity import actor


def upload(manifest: records.Manifest, dist: pathlib.Path, env: layout.Env) -> None:
  """Uploads every file of the build and its manifest; verifies each upload's sha256."""
  for name, entry in sorted(manifest.files.items()):
    target = env.artifact(manifest.build_id, name)
    bucket.write_bytes(target, (dist / name).read_bytes())
    bucket.verify(target, entry.sha256, f'uploaded {name}')
  bucket.write_bytes(env.manifest(manifest.build_id), (dist / layout.MANIFEST_FILE).read_bytes())


def deploy_workflows(manifest: records.Manifest, source: layout.Env, target: layout.Env) -> str:
  """Copies the build's workflow definitions to ``<target>/workflows/<build_id>/`` (verified)."""
  build_id = manifest.build_id
  for name, entry in manifest.workflow_files().items():
    bucket.copy_verified(source.artifact(build_id, name),
                         layout.join(target.workflows(build_id), name.split('/', 1)[1]),
                         entry.sha256, f'workflow definition {name}')
  return target.workflows(build_id)


def deployment_variables(env: layout.Env, manifest: records.Manifest,
                         **extra: records.VariableValue) -> records.Variables:
  """The variables of ``env`` for the build of ``manifest`` (what every workflow reads); they pin
  the manifest already written to ``env`` by its sha256."""
  build_id = manifest.build_id
  values: records.Variables = {
      layout.VAR_BUILD_ID: build_id,
      layout.VAR_VERSION: manifest.version,
      layout.VAR_WHEEL_FILE: env.artifact(build_id, manifest.wheel),
      layout.VAR_SHA256: manifest.wheel_sha256,
      layout.VAR_MANIFEST_FILE: env.manifest(build_id),
      layout.VAR_MANIFEST_SHA256: bucket.sha256_of(env.manifest(build_id)),
      layout.VAR_WORKFLOWS_DIR: env.workflows(build_id),
      layout.VAR_DEPLOYED_AT: layout.now_utc(),
      layout.VAR_DEPLOYED_BY: actor(),
  }
  lock = manifest.files.get(layout.LOCK_FILE)
  if lock:  # builds before the lock was shipped have none
    values[layout.VAR_LOCK_FILE] = env.artifact(build_id, layout.LOCK_FILE)
    values[layout.VAR_LOCK_SHA256] = lock.sha256
  values.update(env.location_variables())
  values.update(extra)
  return values
