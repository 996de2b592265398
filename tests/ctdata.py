"""A bucket with two registered versions of taxi and their runs' lineage records, written by the
real registry and lineage writers without training: for the tests of the read-only commands and
``benchmarks/cli_latency.py``."""

from __future__ import annotations

import pathlib

from beam_pipelines.ct import lineage, registry
from beam_pipelines.ct.definition import load_definition
from beam_pipelines.ct.paths import CtPaths
from beam_pipelines.ml import model_io
from beam_pipelines.store import layout

AUC = {1: 0.907734409553295, 2: 0.9177344095532951}


def build_bucket(root: pathlib.Path) -> pathlib.Path:
  """Two registered versions of taxi, each with its run's lineage record; v2 is production."""
  paths = CtPaths(str(root), 'taxi')
  reg = registry.Registry(paths.registry)
  parameters = dict(load_definition('taxi').parameters(), push=True, cache=True, predict=False)
  for number in (1, 2):
    model = str(root / 'scratch' / f'model{number}')
    model_io.save_model({'weights': [number]}, model, numeric=['a'], categorical=[], label='y',
                        spec_fingerprint='spec', data={'fingerprint': 'data'},
                        hyperparameters={'C': 1.0})
    run_id = f'2026110{number}T000000Z-00000{number}'
    run = lineage.RunRecord(
        layout.join(paths.run(run_id), 'lineage.json'), run_id=run_id, trigger=['new_span'],
        code={'source': 'source-tree', 'version': '0.1.0', 'git_commit': 'c' * 40,
              'fingerprint': 'f' * 64},
        data={'span': f'span-2026-11-0{number}', 'sha256': 'd' * 64,
              'files': [{'path': f'span-2026-11-0{number}/data.csv', 'sha256': 'e' * 64,
                         'size': 10}]},
        parameters=parameters)
    run.step('features', 'ran', outputs=str(root / 'cache'), summary='',
             result={'rows_written': {'eval': 401, 'train': 1596}})
    record, _ = reg.push(model, metrics={'auc': AUC[number], 'accuracy': 0.81}, run_id=run_id,
                         lineage=run.path, blessing={'status': 'BLESSED', 'message': 'ok',
                                                     'rubber_stamped': number == 1})
    run.finish('pushed', model={'version': record['version']})
    reg.move({registry.CANDIDATE: number, registry.PRODUCTION: number}, registry.EVENT_PUSH,
             'blessed')
  return root
