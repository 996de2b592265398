"""``invoke status``: what is deployed where, the last test result, the history, the lock."""

from __future__ import annotations

from typing import List

from beam_pipelines.harness import bucket, layout, lock
from beam_pipelines.harness.deploy import approval_required, history, passed_builds
from beam_pipelines.harness.errors import HarnessError
from beam_pipelines.ml.registry import model_status


def _deployment(env: layout.Env) -> str:
  if not bucket.exists(env.variables):
    return f'{env.name}: nothing deployed ({env.variables} absent)'
  try:
    values = bucket.read_json(env.variables, f'{env.name} variables')
  except HarnessError as error:
    return f'{env.name}: UNREADABLE: {error}'
  return (f'{env.name}: build {values.get(layout.VAR_BUILD_ID)} '
          f'(version {values.get(layout.VAR_VERSION)}, {values.get(layout.VAR_EVENT)} at '
          f'{values.get(layout.VAR_DEPLOYED_AT)} by {values.get(layout.VAR_DEPLOYED_BY)})\n'
          f'  wheel   {values.get(layout.VAR_WHEEL_FILE)}\n'
          f'  sha256  {values.get(layout.VAR_SHA256)}\n'
          f'  variables {env.variables}')


def _last_test(bucket_url: str) -> str:
  test = layout.Env(bucket_url, layout.TEST)
  builds = sorted(p.rsplit('/', 2)[-2] for p in bucket.list_tree(test.results)
                  if p.endswith('/' + layout.REPORT_FILE)
                  and layout.BUILD_ID_PATTERN.fullmatch(p.rsplit('/', 2)[-2]))
  if not builds:
    return 'last test: none'
  report = bucket.read_json(test.report(builds[-1]), 'test report')
  failed = [f'{r["check"]}: {r["message"]}' for r in report.get('results', []) if not r['passed']]
  return (f'last test: build {builds[-1]} {report.get("status", "?").upper()} at '
          f'{report.get("tested_at")}' + (f' ({"; ".join(failed)})' if failed else '') +
          f'\n  report  {test.report(builds[-1])}')


def status_lines(bucket_url: str, limit: int = 10) -> List[str]:
  prod = layout.Env(bucket_url, layout.PROD)
  lines = [f'bucket: {bucket_url}',
           _deployment(layout.Env(bucket_url, layout.TEST)),
           _deployment(prod),
           _last_test(bucket_url)]
  lines.append(model_status(bucket_url))
  passed = passed_builds(bucket_url)
  lines.append(f'passed builds: {len(passed)}' + (f' (newest {passed[-1]})' if passed else ''))
  lines.append(f'approval gate: {"ON (deploys need --approve)" if approval_required(bucket_url) else "off"}')
  holder = lock.holder_of(prod)
  lines.append(f'lock: {"held by " + lock.describe(holder) if holder else "free"}')
  events = history(bucket_url)
  lines.append(f'history ({len(events)} events, newest last; {prod.history}):')
  for event in events[-limit:]:
    lines.append(f'  {event.get(layout.VAR_DEPLOYED_AT)}  {event.get(layout.VAR_EVENT):8s} '
                 f'{event.get(layout.VAR_BUILD_ID)}  (was {event.get(layout.VAR_PREVIOUS_BUILD_ID) or "nothing"})'
                 + ('  [recorded after an interrupted run]' if event.get('recovered') else ''))
  return lines
