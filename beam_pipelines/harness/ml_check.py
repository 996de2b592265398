"""The level-2 gate: each declared pipeline's model in the candidate build against production's,
in `invoke test` and deploy.

``invoke test`` runs the test workflow ``ml_test`` (``python -m beam_pipelines.ct --check``) of the
candidate build from its uploaded wheel: every pipeline the build declares is trained on its own
integration data (shipped in the wheel, in its folder) and judged against a baseline from
``baseline_variables``: the model the production build's pipeline produced on the same
integration data (recorded by that build's own test), else the registry's production model of
that pipeline, else none (rubber stamp). The ``ml_model`` check reads the results; the "test
passed" record keeps them under ``"ml"``, one entry per pipeline; ``refuse_unblessed`` makes
deploy refuse a build with any NOT_BLESSED model unless a reason overrides it (recorded in prod's
variables and history with the pipelines it covers).

Nothing the check trusts is read from ``test/``: the baselines are resolved in memory (the signed
passed record of prod's build, else the registry's sha256-checked record) and handed to the
workflow in a private local directory of this run, which also holds its step cache and outputs.
Only afterwards are the outputs copied to ``test/results/<build_id>/ml/`` as evidence, each
verdict's model as the bytes whose sha256 the run recorded.
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Dict, Final, List, Optional, Tuple, TypedDict, cast

from beam_pipelines.ct import lineage, registry
from beam_pipelines.ct.definition import declared_pipelines, load_definition
from beam_pipelines.ct.outcomes import PipelineCheck, read_checks
from beam_pipelines.ct.paths import model_registry
from beam_pipelines.harness.errors import HarnessError
from beam_pipelines.harness.results import (
    CheckResult,
    MlSection,
    MlVerdict,
    ResultEntry,
    TestReport,
    read_passed,
)
from beam_pipelines.ml.artifacts import BLESSED, MODEL_FILE, NOT_BLESSED
from beam_pipelines.store import bucket, layout, records
from beam_pipelines.store.console import progress
from beam_pipelines.store.errors import Refusal

ML_CHECK = 'ml_model'
# Values of the ML workflow, given in memory (never read back from test/variables.json):
VAR_CACHE = 'ml_cache_location'  # private local step cache of this run
VAR_OUTPUT = 'ml_output_location'  # private local outputs of this run
VAR_BASELINES = 'ml_baselines'  # private local JSON file {pipeline: {model_dir, model_sha256, ...}}
VAR_BASELINE_SOURCE = 'ml_baseline_source'
VAR_OVERRIDE: Final = 'blessing_override'  # prod variable / history field: why a NOT_BLESSED build went out
VAR_OVERRIDE_PIPELINES: Final = 'blessing_override_pipelines'  # ... and whose models it covered
EVIDENCE_DIR = 'ml'  # test/results/<build_id>/ml: the check's outputs, as evidence
RUBBER_STAMP = 'none: no production model yet (rubber stamp)'


class BlessingOverride(TypedDict):
  """Why a build with NOT_BLESSED models went out anyway, and whose models: recorded in prod's
  variables and its history event."""
  blessing_override: str
  blessing_override_pipelines: List[str]


def _production_build_model(bucket_url: str, pipeline: str,
                            data_sha256: Optional[str]) -> Optional[Tuple[Dict[str, str], str]]:
  """The model the live prod build's pipeline produced on this integration data (its test)."""
  prod, test = layout.Env(bucket_url, layout.PROD), layout.Env(bucket_url, layout.TEST)
  live = records.deployed(prod)
  if live is None or not bucket.exists(test.passed(live.build_id)):
    return None
  ml = read_passed(bucket_url, live.build_id).ml_by_pipeline.get(pipeline)  # signature checked
  model_dir = ml.get('model_dir') if ml else None
  if not ml or ml.get('data_sha256') != data_sha256 or not model_dir:
    return None
  model_file = layout.join(model_dir, 'model.joblib')
  if not bucket.exists(model_file):  # e.g. the test cache was cleaned: fall back to the registry
    return None
  model_sha256 = ml.get('model_sha256')
  if not model_sha256:
    raise HarnessError(f'the test-passed record of prod build {live.build_id} names model '
                       f'{model_dir} of {pipeline} without its sha256. Refusing to use it.')
  bucket.verify(model_file, model_sha256, f'model of prod build {live.build_id}')
  return ({'model_dir': model_dir, 'model_sha256': model_sha256},
          f'the model of prod build {live.build_id} on the same integration data')


def _registry_production(bucket_url: str, pipeline: str) -> Optional[Tuple[Dict[str, str], str]]:
  reg = model_registry(bucket_url, pipeline)
  if reg.aliases().get(registry.PRODUCTION) is None:
    return None
  directory, record = reg.verified_dir(registry.PRODUCTION)
  return ({'model_dir': directory, 'model_sha256': record['model_sha256'],
           'record_path': reg.record_path(record['version'])},
          f'the registered production model v{record["version"]}')


def _integration_sha256(pipeline: str) -> Optional[str]:
  definition = load_definition(pipeline)
  if not definition.integration_path:
    return None
  return lineage.data_sha256(lineage.file_entries([definition.integration_path]))


Baselines = Dict[str, Optional[Dict[str, str]]]  # pipeline -> model to beat (None: rubber stamp)


def resolve_baselines(bucket_url: str) -> Tuple[Baselines, str]:
  """Each declared pipeline's model to beat, resolved in memory from verified records, and the
  sentence naming their sources."""
  baselines: Baselines = {}
  sources = []
  for pipeline in declared_pipelines():
    found = (_production_build_model(bucket_url, pipeline, _integration_sha256(pipeline))
             or _registry_production(bucket_url, pipeline))
    baselines[pipeline] = dict(found[0], source=found[1]) if found else None
    sources.append(f'{pipeline}: {found[1] if found else RUBBER_STAMP}')
  return baselines, '; '.join(sources)


def private_values(workdir: pathlib.Path, baselines: Baselines) -> Dict[str, str]:
  """The ML workflow's values in ``workdir`` (a private directory of this run): the baselines
  file (mode 0600), the step cache and the output directory."""
  path = workdir / 'baselines.json'
  fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
  with os.fdopen(fd, 'w', encoding='utf-8') as handle:
    json.dump(baselines, handle, sort_keys=True)
  output = workdir / EVIDENCE_DIR
  return {VAR_BASELINES: str(path), VAR_OUTPUT: str(output), VAR_CACHE: str(output / 'steps')}


def _local_verdicts(results: List[ResultEntry], output: pathlib.Path) -> List[Tuple[str, MlVerdict]]:
  """(pipeline, verdict) of each ML verdict whose model this run trained in ``output``."""
  found = []
  for entry in results:
    if entry['check'] == ML_CHECK:
      for pipeline, verdict in cast(MlSection, entry['details']).items():
        model_dir = verdict.get('model_dir')
        if model_dir and pathlib.Path(model_dir).is_relative_to(output):
          found.append((pipeline, verdict))
  return found


def publish_evidence(results: List[ResultEntry], workdir: pathlib.Path, destination: str) -> None:
  """Copies the check's private outputs to ``destination`` (evidence nothing reads back for
  trust) and points each verdict's ``model_dir`` at its copy; a model whose bytes are not those
  the run recorded is refused before anything is copied."""
  output = workdir / EVIDENCE_DIR
  verdicts = _local_verdicts(results, output)
  for pipeline, verdict in verdicts:
    bucket.verify(str(pathlib.Path(str(verdict['model_dir']), MODEL_FILE)),
                  verdict.get('model_sha256') or '', f'model of {pipeline} trained by this test run')
  for root, _, names in os.walk(output):
    for name in sorted(names):
      local = pathlib.Path(root, name)
      bucket.write_bytes(layout.join(destination, *local.relative_to(output).parts),
                         local.read_bytes())
  for _, verdict in verdicts:
    relative = pathlib.Path(str(verdict['model_dir'])).relative_to(output)
    verdict['model_dir'] = layout.join(destination, *relative.parts)


def ml_model(params: Dict[str, str]) -> CheckResult:
  """Passes when every pipeline's candidate model was evaluated (BLESSED or NOT_BLESSED: deploy
  decides); fails when one could not be (e.g. its integration data is anomalous)."""
  try:
    summary = read_checks(params['result'])
  except Refusal as error:
    return CheckResult(ML_CHECK, False, str(error), {})
  try:
    baselines = bucket.read_json(params['baselines'], 'ML check baselines')
  except (Refusal, KeyError):
    baselines = {}
  details = {name: _verdict(result, (baselines.get(name) or {}).get('source') or RUBBER_STAMP)
             for name, result in sorted(summary.pipelines.items())}
  if not details:
    return CheckResult(ML_CHECK, False, 'no pipeline was checked', {})
  failed = [f'{name}: no model was evaluated: {summary.pipelines[name].message}'
            for name, d in details.items() if d['status'] not in (BLESSED, NOT_BLESSED)]
  if failed:
    return CheckResult(ML_CHECK, False, '; '.join(failed), details)
  return CheckResult(ML_CHECK, True, '; '.join(
      f'{name}: model evaluated against {d["baseline_source"]}: {d["message"]}'
      + (' (deploy refuses this build unless --override-blessing gives a reason)'
         if d['status'] == NOT_BLESSED else '')
      for name, d in details.items()), details)


def _verdict(result: PipelineCheck, baseline_source: str) -> MlVerdict:
  """One pipeline's entry of the ML check's details (and of the report's "ml" section)."""
  return MlVerdict(
      status=result.status, message=result.message,
      metrics=None if result.metrics is None else dict(result.metrics),
      baseline_metrics=None if result.baseline_metrics is None else dict(result.baseline_metrics),
      baseline=result.baseline, model_dir=result.model_dir, model_sha256=result.model_sha256,
      data_sha256=result.data_sha256, baseline_source=baseline_source)


def report_section(results: List[ResultEntry]) -> Optional[MlSection]:
  """The "ml" part of the test report: {pipeline: the ML check's details}."""
  return next((cast(MlSection, r['details']) for r in results if r['check'] == ML_CHECK), None)


def refuse_unblessed(passed: TestReport, build_id: str, override: Optional[str],
                     event: str = 'deploy') -> Optional[BlessingOverride]:
  """Raises when a pipeline's model is NOT_BLESSED and no reason overrides; returns the override
  record ({VAR_OVERRIDE: reason, VAR_OVERRIDE_PIPELINES: [...]}) or None."""
  unblessed = {name: ml for name, ml in passed.ml_by_pipeline.items()
               if ml.get('status') == NOT_BLESSED}
  if not unblessed:
    return None
  if override and override.strip():
    progress(f'{event}: build {build_id}: NOT_BLESSED model(s) of {", ".join(sorted(unblessed))}; '
             f'going ahead, override recorded: "{override.strip()}"')
    return {VAR_OVERRIDE: override.strip(), VAR_OVERRIDE_PIPELINES: sorted(unblessed)}
  named = '; '.join(f'{name}: NOT_BLESSED against {ml.get("baseline") or "production"}: '
                    f'{ml.get("message")}' for name, ml in sorted(unblessed.items()))
  raise HarnessError(
      f'build {build_id}: {named}. {event.capitalize()} refused: that pipeline makes a worse '
      f'model. To go ahead anyway, give a reason: invoke {event} --override-blessing "<why>" '
      f'(recorded). '
      f'Nothing was changed.')
