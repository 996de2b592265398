"""Counts words in text files: the data-processing job of the CI/CD tutorial (Beam's WordCount).

Semantics follow Beam's Java ``WordCount`` example exactly: a line is split on runs of characters
that are not Unicode letters (Java's ``[^\\p{L}]+``), so digits, punctuation, apostrophes and ``_``
separate words while accented and non-Latin letters belong to them; empty tokens are dropped;
words are counted case-sensitively and written as ``word: count`` lines.

    python -m beam_pipelines.wordcount --input 'data/*.txt' --output out/counts [--num_shards N]

Any other flag is a Beam pipeline option (``--runner``, ``--direct_num_workers`` ...).
"""

from __future__ import annotations

import argparse
import sys

from beam_pipelines import runtime


def add_wordcount_arguments(parser: argparse.ArgumentParser) -> None:
  """The word count's own flags. Plain argparse, not a PipelineOptions subclass: --help needs no
  Beam import, and flags such as --output cannot clash with another pipeline's in one process."""
  parser.add_argument(
      '--input', default=None, help='File or glob to read (default: the bundled sample text).')
  parser.add_argument(
      '--output', default='outputs/wordcount/counts', help='Output path prefix of the shards.')
  parser.add_argument(
      '--num_shards', type=runtime.count(0), default=0,
      help='Number of output shards (0: runner decides).')


# Answers --help before importing Beam (~2 s).
runtime.answer_help_early(__name__, 'wordcount', __doc__, add_wordcount_arguments)

import logging
import re
from importlib import resources
from typing import Iterable, Iterator, Optional, Sequence, Tuple

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from beam_pipelines.store import text_lines
from beam_pipelines.store.console import progress
from beam_pipelines.store.errors import Refusal

METRICS_NAMESPACE = 'WordCount'
EMPTY_LINES = 'emptyLines'
LINE_LENGTHS = 'lineLenDistro'

# Runs of characters that may be letters: \w minus decimal digits and '_'. This is a superset of
# the letters (categories Lu, Ll, Lt, Lm, Lo == str.isalpha) that also holds the few non-decimal
# numerics (e.g. '²', '½', 'Ⅻ'); those rare runs are split again character by character.
_LETTERISH_RUN = re.compile(r'[^\W\d_]+')


def default_input() -> str:
  """Path of the sample text bundled with the package (the embedded default input)."""
  return str(resources.files('beam_pipelines') / 'data' / 'sample.txt')


def split_words(line: str) -> Iterator[str]:
  """Yields the words of a line: maximal runs of Unicode letters (Java's ``\\p{L}``)."""
  for run in _LETTERISH_RUN.findall(line):
    if run.isalpha():
      yield run
      continue
    word = []
    for char in run:
      if char.isalpha():
        word.append(char)
      elif word:
        yield ''.join(word)
        word = []
    if word:
      yield ''.join(word)


def is_blank(line: str) -> bool:
  """Java's ``line.trim().isEmpty()``: only characters <= U+0020."""
  return all(char <= ' ' for char in line)


class ExtractWordsFn(beam.DoFn):
  """Splits a line into words, counting empty lines and the distribution of line lengths."""

  def __init__(self):
    super().__init__()
    self.empty_lines = Metrics.counter(METRICS_NAMESPACE, EMPTY_LINES)
    self.line_lengths = Metrics.distribution(METRICS_NAMESPACE, LINE_LENGTHS)

  def process(self, line: str) -> Iterable[str]:
    self.line_lengths.update(len(line))
    if is_blank(line):
      self.empty_lines.inc()
    yield from split_words(line)


def format_count(word_count: Tuple[str, int]) -> str:
  """(word, count) -> 'word: count', the output line format."""
  word, count = word_count
  return f'{word}: {count}'


class CountWords(beam.PTransform):
  """Lines of text -> (word, count)."""

  def expand(self, lines):
    return (
        lines
        | 'ExtractWords' >> beam.ParDo(ExtractWordsFn())
        | 'CountPerWord' >> beam.combiners.Count.PerElement())


def build_pipeline(pipeline: beam.Pipeline, input_pattern: str, output: str, num_shards: int = 0):
  """Adds read -> count -> format -> write to ``pipeline``; returns the write result."""
  lines = pipeline | 'ReadLines' >> beam.io.ReadFromText(input_pattern)
  word_to_count = lines | 'CountWords' >> CountWords()
  return (
      word_to_count
      | 'Format' >> beam.Map(format_count)
      | 'Write' >> beam.io.WriteToText(output, num_shards=num_shards))


class OversizedLineError(Refusal, ValueError):
  """An input line longer than the record limit: refused before the pipeline runs."""


def check_line_lengths(input_pattern: str, limit: int) -> None:
  """Refuses an input with a line longer than ``limit`` characters (one streaming pass, bounded
  memory): one line that large is not text to count but a runaway file, and would be held whole."""
  for path in text_lines.match_files(input_pattern):
    with FileSystems.open(path) as handle:
      for number, line in enumerate(text_lines.bounded_lines(handle, limit), 1):
        if isinstance(line, text_lines.OversizedLine):
          raise OversizedLineError(
              f'{path}: line {number} is longer than {limit} characters '
              f'(${text_lines.MAX_RECORD_ENV_VAR} raises the limit); nothing was written')


def run(argv: Optional[Sequence[str]] = None, save_main_session: bool = False) -> beam.runners.runner.PipelineResult:
  """Runs the word count. Returns the finished pipeline result (its metrics hold the counters).

  ``save_main_session`` stays False: the DoFns need no global state of ``__main__`` (Beam's default
  cloudpickle pickles them by value, and imports resolve from the staged wheel on workers).
  """
  known, options = runtime.pipeline_arguments(
      'wordcount', argv, add_wordcount_arguments, save_main_session)
  input_pattern = known.input or default_input()
  if not runtime.is_dry_run(options):
    check_line_lengths(input_pattern, text_lines.max_record_chars())

  progress(f'wordcount: reading {input_pattern}')
  pipeline = runtime.new_pipeline(options)
  build_pipeline(pipeline, input_pattern, known.output, known.num_shards)
  result = runtime.run_to_completion(pipeline, options, 'wordcount')
  if not runtime.is_dry_run(options):
    _report(result, known.output)
  return result


def _report(result, output: str) -> None:
  """Prints the run's summary: lines, empty lines, where the shards are."""
  try:
    metrics = result.metrics().query()
  except NotImplementedError:  # some runners do not report metrics
    return
  empty = sum(c.committed or 0 for c in metrics['counters'] if c.key.metric.name == EMPTY_LINES)
  dists = [d.committed for d in metrics['distributions'] if d.key.metric.name == LINE_LENGTHS]
  lines = sum(d.count for d in dists if d)
  progress(f'wordcount: done: {lines} lines read ({empty} empty); counts written to {output}-*')


def main(argv: Optional[Sequence[str]] = None) -> int:
  """CLI entry: the project's exit statuses (``runtime.main``); a missing input, undecodable text
  or nothing to stage on Dataflow is one line and status 2."""
  return runtime.main('wordcount', run, argv)


if __name__ == '__main__':
  logging.getLogger().setLevel(logging.WARNING)
  sys.exit(main())
