"""``invoke dags``: the Composer DAG files of a build, staged for one environment.

Each build ships ``build/dags/*.py`` among its artifacts (``dags/<file>``, sha256 in its manifest),
so the DAG files imported into Composer are those of the build an environment runs: the test
build imports the test DAG of the build it tested, the prod build the prod DAGs of the build it
deployed, whatever the checkout it runs from.

An environment gets its own copies of the helper modules the DAG files share, renamed
(``beam_pipelines_tasks`` -> ``beam_pipelines_test_tasks``), with the imports rewritten to match:
Composer's DAG folder is one flat namespace, so importing the test build's DAG never changes the
code the prod DAG runs::

    test: beam_pipelines_test_dag.py, beam_pipelines_test_tasks.py, beam_pipelines_test_support.py
    prod: beam_pipelines_prod_dag.py, beam_pipelines_ct_dag.py,
          beam_pipelines_prod_tasks.py, beam_pipelines_prod_support.py

``scripts/composer_dags.sh import DIR`` copies a staged folder to the DAG folder's root.
"""

from __future__ import annotations

import pathlib
import re
from typing import Dict, Mapping, Optional, Tuple

from beam_pipelines.harness.errors import HarnessError
from beam_pipelines.store import bucket, layout, records

DAG_FILES: Mapping[str, Tuple[str, ...]] = {
    layout.TEST: ('beam_pipelines_test_dag.py',),
    layout.PROD: ('beam_pipelines_prod_dag.py', 'beam_pipelines_ct_dag.py'),
}
HELPERS = ('beam_pipelines_support', 'beam_pipelines_tasks')  # shared by the DAG files
_IMPORT = re.compile(r'^(\s*(?:import|from)\s+)(' + '|'.join(HELPERS) + r')\b', re.M)


def env_module(helper: str, env: str) -> str:
  """``beam_pipelines_tasks`` -> ``beam_pipelines_<env>_tasks``."""
  return helper.replace('beam_pipelines_', f'beam_pipelines_{env}_', 1)


def rename_imports(text: str, env: str) -> str:
  """Every ``import``/``from`` of a shared helper module names the environment's copy instead."""
  return _IMPORT.sub(lambda m: m.group(1) + env_module(m.group(2), env), text)


def stage(files: Mapping[str, bytes], env: str) -> Dict[str, bytes]:
  """{file name: bytes} of a build's DAG folder -> the files ``env`` imports, renamed."""
  if env not in DAG_FILES:
    raise HarnessError(f'unknown environment {env!r}: expected {" or ".join(DAG_FILES)}')
  wanted = [*DAG_FILES[env], *(f'{helper}.py' for helper in HELPERS)]
  missing = [name for name in wanted if name not in files]
  if missing:
    raise HarnessError(f'the build has no {", ".join(missing)} among its DAG files: build it again '
                       f'with `invoke build`')
  staged = {}
  for name in wanted:
    target = f'{env_module(name[:-3], env)}.py' if name[:-3] in HELPERS else name
    staged[target] = rename_imports(files[name].decode('utf-8'), env).encode('utf-8')
  return staged


def build_dag_files(manifest: records.Manifest, env: layout.Env) -> Dict[str, bytes]:
  """The DAG files of ``manifest``'s build in ``env``, each checked against its sha256."""
  found = {}
  for name, entry in sorted(manifest.files.items()):
    if name.startswith(layout.DAGS + '/'):
      path = env.artifact(manifest.build_id, name)
      data = bucket.read_bytes(path, f'DAG file {name}')
      if bucket.sha256_bytes(data) != entry.sha256:
        raise HarnessError(f'{path} does not have the sha256 the manifest of build '
                           f'{manifest.build_id} records: refusing to import it')
      found[name.split('/', 1)[1]] = data
  if not found:
    raise HarnessError(f'build {manifest.build_id} ships no DAG files (built before they were '
                       f'shipped): build and test it again')
  return found


def stage_build(bucket_url: str, env_name: str, output: pathlib.Path,
                build_id: Optional[str] = None) -> Tuple[str, Dict[str, str]]:
  """Writes into ``output`` the DAG files ``env_name`` imports: those of the build it runs (its
  ``variables.json``), or for test of ``build_id`` (a tested build). Returns (build id,
  {file: sha256 of the staged bytes})."""
  env = layout.Env(bucket_url, env_name)
  if build_id and env_name != layout.TEST:
    raise HarnessError('--build-id is for the test environment: prod imports the DAGs of the '
                       'build it runs (deploy it first)')
  if build_id:
    values = bucket.read_json(env.build_variables(build_id), f'variables of build {build_id}')
    variables = records.check_pointers(env, records.DeploymentVariables.from_dict(
        env.name, values, env.build_variables(build_id)))
  else:
    variables = records.read_variables(env)
  manifest = records.read_manifest(variables.manifest_file, f'manifest of build '
                                   f'{variables.build_id}', variables.manifest_sha256 or None)
  staged = stage(build_dag_files(manifest, env), env_name)
  output.mkdir(parents=True, exist_ok=True)
  for stale in output.glob('*.py'):
    stale.unlink()
  for name, data in sorted(staged.items()):
    (output / name).write_bytes(data)
  return variables.build_id, {name: bucket.sha256_bytes(data) for name, data in staged.items()}
