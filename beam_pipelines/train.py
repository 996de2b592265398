"""Trains a scikit-learn classifier on the train split that feature extraction wrote (Parquet).

A ``Pipeline``: a ``ColumnTransformer`` (numeric: median imputation + standard scaling;
categorical: constant imputation + one-hot, unknown categories ignored) and a classifier
(``logistic`` regression or ``gbt`` gradient-boosted trees), seeded so a rerun on the same data
gives the same model. The model is saved with its metadata (see ``beam_pipelines.ml.model_io``).

    python -m beam_pipelines.train --features DIR --output MDIR [--spec SPEC] \\
        [--classifier logistic|gbt] [--C 1.0] [--max_iter N] [--max_train_rows N|none] \\
        [--verdict VDIR/verdict.json]

``gbt`` defaults to scikit-learn's HistGradientBoostingClassifier defaults (100 iterations of
31-leaf trees at learning rate 0.1) with early stopping always on (10% of the train split held
out, stop after 10 iterations without improvement of its loss), seeded by ``--random_state``.

Rows are bounded: a train split of more than ``--max_train_rows`` rows (default 2,000,000; 0 or
none: no bound) is fitted on a stratified sample of exactly that many, read shard by shard in
Arrow batches of the model's columns, never the whole split at once: each label class keeps its
share of the budget to within one row, its rows with the smallest sha256 of their values, so the
same rows whatever the sharding (``beam_pipelines.ml.sampling`` states the rule). Neither
classifier learns incrementally in scikit-learn (``LogisticRegression`` and
``HistGradientBoostingClassifier`` have no ``partial_fit``; ``SGDClassifier`` would), so both fit
the sample. ``model.json`` records ``rows_available``, ``rows_used``, ``max_train_rows`` and the
``sample`` (null when every row was used). At or under the budget every row is read, as before the
budget existed (the same model bytes). Before it loads, training estimates the memory the fit needs
(``beam_pipelines.ml.memory``) and refuses, naming ``--max_train_rows``, when it would not fit in
what is available; once the categorical values are known, it checks again before fitting.

With ``--verdict``, training is refused when validation said "anomalous".
"""

from __future__ import annotations

import argparse
import sys

from beam_pipelines import runtime, submission

CLASSIFIERS = ('logistic', 'gbt')
DEFAULT_MAX_ITER = {'logistic': 1000, 'gbt': 100}
# Rows fitted at most. The taxi's fit (8 columns, 15 encoded) measured 351-364 bytes a row: 2M
# rows peaked at 1.0 GiB RSS (0.7-0.8 GiB above the imports; logistic fitted in 9 s, gbt in 118 s,
# on 2 cores), so a 2-4 GB worker has room; wider data is refused early (``ml.memory``), not killed.
DEFAULT_MAX_TRAIN_ROWS = 2_000_000


def _boolean(text: str) -> bool:
  """An argparse type: true/false, yes/no, 1/0 (any case)."""
  folded = text.strip().lower()
  if folded in ('true', 'yes', '1', 'on'):
    return True
  if folded in ('false', 'no', '0', 'off'):
    return False
  raise argparse.ArgumentTypeError(f'{text!r} is not true or false')


def _row_budget(text: str) -> int:
  """An argparse type: a whole number of rows >= 1, or 0 / none (no bound: 0)."""
  if text.strip().lower() in ('none', '0'):
    return 0
  try:
    return runtime.count(1)(text)
  except argparse.ArgumentTypeError:
    raise argparse.ArgumentTypeError(
        f'expected a whole number of rows >= 1, or 0 or none (no bound), got {text!r}') from None


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
  """train's own flags (plain argparse: --help needs no Beam import, and Beam merges every
  PipelineOptions subclass's flags into one parser, where a second --output would clash)."""
  parser.add_argument('--features', required=True, help='Feature extraction output directory.')
  parser.add_argument('--spec', default=None,
                      help='Dataset spec (default: the one feature extraction recorded in '
                           'FEATURES/summary.json, else the bundled taxi spec).')
  parser.add_argument('--output', required=True, help='Model directory to write.')
  parser.add_argument('--verdict', default=None,
                      help='Validation verdict.json (or its directory); "anomalous" refuses training.')
  add_hyperparameter_arguments(parser)


def add_hyperparameter_arguments(parser: argparse.ArgumentParser) -> None:
  """The flags that shape the model (a pipeline definition's ``train`` mapping names them too)."""
  parser.add_argument('--classifier', choices=CLASSIFIERS, default='logistic')
  parser.add_argument('--C', type=float, default=1.0, help='logistic: inverse regularisation.')
  parser.add_argument('--max_iter', type=runtime.count(1), default=None,
                      help='logistic/gbt: iterations (default: logistic 1000, gbt 100).')
  parser.add_argument('--learning_rate', type=float, default=0.1, help='gbt: learning rate.')
  parser.add_argument('--max_depth', type=runtime.count(1), default=None,
                      help='gbt: tree depth (None: no cap).')
  parser.add_argument('--max_leaf_nodes', type=runtime.count(2), default=31,
                      help='gbt: leaves per tree.')
  parser.add_argument('--early_stopping', type=_boolean, default=True,
                      help='gbt: stop when the held-out loss stops improving (default true).')
  parser.add_argument('--validation_fraction', type=float, default=0.1,
                      help='gbt: share of the train split held out for early stopping.')
  parser.add_argument('--n_iter_no_change', type=runtime.count(1), default=10,
                      help='gbt: iterations without improvement before stopping.')
  parser.add_argument('--random_state', type=int, default=0, help='Seed (determinism).')
  parser.add_argument('--max_train_rows', type=_row_budget, default=DEFAULT_MAX_TRAIN_ROWS,
                      help='Rows fitted at most: a larger train split is fitted on a stratified '
                           f'sample of this many (default {DEFAULT_MAX_TRAIN_ROWS:,}; 0 or none: '
                           'every row).')


# Answers --help before importing Beam (~2 s).
runtime.answer_help_early(__name__, 'train', __doc__, add_train_arguments, beam_options=False)

import json
import logging
import time
from typing import Dict, Mapping, Optional, Sequence

import numpy as np
from apache_beam.io.filesystems import FileSystems

from beam_pipelines.ml import artifacts, memory, model_io, sampling, tabular
from beam_pipelines.ml import spec as spec_lib
from beam_pipelines.ml.results import ParamValue, TrainedModel
from beam_pipelines.store.console import progress
from beam_pipelines.store.errors import Refusal


class TrainingRefused(Refusal, RuntimeError):
  """Training did not start: the validation verdict, the data or the options forbid it."""


def hyperparameters(known: argparse.Namespace) -> Dict[str, ParamValue]:
  """The options that shape the model, as recorded in its metadata."""
  max_iter = known.max_iter if known.max_iter is not None else DEFAULT_MAX_ITER[known.classifier]
  if known.classifier == 'logistic':
    return {'classifier': 'logistic', 'C': known.C, 'max_iter': max_iter,
            'random_state': known.random_state, 'max_train_rows': known.max_train_rows}
  return {'classifier': 'gbt', 'learning_rate': known.learning_rate, 'max_iter': max_iter,
          'max_depth': known.max_depth, 'max_leaf_nodes': known.max_leaf_nodes,
          'early_stopping': known.early_stopping,
          'validation_fraction': known.validation_fraction,
          'n_iter_no_change': known.n_iter_no_change, 'random_state': known.random_state,
          'max_train_rows': known.max_train_rows}


def build_model(numeric: Sequence[str], categorical: Sequence[str],
                params: Mapping[str, ParamValue]):
  """The unfitted scikit-learn Pipeline: preprocessing of both column kinds + the classifier."""
  from sklearn.compose import ColumnTransformer
  from sklearn.ensemble import HistGradientBoostingClassifier
  from sklearn.impute import SimpleImputer
  from sklearn.linear_model import LogisticRegression
  from sklearn.pipeline import Pipeline
  from sklearn.preprocessing import OneHotEncoder, StandardScaler

  transformers = []
  if numeric:
    transformers.append(('numeric', Pipeline([
        ('impute', SimpleImputer(strategy='median')),
        ('scale', StandardScaler())]), list(numeric)))
  if categorical:
    transformers.append(('categorical', Pipeline([
        ('impute', SimpleImputer(strategy='constant', fill_value='__missing__')),
        ('one_hot', OneHotEncoder(handle_unknown='ignore', sparse_output=False))]), list(categorical)))
  if params['classifier'] == 'logistic':
    classifier = LogisticRegression(C=params['C'], max_iter=params['max_iter'],
                                    random_state=params['random_state'])
  else:
    classifier = HistGradientBoostingClassifier(
        learning_rate=params['learning_rate'], max_iter=params['max_iter'],
        max_depth=params['max_depth'], max_leaf_nodes=params['max_leaf_nodes'],
        early_stopping=params.get('early_stopping', False),
        validation_fraction=params.get('validation_fraction', 0.1),
        n_iter_no_change=params.get('n_iter_no_change', 10),
        random_state=params['random_state'])
  return Pipeline([('preprocess', ColumnTransformer(transformers)), ('classifier', classifier)])


def check_verdict(path: str) -> str:
  """Reads validation's verdict.json (a file or its directory); refuses training when anomalous."""
  try:
    verdict = artifacts.read_verdict(path)
  except artifacts.ArtifactError as error:
    raise TrainingRefused(str(error)) from None
  status = verdict['status']
  if status == artifacts.VERDICT_ANOMALOUS:
    detail = verdict.get('message') or verdict.get('anomalies') or ''
    raise TrainingRefused(f'validation verdict {path} is "anomalous": not training. {detail}'.strip())
  return status


def load_spec(spec_path: Optional[str], features_dir: str) -> spec_lib.DatasetSpec:
  """The given spec, else the spec feature extraction recorded in its summary, else the bundled one."""
  if spec_path:
    return spec_lib.load(spec_path)
  summary_path = FileSystems.join(features_dir, artifacts.SUMMARY_FILE)
  if FileSystems.exists(summary_path):
    with FileSystems.open(summary_path) as handle:
      recorded = json.loads(handle.read().decode('utf-8')).get('spec')
    if recorded:
      progress(f'train: using the dataset spec recorded in {summary_path}')
      return spec_lib.from_dict(recorded)
  return spec_lib.load(spec_lib.default_spec_path())


def row_budget(params: Mapping[str, ParamValue]) -> int:
  """The rows fitted at most (``max_train_rows``; 0: every row)."""
  value = params.get('max_train_rows', DEFAULT_MAX_TRAIN_ROWS)
  return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def check_memory(rows: int, columns: int, encoded: int, available: Optional[int], budget: int,
                 encoding: str) -> int:
  """The bytes a fit of ``rows`` rows needs (``ml.memory``); refuses, naming --max_train_rows,
  when ``available`` (None: unknown) is less. ``encoding`` says what ``encoded`` is."""
  need = memory.fit_bytes(rows, columns, encoded)
  if available is not None and need > available:
    per_row = memory.bytes_per_row(columns, encoded)
    bound = f'now {budget:,}' if budget else 'now none'
    raise TrainingRefused(
        f'fitting {rows:,} rows of {columns} columns ({encoding}) needs about '
        f'{memory.gib(need)} of memory ({per_row:,} bytes a row, beam_pipelines/ml/memory.py) and '
        f'{memory.gib(available)} is available: not training. Lower --max_train_rows '
        f'(max_train_rows in the pipeline\'s train section; {bound}) to {available // per_row:,} '
        f'or fewer, or train on a machine with more memory')
  return need


def _share(positives: int, rows: int) -> float:
  return positives / max(rows, 1)


def train(features_dir: str, spec: spec_lib.DatasetSpec, output: str,
          params: Mapping[str, ParamValue], available_bytes: Optional[int] = None) -> TrainedModel:
  """Reads the train split (a stratified sample beyond ``max_train_rows``), fits the model, saves
  it; returns what was saved. ``available_bytes``: the memory free for training (default: what
  the operating system says, ``ml.memory.available``)."""
  progress(f'train: reading the train split of {features_dir}')
  footers = tabular.read_footers(features_dir, artifacts.TRAIN)
  header = list(dict.fromkeys(column for footer in footers for column in footer.columns))
  spec = spec.resolve(header) if not spec.is_resolved else spec
  if spec.label not in header:
    raise tabular.FeaturesError(f'label column {spec.label!r} not in the features')
  columns = spec.features + [spec.label]
  rows_available = sum(footer.rows for footer in footers)
  budget = row_budget(params)
  sampled = bool(budget) and rows_available > budget
  if available_bytes is None:
    available_bytes = memory.available()
    if available_bytes is None:
      progress('train: the memory available is unknown here: the fit\'s need is not checked')
  check_memory(budget if sampled else rows_available, len(columns), len(spec.features),
               available_bytes, budget, f'at least {len(spec.features)} once encoded')
  sample: Optional[model_io.TrainingSample] = None
  if sampled:
    paths = [footer.path for footer in footers]
    available = sampling.label_counts(paths, spec.label)
    if available.get(None):
      raise TrainingRefused(f'{available[None]} train rows have no label {spec.label!r}')
    counts = {int(label): rows for label, rows in available.items() if label is not None}
    drawn = sampling.read_stratified(paths, spec.numeric, spec.categorical, spec.label,
                                     sampling.quotas(counts, budget), counts)
    frame, shards, fingerprint = drawn.table.to_pandas(), drawn.shards, drawn.fingerprint
    drawn.table = None  # the frame holds the rows now
    positives_available = counts.get(1, 0)
    sample = model_io.TrainingSample(rule=sampling.RULE, classes={
        str(label): {'available': counts[label], 'used': drawn.kept.get(label, 0)}
        for label in sorted(counts)})
  else:
    split = tabular.read_split(features_dir, artifacts.TRAIN, columns)
    frame, shards, fingerprint = split.frame, split.shards, split.fingerprint
    del split
  labels = frame[spec.label]
  if labels.isna().any():
    raise TrainingRefused(f'{int(labels.isna().sum())} train rows have no label {spec.label!r}')
  y = labels.astype('int64').to_numpy()
  positives = int(y.sum())
  if not sampled:
    positives_available = positives
  else:
    before, after = _share(positives_available, rows_available), _share(positives, len(y))
    shares = (f'positives {after:.1%} in both' if f'{before:.1%}' == f'{after:.1%}'
              else f'positives {before:.1%} of the split, {after:.1%} of the sample')
    progress(f'train: {rows_available:,} train rows over the budget of {budget:,}: a stratified '
             f'sample of {len(y):,} ({shares})')
  progress(f'train: {len(y):,} rows from {len(shards)} shard(s), {positives:,} positive '
           f'({_share(positives, len(y)):.1%}); features {", ".join(spec.features)}')
  if len(set(y.tolist())) < 2:
    where = f'the sample of {len(y):,} rows (--max_train_rows)' if sampled else 'the train split'
    raise TrainingRefused(f'{where} has a single class ({sorted(set(y.tolist()))}): '
                          'a classifier needs both 0 and 1 labels')
  X = tabular.typed_frame(frame, spec.numeric, spec.categorical)
  del frame, labels
  values = {column: int(X[column].nunique(dropna=False)) for column in spec.categorical}
  encoded = len(spec.numeric) + sum(values.values())
  widest = max(values, key=lambda column: values[column]) if values else ''
  need = check_memory(len(y), len(columns), encoded, available_bytes, budget,
                      f'{encoded:,} once encoded' + (f'; {widest} has {values[widest]:,} values'
                                                     if widest else ''))
  model = build_model(spec.numeric, spec.categorical, params)
  room = (f'about {memory.gib(need)} of memory, {memory.gib(available_bytes)} available'
          if available_bytes is not None else f'about {memory.gib(need)} of memory')
  progress(f'train: fitting {describe_parameters(params)} ({room})')
  started = time.monotonic()
  model.fit(X, y)
  seconds = time.monotonic() - started
  train_accuracy = float((model.predict(X) == y).mean())
  iterations = int(np.max(model.named_steps['classifier'].n_iter_))
  progress(f'train: fitted in {seconds:.2f}s ({iterations} iterations); accuracy on the train '
           f'split {train_accuracy:.4f}')
  data = model_io.TrainingData(
      features_dir=features_dir, split=artifacts.TRAIN, rows=int(len(y)), positives=positives,
      shards=shards, fingerprint=fingerprint, rows_available=rows_available,
      rows_used=int(len(y)), positives_available=positives_available, max_train_rows=budget,
      sample=sample)
  metadata = model_io.save_model(
      model, output, numeric=spec.numeric, categorical=spec.categorical, label=spec.label,
      spec_fingerprint=spec.fingerprint(), data=data, hyperparameters=dict(params),
      extra={'spec': spec.to_dict(), 'training': {
          'seconds': round(seconds, 3), 'train_accuracy': train_accuracy,
          'iterations': iterations}})
  return TrainedModel(directory=output, model_sha256=metadata['model_sha256'], rows=int(len(y)),
                      positives=positives, data_fingerprint=fingerprint,
                      hyperparameters=dict(params), rows_available=rows_available,
                      max_train_rows=budget, sample=sampling.RULE if sampled else None)


def refuse_beam_options(rest: Sequence[str]) -> None:
  """train is scikit-learn in this process, not a Beam pipeline: runner flags are refused, never
  silently ignored (it reads and writes gs:// itself, wherever it runs)."""
  if submission.is_dataflow(rest):
    raise TrainingRefused(
        'train fits scikit-learn in this process; it does not run on Dataflow. Drop the Dataflow '
        'flags (it reads --features and writes --output on gs:// directly) or run it on a '
        'machine near the data (e.g. a Composer or Vertex AI job)')
  if rest:
    raise TrainingRefused(f'unknown flags {" ".join(rest)}: train takes no Beam options')


def describe_parameters(params: Mapping[str, ParamValue]) -> str:
  """Hyperparameters for people: ``classifier logistic, C 1.0, max_iter 1000``."""
  return ', '.join(f'{name} {value}' for name, value in params.items())


class _RefusingParser(argparse.ArgumentParser):
  """argparse whose errors are refusals (a bad ``train`` mapping of a pipeline definition)."""

  def error(self, message: str):
    raise TrainingRefused(f'training parameters: {message}')


def parameters(settings: Mapping[str, ParamValue]) -> Dict[str, ParamValue]:
  """A pipeline definition's ``train`` mapping (flag names without ``--``) as the model's
  hyperparameters, checked and completed by the same rules and defaults as the flags."""
  parser = _RefusingParser(prog='train', add_help=False, allow_abbrev=False)
  add_hyperparameter_arguments(parser)
  argv = [a for k, v in sorted(settings.items()) for a in (f'--{k}', str(v))]
  known, rest = parser.parse_known_args(argv)
  if rest:
    raise TrainingRefused(f'unknown training parameter(s) {" ".join(rest)}')
  return hyperparameters(known)


def fit(features_dir: str, output: str, params: Mapping[str, ParamValue],
        spec_path: Optional[str] = None, verdict: Optional[str] = None,
        available_bytes: Optional[int] = None) -> TrainedModel:
  """The core: fits the model on ``features_dir``'s train split and saves it in ``output``.

  ``verdict`` (validation's verdict.json or its directory): "anomalous" refuses training.
  ``available_bytes``: the memory free for training (default: what the operating system says).
  Raises ``TrainingRefused``, ``SpecError`` or ``FeaturesError``.
  """
  if verdict:
    status = check_verdict(verdict)
    progress(f'train: validation verdict is {status}: training allowed')
  spec = load_spec(spec_path, features_dir)
  model = train(features_dir, spec, output, params, available_bytes)
  model_path = FileSystems.join(output, artifacts.MODEL_FILE)
  progress(f'train: done: {model.rows:,} rows; model {model_path} '
           f'(sha256 {model.model_sha256[:12]}…), metadata '
           f'{FileSystems.join(output, artifacts.MODEL_METADATA_FILE)}')
  return model


def run(argv: Optional[Sequence[str]] = None) -> TrainedModel:
  """The command line: parses the flags and calls ``fit``."""
  parser = argparse.ArgumentParser(prog='python -m beam_pipelines.train',
                                   description=__doc__.split('\n')[0])
  add_train_arguments(parser)
  known, rest = parser.parse_known_args(list(sys.argv[1:] if argv is None else argv))
  refuse_beam_options(rest)
  return fit(known.features, known.output, hyperparameters(known), known.spec, known.verdict)


def main(argv: Optional[Sequence[str]] = None) -> int:
  """CLI entry: the project's exit statuses (``runtime.main``)."""
  return runtime.main('train', run, argv)


if __name__ == '__main__':
  logging.getLogger().setLevel(logging.WARNING)
  sys.exit(main())
