"""Pipelines declared as folders: found in the package, read with their files, refused with the
field named when a definition is wrong."""

from __future__ import annotations

import re

import pytest

from beam_pipelines.ct import definition
from beam_pipelines.ct.paths import CtPaths, model_registry
from beam_pipelines.ml import blessing


def _folder(tmp_path, text, name='churn'):
  folder = tmp_path / name
  folder.mkdir()
  (folder / 'spec.yaml').write_text('name: churn\nlabel: churned\nnumeric: [tenure]\n')
  (folder / 'pipeline.yaml').write_text(text)
  return str(folder / 'pipeline.yaml')


def test_the_bundled_taxi_pipeline_is_declared_with_its_files():
  assert 'taxi' in definition.declared_pipelines()
  taxi = definition.load_definition('taxi')
  assert taxi.name == 'taxi' and taxi.spec_path.endswith('pipelines/taxi/spec.yaml')
  assert taxi.integration_path.endswith('pipelines/taxi/integration.csv')
  assert taxi.policy == definition.Policy('every_span', 'retrain') and taxi.window == 1
  assert blessing.parse_registered(taxi.blessing_config)['auc'].absolute == -0.05


def test_a_definition_elsewhere_is_named_by_its_folder(tmp_path):
  loaded = definition.load_definition(_folder(tmp_path, 'spec: spec.yaml\nwindow: 3\n'))
  assert (loaded.name, loaded.window, loaded.blessing) == ('churn', 3, None)
  assert loaded.blessing_config == blessing.DEFAULT_CONFIG
  assert loaded.schema_path is None  # no reviewed schema in the folder yet
  (tmp_path / 'churn' / 'schema.pbtxt').write_text('feature { name: "tenure" }\n')
  assert definition.load_definition(str(tmp_path / 'churn' / 'pipeline.yaml')).schema_path.endswith(
      'churn/schema.pbtxt')


@pytest.mark.parametrize('text, message', [
    ('spec: spec.yaml\npolicy: {retrain: sometimes}\n', 'policy.retrain must be'),
    ('spec: spec.yaml\npolicy: {on_drift: panic}\n', 'policy.on_drift must be'),
    ('spec: spec.yaml\nwindow: 0\n', 'window must be a whole number >= 1'),
    ('spec: spec.yaml\nschedule: daily\n', "unknown field(s) ['schedule']"),
    ('spec: spec.yaml\nblessing: {metrics: {}}\n', "blessing: blessing config needs"),
    ('train: {C: 1}\n', 'needs "spec"'),
    ('spec: [unclosed\n', 'is not valid YAML'),
])
def test_a_wrong_definition_is_refused_naming_the_field(tmp_path, text, message):
  with pytest.raises(definition.DefinitionError, match=re.escape(message)):
    definition.load_definition(_folder(tmp_path, text))


def test_an_unknown_pipeline_name_lists_the_declared_ones():
  with pytest.raises(definition.DefinitionError, match="no pipeline named 'nope'.*taxi"):
    definition.load_definition('nope')


def test_each_pipeline_has_its_own_prefixes_and_registry(tmp_path):
  taxi, flights = CtPaths(str(tmp_path), 'taxi'), CtPaths(str(tmp_path), 'flights')
  assert taxi.landing.endswith('/prod/inputs/ct/taxi') and flights.root.endswith('/prod/ct/flights')
  assert model_registry(str(tmp_path), 'flights').root.endswith('/prod/registry/flights')
  assert CtPaths(str(tmp_path)).pipeline == definition.default_pipeline()
