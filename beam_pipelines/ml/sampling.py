"""A stratified sample of a feature split under a row budget, read batch by batch.

Training fits in memory, so the rows it reads are bounded (``train --max_train_rows``). When a
split has more rows than the budget, ``read_stratified`` keeps exactly ``budget`` of them without
ever holding the split: each Parquet shard is read in Arrow batches of the columns the model needs,
and each label class keeps the rows with the smallest row hashes. The rule (``RULE``):

- **quotas**: class ``c``, with ``n_c`` of the split's ``n`` rows, keeps ``floor(budget x n_c /
  n)`` rows, and the rows left over go one each to the classes with the largest remainders
  (ties: the smaller label). The quotas sum to the budget and each is within one row of the
  class's exact share (``quotas``).
- **rows**: within a class, the ``quota`` rows with the smallest row hash (``row_hashes``): the
  row's values in the columns read, each as a 64-bit word (a numeric value as its float64 bits, a
  missing one as NaN; a categorical value as the first 8 bytes, big-endian, of the sha256 of its
  UTF-8 text, a missing one as 0; the label as an int64), folded in column order by MurmurHash3's
  64-bit finalizer from a fixed seed: ``h = fmix64(h ^ word)``. A row's hash depends on its values
  alone, so the sample is the same whatever the number, names or order of the shards and
  batches. Rows with the same hash are the same values (rows that differ in one value never
  share it; others about once in 2**64 pairs), so whichever of them is kept, the same data is
  fitted.
- **order**: the sample is returned in the order of its row hashes, so the fit (whose result
  depends on the order of its rows) is the same too.

Memory: a class's kept rows are cut back to its quota whenever they exceed it by half; once cut,
a row whose hash is not below the largest kept hash cannot enter and is dropped at once. The peak
is about 1.5 x ``budget`` rows of the columns read (as Arrow data), a hash per kept row, one
batch and one shard's file (read whole, as ``tabular.read_split`` does, for its sha256); the
split's size does not enter.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import io
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from beam_pipelines.ml.tabular import FeaturesError, data_fingerprint
from beam_pipelines.store import bucket

RULE = ('stratified by label: each class keeps its share of the budget (largest remainder), its '
        'rows with the smallest hash of their values (fmix64 folded over the columns), fitted in '
        'that order (beam_pipelines.ml.sampling)')
BATCH_ROWS = 65536  # rows of an Arrow batch read from a shard
_SEED = np.uint64(0x9E3779B97F4A7C15)  # a row's hash before its first value: 2**64 / golden ratio
_FMIX_MULTIPLIERS = (np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53))


@dataclasses.dataclass
class Sample:
  """The rows kept (an Arrow table, in the order of their hashes) and what they came from."""

  table: Any  # pyarrow.Table of the columns read
  shards: List[Dict[str, str]]  # [{"path", "sha256"}] sorted by path, as ``tabular.Split``
  fingerprint: str  # ``tabular.data_fingerprint`` of the shards
  available: Dict[int, int]  # label -> rows of the split
  kept: Dict[int, int]  # label -> rows of the sample


def quotas(counts: Mapping[int, int], budget: int) -> Dict[int, int]:
  """Rows each class keeps: its share of ``budget`` by the largest remainder (module docstring);
  every row when the classes hold no more than ``budget``."""
  total = sum(counts.values())
  if budget >= total:
    return dict(counts)
  kept = {label: budget * rows // total for label, rows in counts.items()}
  left = budget - sum(kept.values())
  by_remainder = sorted(counts, key=lambda label: (-(budget * counts[label] % total), label))
  for label in by_remainder[:left]:
    kept[label] += 1
  return kept


def label_counts(paths: Sequence[str], label: str) -> Dict[Optional[int], int]:
  """Rows per label value over the shards (``None``: rows without a label), reading the label
  column alone."""
  import pyarrow as pa
  import pyarrow.compute as pc
  import pyarrow.parquet as pq
  from apache_beam.io.filesystems import FileSystems
  counts: Dict[Optional[int], int] = collections.Counter()
  for path in paths:
    with FileSystems.open(path) as handle:
      for batch in pq.ParquetFile(handle).iter_batches(batch_size=BATCH_ROWS, columns=[label]):
        column = _cast(batch.column(0), pa.int64(), label, path)
        counts[None] += column.null_count
        for entry in pc.value_counts(column.drop_null()).to_pylist():
          counts[int(entry['values'])] += int(entry['counts'])
  if not counts[None]:
    del counts[None]
  return dict(counts)


def _cast(array, arrow_type, column: str, path: str):
  if array.type == arrow_type:
    return array
  try:
    return array.cast(arrow_type)
  except Exception as error:  # noqa: BLE001 - pyarrow raises several kinds; name the column
    raise FeaturesError(f'{path}: column {column!r} of type {array.type} cannot be read as '
                        f'{arrow_type}: {error}') from None


def _first_bytes_of_sha256(values: Sequence[bytes]) -> np.ndarray:
  sha256 = hashlib.sha256
  return np.frombuffer(b''.join([sha256(v).digest()[:8] for v in values]),
                       dtype='>u8').astype(np.uint64)


def _mix(hashes: np.ndarray, word: np.ndarray) -> None:
  """``hashes = fmix64(hashes ^ word)`` in place: MurmurHash3's 64-bit finalizer, a bijection,
  so rows that differ in one word never share the result (uint64 arithmetic wraps, as in C)."""
  hashes ^= word
  for multiplier in _FMIX_MULTIPLIERS:
    hashes ^= hashes >> np.uint64(33)
    hashes *= multiplier
  hashes ^= hashes >> np.uint64(33)


def row_hashes(batch, numeric: Sequence[str], categorical: Sequence[str],
               label: str) -> np.ndarray:
  """Each row's hash (uint64) from its values in a batch whose columns are ``numeric`` (float64),
  ``categorical`` (string) and ``label`` (int64), in that order (module docstring)."""
  import pyarrow as pa
  rows = batch.num_rows
  hashes = np.full(rows, _SEED, dtype=np.uint64)
  for index, _ in enumerate(numeric):
    values = batch.column(index).to_numpy(zero_copy_only=False).astype(np.float64)
    values[np.isnan(values)] = np.nan  # one NaN for a missing value and every NaN
    _mix(hashes, values.view(np.uint64))
  for index in range(len(numeric), len(numeric) + len(categorical)):
    encoded = batch.column(index).dictionary_encode()
    texts = encoded.dictionary.cast(pa.binary()).to_pylist()
    valid = encoded.indices.is_valid().to_numpy(zero_copy_only=False)
    positions = encoded.indices.fill_null(0).to_numpy(zero_copy_only=False)
    digests = (_first_bytes_of_sha256(texts)[positions] if texts
               else np.zeros(rows, dtype=np.uint64))
    _mix(hashes, np.where(valid, digests, np.uint64(0)))  # missing: 0, not the empty text's
  labels = batch.column(len(numeric) + len(categorical)).to_numpy(zero_copy_only=False)
  _mix(hashes, labels.astype(np.int64).view(np.uint64))
  return hashes


class _Pool:
  """One class's rows with the smallest hashes so far, cut back to ``quota`` (module docstring)."""

  def __init__(self, quota: int):
    self.quota = quota
    self.hashes: List[np.ndarray] = []
    self.tables: List[Any] = []
    self.size = 0
    self.limit: Optional[np.uint64] = None  # once cut back: the largest hash kept

  def add(self, hashes: np.ndarray, batch) -> None:
    import pyarrow as pa
    if not self.quota:
      return
    if self.limit is not None:
      below = hashes < self.limit
      if not below.any():
        return
      hashes, batch = hashes[below], batch.filter(pa.array(below))
    self.hashes.append(hashes)
    self.tables.append(pa.Table.from_batches([batch]))
    self.size += len(hashes)
    if self.size >= self.quota + max(self.quota // 2, 1):
      self.cut()

  def cut(self):
    """Keeps the ``quota`` smallest hashes; returns (hashes, table) of what is kept (None: no
    row)."""
    import pyarrow as pa
    if not self.tables:
      return np.zeros(0, dtype=np.uint64), None
    hashes, table = np.concatenate(self.hashes), pa.concat_tables(self.tables)
    if len(hashes) > self.quota:
      chosen = np.argpartition(hashes, self.quota - 1)[:self.quota]
      hashes, table = hashes[chosen], table.take(pa.array(chosen))
      self.limit = hashes.max()
    self.hashes, self.tables, self.size = [hashes], [table], len(hashes)
    return hashes, table


def read_stratified(paths: Sequence[str], numeric: Sequence[str], categorical: Sequence[str],
                    label: str, kept: Mapping[int, int], available: Mapping[int, int],
                    batch_rows: int = BATCH_ROWS) -> Sample:
  """The sample (module docstring) of the shards ``paths``: ``kept[c]`` rows of class ``c``.

  ``available`` is ``label_counts`` of the same shards: a shard that changed since (other rows
  per class) is refused, as is a label outside ``available``. Each shard's bytes are read once,
  one shard at a time, and hashed for the fingerprint, as ``tabular.read_split`` does."""
  import pyarrow as pa
  import pyarrow.parquet as pq
  from apache_beam.io.filesystems import FileSystems
  columns = list(numeric) + list(categorical) + [label]
  schema = pa.schema([(c, pa.float64()) for c in numeric] + [(c, pa.string()) for c in categorical]
                     + [(label, pa.int64())])
  pools = {value: _Pool(rows) for value, rows in kept.items()}
  seen: Dict[int, int] = collections.Counter()
  shards = []
  for path in sorted(paths):
    with FileSystems.open(path) as handle:
      data = handle.read()
    shards.append({'path': path, 'sha256': bucket.sha256_bytes(data)})
    parquet = pq.ParquetFile(io.BytesIO(data))
    missing = [c for c in columns if c not in parquet.schema_arrow.names]
    if missing:
      raise FeaturesError(f'{path}: column(s) {missing} missing; columns are '
                          f'{parquet.schema_arrow.names}')
    for batch in parquet.iter_batches(batch_size=batch_rows, columns=columns):
      arrays = [_cast(batch.column(batch.schema.get_field_index(field.name)), field.type,
                      field.name, path) for field in schema]
      batch = pa.RecordBatch.from_arrays(arrays, schema=schema)
      if arrays[-1].null_count:
        raise FeaturesError(f'{path}: rows without a label appeared while the split was read')
      hashes = row_hashes(batch, numeric, categorical, label)
      labels = arrays[-1].to_numpy(zero_copy_only=False)
      for value in np.unique(labels).tolist():
        mask = labels == value
        seen[value] += int(mask.sum())
        if value not in pools:
          raise FeaturesError(f'{path}: label {value} appeared while the split was read')
        pools[value].add(hashes[mask], batch.filter(pa.array(mask)) if not mask.all() else batch)
  if dict(seen) != {value: rows for value, rows in available.items() if rows}:
    raise FeaturesError(f'the split changed while it was read: rows per label {dict(seen)}, '
                        f'counted before {dict(available)}')
  kept_hashes: List[np.ndarray] = []
  tables, counts = [], {}
  for value in sorted(pools):
    pool_hashes, table = pools[value].cut()
    counts[value] = len(pool_hashes)
    if table is not None:
      kept_hashes.append(pool_hashes)
      tables.append(table)
  order = np.argsort(np.concatenate(kept_hashes), kind='stable')
  table = pa.concat_tables(tables).take(pa.array(order))
  return Sample(table.combine_chunks(), shards, data_fingerprint(shards), dict(available), counts)
