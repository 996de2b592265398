"""Where continuous training reads and writes in one environment of a bucket, and the registry of
a pipeline's model. Bucket layout, under the environment (``prod``)::

    <env>/inputs/ct/<span>/*.csv             the landing area: one directory per span
    <env>/ct/runs/<run_id>/lineage.json      lineage of each run (+ predictions/ with --predict)
    <env>/ct/spans/<span sha256>.json        processed spans: run, outcome, statistics, version
    <env>/ct/cache/<step>/<key>/             step outputs, done.json last
    <env>/ct/schema.pbtxt                    the curated schema (inferred on first use)
    <env>/ct/ct.lock                         one ct run at a time
    <env>/registry/<model>/                  the model registry (``beam_pipelines.ct.registry``)
"""

from __future__ import annotations

from typing import Optional

from beam_pipelines.ct.definition import load_definition
from beam_pipelines.ct.registry import Registry
from beam_pipelines.store import layout

CT_DIR, LANDING, REGISTRY_DIR = layout.CT, layout.CT, layout.REGISTRY
RUNS, SPANS, CACHE = 'runs', 'spans', 'cache'
SCHEMA_FILE, LOCK_FILE, LINEAGE_FILE, CHECK_FILE = ('schema.pbtxt', 'ct.lock', 'lineage.json',
                                                    'ml_check.json')
SPAN_FILES = '*.csv'


class CtPaths:
  """Where continuous training reads and writes in one environment of a bucket."""

  def __init__(self, bucket_url: str, env: str = layout.PROD):
    self.env = layout.Env(bucket_url, env)
    self.landing = self.env.path(layout.INPUTS, LANDING)
    self.root = self.env.path(CT_DIR)
    self.cache = layout.join(self.root, CACHE)
    self.spans = layout.join(self.root, SPANS)
    self.schema = layout.join(self.root, SCHEMA_FILE)
    self.lock = layout.join(self.root, LOCK_FILE)

  def run(self, run_id: str) -> str:
    return layout.join(self.root, RUNS, run_id)

  def span_record(self, sha256: str) -> str:
    return layout.join(self.spans, f'{sha256}.json')

  def registry(self, model: str) -> str:
    return self.env.path(REGISTRY_DIR, model)


def model_registry(bucket_url: str, env: str = layout.PROD,
                   definition_path: Optional[str] = None) -> Registry:
  """The registry of the model the CT pipeline definition trains (named by its dataset spec)."""
  return Registry(CtPaths(bucket_url, env).registry(load_definition(definition_path).model_name))
