"""Feature splits as pandas frames: read a split's Parquet shards (hashing them) and type columns.

Training reads the train split into memory (scikit-learn fits in memory), all of it up to its row
budget and a stratified sample beyond (``ml.sampling``); evaluation and inference never do: they
stream rows through Beam and use ``rows_to_frame`` per batch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
from typing import Any, Dict, List, Mapping, Optional, Sequence

from beam_pipelines.ml import artifacts
from beam_pipelines.ml.input_schema import CATEGORICAL, NUMERIC
from beam_pipelines.store import bucket
from beam_pipelines.store.errors import Refusal


class FeaturesError(Refusal, ValueError):
  """The features directory is missing, empty or does not match the spec."""


@dataclasses.dataclass
class Split:
  """One split read into memory, with the sha256 of every shard it came from."""

  frame: Any  # pandas.DataFrame
  shards: List[Dict[str, str]]  # [{"path", "sha256"}] sorted by path
  fingerprint: str  # sha256 over the shards' (name, sha256) pairs


@dataclasses.dataclass(frozen=True)
class Footer:
  """One shard of a split as its Parquet footer says: rows and column names (no row is read)."""

  path: str
  rows: int
  columns: List[str]


def split_paths(features_dir: str, split: str) -> List[str]:
  """The split's shards, sorted (any Beam filesystem); raises FeaturesError when there is none."""
  from apache_beam.io.filesystems import FileSystems
  pattern = artifacts.split_pattern(features_dir, split)
  matched = FileSystems.match([pattern])[0].metadata_list
  if not matched:
    raise FeaturesError(f'no {split} features: nothing matches {pattern}')
  return sorted(m.path for m in matched)


def read_footers(features_dir: str, split: str) -> List[Footer]:
  """Each shard's rows and columns, from its footer; raises FeaturesError when there is none."""
  import pyarrow.parquet as pq
  from apache_beam.io.filesystems import FileSystems
  footers = []
  for path in split_paths(features_dir, split):
    with FileSystems.open(path) as handle:
      parquet = pq.ParquetFile(handle)
      footers.append(Footer(path, parquet.metadata.num_rows, list(parquet.schema_arrow.names)))
  return footers


def read_split(features_dir: str, split: str, columns: Optional[Sequence[str]] = None) -> Split:
  """Reads ``features_dir/<split>/part-*.parquet`` (any Beam filesystem), every column or those of
  ``columns`` a shard has (one without a column has it missing); raises FeaturesError."""
  import pandas as pd
  import pyarrow.parquet as pq
  from apache_beam.io.filesystems import FileSystems
  frames, shards = [], []
  for path in split_paths(features_dir, split):
    with FileSystems.open(path) as handle:
      data = handle.read()
    shards.append({'path': path, 'sha256': bucket.sha256_bytes(data)})
    chosen = None
    if columns is not None:
      names = pq.ParquetFile(io.BytesIO(data)).schema_arrow.names
      chosen = [c for c in columns if c in names]
    frames.append(pq.read_table(io.BytesIO(data), columns=chosen).to_pandas())
  frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
  return Split(frame, shards, data_fingerprint(shards))


def read_head(features_dir: str, split: str, max_rows: int,
              columns: Optional[Sequence[str]] = None):
  """The first ``max_rows`` rows of a split (shards in name order, as ``read_split`` orders them)
  as a pandas frame, read batch by batch: memory follows ``max_rows``, not the split. Only
  ``columns`` (those present) when given; raises FeaturesError when nothing matches."""
  import pyarrow as pa
  import pyarrow.parquet as pq
  from apache_beam.io.filesystems import FileSystems
  tables: List[Any] = []
  rows = 0
  for path in split_paths(features_dir, split):
    with FileSystems.open(path) as handle:
      shard = pq.ParquetFile(handle)
      names = [c for c in columns if c in shard.schema_arrow.names] if columns else None
      batches = [shard.schema_arrow.empty_table().select(names or shard.schema_arrow.names)]
      for batch in shard.iter_batches(batch_size=65_536, columns=names):
        batches.append(pa.Table.from_batches([batch.slice(0, max_rows - rows)]))
        rows += batches[-1].num_rows
        if rows >= max_rows:
          break
    tables.append(pa.concat_tables(batches))
    if rows >= max_rows:
      break
  return pa.concat_tables(tables, promote=True).to_pandas()


def split_column_types(features_dir: str, split: str) -> Dict[str, Dict[str, Optional[str]]]:
  """{shard path: {column: "numeric" | "categorical" | None (all null) | arrow type}} of a split,
  read from each Parquet shard's footer (no rows are read); raises FeaturesError if none."""
  import pyarrow as pa
  import pyarrow.parquet as pq
  from apache_beam.io.filesystems import FileSystems
  pattern = artifacts.split_pattern(features_dir, split)
  matched = FileSystems.match([pattern])[0].metadata_list
  if not matched:
    raise FeaturesError(f'no {split} features: nothing matches {pattern}')

  def kind(arrow_type) -> Optional[str]:
    if pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type):
      return NUMERIC
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
      return CATEGORICAL
    return None if pa.types.is_null(arrow_type) else str(arrow_type)

  types = {}
  for path in sorted(m.path for m in matched):
    with FileSystems.open(path) as handle:
      schema = pq.ParquetFile(handle).schema_arrow
    types[path] = {field.name: kind(field.type) for field in schema}
  return types


def data_fingerprint(shards: Sequence[Mapping[str, str]]) -> str:
  """sha256 over sorted (file name, sha256) pairs: stable whatever directory the data sits in."""
  digest = hashlib.sha256()
  for shard in sorted(shards, key=lambda s: s['path']):
    name = shard['path'].replace('\\', '/').rsplit('/', 1)[-1]
    digest.update(f'{name}\0{shard["sha256"]}\n'.encode())
  return digest.hexdigest()


def typed_frame(frame, numeric: Sequence[str], categorical: Sequence[str]):
  """The feature columns in order, numeric as float64 (NaN = missing), categorical as object
  strings with NaN for missing (SimpleImputer treats NaN, not None, as missing)."""
  import numpy as np
  import pandas as pd
  missing = [c for c in list(numeric) + list(categorical) if c not in frame.columns]
  if missing:
    raise FeaturesError(f'feature column(s) {missing} missing; columns are {list(frame.columns)}')
  out = pd.DataFrame(index=frame.index)
  for column in numeric:
    out[column] = pd.to_numeric(frame[column], errors='coerce').astype('float64')
  for column in categorical:
    values = frame[column].astype(object)
    values = values.where(values.notna(), np.nan)
    if pd.api.types.infer_dtype(values, skipna=True) not in ('string', 'empty'):  # else all str
      values = values.map(lambda v: v if isinstance(v, str) or v is np.nan else str(v))
    out[column] = values
  return out


def rows_to_frame(rows: Sequence[Mapping[str, Any]], numeric: Sequence[str],
                  categorical: Sequence[str]):
  """A batch of row dicts (Parquet or CSV rows) -> typed feature frame; absent keys are missing."""
  import pandas as pd
  columns = list(numeric) + list(categorical)
  raw = pd.DataFrame.from_records([{c: row.get(c) for c in columns} for row in rows],
                                  columns=columns)
  return typed_frame(raw, numeric, categorical)
