"""``invoke status``: what is deployed where, the last test result, the history, the lock.

``status_report`` gathers it as one JSON-ready object (``invoke status --json``, fields in
docs/harness.md); ``status_lines`` writes the same object for people. Reading a local bucket
imports neither Beam nor any pipeline.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

from beam_pipelines.ct.definition import declared_pipelines
from beam_pipelines.ct.paths import model_registry
from beam_pipelines.ct.registry import CANDIDATE, PRODUCTION, Registry
from beam_pipelines.harness import evidence
from beam_pipelines.harness.deploy import (
  approval_required,
  history_with_skipped,
  live_deployment_ok,
)
from beam_pipelines.harness.ml_check import VAR_OVERRIDE
from beam_pipelines.harness.results import passed_builds, read_report
from beam_pipelines.store import bucket, layout, lock, records
from beam_pipelines.store.errors import Refusal


def _deployment(env: layout.Env) -> Dict[str, Any]:
  """One environment's deployment: ``deployed`` false, or its build and whether it verifies."""
  view: Dict[str, Any] = {'deployed': False, 'variables': env.variables}
  if not bucket.exists(env.variables):
    return view
  try:
    values = records.read_variables(env)
  except Refusal as error:
    return dict(view, error=str(error))
  problem = live_deployment_ok(env)
  return dict(view, deployed=True, build_id=values.build_id, version=values.version,
              event=values.get(layout.VAR_EVENT), deployed_at=values.get(layout.VAR_DEPLOYED_AT),
              deployed_by=values.get(layout.VAR_DEPLOYED_BY), wheel=values.wheel_file,
              sha256=values.sha256, verified=problem is None, verify_problem=problem,
              blessing_override=values.get(VAR_OVERRIDE) or None)


def _last_test(bucket_url: str) -> Optional[Dict[str, Any]]:
  test = layout.Env(bucket_url, layout.TEST)
  builds = sorted(p.rsplit('/', 2)[-2] for p in bucket.list_tree(test.results)
                  if p.endswith('/' + layout.REPORT_FILE)
                  and layout.BUILD_ID_PATTERN.fullmatch(p.rsplit('/', 2)[-2]))
  if not builds:
    return None
  report = read_report(test.report(builds[-1]))
  return {'build_id': builds[-1], 'status': report.status, 'tested_at': report.tested_at,
          'failures': report.failures(), 'report': test.report(builds[-1]),
          'runs': _runs(bucket_url, builds[-1])}


def _runs(bucket_url: str, build_id: str) -> Dict[str, Any]:
  """The test runs' evidence on ``build_id`` (the Composer test DAG's): counts and failures; an
  unreadable record is reported, never raised."""
  try:
    runs = evidence.read_evidence(bucket_url, build_id)
  except Refusal as error:
    return {'passed': None, 'failed': None, 'failures': [], 'error': str(error)}
  return {'passed': sum(r.passed for r in runs), 'failed': sum(not r.passed for r in runs),
          'failures': [f'{r.tested_by}: {f}' for r in runs if not r.passed for f in r.failures()],
          'error': None}


def _models(reg: Registry) -> Dict[str, Any]:
  """A registry's production and candidate versions (an unreadable registry says why)."""
  view: Dict[str, Any] = {'registry': reg.root, PRODUCTION: None, CANDIDATE: None}
  try:
    aliases = reg.aliases()
    view.update(versions=len(reg.numbers()), production=aliases.get(PRODUCTION),
                candidate=aliases.get(CANDIDATE))
    if aliases.get(PRODUCTION) is not None:
      record = reg.record(aliases[PRODUCTION])
      auc = (record.get('metrics') or {}).get('auc')
      event = reg.last_event()
      view.update(production_auc=auc if isinstance(auc, float) else None,
                  production_run_id=record.get('run_id'),
                  blessing_override=event.get('blessing_override') if event else None)
  except Refusal as error:
    view['error'] = str(error)
  return view


def _lock(prod: layout.Env) -> Dict[str, Any]:
  holder = lock.holder_of(prod.lock)
  if not holder:
    return {'state': 'free', 'holder': None, 'path': prod.lock}
  return {'state': 'stale' if lock.is_stale(holder) else 'held', 'holder': holder,
          'path': prod.lock}


def status_report(bucket_url: str, limit: int = 10,
                  pipelines: Optional[Sequence[str]] = None) -> Dict[str, Any]:
  """What ``invoke status`` shows, as one JSON-ready object; models of ``pipelines`` (default:
  every declared one), the newest ``limit`` history events."""
  prod = layout.Env(bucket_url, layout.PROD)
  events, skipped = history_with_skipped(bucket_url)
  passed = passed_builds(bucket_url)
  return {
      'bucket': bucket_url,
      'environments': {name: _deployment(layout.Env(bucket_url, name))
                       for name in (layout.TEST, layout.PROD)},
      'last_test': _last_test(bucket_url),
      'models': {name: _models(model_registry(bucket_url, name))
                 for name in (pipelines or declared_pipelines())},
      'passed_builds': list(passed),
      'approval_required': approval_required(bucket_url),
      'lock': _lock(prod),
      'history': {'path': prod.history, 'count': len(events), 'skipped': skipped,
                  'events': events[-limit:]},
  }


def _deployment_text(name: str, view: Dict[str, Any]) -> str:
  if 'error' in view:
    return f'{name}: UNREADABLE: {view["error"]}'
  if not view['deployed']:
    return f'{name}: nothing deployed ({view["variables"]} absent)'
  return (f'{name}: build {view["build_id"]} (version {view["version"]}, {view["event"]} at '
          f'{view["deployed_at"]} by {view["deployed_by"]})\n'
          f'  wheel   {view["wheel"]}\n'
          f'  sha256  {view["sha256"]}'
          + (f'\n  VERIFY FAILED: {view["verify_problem"]}' if not view['verified'] else ' (verified)')
          + (f'\n  BLESSING OVERRIDDEN: "{view["blessing_override"]}"'
             if view['blessing_override'] else '')
          + f'\n  variables {view["variables"]}')


def _last_test_text(view: Optional[Dict[str, Any]]) -> str:
  if view is None:
    return 'last test: none'
  failed = view['failures']
  runs = view['runs']
  if runs['error']:
    runs_text = f'UNREADABLE: {runs["error"]}'
  else:
    runs_text = (f'{runs["passed"]} passed, {runs["failed"]} failed'
                 + (f' (FAILED: {"; ".join(runs["failures"])})' if runs['failed'] else ''))
  return (f'last test: build {view["build_id"]} {view["status"].upper()} at {view["tested_at"]}'
          + (f' ({"; ".join(failed)})' if failed else '') + f'\n  report  {view["report"]}'
          + f'\n  test DAG runs  {runs_text}')


def _version(number: Optional[int]) -> str:
  return f'v{number}' if number is not None else 'none'


def _models_text(view: Dict[str, Any]) -> str:
  if 'error' in view:
    return f'model registry: UNREADABLE: {view["error"]}'
  if view[PRODUCTION] is None and view[CANDIDATE] is None:
    return f'model registry: no production model ({view["registry"]})'
  auc, override = view.get('production_auc'), view.get('blessing_override')
  return (f'model registry: production {_version(view[PRODUCTION])}'
          + (f' (auc {auc:.4f}, run {view["production_run_id"]})' if auc is not None else '')
          + (f' BLESSING OVERRIDDEN: "{override}"' if override else '')
          + f', candidate {_version(view[CANDIDATE])}; {view["versions"]} version(s) in '
          f'{view["registry"]}')


def _lock_text(view: Dict[str, Any]) -> str:
  if view['state'] == 'free':
    return 'lock: free'
  return ('lock: held by ' + lock.describe(view['holder'])
          + (' (STALE: that process is gone; the next deploy removes it)'
             if view['state'] == 'stale' else ''))


def render(report: Dict[str, Any]) -> List[str]:
  """A ``status_report`` for people: the lines of ``invoke status``."""
  envs, history = report['environments'], report['history']
  passed = report['passed_builds']
  lines = [f'bucket: {report["bucket"]}',
           _deployment_text(layout.TEST, envs[layout.TEST]),
           _deployment_text(layout.PROD, envs[layout.PROD]),
           _last_test_text(report['last_test'])]
  lines += [f'{name}: {_models_text(view)}' for name, view in report['models'].items()]
  lines.append(f'passed builds: {len(passed)}' + (f' (newest {passed[-1]})' if passed else ''))
  lines.append('approval gate: '
               + ('ON (deploys need --approve)' if report['approval_required'] else 'off'))
  lines.append(_lock_text(report['lock']))
  lines.append(f'history ({history["count"]} events, newest last; {history["path"]}):')
  lines.extend(f'  SKIPPED an unreadable entry: {message}' for message in history['skipped'])
  for event in history['events']:
    lines.append(f'  {event.get(layout.VAR_DEPLOYED_AT)}  {event.get(layout.VAR_EVENT):8s} '
                 f'{event.get(layout.VAR_BUILD_ID)}  '
                 f'(was {event.get(layout.VAR_PREVIOUS_BUILD_ID) or "nothing"})'
                 + ('  [recorded after an interrupted run]' if event.get('recovered') else ''))
  return lines


def status_lines(bucket_url: str, limit: int = 10,
                 pipelines: Optional[Sequence[str]] = None) -> List[str]:
  """The lines of ``invoke status``; models of ``pipelines`` (default: every declared one)."""
  return render(status_report(bucket_url, limit, pipelines))
