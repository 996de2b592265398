"""The level-2 check of `invoke test` validates under the committed schema of the pipeline's folder,
as continuous training in prod does: a schema that refuses the integration data stops the check."""

from __future__ import annotations

import json

import pytest

from beam_pipelines.ct import loop
from beam_pipelines.ct.definition import load_definition
from beam_pipelines.ct.outcomes import CHECK_ANOMALOUS

pytestmark = pytest.mark.slow

# A reviewed schema that knows only one payment type: the integration data's card payments
# (a third of the trips) are a new value with real mass.
SCHEMA = """\
feature {
  name: "payment_type"
  type: BYTES
  domain: "payment_type"
}
string_domain {
  name: "payment_type"
  value: "Cash"
}
"""


def _pipeline(root, with_schema: bool) -> str:
  taxi = load_definition('taxi')
  folder = root / ('committed' if with_schema else 'inferred')
  folder.mkdir(parents=True)
  (folder / 'pipeline.yaml').write_text(
      f'spec: {taxi.spec_path}\nintegration: {taxi.integration_path}\n'
      f'train: {{classifier: logistic, C: 1.0, random_state: 0}}\n')
  if with_schema:
    (folder / 'schema.pbtxt').write_text(SCHEMA)
  return str(folder / 'pipeline.yaml')


def test_the_check_uses_the_committed_schema(tmp_path):
  definition = load_definition(_pipeline(tmp_path, with_schema=True))
  assert definition.schema_path and definition.schema_path.endswith('schema.pbtxt')
  result = loop.check(definition, str(tmp_path / 'out'), None, None)
  assert result.status == CHECK_ANOMALOUS, result.message
  assert 'payment_type' in result.message
  schema_used = (tmp_path / 'out').rglob('validation/*/verdict.json')
  verdicts = [json.loads(p.read_text()) for p in schema_used]
  assert [v['schema'] for v in verdicts] == [definition.schema_path]
  assert verdicts[0]['schema_source'] == 'curated'
