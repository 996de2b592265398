"""An opt-in mirror of continuous training and experiments in an MLflow tracking server; the
bucket stays the truth.

With ``$MLFLOW_TRACKING_URI=http(s)://HOST[:PORT]`` set, continuous training (after each run,
failed ones too), experiments (after each, also one that failed: the variants it recorded) and
``invoke model-promote``/``model-rollback`` (after each move) bring MLflow in line with the
bucket, through MLflow's REST API (this package never imports mlflow):

- each finished CT run of the pipeline (``<ct root>/runs/<run_id>/lineage.json``) becomes one run
  of the experiment named after the pipeline, named by its run id: its parameters (flattened:
  ``train.C``), the metrics of its steps (``evaluation.auc``, ``holdout_evaluation.auc``,
  ``forward_evaluation.auc``, ``evaluation.production.auc``, ``features.rows_read`` ...), the
  evaluation's paired comparison with production as a variant's (``comparison.auc.difference``,
  ``.ci_lower``, ``.ci_upper`` ...: CT runs and variants share those columns; a CT run mirrored
  before they were added keeps the metrics it was created with), tags
  (``beam_pipelines.kind``: ``ct``; ``beam_pipelines.status``: pushed / registered / not_blessed /
  stopped / no_trigger / failed; data sha256, code identity, the lineage path), ``lineage.json``
  as an artifact when the server stores artifacts itself (``mlflow-artifacts:``), and status
  FINISHED (FAILED for a failed run);
- each experiment variant's run record (``<ct root>/experiments/<run_id>/run.json``, ``ct.runs``)
  becomes a run of the same MLflow experiment, named by its run id: its hyperparameters (flattened
  as a CT run's: ``train.C``), its metrics on the eval rows (``evaluation.auc``), production's on
  the same rows (``evaluation.production.auc``), the paired comparison
  (``comparison.auc.difference``, ``comparison.auc.ci_lower``, ``comparison.auc.ci_upper`` ...),
  tags (``beam_pipelines.kind``: ``experiment``; ``beam_pipelines.experiment_id``, the overrides,
  the would-be blessing, data and eval rows sha256, code identity, the record's path),
  ``run.json`` as an artifact (as above), and status FINISHED (FAILED for a variant whose steps
  raised: its record is ``failed``, with its params, data and error, and no metrics);
- each registry version becomes a version of the registered model named after the pipeline, its
  source the bucket's version folder (a local bucket's files are uploaded to its run instead: the
  server refuses local paths), tagged with its registry version, build id, data and model sha256;
- the ``production`` and ``candidate`` aliases are set where the bucket has them.

Which MLflow ids mirror what is kept in ``<ct root>/mlflow.json``, per tracking server; a failed
call leaves it as it was and the next sync resumes. Runs and versions are also found by their
tags before one is created, so a lost record never makes a duplicate; a CT run mirrored before
runs carried ``beam_pipelines.kind`` gets the tag at the next sync. MLflow is never read to
decide anything. ``$MLFLOW_TRACKING_TOKEN`` (bearer) or ``$MLFLOW_TRACKING_USERNAME`` /
``$MLFLOW_TRACKING_PASSWORD`` (basic) authenticate, as MLflow's client reads them.
"""

from __future__ import annotations

import base64
import datetime
import json
import math
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

from beam_pipelines.ct import runs
from beam_pipelines.ct.paths import LINEAGE_FILE, RUNS, CtPaths
from beam_pipelines.ct.registry import ALIASES, Registry, blessing_status
from beam_pipelines.store import bucket, layout
from beam_pipelines.store.console import progress
from beam_pipelines.store.errors import Refusal

TRACKING_ENV_VAR = 'MLFLOW_TRACKING_URI'
TOKEN_ENV_VAR, USER_ENV_VAR, PASSWORD_ENV_VAR = (
    'MLFLOW_TRACKING_TOKEN', 'MLFLOW_TRACKING_USERNAME', 'MLFLOW_TRACKING_PASSWORD')
MIRROR_FILE = 'mlflow.json'
TAG = 'beam_pipelines'  # the prefix of the tags the mirror writes
RUN_TAG, VERSION_TAG = f'{TAG}.run_id', 'registry_version'
KIND_TAG = f'{TAG}.kind'  # ct | experiment (``ct.runs``' kinds)
TAG_MAX, PARAM_MAX, KEY_MAX = 5000, 6000, 250
RUNNING, FAILED = 'running', 'failed'
ARTIFACTS_SCHEME = 'mlflow-artifacts:'
BATCH = 100  # metrics/params/tags per log-batch call (MLflow allows 1,000 in all, 100 params)


class MlflowError(RuntimeError):
  """An MLflow REST call that failed: its error code and message."""

  def __init__(self, code: str, message: str):
    super().__init__(f'{code}: {message}')
    self.code = code


class MlflowRest:
  """The MLflow REST calls the mirror makes, over HTTP (stdlib)."""

  def __init__(self, uri: str, timeout: float = 30.0):
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme not in ('http', 'https'):
      raise ValueError(f'${TRACKING_ENV_VAR} must be an http(s) tracking server URL for the mirror '
                       f'(it speaks MLflow\'s REST API), got {server_key(uri)!r}')
    self.base, self.timeout = uri.rstrip('/'), timeout
    self.headers = {'Content-Type': 'application/json'}
    token = os.environ.get(TOKEN_ENV_VAR)
    user, password = os.environ.get(USER_ENV_VAR), os.environ.get(PASSWORD_ENV_VAR)
    if token:
      self.headers['Authorization'] = f'Bearer {token}'
    elif user and password:
      pair = base64.b64encode(f'{user}:{password}'.encode()).decode()
      self.headers['Authorization'] = f'Basic {pair}'

  def _request(self, method: str, url: str, data: Optional[bytes]) -> Dict[str, Any]:
    request = urllib.request.Request(url, data=data, headers=self.headers, method=method)
    try:
      with urllib.request.urlopen(request, timeout=self.timeout) as response:
        body = response.read()
    except urllib.error.HTTPError as error:
      text = error.read().decode('utf-8', 'replace')
      try:
        detail = json.loads(text)
      except ValueError:
        raise MlflowError(f'HTTP {error.code}', text[:300]) from None
      raise MlflowError(detail.get('error_code', f'HTTP {error.code}'),
                        detail.get('message', text[:300])) from None
    return json.loads(body) if body.strip() else {}

  def call(self, method: str, endpoint: str, body: Optional[Mapping[str, Any]] = None,
           query: Optional[Mapping[str, str]] = None) -> Dict[str, Any]:
    url = f'{self.base}/api/2.0/mlflow/{endpoint}'
    if query:
      url += '?' + urllib.parse.urlencode(query)
    return self._request(method, url, json.dumps(body).encode() if body is not None else None)

  def upload(self, artifact_uri: str, path: str, data: bytes) -> None:
    """Stores ``data`` as artifact ``path`` of a run whose artifacts the server keeps itself."""
    if not artifact_uri.startswith(ARTIFACTS_SCHEME):
      raise MlflowError('ARTIFACTS_NOT_PROXIED', f'artifact store {artifact_uri} is not the '
                        f'server\'s own ({ARTIFACTS_SCHEME}): only the tracking server\'s '
                        f'artifact proxy can be written over HTTP')
    where = artifact_uri[len(ARTIFACTS_SCHEME):].lstrip('/')
    url = (f'{self.base}/api/2.0/mlflow-artifacts/artifacts/'
           f'{urllib.parse.quote(f"{where}/{path}")}')
    self._request('PUT', url, data)


def server_key(uri: str) -> str:
  """A tracking URI without credentials: the mirror record's key of a server."""
  parts = urllib.parse.urlsplit(uri)
  host = parts.netloc.rsplit('@', 1)[-1]
  return urllib.parse.urlunsplit((parts.scheme, host, parts.path.rstrip('/'), '', ''))


def millis(stamp: Optional[str]) -> Optional[int]:
  """An ISO-8601 time of a record, as MLflow's milliseconds since the epoch."""
  if not stamp:
    return None
  return int(datetime.datetime.fromisoformat(stamp).timestamp() * 1000)


def _key(text: str) -> str:
  """An MLflow key: letters, digits, ``_ - . / `` and space, at most 250 characters."""
  return ''.join(c if c.isalnum() or c in '_-./ ' else '_' for c in text)[:KEY_MAX]


def flatten(value: Any, prefix: str = '') -> Iterator[Tuple[str, Any]]:
  """(dotted key, leaf) of nested mappings."""
  if isinstance(value, Mapping):
    for key, inner in sorted(value.items()):
      yield from flatten(inner, f'{prefix}.{key}' if prefix else str(key))
  else:
    yield prefix, value


def _number(value: Any) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def run_params(record: Mapping[str, Any]) -> Dict[str, str]:
  """A CT run's parameters as MLflow params (strings)."""
  return _params(record.get('parameters') or {})


def _params(tree: Mapping[str, Any]) -> Dict[str, str]:
  """Nested parameters as MLflow params: dotted keys, JSON text of what is not text."""
  params = {}
  for key, value in flatten(tree):
    if value is None:
      continue
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    params[_key(key)] = text[:PARAM_MAX]
  return params


def run_metrics(record: Mapping[str, Any]) -> Dict[str, float]:
  """The numbers of a CT run's step results: ``<step>.<metric>`` (an evaluation's metrics),
  ``<step>.production.<metric>`` (its baseline's on the same rows), ``<step>.<count>``."""
  metrics: Dict[str, float] = {}
  for step, entry in sorted((record.get('steps') or {}).items()):
    result = entry.get('result') if isinstance(entry, Mapping) else None
    if not isinstance(result, Mapping):
      continue
    for key, value in result.items():
      name = {'metrics': step, 'baseline_metrics': f'{step}.production'}.get(key, f'{step}.{key}')
      if key == 'auc_comparison':
        continue
      metrics.update(_metrics(value, name))
  return metrics


def _metrics(value: Any, prefix: str) -> Dict[str, float]:
  """The finite numbers of ``value`` (nested mappings), by dotted key under ``prefix``."""
  return {_key(leaf): float(number) for leaf, number in flatten(value, prefix) if _number(number)}


def run_tags(record: Mapping[str, Any], pipeline: str, lineage_path: str) -> Dict[str, str]:
  """What a CT run is, as tags: status, trigger, data, code, model, the lineage record."""
  code, data = record.get('code') or {}, record.get('data') or {}
  model = record.get('model') or {}
  tags = {RUN_TAG: record['run_id'], KIND_TAG: runs.CT, f'{TAG}.pipeline': pipeline,
          f'{TAG}.status': record.get('status'), f'{TAG}.lineage': lineage_path,
          f'{TAG}.trigger': ','.join(record.get('trigger') or []),
          f'{TAG}.span': data.get('span'), f'{TAG}.data_sha256': data.get('sha256'),
          f'{TAG}.span_sha256': data.get('span_sha256'),
          f'{TAG}.model_version': model.get('version'), f'{TAG}.blessing': model.get('blessing'),
          f'{TAG}.model_sha256': model.get('sha256'), f'{TAG}.reason': record.get('reason'),
          f'{TAG}.error': record.get('error'), f'{TAG}.report': record.get('report')}
  return _tags(tags, code)


def _tags(tags: Mapping[str, Any], code: Mapping[str, Any]) -> Dict[str, str]:
  """``tags`` and the code identity (``beam_pipelines.code.*``, the git commit) as MLflow tags:
  text, the ones without a value left out."""
  tags = dict(tags, **{'mlflow.source.git.commit': code.get('git_commit')})
  tags.update({f'{TAG}.code.{key}': value for key, value in code.items()})
  return {_key(k): (v if isinstance(v, str) else json.dumps(v, sort_keys=True))[:TAG_MAX]
          for k, v in tags.items() if v is not None}


def experiment_run_params(record: Mapping[str, Any]) -> Dict[str, str]:
  """An experiment variant's hyperparameters as MLflow params, keyed as a CT run's
  (``train.<param>``)."""
  return _params({'train': record.get('params') or {}})


def experiment_run_metrics(record: Mapping[str, Any]) -> Dict[str, float]:
  """An experiment variant's numbers, named as a CT run's evaluation step's: its metrics on the
  eval rows (``evaluation.<metric>``), production's on the same rows
  (``evaluation.production.<metric>``), the paired comparison (``comparison.<metric>.difference``,
  ``.ci_lower``, ``.ci_upper``, ``.candidate``, ``.baseline``, ``.ci_level``, ``.rows``) and
  ``data.eval_rows``."""
  baseline, data = record.get('baseline') or {}, record.get('data') or {}
  return dict(**_metrics(record.get('metrics'), 'evaluation'),
              **_metrics(baseline.get('metrics'), 'evaluation.production'),
              **_metrics(record.get('comparison'), 'comparison'),
              **_metrics(data.get('eval_rows'), 'data.eval_rows'))


def experiment_run_tags(record: Mapping[str, Any], record_path: str) -> Dict[str, str]:
  """What an experiment variant is, as tags: its experiment, what it changed, the would-be
  blessing, its baseline, data, eval rows, model and code, the run record."""
  data, baseline = record.get('data') or {}, record.get('baseline') or {}
  tags = {RUN_TAG: record['run_id'], KIND_TAG: runs.EXPERIMENT,
          f'{TAG}.experiment_id': record.get('experiment_id'),
          f'{TAG}.pipeline': record.get('pipeline'), f'{TAG}.status': record.get('status'),
          f'{TAG}.run_record': record_path, f'{TAG}.metric': record.get('metric'),
          f'{TAG}.overrides': record.get('overrides'),
          f'{TAG}.blessing': (record.get('blessing') or {}).get('status'),
          f'{TAG}.baseline_version': baseline.get('version'),
          f'{TAG}.baseline_model_sha256': baseline.get('model_sha256') or None,
          f'{TAG}.span': data.get('span'),
          f'{TAG}.window': ','.join(data.get('window') or []) or None,
          f'{TAG}.data_sha256': data.get('sha256'), f'{TAG}.eval_sha256': data.get('eval_sha256'),
          f'{TAG}.model_sha256': (record.get('artifacts') or {}).get('model_sha256'),
          f'{TAG}.reason': record.get('reason'), f'{TAG}.error': record.get('error')}
  return _tags(tags, record.get('code') or {})


def _chunks(items: List[Dict[str, Any]]) -> Iterator[List[Dict[str, Any]]]:
  for start in range(0, len(items), BATCH):
    yield items[start:start + BATCH]


class Mirror:
  """One pipeline's CT runs, experiment runs and registry, mirrored to one tracking server."""

  def __init__(self, paths: CtPaths, api: MlflowRest, server: str):
    self.paths, self.api, self.server = paths, api, server
    self.registry = Registry(paths.registry)
    self.name = paths.pipeline
    self.path = layout.join(paths.root, MIRROR_FILE)
    self.document = (bucket.read_json(self.path, 'MLflow mirror record')
                     if bucket.exists(self.path) else {})
    self.state = self.document.setdefault(server, {
        'experiment_id': None, 'runs': {}, 'model': None, 'versions': {}, 'aliases': {}})

  def save(self) -> None:
    bucket.write_bytes(self.path, (json.dumps(self.document, indent=2, sort_keys=True)
                                   + '\n').encode())

  def sync(self) -> Dict[str, Any]:
    """CT runs, then versions, then aliases, then experiment runs; returns this server's mirror
    record (``runs``: {run id: {run_id, artifact_uri, kind}} of both kinds)."""
    self.experiment()
    for lineage_path in self.lineage_paths():
      self.sync_run(lineage_path)
    self.sync_versions()
    self.sync_aliases()
    for record_path in self.experiment_run_paths():
      self.sync_experiment_run(record_path)
    return self.state

  # Runs ---------------------------------------------------------------------------------------

  def experiment(self) -> str:
    if self.state['experiment_id']:
      return self.state['experiment_id']
    try:
      found = self.api.call('GET', 'experiments/get-by-name', query={'experiment_name': self.name})
      experiment_id = found['experiment']['experiment_id']
    except MlflowError as error:
      if error.code != 'RESOURCE_DOES_NOT_EXIST':
        raise
      experiment_id = self.api.call('POST', 'experiments/create', {
          'name': self.name, 'tags': [{'key': f'{TAG}.ct_root', 'value': self.paths.root}]
      })['experiment_id']
    self.state['experiment_id'] = experiment_id
    self.save()
    return experiment_id

  def lineage_paths(self) -> List[str]:
    runs = layout.join(self.paths.root, RUNS)
    return sorted(p for p in bucket.list_tree(runs) if p.endswith(f'/{LINEAGE_FILE}'))

  def find_run(self, run_id: str) -> Optional[Dict[str, Any]]:
    """The MLflow run already mirroring CT run ``run_id`` (by its tag), if any."""
    found = self.api.call('POST', 'runs/search', {
        'experiment_ids': [self.state['experiment_id']], 'max_results': 1,
        'filter': f"tags.`{RUN_TAG}` = '{run_id}'"}).get('runs') or []
    return found[0]['info'] if found else None

  def sync_run(self, lineage_path: str) -> None:
    record = bucket.read_json(lineage_path, 'lineage record')
    run_id = record.get('run_id')
    if not run_id or record.get('status') == RUNNING:
      return  # not finished (a killed run stays "running": never mirrored)
    mirrored = self.state['runs'].get(run_id)
    if mirrored is not None:
      if 'kind' not in mirrored:  # mirrored before runs carried their kind
        self.tag_kind(mirrored, runs.CT)
      return
    info = self.find_run(run_id)
    if info is not None:  # a lost record: the run is there, tagged with its kind or not
      self.api.call('POST', 'runs/set-tag', {'run_id': info['run_id'], 'key': KIND_TAG,
                                             'value': runs.CT})
    else:
      info = self.create_run(record, run_tags(record, self.name, lineage_path),
                             run_params(record), self.ct_metrics(record, run_id), LINEAGE_FILE,
                             lineage_path)
    self.remember(run_id, info, runs.CT)
    progress(f'mlflow: run {run_id} ({record.get("status")}) mirrored as run {info["run_id"]} '
             f'of experiment {self.name}')

  def ct_metrics(self, record: Mapping[str, Any], run_id: str) -> Dict[str, float]:
    """``run_metrics`` and the evaluation's paired comparison with production, named as a
    variant's (``comparison.<metric>.*``); an unreadable metrics.json is said and left out."""
    evaluation = (record.get('steps') or {}).get('evaluation') or {}
    try:
      comparison = runs.comparison(evaluation.get('outputs'))
    except Refusal as error:
      progress(f'mlflow: run {run_id}: comparison not mirrored ({error})')
      comparison = {}
    return dict(run_metrics(record), **_metrics(comparison, 'comparison'))

  def tag_kind(self, mirrored: Dict[str, Any], kind: str) -> None:
    self.api.call('POST', 'runs/set-tag', {'run_id': mirrored['run_id'], 'key': KIND_TAG,
                                           'value': kind})
    mirrored['kind'] = kind
    self.save()

  def remember(self, run_id: str, info: Mapping[str, Any], kind: str) -> None:
    self.state['runs'][run_id] = {'run_id': info['run_id'], 'artifact_uri': info['artifact_uri'],
                                  'kind': kind}
    self.save()

  def experiment_run_paths(self) -> List[str]:
    """The run records of the pipeline's experiment variants."""
    root = runs.experiments_dir(self.paths) + '/'
    return [p for p in runs.run_files(self.paths) if p.startswith(root)]

  def sync_experiment_run(self, record_path: str) -> None:
    run_id = record_path.rsplit('/', 2)[-2]  # <experiments>/<run_id>/run.json
    if run_id in self.state['runs']:
      return  # mirrored: its record is not read again
    try:
      record = runs.read_run(record_path)
    except runs.RunError as error:  # one unreadable record never stops the others
      progress(f'mlflow: {error}; not mirrored')
      return
    if record['kind'] != runs.EXPERIMENT or record['run_id'] != run_id:
      progress(f'mlflow: {record_path} is not the record of experiment run {run_id}; '
               f'not mirrored')
      return
    info = self.find_run(run_id) or self.create_run(
        record, experiment_run_tags(record, record_path), experiment_run_params(record),
        experiment_run_metrics(record), runs.RUN_FILE, record_path)
    self.remember(run_id, info, runs.EXPERIMENT)
    progress(f'mlflow: experiment run {run_id} ({record["status"]}) mirrored as run '
             f'{info["run_id"]} of experiment {self.name}')

  def create_run(self, record: Mapping[str, Any], tags: Mapping[str, str],
                 params: Mapping[str, str], metrics: Mapping[str, float], artifact: str,
                 artifact_path: str) -> Dict[str, Any]:
    """A new MLflow run named by ``record``'s run id, with everything logged (the bucket file
    ``artifact_path`` as artifact ``artifact`` when the server stores artifacts), then closed:
    FINISHED, or FAILED for a failed run."""
    info = self.api.call('POST', 'runs/create', {
        'experiment_id': self.state['experiment_id'], 'run_name': record['run_id'],
        'start_time': millis(record.get('started_at')),
        'tags': [{'key': k, 'value': v} for k, v in tags.items()]})['run']['info']
    stamp = millis(record.get('finished_at')) or millis(record.get('started_at'))
    for chunk in _chunks([{'key': k, 'value': v} for k, v in params.items()]):
      self.api.call('POST', 'runs/log-batch', {'run_id': info['run_id'], 'params': chunk})
    for chunk in _chunks([{'key': k, 'value': v, 'timestamp': stamp, 'step': 0}
                          for k, v in metrics.items()]):
      self.api.call('POST', 'runs/log-batch', {'run_id': info['run_id'], 'metrics': chunk})
    if info['artifact_uri'].startswith(ARTIFACTS_SCHEME):
      self.api.upload(info['artifact_uri'], artifact, bucket.read_bytes(artifact_path))
    self.api.call('POST', 'runs/update', {
        'run_id': info['run_id'], 'end_time': stamp,
        'status': 'FAILED' if record.get('status') == FAILED else 'FINISHED'})
    return info

  # Registered versions and aliases ------------------------------------------------------------

  def model(self) -> str:
    if self.state['model']:
      return self.state['model']
    try:
      self.api.call('POST', 'registered-models/create', {
          'name': self.name, 'description': f'{self.name}: mirrored from the bucket registry '
                                            f'{self.registry.root}, the source of truth',
          'tags': [{'key': f'{TAG}.registry', 'value': self.registry.root}]})
    except MlflowError as error:
      if error.code != 'RESOURCE_ALREADY_EXISTS':
        raise
    self.state['model'] = self.name
    self.save()
    return self.name

  def existing_versions(self) -> Dict[str, str]:
    """{registry version: MLflow version} of the versions the server has (by their tag)."""
    found = self.api.call('GET', 'model-versions/search', query={
        'filter': f"name='{self.name}'", 'max_results': '1000'}).get('model_versions') or []
    return {tag['value']: version['version'] for version in found
            for tag in version.get('tags') or [] if tag['key'] == VERSION_TAG}

  def sync_versions(self) -> None:
    numbers = [n for n in self.registry.numbers() if str(n) not in self.state['versions']]
    if not numbers:
      return
    model = self.model()
    existing = self.existing_versions()
    for number in numbers:
      version = existing.get(str(number)) or self.create_version(model, number)
      self.state['versions'][str(number)] = version
      self.save()
      progress(f'mlflow: {model} v{number} mirrored as registered model version {version}')

  def create_version(self, model: str, number: int) -> str:
    record = self.registry.record(number)
    lineage: Mapping[str, Any] = {}
    if record.get('lineage') and bucket.exists(record['lineage']):
      lineage = bucket.read_json(record['lineage'], 'lineage record')
    code, data = lineage.get('code') or {}, lineage.get('data') or {}
    folder = self.registry.version_dir(number)
    run = self.state['runs'].get(record.get('run_id') or '')
    source = folder
    if bucket.is_local(folder):  # the server refuses a local path: the files go to the run
      if run is None:
        raise MlflowError('NO_RUN', f'v{number} is in a local registry and its run '
                          f'{record.get("run_id")} is not mirrored: nowhere to upload its files')
      for name in sorted(record['files']):
        self.api.upload(run['artifact_uri'], f'registry/v{number}/{name}',
                        bucket.read_bytes(layout.join(folder, name)))
      source = f'{run["artifact_uri"]}/registry/v{number}'
    blessing = blessing_status(record)
    tags = {VERSION_TAG: str(number), 'build_id': code.get('build_id'),
            'data_sha256': data.get('sha256'), 'model_sha256': record['model_sha256'],
            'blessing': blessing, 'ct_run_id': record.get('run_id'), 'bucket_source': folder}
    body = {'name': model, 'source': source,
            'description': f'{model} v{number} of the bucket registry {self.registry.root} (the '
                           f'source of truth); model sha256 {record["model_sha256"]}',
            'tags': [{'key': k, 'value': str(v)} for k, v in tags.items() if v is not None]}
    if run is not None:
      body['run_id'] = run['run_id']
    return self.api.call('POST', 'model-versions/create', body)['model_version']['version']

  def sync_aliases(self) -> None:
    aliases = self.registry.aliases()
    for alias in ALIASES:
      target = aliases.get(alias)
      if target is None or self.state['aliases'].get(alias) == target:
        continue
      version = self.state['versions'][str(target)]
      self.api.call('POST', 'registered-models/alias', {
          'name': self.model(), 'alias': alias, 'version': version})
      self.state['aliases'][alias] = target
      self.save()
      progress(f'mlflow: alias {alias} -> {self.name} v{target} (registered model version '
               f'{version})')


def configured() -> Optional[str]:
  """The tracking server to mirror to, when ``$MLFLOW_TRACKING_URI`` is set."""
  return os.environ.get(TRACKING_ENV_VAR, '').strip() or None


def sync_if_configured(paths: CtPaths) -> Optional[Dict[str, Any]]:
  """``Mirror(...).sync()`` to ``$MLFLOW_TRACKING_URI``, when it is set."""
  uri = configured()
  if not uri:
    return None
  return Mirror(paths, MlflowRest(uri), server_key(uri)).sync()


def mirror_after(paths: CtPaths) -> None:
  """What a command runs after a CT run or an alias move: the opt-in sync, whose failure is said
  in one line and changes nothing (the bucket decided; the next sync resumes)."""
  try:
    sync_if_configured(paths)
  except Exception as error:  # noqa: BLE001 - the mirror is best effort; the bucket is the truth
    progress(f'mlflow: mirror NOT updated ({type(error).__name__}: {error}); the bucket is '
             f'unchanged and the next run or move resumes the sync')
