"""The leakage guard reads a bounded head of each split (``tabular.read_head``), not the split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from beam_pipelines.ml import artifacts, guards, tabular


@pytest.fixture(scope='module')
def features_dir(tmp_path_factory):
  """Three train and two eval shards; ``leak`` is the label plus a little noise."""
  root = tmp_path_factory.mktemp('features')
  rng = np.random.default_rng(7)
  for split, shards in ((artifacts.TRAIN, 3), (artifacts.EVAL, 2)):
    (root / split).mkdir()
    for index in range(shards):
      rows = 700 + 100 * index
      label = rng.integers(0, 2, rows)
      frame = pd.DataFrame({
          'y': label, 'noise': rng.normal(size=rows),
          'leak': label + rng.normal(scale=0.01, size=rows),
          'colour': rng.choice(['red', 'blue', None], rows),
          'trip_id': [f'{split}-{index}-{i}' for i in range(rows)]})
      pq.write_table(pa.Table.from_pandas(frame, preserve_index=False),
                     root / split / f'part-{index:05d}-of-{shards:05d}.parquet')
  return str(root)


@pytest.mark.parametrize('max_rows', [1, 699, 700, 1500, 10_000])
def test_read_head_is_the_head_of_the_whole_split(features_dir, max_rows):
  columns = ['y', 'leak', 'colour', 'absent']
  head = tabular.read_head(features_dir, artifacts.TRAIN, max_rows, columns)
  whole = tabular.read_split(features_dir, artifacts.TRAIN).frame
  expected = whole[['y', 'leak', 'colour']].head(max_rows).reset_index(drop=True)
  pd.testing.assert_frame_equal(head, expected)


def test_read_head_of_a_missing_split_is_a_features_error(tmp_path):
  with pytest.raises(tabular.FeaturesError, match='nothing matches'):
    tabular.read_head(str(tmp_path), artifacts.TRAIN, 10)


def test_the_guard_finds_the_leak_on_the_bounded_head(features_dir, monkeypatch):
  aucs = guards.single_feature_aucs(features_dir, 'y', ['noise', 'leak'], ['colour'])
  assert aucs['leak'] >= 0.98 and aucs['noise'] < 0.6 and aucs['colour'] < 0.6
  monkeypatch.setattr(guards, 'MAX_ROWS', 500)  # only the first shard of each split
  head = guards.single_feature_aucs(features_dir, 'y', ['noise', 'leak'], ['colour'])
  evaluation = tabular.read_split(features_dir, artifacts.EVAL).frame.head(500)
  assert head['noise'] == round(guards._auc(guards._numeric_scores(evaluation['noise']),
                                            evaluation['y'].to_numpy()), 4)
