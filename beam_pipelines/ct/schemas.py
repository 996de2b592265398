"""The life cycle of a pipeline's committed schema (``<pipeline folder>/schema.pbtxt``).

- ``write_schema``: infer the schema of a representative span (the schema policy of docs/ml.md:
  presence as a tolerance, no fixed shape), fold in what its eval split shows, and check that the
  span passes under it before writing it for review.
- ``update_schema``: fold what an accepted span shows (new categorical values, rarer presence)
  into the committed schema, in the spirit of ``tfdv.update_schema``, and say what changed.

Both write into the pipeline's folder (a source-tree change a person reviews and commits; the next
build's level-2 check and continuous training use it; spans stopped under the old schema run
again by themselves) and keep their scratch outputs per pipeline.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from beam_pipelines import features, validate
from beam_pipelines.ct.definition import SCHEMA_FILE, load_definition
from beam_pipelines.ct.loop import CtError, span_files, span_pattern
from beam_pipelines.ml import artifacts
from beam_pipelines.ml import spec as spec_lib
from beam_pipelines.ml.results import Verdict
from beam_pipelines.store import bucket, layout
from beam_pipelines.store.console import number, progress

WRITE_SCHEMA_OUTPUT = 'outputs/write-schema'
UPDATE_SCHEMA_OUTPUT = 'outputs/update-schema'
# What no schema can accept: the data or the spec has to change.
NOT_A_SCHEMA_MATTER = {'SCHEMA_NEW_COLUMN', 'SCHEMA_MISSING_COLUMN', 'DEAD_LETTER_SHARE',
                       'LABEL_LEAKAGE', 'EMPTY_SPLIT', 'NO_VALUES'}


def _parse(text: str):
  from google.protobuf import text_format
  from tensorflow_metadata.proto.v0 import schema_pb2
  return text_format.Parse(text, schema_pb2.Schema())


def _text(schema) -> str:
  from google.protobuf import text_format
  return text_format.MessageToString(schema)


def _extract(span: str, spec_path: str, output: str) -> str:
  """The span's features in ``output/features`` (an earlier command's scratch files removed)."""
  features_dir = layout.join(output, 'features')
  for stale in bucket.list_tree(features_dir):
    bucket.delete(stale)
  features.extract([span_pattern(span)], spec_path, features_dir)
  return features_dir


def _validated(features_dir: str, output: str, schema_path: str, step: str) -> Verdict:
  verdict = validate.validate(features_dir, layout.join(output, step), schema_path,
                              with_noise_floor=True)
  if not isinstance(verdict, Verdict):
    raise CtError('the schema commands need the pipelines to run, not a --dry_run')
  return verdict


def _statistics(verdict: Verdict) -> List:
  return [validate.load_statistics(verdict.statistics[split]) for split in artifacts.SPLITS]


def changes(before, after) -> List[str]:
  """What a schema update changed, one phrase per feature: values added to a domain, presence
  relaxed."""
  def facts(schema) -> Dict[str, Tuple[int, float]]:
    domains = {d.name: len(d.value) for d in schema.string_domain}
    return {f.name: (len(f.string_domain.value) if f.HasField('string_domain')
                     else domains.get(f.domain, 0), f.presence.min_fraction)
            for f in schema.feature}
  old, new = facts(before), facts(after)
  said = []
  for name, (values, presence) in sorted(new.items()):
    was_values, was_presence = old.get(name, (0, presence))
    if values > was_values:
      said.append(f'{name}: {values - was_values} value(s) added to its domain')
    if presence < was_presence:
      said.append(f'{name}: presence.min_fraction {was_presence:g} -> {presence:g}')
  return said


def write_schema(pipeline: Optional[str], span: str, output: str = '') -> str:
  """Infers the schema of ``span`` into the pipeline's folder; it passes the span it came from."""
  definition = load_definition(pipeline)
  target = layout.join(definition.path.rsplit('/', 1)[0], SCHEMA_FILE)
  if bucket.exists(target):
    raise CtError(f'{target} exists: it is the reviewed schema of {definition.name}. Fold a new '
                  f'span into it with --update_schema, edit it, or delete it to infer anew')
  span_files(span)
  output = output or layout.join(WRITE_SCHEMA_OUTPUT, definition.name)
  scratch = layout.join(output, 'inferred.pbtxt')
  if bucket.exists(scratch):
    bucket.delete(scratch)
  features_dir = _extract(span, definition.spec_path, output)
  inferred = _validated(features_dir, output, scratch, 'inferred')
  schema = validate.fold_statistics(_parse(bucket.read_bytes(scratch).decode('utf-8')),
                                    _statistics(inferred), spec_lib.load(definition.spec_path))
  bucket.write_bytes(target, _text(schema).encode('utf-8'))
  verdict = _validated(features_dir, output, target, 'validation')
  schema_matters = [f'{a.feature or "dataset"}: {", ".join(a.types)}' for a in verdict.anomalies
                    if not set(a.types) <= NOT_A_SCHEMA_MATTER]
  if schema_matters:  # never leave a schema that refuses the span it was inferred from
    bucket.delete(target)
    raise CtError(f'the schema inferred from {span} still refuses it ({"; ".join(schema_matters)})'
                  f': nothing written; outputs in {output}')
  progress(f'ct: schema of {definition.name} inferred from {span} and written to {target}: the '
           f'span passes under it (verdict {verdict.status}). Review it, then commit it; ct uses '
           f'it from the next build on. Review the domains (values a category may take; the '
           f'spec\'s min_domain_mass and new_values decide how new values are judged) and the '
           f'presence of each feature (presence.min_fraction: the share of rows that must have '
           f'a value, inferred as the share seen minus the spec\'s presence_tolerance; no shape, '
           f'so an empty cell is a missing value); scratch outputs: {output}')
  for anomaly in verdict.anomalies:
    progress(f'ct: note: {anomaly.feature or "dataset"}: {anomaly.description} (not a schema '
             f'matter: fix the data or the spec)')
  suggested = {f: v.suggested_threshold for f, v in sorted(verdict.noise_floor.items())}
  progress(f'ct: suggested drift thresholds above each feature\'s noise floor: '
           f'{number(suggested)} (details: {output}/validation/{validate.NOISE_FLOOR_FILE})')
  return target


def update_schema(pipeline: Optional[str], span: str, output: str = '') -> Tuple[str, List[str]]:
  """Folds what ``span`` shows into the committed schema; returns (its path, what changed)."""
  definition = load_definition(pipeline)
  target = definition.schema_path
  if not target or not bucket.exists(target):
    raise CtError(f'pipeline {definition.name} has no committed schema to update: write one with '
                  f'--write_schema --span DIR')
  span_files(span)
  output = output or layout.join(UPDATE_SCHEMA_OUTPUT, definition.name)
  before = _parse(bucket.read_bytes(target).decode('utf-8'))
  verdict = _validated(_extract(span, definition.spec_path, output), output, target, 'before')
  after = validate.fold_statistics(_parse(bucket.read_bytes(target).decode('utf-8')),
                                   _statistics(verdict), spec_lib.load(definition.spec_path))
  said = changes(before, after)
  if not said:
    progress(f'ct: {target} already accepts {span}: unchanged (verdict {verdict.status})')
    return target, []
  bucket.write_bytes(target, _text(after).encode('utf-8'))
  progress(f'ct: {target} updated from {span}: {"; ".join(said)}. Review the change (git diff), '
           f'then commit it; spans stopped under the old schema run again by themselves once '
           f'the build that holds it is deployed')
  return target, said
