"""Where continuous training of one declared pipeline reads and writes in an environment of a
bucket, and its model registry. Bucket layout, under the environment (``prod``)::

    <env>/inputs/ct/<pipeline>/<span>/*.csv    the landing area: one directory per span
    <env>/ct/<pipeline>/runs/<run_id>/lineage.json  lineage of each run (+ predictions/)
    <env>/ct/<pipeline>/spans/<sha256>.json    processed spans: run, outcome, statistics, version
    <env>/ct/<pipeline>/cache/<step>/<key>/    step outputs, done.json last
    <env>/ct/<pipeline>/experiments/           experiments: run records, each one's own step
                                               cache (``beam_pipelines.experiment``)
    <env>/ct/<pipeline>/schema.pbtxt           the schema inferred on first use (when the
                                               pipeline's folder has no reviewed schema.pbtxt)
    <env>/ct/<pipeline>/ct.lock                one ct run or experiment of the pipeline at a time
    <env>/registry/<pipeline>/                 the model registry (``beam_pipelines.ct.registry``)

Span directories sort chronologically by name (``span-2026-11-01``, ``2026-11``, ...): the
drift baseline of a span and its training window are the spans before it in that order.
"""

from __future__ import annotations

from typing import Optional

from beam_pipelines.ct.definition import default_pipeline
from beam_pipelines.ct.registry import Registry
from beam_pipelines.store import layout

CT_DIR, LANDING, REGISTRY_DIR = layout.CT, layout.CT, layout.REGISTRY
RUNS, SPANS, CACHE = 'runs', 'spans', 'cache'
SCHEMA_FILE, LOCK_FILE, LINEAGE_FILE, CHECK_FILE = ('schema.pbtxt', 'ct.lock', 'lineage.json',
                                                    'ml_check.json')
CHECKS_FILE = 'ml_checks.json'  # the level-2 check's summary over every declared pipeline
SPAN_FILES = '*.csv'


class CtPaths:
  """Where continuous training of ``pipeline`` reads and writes in one environment of a bucket."""

  def __init__(self, bucket_url: str, pipeline: Optional[str] = None, env: str = layout.PROD):
    self.pipeline = layout.validate_name(pipeline or default_pipeline(), 'pipeline name')
    self.env = layout.Env(bucket_url, env)
    self.landing = self.env.path(layout.INPUTS, LANDING, self.pipeline)
    self.root = self.env.path(CT_DIR, self.pipeline)
    self.cache = layout.join(self.root, CACHE)
    self.spans = layout.join(self.root, SPANS)
    self.schema = layout.join(self.root, SCHEMA_FILE)
    self.lock = layout.join(self.root, LOCK_FILE)
    self.registry = self.env.path(REGISTRY_DIR, self.pipeline)

  def run(self, run_id: str) -> str:
    return layout.join(self.root, RUNS, run_id)

  def span_record(self, sha256: str) -> str:
    return layout.join(self.spans, f'{sha256}.json')


def model_registry(bucket_url: str, pipeline: Optional[str] = None,
                   env: str = layout.PROD) -> Registry:
  """The registry of a declared pipeline's model (default: the only one declared)."""
  return Registry(CtPaths(bucket_url, pipeline, env).registry)
