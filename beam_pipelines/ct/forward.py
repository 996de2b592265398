"""The exact AUC of one model on every labelled row of CSV files, in Beam: what forward
evaluation records when the evaluator's histogram AUC is not exact enough.

The evaluator's AUC (``ml.metrics.AucCombineFn``) comes from a 10,000-bucket histogram of the
scores and carries ``auc_error_bound``; on scores piled up near 0 or 1 (a confident model) that
bound can exceed 1e-6. This pipeline reads the same rows the evaluator reads (``ReadLabelledCsv``:
typed by the model's input schema, unlabelled or untypeable rows dead-lettered), scores them with
the same sha256-checking handler (``ScoreModel``) and computes the AUC from the midranks of the
scores (``ml.metrics.PairedAucCombineFn`` with the model paired with itself: the exact AUC of
DeLong's method, on every row up to ``DEFAULT_PAIRED_ROWS``, else a uniform sample of them)::

    ReadLabelledCsv -> ScoreModel -> PairWithItself -> CombineGlobally(PairedAucCombineFn)
                    -> output/exact_auc.json
"""

from __future__ import annotations

from typing import Sequence, cast

import apache_beam as beam
import numpy as np

from beam_pipelines import evaluate, runtime
from beam_pipelines.ml import model_io
from beam_pipelines.ml.artifacts import AucComparison
from beam_pipelines.ml.metrics import DEFAULT_PAIRED_ROWS, PairedAucCombineFn, PairedRows
from beam_pipelines.ml.results import ModelRef
from beam_pipelines.store import bucket, layout

EXACT_AUC_FILE = 'exact_auc.json'
MODEL = 'model'
MAX_EXACT_ROWS = DEFAULT_PAIRED_ROWS  # beyond, the midrank AUC is a sample's: not computed


def paired_with_itself(scored: evaluate.ScoredFrame, label: str) -> PairedRows:
  """A scored frame -> (row keys, labels, scores, the same scores): the pairing whose candidate
  AUC is the model's exact AUC."""
  frame, scores = scored
  return (evaluate.row_keys(frame), frame[label].to_numpy(dtype=np.int64), scores[MODEL],
          scores[MODEL])


class ExactAuc(beam.PTransform):
  """Frames scored by one model (``ScoreModel`` named ``model``) -> one ``AucComparison`` whose
  ``candidate_auc`` is the exact AUC (on at most ``max_rows`` rows, a uniform sample beyond)."""

  def __init__(self, label: str, max_rows: int = MAX_EXACT_ROWS):
    super().__init__()
    self._label = label
    self._max_rows = max_rows

  def expand(self, scored):
    return (scored
            | 'PairWithItself' >> beam.Map(paired_with_itself, self._label)
            | 'MidrankAuc' >> beam.CombineGlobally(PairedAucCombineFn(self._max_rows)))


def exact_auc(model: ModelRef, input_pattern: str, output: str,
              beam_args: Sequence[str] = ()) -> AucComparison:
  """Scores every labelled row of ``input_pattern`` with ``model`` and returns its exact AUC
  (``candidate_auc``; ``rows`` labelled rows, ``sampled_rows`` of them used); also written to
  ``output/exact_auc.json``."""
  schema = model_io.read_input_schema(model.directory)
  options = runtime.beam_options('evaluate', beam_args, [input_pattern, output])
  pipeline = runtime.new_pipeline(options)
  path = layout.join(output, EXACT_AUC_FILE)
  _ = (pipeline
       | 'ReadLabelledCsv' >> evaluate.ReadLabelledCsv(input_pattern, schema, output)
       | 'Unscored' >> beam.Map(lambda frame: (frame, {}))
       | 'ScoreModel' >> evaluate.ScoreModel(MODEL, model.directory, model.sha256)
       | 'ExactAuc' >> ExactAuc(schema.label)
       | 'Write' >> beam.Map(lambda comparison: bucket.write_json(path, comparison)))
  runtime.run_to_completion(pipeline, options, 'exact AUC')
  return cast(AucComparison, bucket.read_json(path, 'exact AUC'))
