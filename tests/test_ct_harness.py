"""Continuous training on the real harness, end to end: `invoke` in a frozen copy of the project,
a temporary bucket. Build A is built, tested (level-2 ML check, rubber stamp) and deployed; spans 1-4 land and
`invoke ct` runs A's deployed wheel on each; a pipeline change that degrades the model (build B)
passes test but deploy refuses it naming the metric; rollbacks; lineage of production.

One scenario run (module fixture), many tests asserting on it.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import types

import pytest

from beam_pipelines.ct import demo, registry
from beam_pipelines.ct.paths import CtPaths

from harness.support import invoke, make_project, prod_variables

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DEGRADED_TRAINING = """train:
  classifier: gbt       # a one-split stump: a worse model, on purpose
  max_iter: 1
  max_depth: 1
  random_state: 0
"""


def out(done) -> str:
  return done.stdout + done.stderr


def degrade_pipeline(project) -> None:
  """A pipeline change, committed: the CT pipeline definition of the build trains a stump."""
  path = project / 'beam_pipelines' / 'pipelines' / 'taxi' / 'pipeline.yaml'
  text = path.read_text()
  start, end = text.index('train:'), text.index('window:')
  path.write_text(text[:start] + DEGRADED_TRAINING + text[end:])
  git = ['git', '-c', 'user.name=ct-test', '-c', 'user.email=ct@test.invalid']
  subprocess.run(git + ['commit', '-q', '-am', 'degrade the model'], cwd=project, check=True)


@pytest.fixture(scope='module')
def scenario(tmp_path_factory):
  root = tmp_path_factory.mktemp('ct-harness')
  s = types.SimpleNamespace(project=make_project(root / 'project'), bucket=root / 'bucket',
                            done={}, aliases=[], versions=[], spans=[])
  paths = CtPaths(str(s.bucket))
  s.registry = registry.Registry(paths.registry)

  def run(name, *args):
    s.done[name] = invoke(s.project, s.bucket, *args)
    return s.done[name]

  assert run('loop_a', 'build', '--no-checks', 'test', 'deploy').returncode == 0, out(
      s.done['loop_a'])[-4000:]
  s.a = json.loads((s.project / 'dist' / 'manifest.json').read_text())
  for number, span in enumerate(demo.DEMO_SPANS, 1):
    s.spans.append(demo.land(paths.landing, span))
    run(f'ct{number}', 'ct')
    s.aliases.append(s.registry.aliases())
    s.versions.append(s.registry.numbers())
  before = sorted(p for p in s.bucket.rglob('*') if 'registry' in p.parts or 'spans' in p.parts)
  run('ct_again', 'ct')
  s.unchanged = before == sorted(p for p in s.bucket.rglob('*')
                                 if 'registry' in p.parts or 'spans' in p.parts)
  degrade_pipeline(s.project)
  run('test_b', 'build', '--no-checks', 'test')
  s.b = json.loads((s.project / 'dist' / 'manifest.json').read_text())
  run('deploy_b', 'deploy')
  s.prod_after_refusal = prod_variables(s.bucket)['build_id']
  run('deploy_b_override', 'deploy', '--override-blessing', 'scenario: accept a worse model')
  s.prod_after_override = prod_variables(s.bucket)
  run('rollback', 'rollback')
  s.production_before = s.registry.aliases()['production']
  run('model_rollback', 'model-rollback')
  s.production_after = s.registry.aliases()['production']
  run('lineage', 'lineage', '--model', 'production')
  run('model_list', 'model-list')
  s.promoted = 1 if s.production_after != 1 else s.registry.numbers()[-1]
  run('promote', 'model-promote', '--version', str(s.promoted), '--reason', 'scenario: promote',
      '--override-blessing', 'scenario: the version may be NOT_BLESSED')
  s.after_promote = s.registry.aliases()
  return s


def passed_record(bucket, build_id):
  return json.loads((bucket / 'test' / 'passed' / f'{build_id}.json').read_text())


def test_build_a_passes_the_level2_check_with_a_rubber_stamp(scenario):
  ml = passed_record(scenario.bucket, scenario.a['build_id'])['ml']['taxi']
  assert ml['status'] == 'BLESSED' and 'rubber-stamped' in ml['message']
  assert ml['metrics']['auc'] > 0.8 and ml['baseline_metrics'] is None
  assert 'check ml_model: passed' in out(scenario.done['loop_a'])


def test_span_1_makes_v1_production_by_rubber_stamp(scenario):
  assert scenario.done['ct1'].returncode == 0, out(scenario.done['ct1'])[-3000:]
  assert scenario.aliases[0] == {'production': 1, 'candidate': 1}
  assert scenario.registry.record(1)['blessing']['rubber_stamped'] is True


def test_span_2_moves_production_only_if_blessed(scenario):
  assert scenario.versions[1] == [1, 2]
  blessed = scenario.registry.record(2)['blessing']['status'] == 'BLESSED'
  assert scenario.done['ct2'].returncode == (0 if blessed else 3), out(scenario.done['ct2'])[-3000:]
  assert scenario.aliases[1]['production'] == (2 if blessed else 1)


def test_span_3_with_a_missing_column_stops_at_validation(scenario):
  done = scenario.done['ct3']
  assert done.returncode == 1
  assert 'STOPPED at validation' in out(done) and 'report.html' in out(done)
  assert "['company']" in out(done)
  assert scenario.aliases[2] == scenario.aliases[1] and scenario.versions[2] == [1, 2]


def test_span_4_drift_triggers_retraining_and_is_recorded(scenario):
  assert scenario.done['ct4'].returncode == 0, out(scenario.done['ct4'])[-3000:]
  assert scenario.versions[3] == [1, 2, 3]
  record = scenario.registry.record(3)
  lineage = json.loads(open(record['lineage']).read())
  assert lineage['trigger'] == ['new_span', 'drift']
  assert lineage['steps']['validation']['result']['drifted_features'] == ['payment_type']


def test_ct_runs_from_the_deployed_wheel_of_build_a(scenario):
  lineage = json.loads(open(scenario.registry.record(1)['lineage']).read())
  wheel = scenario.a['wheel']
  assert lineage['code']['source'] == 'deployed-wheel'
  assert lineage['code']['build_id'] == scenario.a['build_id']
  assert lineage['code']['wheel_sha256'] == scenario.a['files'][wheel]['sha256']


def test_a_second_ct_without_new_data_changes_nothing(scenario):
  assert scenario.done['ct_again'].returncode == 0
  assert 'no trigger' in out(scenario.done['ct_again'])
  assert scenario.unchanged


def test_a_degrading_pipeline_change_is_refused_at_deploy_naming_the_metric(scenario):
  assert scenario.done['test_b'].returncode == 0, out(scenario.done['test_b'])[-3000:]
  ml = passed_record(scenario.bucket, scenario.b['build_id'])['ml']['taxi']
  assert ml['status'] == 'NOT_BLESSED' and ml['metrics']['auc'] < ml['baseline_metrics']['auc']
  assert ml['baseline_source'] == (f'the model of prod build {scenario.a["build_id"]} on the '
                                   f'same integration data')
  refused = scenario.done['deploy_b']
  assert refused.returncode == 2
  assert 'NOT_BLESSED' in out(refused) and 'auc' in out(refused)
  assert '--override-blessing' in out(refused)
  assert scenario.prod_after_refusal == scenario.a['build_id']


def test_an_override_deploys_and_records_the_reason(scenario):
  assert scenario.done['deploy_b_override'].returncode == 0
  assert scenario.prod_after_override['build_id'] == scenario.b['build_id']
  assert scenario.prod_after_override['blessing_override'] == 'scenario: accept a worse model'
  history = [json.loads(p.read_text()) for p in sorted((scenario.bucket / 'prod' / 'history').iterdir())]
  assert any(e.get('blessing_override') == 'scenario: accept a worse model' for e in history)


def test_rollbacks_return_build_and_model(scenario):
  assert scenario.done['rollback'].returncode == 0
  assert prod_variables(scenario.bucket)['build_id'] == scenario.a['build_id']
  assert scenario.done['model_rollback'].returncode == 0, out(scenario.done['model_rollback'])
  expected = registry.rollback_target(
      [e for e in scenario.registry.history() if e['event'] != 'rollback'],
      scenario.production_before)
  assert scenario.production_after == expected != scenario.production_before


def test_lineage_of_production_names_span_hashes_and_build_id(scenario):
  done = scenario.done['lineage']
  assert done.returncode == 0, out(done)
  text = out(done)
  record = scenario.registry.record(scenario.production_after)
  span = json.loads(open(record['lineage']).read())['data']['span']
  for name in os.listdir(span):
    with open(os.path.join(span, name), 'rb') as handle:
      assert hashlib.sha256(handle.read()).hexdigest() in text
  assert f'deployed build {scenario.a["build_id"]}' in text
  assert scenario.a['files'][scenario.a['wheel']]['sha256'] in text
  assert f'model v{scenario.production_after}' in text


def test_model_list_shows_every_version_and_the_aliases(scenario):
  text = out(scenario.done['model_list'])
  for number in (1, 2, 3):
    assert f'v{number} ' in text
  assert '<- ' in text and 'production' in text


def test_model_promote_points_production_at_a_version_and_records_why(scenario):
  assert scenario.done['promote'].returncode == 0, out(scenario.done['promote'])
  assert scenario.after_promote['production'] == scenario.promoted
  event = scenario.registry.history()[-1]
  assert event['event'] == 'promote' and event['reason'] == 'scenario: promote'
  assert event['moves']['production'] == {'from': scenario.production_after,
                                          'to': scenario.promoted}
