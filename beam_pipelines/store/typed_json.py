"""Frozen dataclasses to and from JSON: the one converter of the project's typed records.

A record is a frozen dataclass whose fields are JSON atoms (``str``, ``int``, ``float``, ``bool``,
``None``), ``Optional`` of one, tuples (``Tuple[X, ...]``, JSON arrays), string-keyed dicts
(``Dict[str, X]``, JSON objects) or other records. ``to_json`` gives plain data for
``json.dumps``; ``from_json`` rebuilds the record and refuses data of another shape with a
``RecordError`` that names the field, so a corrupted or foreign file never becomes a record.
Unknown keys are ignored (a newer writer may add fields); a missing field takes its default.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any, Dict, Mapping, Type, TypeVar, Union

from beam_pipelines.store.errors import StorageError

T = TypeVar('T')
JsonValue = Union[str, int, float, bool, None, list, dict]


class RecordError(StorageError):
  """JSON data that is not the record its reader expects (the message names the field)."""


def to_json(record: Any) -> Any:
  """A record (or tuple/dict/atom of records) as plain JSON data."""
  if dataclasses.is_dataclass(record) and not isinstance(record, type):
    return {f.name: to_json(getattr(record, f.name)) for f in dataclasses.fields(record)}
  if isinstance(record, (tuple, list)):
    return [to_json(item) for item in record]
  if isinstance(record, Mapping):
    return {str(key): to_json(value) for key, value in record.items()}
  return record


@functools.lru_cache(maxsize=None)
def _hints(cls: type) -> Dict[str, object]:
  return typing.get_type_hints(cls)


def from_json(cls: Type[T], data: Any, where: str = '') -> T:
  """``data`` (from ``json.loads``) as a ``cls`` record; RecordError when it does not fit."""
  return _convert(cls, data, where or cls.__name__)


def _convert(kind: Any, data: Any, where: str) -> Any:
  origin, args = typing.get_origin(kind), typing.get_args(kind)
  if kind is Any:
    return data
  if origin in (Union, types.UnionType):
    if data is None and type(None) in args:
      return None
    options = [a for a in args if a is not type(None)]
    errors = []
    for option in options:
      try:
        return _convert(option, data, where)
      except RecordError as error:
        errors.append(str(error))
    raise RecordError(errors[0] if len(errors) == 1 else f'{where}: {data!r} fits none of {kind}')
  if isinstance(kind, type) and dataclasses.is_dataclass(kind):
    if not isinstance(data, Mapping):
      raise RecordError(f'{where}: expected an object, got {type(data).__name__}')
    hints, values = _hints(kind), {}
    for field in dataclasses.fields(kind):
      if field.name in data:
        values[field.name] = _convert(hints[field.name], data[field.name], f'{where}.{field.name}')
      elif (field.default is dataclasses.MISSING
            and field.default_factory is dataclasses.MISSING):
        raise RecordError(f'{where}: field {field.name!r} is missing')
    return kind(**values)
  if origin is tuple:
    if not isinstance(data, (list, tuple)):
      raise RecordError(f'{where}: expected an array, got {type(data).__name__}')
    item = args[0] if args else Any
    return tuple(_convert(item, value, f'{where}[{i}]') for i, value in enumerate(data))
  if origin in (dict, Mapping, typing.Mapping) or kind in (dict, Dict):
    if not isinstance(data, Mapping):
      raise RecordError(f'{where}: expected an object, got {type(data).__name__}')
    value_kind = args[1] if len(args) == 2 else Any
    return {str(k): _convert(value_kind, v, f'{where}.{k}') for k, v in data.items()}
  if kind is float:
    if isinstance(data, bool) or not isinstance(data, (int, float)):
      raise RecordError(f'{where}: expected a number, got {data!r}')
    return float(data)
  if kind is int:
    if isinstance(data, bool) or not isinstance(data, int):
      raise RecordError(f'{where}: expected a whole number, got {data!r}')
    return data
  if kind in (str, bool):
    if not isinstance(data, kind):
      raise RecordError(f'{where}: expected {kind.__name__}, got {data!r}')
    return data
  if kind is type(None):
    if data is not None:
      raise RecordError(f'{where}: expected null, got {data!r}')
    return None
  raise TypeError(f'{where}: {kind} is not a record field type')  # a programming error
