"""Training under a row budget: the stratified sample (exact size, class shares, the same rows
whatever the sharding), every row and the same model bytes at or under the budget, what the
metadata records, and the refusal when the fit would not fit in memory."""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from beam_pipelines import train
from beam_pipelines.ct import runs, steps
from beam_pipelines.ml import artifacts, memory, model_io, sampling, tabular
from beam_pipelines.ml import spec as spec_lib
from beam_pipelines.store.typed_json import to_json

import mldata

pytestmark = pytest.mark.slow
features_dir, good_model_dir = mldata.features_dir, mldata.good_model_dir  # session fixtures
ROWS, BUDGET = 4000, 1000
SPEC = spec_lib.load(spec_lib.default_spec_path())
NUMERIC, CATEGORICAL, LABEL = mldata.NUMERIC, mldata.CATEGORICAL, 'big_tip'


def _split_frame() -> pd.DataFrame:
  """4,000 trips, about 22% positive, with 150 exact copies of other rows (equal hashes)."""
  frame = mldata.taxi_frame(ROWS - 150, seed=11)
  rng = np.random.default_rng(12)
  frame.loc[rng.random(len(frame)) < 0.6, LABEL] = 0
  copies = frame.iloc[rng.integers(0, len(frame), 150)].copy()
  copies['trip_id'] = [f'copy-{i:04d}' for i in range(150)]  # a new key, the same values
  return pd.concat([frame, copies], ignore_index=True)


@pytest.fixture(scope='module')
def split(tmp_path_factory):
  """The same rows twice: in 3 shards in order, and shuffled into 5 shards of other names."""
  frame = _split_frame()
  ordered = tmp_path_factory.mktemp('ordered')
  mldata.write_shards(frame, ordered / artifacts.TRAIN, 3)
  shuffled = tmp_path_factory.mktemp('shuffled')
  mixed = frame.sample(frac=1, random_state=5).reset_index(drop=True)
  directory = shuffled / artifacts.TRAIN
  directory.mkdir()
  for index, part in enumerate(np.array_split(np.arange(len(mixed)), 5)):
    table = pa.Table.from_pandas(mixed.iloc[part], schema=mldata.SCHEMA, preserve_index=False)
    pq.write_table(table, directory / f'part-{4 - index:03d}-shuffled.parquet', row_group_size=333)
  return frame, ordered, shuffled


@pytest.fixture(scope='module')
def sampled(split, tmp_path_factory):
  """A model fitted on the ordered split with a budget of 1,000 rows, and its metadata."""
  _, ordered, _ = split
  output = tmp_path_factory.mktemp('sampled')
  model = train.run(['--features', str(ordered), '--output', str(output),
                     '--max_train_rows', str(BUDGET)])
  return model, model_io.read_metadata(str(output))


def _sample(directory, budget=BUDGET, batch_rows=sampling.BATCH_ROWS) -> sampling.Sample:
  paths = tabular.split_paths(str(directory), artifacts.TRAIN)
  counts = sampling.label_counts(paths, LABEL)
  return sampling.read_stratified(paths, NUMERIC, CATEGORICAL, LABEL,
                                  sampling.quotas(counts, budget), counts, batch_rows)


@pytest.mark.parametrize('counts, budget', [
    ({0: 3120, 1: 880}, 1000), ({0: 1, 1: 999}, 10), ({0: 5, 1: 5, 2: 5}, 7),
    ({0: 333, 1: 333, 2: 334}, 100), ({0: 10, 1: 20}, 30), ({0: 10, 1: 20}, 50)])
def test_quotas_sum_to_the_budget_each_within_one_row_of_its_share(counts, budget):
  kept = sampling.quotas(counts, budget)
  total = sum(counts.values())
  assert sum(kept.values()) == min(budget, total)
  for label, rows in counts.items():
    assert 0 <= kept[label] <= rows
    assert abs(kept[label] - min(budget, total) * rows / total) < 1


def test_the_sample_is_exactly_the_budget_and_keeps_each_class_share(split, sampled):
  frame, _, _ = split
  model, metadata = sampled
  available = frame[LABEL].value_counts().to_dict()
  data = metadata['data']
  assert data['rows'] == data['rows_used'] == model.rows == BUDGET
  assert data['rows_available'] == model.rows_available == ROWS
  assert data['positives_available'] == available[1]
  assert data['max_train_rows'] == model.max_train_rows == BUDGET
  assert metadata['hyperparameters']['max_train_rows'] == BUDGET
  assert data['sample'] is not None and data['sample']['rule'] == sampling.RULE == model.sample
  classes = data['sample']['classes']
  assert {int(k): v['available'] for k, v in classes.items()} == available
  for label, rows in available.items():
    assert abs(classes[str(label)]['used'] - BUDGET * rows / ROWS) < 1
  assert data['positives'] == classes['1']['used'] == model.positives


def test_the_progress_line_says_the_budget_and_both_shares(split, tmp_path, capsys):
  frame, ordered, _ = split
  train.run(['--features', str(ordered), '--output', str(tmp_path), '--max_train_rows', '1000'])
  share = frame[LABEL].mean()
  assert (f'train: 4,000 train rows over the budget of 1,000: a stratified sample of 1,000 '
          f'(positives {share:.1%} in both)') in capsys.readouterr().err


def test_the_sample_is_the_rows_with_the_smallest_hashes_of_each_class(split):
  """The rule as stated, computed over the whole split at once, equals the sample read in
  batches of 97 rows (so kept rows are cut back many times)."""
  frame, ordered, _ = split
  whole = pa.Table.from_pandas(frame[NUMERIC + CATEGORICAL + [LABEL]], preserve_index=False)
  whole = whole.cast(pa.schema([(c, pa.float64()) for c in NUMERIC]
                               + [(c, pa.string()) for c in CATEGORICAL] + [(LABEL, pa.int64())]))
  hashes = sampling.row_hashes(whole.to_batches()[0], NUMERIC, CATEGORICAL, LABEL)
  labels = whole.column(LABEL).to_numpy()
  kept = sampling.quotas(dict(zip(*np.unique(labels, return_counts=True))), BUDGET)
  chosen = np.concatenate([np.flatnonzero(labels == label)[
      np.argsort(hashes[labels == label], kind='stable')[:rows]] for label, rows in kept.items()])
  expected = whole.take(pa.array(chosen[np.argsort(hashes[chosen], kind='stable')]))
  assert _sample(ordered, batch_rows=97).table.equals(expected.combine_chunks())


def test_equal_rows_have_equal_hashes_and_a_missing_text_is_not_the_empty_one():
  table = pa.table({'x': pa.array([1.5, 1.5, None, float('nan')]),
                    'c': pa.array(['a', 'a', None, '']), LABEL: pa.array([1, 1, 0, 0])})
  hashes = sampling.row_hashes(table.to_batches()[0], ['x'], ['c'], LABEL)
  assert hashes[0] == hashes[1] and len(set(hashes.tolist())) == 3
  swapped = sampling.row_hashes(pa.table({'x': pa.array([float('nan'), None]),
                                          'c': pa.array([None, '']),
                                          LABEL: pa.array([0, 0])}).to_batches()[0],
                                ['x'], ['c'], LABEL)
  assert swapped[0] == hashes[2] and swapped[1] == hashes[3]  # NaN and missing are one value


def test_the_sample_does_not_depend_on_the_shards_or_the_batches(split):
  _, ordered, shuffled = split
  first = _sample(ordered)
  assert first.table.num_rows == BUDGET
  assert _sample(ordered).table.equals(first.table)  # the same rows twice
  assert _sample(shuffled, batch_rows=50).table.equals(first.table)  # other shards, same rows
  assert first.fingerprint != _sample(shuffled).fingerprint  # the files differ, and say so


def test_the_same_model_comes_from_any_sharding_of_the_same_rows(split, sampled, tmp_path):
  _, _, shuffled = split
  again = train.run(['--features', str(shuffled), '--output', str(tmp_path),
                     '--max_train_rows', str(BUDGET)])
  assert again.model_sha256 == sampled[0].model_sha256


def test_gbt_fits_the_sample_too(split, tmp_path):
  _, ordered, _ = split
  model = train.run(['--features', str(ordered), '--output', str(tmp_path), '--classifier', 'gbt',
                     '--max_train_rows', '500', '--max_iter', '5'])
  metadata = model_io.read_metadata(str(tmp_path))
  assert model.rows == metadata['data']['rows_used'] == 500
  assert metadata['data']['sample']['rule'] == sampling.RULE


def _fit_as_before_the_budget(features: str, params) -> str:
  """sha256 of the model the code before the row budget fitted: every column of every shard read
  into pandas, concatenated, typed, fitted."""
  frames = [pq.read_table(io.BytesIO(open(path, 'rb').read())).to_pandas()
            for path in tabular.split_paths(features, artifacts.TRAIN)]
  frame = pd.concat(frames, ignore_index=True)
  spec = SPEC.resolve(list(frame.columns))
  model = train.build_model(spec.numeric, spec.categorical, params)
  model.fit(tabular.typed_frame(frame, spec.numeric, spec.categorical),
            frame[spec.label].astype('int64').to_numpy())
  return hashlib.sha256(model_io.model_bytes(model)).hexdigest()


@pytest.mark.parametrize('budget', [None, '3000', 'none', '0'])
def test_at_or_under_the_budget_every_row_gives_the_model_bytes_of_before(
    features_dir, good_model_dir, tmp_path, budget):
  flags = ['--max_train_rows', budget] if budget else []
  model = train.run(['--features', str(features_dir), '--output', str(tmp_path), *flags])
  good = model_io.read_metadata(str(good_model_dir))
  assert model.model_sha256 == good['model_sha256'] == _fit_as_before_the_budget(
      str(features_dir), train.parameters({}))
  data = model_io.read_metadata(str(tmp_path))['data']
  assert data['rows'] == data['rows_used'] == data['rows_available'] == 3000
  assert data['sample'] is None and model.sample is None
  assert data['max_train_rows'] == {None: 2_000_000, '3000': 3000}.get(budget, 0)


def test_gbt_under_the_budget_gives_the_model_bytes_of_before(features_dir, tmp_path):
  params = train.parameters({'classifier': 'gbt', 'max_iter': 5})
  model = train.fit(str(features_dir), str(tmp_path), params)
  assert model.model_sha256 == _fit_as_before_the_budget(str(features_dir), params)


@pytest.mark.parametrize('settings, expected', [
    ({}, 2_000_000), ({'max_train_rows': 'none'}, 0), ({'max_train_rows': None}, 0),
    ({'max_train_rows': 0}, 0), ({'max_train_rows': 500}, 500),
    ({'classifier': 'gbt', 'max_train_rows': 7}, 7)])
def test_the_budget_is_a_training_parameter(settings, expected):
  params = train.parameters(settings)
  assert params['max_train_rows'] == expected == train.row_budget(params)


@pytest.mark.parametrize('value', [-1, 'lots', 1.5])
def test_a_bad_budget_is_refused(value):
  with pytest.raises(train.TrainingRefused, match='max_train_rows'):
    train.parameters({'max_train_rows': value})


def test_training_that_would_not_fit_in_memory_is_refused_before_loading(features_dir, tmp_path):
  with pytest.raises(train.TrainingRefused) as refused:
    train.fit(str(features_dir), str(tmp_path / 'm'), train.parameters({}),
              available_bytes=500_000)
  message = str(refused.value)
  assert 'fitting 3,000 rows of 8 columns (at least 7 once encoded) needs about' in message
  assert '0.5 MiB is available: not training. Lower --max_train_rows' in message
  assert f'to {500_000 // memory.bytes_per_row(8, 7):,} or fewer' in message
  assert not (tmp_path / 'm').exists()


def test_the_categories_are_counted_before_fitting(features_dir, tmp_path):
  """Enough memory for the columns read, not for their one-hot encoding: refused after loading,
  naming the feature with the most values."""
  room = 3000 * memory.bytes_per_row(8, 7) + 1
  with pytest.raises(train.TrainingRefused, match=r'\(15 once encoded; payment_type has 5 values\)'):
    train.fit(str(features_dir), str(tmp_path / 'm'), train.parameters({}), available_bytes=room)
  assert not (tmp_path / 'm').exists()


def test_a_sample_that_fits_is_trained_where_the_whole_split_would_not(split, tmp_path):
  _, ordered, _ = split
  room = 2 * BUDGET * memory.bytes_per_row(8, 15)  # the sample's need, not the split's
  assert ROWS * memory.bytes_per_row(8, 7) > room
  model = train.fit(str(ordered), str(tmp_path), train.parameters({'max_train_rows': BUDGET}),
                    available_bytes=room)
  assert model.rows == BUDGET


def test_the_lineage_summary_and_the_run_record_say_the_sample(sampled):
  model, _ = sampled
  assert steps.describe(model).startswith(
      '1,000 of 4,000 rows (a stratified sample: max_train_rows 1,000); model sha256 ')
  assert runs.training_entry(to_json(model)) == {
      'rows_used': 1000, 'rows_available': 4000, 'max_train_rows': 1000, 'sample': sampling.RULE}
  document = {'run_id': 'r', 'status': 'pushed', 'steps': {'training': {
      'status': 'ran', 'outputs': model.directory, 'result': to_json(model)}}}
  record = runs.from_lineage(document, 'taxi', '/nowhere/lineage.json', 'auc')
  assert record['training']['rows_available'] == 4000
  assert json.loads(json.dumps(record))['training']['sample'] == sampling.RULE


def test_the_memory_free_is_the_lesser_of_memavailable_and_the_container_headroom(tmp_path):
  meminfo = tmp_path / 'meminfo'
  meminfo.write_text('MemTotal:       8000000 kB\nMemAvailable:    2097152 kB\n')
  v2 = tmp_path / 'v2'
  v2.mkdir()
  (v2 / 'memory.max').write_text(f'{1 << 30}\n')
  (v2 / 'memory.current').write_text(f'{600 << 20}\n')
  (v2 / 'memory.stat').write_text(f'anon 1\ninactive_file {100 << 20}\n')
  assert memory.available(str(meminfo), str(v2)) == (1 << 30) - (500 << 20)
  (v2 / 'memory.max').write_text('max\n')  # cgroup v2 without a limit
  assert memory.available(str(meminfo), str(v2)) == 2 << 30
  v1 = tmp_path / 'v1' / 'memory'
  v1.mkdir(parents=True)
  (v1 / 'memory.limit_in_bytes').write_text(f'{3 << 30}\n')
  (v1 / 'memory.usage_in_bytes').write_text(f'{2 << 30}\n')
  assert memory.available(str(meminfo), str(tmp_path / 'v1')) == 1 << 30
  (v1 / 'memory.limit_in_bytes').write_text('9223372036854771712\n')  # cgroup v1: no limit
  assert memory.available(str(meminfo), str(tmp_path / 'v1')) == 2 << 30
