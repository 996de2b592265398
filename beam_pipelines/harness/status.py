"""``invoke status``: what is deployed where, the last test result, the history, the lock."""

from __future__ import annotations

from typing import List, Optional, Sequence

from beam_pipelines.ct.definition import declared_pipelines
from beam_pipelines.ct.paths import model_registry
from beam_pipelines.ct.registry import model_status
from beam_pipelines.harness.deploy import (
  approval_required,
  history_with_skipped,
  live_deployment_ok,
)
from beam_pipelines.harness.ml_check import VAR_OVERRIDE
from beam_pipelines.harness.results import passed_builds, read_report
from beam_pipelines.store import bucket, layout, lock, records
from beam_pipelines.store.errors import Refusal


def _deployment(env: layout.Env) -> str:
  if not bucket.exists(env.variables):
    return f'{env.name}: nothing deployed ({env.variables} absent)'
  try:
    values = records.read_variables(env)
  except Refusal as error:
    return f'{env.name}: UNREADABLE: {error}'
  problem = live_deployment_ok(env)
  override = values.get(VAR_OVERRIDE)
  return (f'{env.name}: build {values.build_id} '
          f'(version {values.version}, {values.get(layout.VAR_EVENT)} at '
          f'{values.get(layout.VAR_DEPLOYED_AT)} by {values.get(layout.VAR_DEPLOYED_BY)})\n'
          f'  wheel   {values.wheel_file}\n'
          f'  sha256  {values.sha256}'
          + (f'\n  VERIFY FAILED: {problem}' if problem else ' (verified)')
          + (f'\n  BLESSING OVERRIDDEN: "{override}"' if override else '')
          + f'\n  variables {env.variables}')


def _last_test(bucket_url: str) -> str:
  test = layout.Env(bucket_url, layout.TEST)
  builds = sorted(p.rsplit('/', 2)[-2] for p in bucket.list_tree(test.results)
                  if p.endswith('/' + layout.REPORT_FILE)
                  and layout.BUILD_ID_PATTERN.fullmatch(p.rsplit('/', 2)[-2]))
  if not builds:
    return 'last test: none'
  report = read_report(test.report(builds[-1]))
  failed = report.failures()
  return (f'last test: build {builds[-1]} {report.status.upper()} at '
          f'{report.tested_at}' + (f' ({"; ".join(failed)})' if failed else '') +
          f'\n  report  {test.report(builds[-1])}')


def status_lines(bucket_url: str, limit: int = 10,
                 pipelines: Optional[Sequence[str]] = None) -> List[str]:
  """The lines of ``invoke status``; models of ``pipelines`` (default: every declared one)."""
  prod = layout.Env(bucket_url, layout.PROD)
  lines = [f'bucket: {bucket_url}',
           _deployment(layout.Env(bucket_url, layout.TEST)),
           _deployment(prod),
           _last_test(bucket_url)]
  for pipeline in pipelines or declared_pipelines():
    lines.append(f'{pipeline}: ' + model_status(model_registry(bucket_url, pipeline)))
  passed = passed_builds(bucket_url)
  lines.append(f'passed builds: {len(passed)}' + (f' (newest {passed[-1]})' if passed else ''))
  lines.append(f'approval gate: {"ON (deploys need --approve)" if approval_required(bucket_url) else "off"}')
  holder = lock.holder_of(prod.lock)
  state = 'free'
  if holder:
    state = 'held by ' + lock.describe(holder) + (
        ' (STALE: that process is gone; the next deploy removes it)' if lock.is_stale(holder)
        else '')
  lines.append(f'lock: {state}')
  events, skipped = history_with_skipped(bucket_url)
  lines.append(f'history ({len(events)} events, newest last; {prod.history}):')
  lines.extend(f'  SKIPPED an unreadable entry: {message}' for message in skipped)
  for event in events[-limit:]:
    lines.append(f'  {event.get(layout.VAR_DEPLOYED_AT)}  {event.get(layout.VAR_EVENT):8s} '
                 f'{event.get(layout.VAR_BUILD_ID)}  (was {event.get(layout.VAR_PREVIOUS_BUILD_ID) or "nothing"})'
                 + ('  [recorded after an interrupted run]' if event.get('recovered') else ''))
  return lines
