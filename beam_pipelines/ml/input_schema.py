"""A model's input contract: the columns it reads, their types, and its label.

Training records it in ``model.json`` (``model_io.save_model``) as::

    "input_schema": {"columns": [{"name": "fare", "type": "numeric"},
                                 {"name": "payment_type", "type": "categorical"}],
                     "label": {"name": "big_tip", "type": "binary"}}

``model_io.read_input_schema`` is its one reader. Scoring code checks data against it before
anything runs: a column the model needs that the data lacks is an ``InputSchemaError`` naming the
columns (never imputed as if every value were missing), and so is a column of the wrong type. An
empty *cell* in a present column stays a missing value, which the model's imputer handles.
"""

from __future__ import annotations

import dataclasses
from typing import Any, List, Mapping, Optional, Sequence, Tuple, TypedDict

from beam_pipelines.ml.spec import DatasetSpec
from beam_pipelines.store.errors import Refusal

NUMERIC, CATEGORICAL, BINARY = 'numeric', 'categorical', 'binary'
COLUMN_TYPES = (NUMERIC, CATEGORICAL)


class InputSchemaError(Refusal, ValueError):
  """Data does not fit a model's input schema (a column missing or of the wrong type)."""


class ColumnDocument(TypedDict):
  name: str
  type: Optional[str]  # NUMERIC or CATEGORICAL; BINARY for the label


class InputSchemaDocument(TypedDict):
  """``model.json``'s ``input_schema``."""
  columns: List[ColumnDocument]
  label: ColumnDocument


@dataclasses.dataclass(frozen=True)
class InputSchema:
  """The columns a model reads (numeric, then categorical) and its binary label."""

  numeric: Tuple[str, ...]
  categorical: Tuple[str, ...]
  label: str

  @property
  def features(self) -> List[str]:
    return list(self.numeric) + list(self.categorical)

  def column_type(self, column: str) -> Optional[str]:
    if column in self.numeric:
      return NUMERIC
    return CATEGORICAL if column in self.categorical else None

  def to_dict(self) -> InputSchemaDocument:
    return {'columns': [{'name': c, 'type': self.column_type(c)} for c in self.features],
            'label': {'name': self.label, 'type': BINARY}}

  def merge(self, other: 'InputSchema', names: Tuple[str, str] = ('model', 'other model')
            ) -> 'InputSchema':
    """The columns both models read (to parse data once for two models of the same label)."""
    if other.label != self.label:
      raise InputSchemaError(f'{names[0]} predicts {self.label!r}, {names[1]} {other.label!r}: '
                             'not comparable')
    clashes = sorted(c for c in set(self.features) & set(other.features)
                     if self.column_type(c) != other.column_type(c))
    if clashes:
      raise InputSchemaError(f'column(s) {clashes} have different types in {names[0]} and '
                             f'{names[1]}: cannot read them once for both')
    return InputSchema(
        numeric=tuple(dict.fromkeys(self.numeric + other.numeric)),
        categorical=tuple(dict.fromkeys(self.categorical + other.categorical)), label=self.label)

  def parsing_spec(self, key: Optional[str] = None, name: str = 'dataset') -> DatasetSpec:
    """A resolved dataset spec that types exactly this schema's columns (for ``ml.csv_io``)."""
    return DatasetSpec(label=self.label, numeric=self.numeric, categorical=self.categorical,
                       key=key, name=name)

  def check_columns(self, available: Mapping[str, Optional[str]], source: str,
                    require_label: bool = True) -> None:
    """Raises InputSchemaError when ``available`` (column -> numeric/categorical, or None when
    the type is not known, as for CSV) lacks a column the model needs or types one otherwise."""
    needed = self.features + ([self.label] if require_label else [])
    missing = [c for c in needed if c not in available]
    if missing:
      raise InputSchemaError(f'{source} lacks column(s) {missing} that the model needs '
                             f'(it has {sorted(available)})')
    wrong = [f'{c} is {available[c]}, the model needs {self.column_type(c)}'
             for c in self.features if available[c] not in (None, self.column_type(c))]
    if wrong:
      raise InputSchemaError(f'{source} has column(s) of the wrong type: {"; ".join(wrong)}')


def from_dict(raw: Mapping[str, Any]) -> InputSchema:
  """Reads the ``input_schema`` record; raises InputSchemaError when it is malformed."""
  try:
    columns = [(c['name'], c['type']) for c in raw['columns']]
    label = raw['label']['name']
  except (KeyError, TypeError) as error:
    raise InputSchemaError(f'malformed model input schema ({error!r}): {raw!r}') from None
  unknown = [f'{name}: {kind}' for name, kind in columns if kind not in COLUMN_TYPES]
  if unknown or not isinstance(label, str):
    raise InputSchemaError(f'model input schema has unknown column types {unknown} or label '
                           f'{label!r}; known types: {list(COLUMN_TYPES)}')
  return InputSchema(numeric=tuple(n for n, kind in columns if kind == NUMERIC),
                     categorical=tuple(n for n, kind in columns if kind == CATEGORICAL),
                     label=label)


def from_columns(numeric: Sequence[str], categorical: Sequence[str], label: str) -> InputSchema:
  return InputSchema(numeric=tuple(numeric), categorical=tuple(categorical), label=label)
