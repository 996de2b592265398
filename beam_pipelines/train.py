"""Trains a scikit-learn classifier on the train split that feature extraction wrote (Parquet).

A ``Pipeline``: a ``ColumnTransformer`` (numeric: median imputation + standard scaling;
categorical: constant imputation + one-hot, unknown categories ignored) and a classifier
(``logistic`` regression or ``gbt`` gradient-boosted trees), seeded so a rerun on the same data
gives the same model. The model is saved with its metadata (see ``beam_pipelines.ml.model_io``).

    python -m beam_pipelines.train --features DIR --output MDIR [--spec SPEC] \\
        [--classifier logistic|gbt] [--C 1.0] [--max_iter N] [--verdict VDIR/verdict.json]

``gbt`` defaults to scikit-learn's HistGradientBoostingClassifier defaults (100 iterations of
31-leaf trees at learning rate 0.1) with early stopping always on (10% of the train split held
out, stop after 10 iterations without improvement of its loss), seeded by ``--random_state``.

With ``--verdict``, training is refused when validation said "anomalous".
"""

from __future__ import annotations

import argparse
import sys

from beam_pipelines import runtime, submission

CLASSIFIERS = ('logistic', 'gbt')
DEFAULT_MAX_ITER = {'logistic': 1000, 'gbt': 100}


def _boolean(text: str) -> bool:
  """An argparse type: true/false, yes/no, 1/0 (any case)."""
  folded = text.strip().lower()
  if folded in ('true', 'yes', '1', 'on'):
    return True
  if folded in ('false', 'no', '0', 'off'):
    return False
  raise argparse.ArgumentTypeError(f'{text!r} is not true or false')


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


# Answers --help before importing Beam (~2 s).
runtime.answer_help_early(__name__, 'train', __doc__, add_train_arguments, beam_options=False)

import json
import logging
import time
from typing import Dict, Mapping, Optional, Sequence

import numpy as np
from apache_beam.io.filesystems import FileSystems

from beam_pipelines.ml import artifacts, model_io, tabular
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
            'random_state': known.random_state}
  return {'classifier': 'gbt', 'learning_rate': known.learning_rate, 'max_iter': max_iter,
          'max_depth': known.max_depth, 'max_leaf_nodes': known.max_leaf_nodes,
          'early_stopping': known.early_stopping,
          'validation_fraction': known.validation_fraction,
          'n_iter_no_change': known.n_iter_no_change, 'random_state': known.random_state}


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


def train(features_dir: str, spec: spec_lib.DatasetSpec, output: str,
          params: Mapping[str, ParamValue]) -> TrainedModel:
  """Reads the train split, fits the model, saves it; returns what was saved."""
  progress(f'train: reading the train split of {features_dir}')
  split = tabular.read_split(features_dir, artifacts.TRAIN)
  spec = spec.resolve(list(split.frame.columns)) if not spec.is_resolved else spec
  if spec.label not in split.frame.columns:
    raise tabular.FeaturesError(f'label column {spec.label!r} not in the features')
  labels = split.frame[spec.label]
  if labels.isna().any():
    raise TrainingRefused(f'{int(labels.isna().sum())} train rows have no label {spec.label!r}')
  y = labels.astype('int64').to_numpy()
  positives = int(y.sum())
  progress(f'train: {len(y):,} rows from {len(split.shards)} shard(s), {positives:,} positive '
           f'({positives / max(len(y), 1):.1%}); features {", ".join(spec.features)}')
  if len(set(y.tolist())) < 2:
    raise TrainingRefused(f'the train split has a single class ({sorted(set(y.tolist()))}): '
                          'a classifier needs both 0 and 1 labels')
  X = tabular.typed_frame(split.frame, spec.numeric, spec.categorical)
  model = build_model(spec.numeric, spec.categorical, params)
  progress(f'train: fitting {describe_parameters(params)}')
  started = time.monotonic()
  model.fit(X, y)
  seconds = time.monotonic() - started
  train_accuracy = float((model.predict(X) == y).mean())
  iterations = int(np.max(model.named_steps['classifier'].n_iter_))
  progress(f'train: fitted in {seconds:.2f}s ({iterations} iterations); accuracy on the train '
           f'split {train_accuracy:.4f}')
  data = model_io.TrainingData(
      features_dir=features_dir, split=artifacts.TRAIN, rows=int(len(y)), positives=positives,
      shards=split.shards, fingerprint=split.fingerprint)
  metadata = model_io.save_model(
      model, output, numeric=spec.numeric, categorical=spec.categorical, label=spec.label,
      spec_fingerprint=spec.fingerprint(), data=data, hyperparameters=dict(params),
      extra={'spec': spec.to_dict(), 'training': {
          'seconds': round(seconds, 3), 'train_accuracy': train_accuracy,
          'iterations': iterations}})
  return TrainedModel(directory=output, model_sha256=metadata['model_sha256'], rows=int(len(y)),
                      positives=positives, data_fingerprint=split.fingerprint,
                      hyperparameters=dict(params))


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
        spec_path: Optional[str] = None, verdict: Optional[str] = None) -> TrainedModel:
  """The core: fits the model on ``features_dir``'s train split and saves it in ``output``.

  ``verdict`` (validation's verdict.json or its directory): "anomalous" refuses training. Raises
  ``TrainingRefused``, ``SpecError`` or ``FeaturesError``.
  """
  if verdict:
    status = check_verdict(verdict)
    progress(f'train: validation verdict is {status}: training allowed')
  spec = load_spec(spec_path, features_dir)
  model = train(features_dir, spec, output, params)
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
