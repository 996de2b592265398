"""OpenLineage run events of continuous training, opt-in; the run's ``lineage.json`` stays the truth.

With ``$OPENLINEAGE_URL`` (an HTTP endpoint: Marquez, DataHub, Dataplex ...) or
``$BEAM_PIPELINES_OPENLINEAGE_FILE`` (a local file: one JSON event a line, appended) set, each CT
run emits RunEvents of the OpenLineage spec (2-0-2), written here as plain JSON (no client)::

    job <namespace>/<pipeline>          START when the run starts; COMPLETE when it ends (pushed,
                                        not_blessed, stopped, no_trigger ...), FAIL when it failed
    job <namespace>/<pipeline>.<step>   START when the step starts, COMPLETE when it is recorded
                                        (ran or reused from the cache), FAIL when it raised (the
                                        run's error) or was skipped (forward evaluation)

Each step's run id is a UUID derived from the CT run id and the step (stable: a re-sent event names
the same run), with a ``parent`` facet naming the CT run. Datasets are files and folders named by
the OpenLineage naming rules (``file`` + absolute path, ``gs://<bucket>`` + object path), with a
``dataSource`` facet, and the features' columns in a ``schema`` facet. Inputs are said at START,
outputs when known (COMPLETE)::

    features            span CSV files of the window      -> features folder
    validation          features                           -> validation folder (statistics, report)
    forward_evaluation  the span's CSV files, production   -> evaluation folder
    training            features                           -> model folder
    evaluation          model, features (, production)    -> evaluation folder
    holdout_evaluation  model, holdout CSV (, production)  -> evaluation folder
    push                model                              -> registry version folder
    predict             the span's CSV files, production   -> predictions folder

A transport that fails is said in one line and not used again in that run; the run goes on.
``$OPENLINEAGE_ENDPOINT`` (default ``api/v1/lineage``), ``$OPENLINEAGE_API_KEY`` (a bearer token)
and ``$OPENLINEAGE_NAMESPACE`` (default ``beam-pipelines``) are read as the OpenLineage client
reads them.
"""

from __future__ import annotations

import json
import os
import urllib.parse
import urllib.request
import uuid
from typing import Any, Dict, List, Optional, Protocol, Sequence, Set

import beam_pipelines
from beam_pipelines.ct.definition import PipelineDefinition
from beam_pipelines.ct.lineage import RunRecord, step_time
from beam_pipelines.ct.registry import PRODUCTION, Registry
from beam_pipelines.ml import spec as spec_lib
from beam_pipelines.store import bucket
from beam_pipelines.store.console import progress

URL_ENV_VAR, ENDPOINT_ENV_VAR, API_KEY_ENV_VAR = (
    'OPENLINEAGE_URL', 'OPENLINEAGE_ENDPOINT', 'OPENLINEAGE_API_KEY')
NAMESPACE_ENV_VAR = 'OPENLINEAGE_NAMESPACE'
FILE_ENV_VAR = 'BEAM_PIPELINES_OPENLINEAGE_FILE'
DEFAULT_ENDPOINT, DEFAULT_NAMESPACE = 'api/v1/lineage', 'beam-pipelines'
SPEC = 'https://openlineage.io/spec'
RUN_EVENT_SCHEMA = f'{SPEC}/2-0-2/OpenLineage.json#/$defs/RunEvent'
FACET_SCHEMAS = {
    'parent': f'{SPEC}/facets/1-2-0/ParentRunFacet.json#/$defs/ParentRunFacet',
    'errorMessage': f'{SPEC}/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet',
    'jobType': f'{SPEC}/facets/2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet',
    'schema': f'{SPEC}/facets/1-2-0/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet',
    'dataSource': f'{SPEC}/facets/1-0-1/DatasourceDatasetFacet.json#/$defs/DatasourceDatasetFacet',
}
PRODUCER = f'urn:beam-pipelines:{beam_pipelines.__version__}'
START, COMPLETE, FAIL = 'START', 'COMPLETE', 'FAIL'
RUN_IDS = uuid.UUID('6f1c1f43-2d0e-4b5e-9d8a-0c1f6a0b7e21')  # the namespace of derived run ids
FAILED_STEP_STATUSES = ('skipped',)  # a step recorded so did not complete its work
FAILED_RUN = 'failed'


class Transport(Protocol):
  """Where events go."""

  def emit(self, event: Dict[str, Any]) -> None:
    """Sends one RunEvent (raises when it could not)."""


class FileTransport:
  """One JSON event a line, appended to a local file."""

  def __init__(self, path: str):
    self.path = path

  def emit(self, event: Dict[str, Any]) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
    with open(self.path, 'a', encoding='utf-8') as handle:
      handle.write(json.dumps(event, sort_keys=True) + '\n')

  def __str__(self) -> str:
    return self.path


class HttpTransport:
  """HTTP POST of each event as JSON, as the OpenLineage client's HTTP transport sends it."""

  def __init__(self, url: str, endpoint: str = DEFAULT_ENDPOINT, api_key: Optional[str] = None,
               timeout: float = 10.0):
    if urllib.parse.urlsplit(url).scheme not in ('http', 'https'):
      raise ValueError(f'${URL_ENV_VAR} must be an http(s) URL, got {url!r}')
    self.url = f'{url.rstrip("/")}/{endpoint.lstrip("/")}'
    self.api_key, self.timeout = api_key, timeout

  def emit(self, event: Dict[str, Any]) -> None:
    headers = {'Content-Type': 'application/json'}
    if self.api_key:
      headers['Authorization'] = f'Bearer {self.api_key}'
    request = urllib.request.Request(self.url, data=json.dumps(event).encode(), headers=headers,
                                     method='POST')
    with urllib.request.urlopen(request, timeout=self.timeout) as response:
      response.read()

  def __str__(self) -> str:
    return self.url


def configured_transports() -> List[Transport]:
  """The transports the environment asks for (none: no events)."""
  transports: List[Transport] = []
  url = os.environ.get(URL_ENV_VAR, '').strip()
  if url:
    try:
      transports.append(HttpTransport(url, os.environ.get(ENDPOINT_ENV_VAR) or DEFAULT_ENDPOINT,
                                      os.environ.get(API_KEY_ENV_VAR) or None))
    except ValueError as error:  # said, never a reason to stop a CT run
      progress(f'openlineage: no events sent over HTTP: {error}')
  path = os.environ.get(FILE_ENV_VAR, '').strip()
  if path:
    transports.append(FileTransport(path))
  return transports


def run_uuid(run_id: str, step: Optional[str] = None) -> str:
  """The OpenLineage run id of a CT run (``step`` None) or of one of its steps: stable."""
  return str(uuid.uuid5(RUN_IDS, run_id if step is None else f'{run_id}/{step}'))


def facet(kind: str, /, **fields: Any) -> Dict[str, Any]:
  """A facet of the spec (``kind``: its key, e.g. ``parent``) with its producer and schema URL."""
  return {'_producer': PRODUCER, '_schemaURL': FACET_SCHEMAS[kind], **fields}


def dataset(path: str, schema: Optional[List[Dict[str, str]]] = None) -> Dict[str, Any]:
  """A file or folder as an OpenLineage dataset: ``gs://<bucket>`` + object path, or ``file`` +
  absolute path (the spec's naming rules), with its ``dataSource`` (and ``schema``)."""
  if bucket.is_local(path):
    namespace, name = 'file', os.path.abspath(path)
    uri = f'file://{name}'
  else:
    parts = urllib.parse.urlsplit(path)
    namespace, name = f'{parts.scheme}://{parts.netloc}', parts.path.lstrip('/')
    uri = path
  facets = {'dataSource': facet('dataSource', name=namespace, uri=uri)}
  if schema:
    facets['schema'] = facet('schema', fields=schema)
  return {'namespace': namespace, 'name': name, 'facets': facets}


def schema_fields(definition: PipelineDefinition) -> List[Dict[str, str]]:
  """The columns of the features files, from the pipeline's spec (none when it says ``all``: the
  columns are known only from the data)."""
  spec = spec_lib.load(definition.spec_path)
  if isinstance(spec.numeric, str) or isinstance(spec.categorical, str):
    return []
  typed = ([(c, 'STRING') for c in (spec.key, spec.timestamp) if c]
           + [(c, 'DOUBLE') for c in spec.numeric] + [(c, 'STRING') for c in spec.categorical]
           + [(spec.label, 'INTEGER')])
  return [{'name': name, 'type': kind} for name, kind in typed]


class OpenLineageEmitter:
  """A ``RunListener`` of a CT run that sends its OpenLineage RunEvents to ``transports``."""

  def __init__(self, definition: PipelineDefinition, registry: Registry,
               transports: Sequence[Transport], namespace: Optional[str] = None):
    self.pipeline = definition.name
    self.registry = registry
    self.holdout = definition.integration_path
    self.schema = schema_fields(definition)
    self.transports = list(transports)
    self.namespace = namespace or os.environ.get(NAMESPACE_ENV_VAR) or DEFAULT_NAMESPACE
    self.production: Optional[int] = None
    self.open: Set[str] = set()  # steps started and not recorded yet

  # RunListener -------------------------------------------------------------------------------

  def run_started(self, run: RunRecord) -> None:
    self.production = self.registry.aliases().get(PRODUCTION)
    self._emit(run, START, None, run.record['started_at'], inputs=self._files(run, window=True))

  def step_started(self, run: RunRecord, name: str) -> None:
    self.open.add(name)
    self._emit(run, START, name, step_time(), inputs=self._inputs(run, name))

  def step_recorded(self, run: RunRecord, name: str) -> None:
    entry = run.record['steps'][name]
    finished = entry['finished_at']
    if name not in self.open:  # recorded without a start (push, predict): started then
      self._emit(run, START, name, str(entry.get('started_at') or finished),
                 inputs=self._inputs(run, name))
    self.open.discard(name)
    failed = entry['status'] in FAILED_STEP_STATUSES
    self._emit(run, FAIL if failed else COMPLETE, name, finished, inputs=self._inputs(run, name),
               outputs=self._outputs(run, name),
               error=f'{name} {entry["status"]}: {entry.get("summary", "")}' if failed else None)

  def run_finished(self, run: RunRecord) -> None:
    record = run.record
    failed = record['status'] == FAILED_RUN
    now = step_time()
    for name in sorted(self.open):  # a step that raised: the run's error is its error
      self._emit(run, FAIL, name, now, inputs=self._inputs(run, name),
                 error=record.get('error') or f'run {record["status"]} during step {name}')
    self.open.clear()
    self._emit(run, FAIL if failed else COMPLETE, None, now, inputs=self._files(run, window=True),
               error=record.get('error') if failed else None)

  # Events -------------------------------------------------------------------------------------

  def event(self, run: RunRecord, event_type: str, step: Optional[str], at: str,
            inputs: Sequence[Dict[str, Any]] = (), outputs: Sequence[Dict[str, Any]] = (),
            error: Optional[str] = None) -> Dict[str, Any]:
    """One RunEvent of the CT run (``step`` None) or of one of its steps."""
    run_id = run.record['run_id']
    run_facets: Dict[str, Any] = {}
    if step is not None:
      run_facets['parent'] = facet('parent', run={'runId': run_uuid(run_id)},
                                   job={'namespace': self.namespace, 'name': self.pipeline})
    if error:
      run_facets['errorMessage'] = facet('errorMessage', message=error, programmingLanguage='PYTHON')
    job_type = facet('jobType', processingType='BATCH', integration='BEAM_PIPELINES',
                     jobType='TASK' if step else 'JOB')
    return {
        'eventType': event_type, 'eventTime': at, 'producer': PRODUCER,
        'schemaURL': RUN_EVENT_SCHEMA,
        'run': {'runId': run_uuid(run_id, step), 'facets': run_facets},
        'job': {'namespace': self.namespace,
                'name': self.pipeline if step is None else f'{self.pipeline}.{step}',
                'facets': {'jobType': job_type}},
        'inputs': list(inputs), 'outputs': list(outputs)}

  def _emit(self, run: RunRecord, event_type: str, step: Optional[str], at: str,
            **datasets: Any) -> None:
    event = self.event(run, event_type, step, at, **datasets)
    for transport in list(self.transports):
      try:
        transport.emit(event)
      except Exception as error:  # noqa: BLE001 - lineage events are best effort
        self.transports.remove(transport)
        progress(f'openlineage: events NOT sent to {transport} ({type(error).__name__}: {error}); '
                 f'none more this run; the run\'s lineage.json {run.path} has it all')

  # Datasets -----------------------------------------------------------------------------------

  def _step_dir(self, run: RunRecord, name: str) -> Optional[str]:
    outputs = run.record['steps'].get(name, {}).get('outputs')
    return outputs if isinstance(outputs, str) else None

  def _files(self, run: RunRecord, window: bool = False) -> List[Dict[str, Any]]:
    """The CSV files of the training window, or of the run's own span only."""
    data = run.record['data']
    span = str(data.get('span', '')).rstrip('/')
    files = [f['path'] for f in data.get('files', [])
             if window or f['path'].startswith(span + '/') or f['path'] == span]
    return [dataset(path) for path in files]

  def _production(self, run: RunRecord, name: str) -> List[Dict[str, Any]]:
    version = run.record['steps'].get(name, {}).get('model_version', self.production)
    return [dataset(self.registry.version_dir(int(version)))] if version is not None else []

  def _inputs(self, run: RunRecord, name: str) -> List[Dict[str, Any]]:
    features = [dataset(d, self.schema) for d in [self._step_dir(run, 'features')] if d]
    model = [dataset(d) for d in [self._step_dir(run, 'training')] if d]
    if name == 'features':
      return self._files(run, window=True)
    if name in ('validation', 'training'):
      return features
    if name in ('forward_evaluation', 'predict'):
      return self._files(run) + self._production(run, name)
    if name == 'evaluation':
      return model + features + self._production(run, name)
    if name == 'holdout_evaluation':
      holdout = [dataset(self.holdout)] if self.holdout else []
      return model + holdout + self._production(run, name)
    if name == 'push':
      return model
    return []

  def _outputs(self, run: RunRecord, name: str) -> List[Dict[str, Any]]:
    if name == 'push':
      version = run.record['steps'][name].get('version')
      return [dataset(self.registry.version_dir(int(version)))] if version is not None else []
    directory = self._step_dir(run, name)
    if directory is None:
      return []
    return [dataset(directory, self.schema if name == 'features' else None)]


def listeners(definition: PipelineDefinition, registry: Registry) -> List[OpenLineageEmitter]:
  """The run listeners of a CT run: an emitter when a transport is configured, else none."""
  transports = configured_transports()
  return [OpenLineageEmitter(definition, registry, transports)] if transports else []
