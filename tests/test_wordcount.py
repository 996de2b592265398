"""Tests of the word count: Java WordCount semantics, counters, the CLI and the golden reference."""

from __future__ import annotations

import subprocess
import sys
import unittest

import apache_beam as beam
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from beam_pipelines import wordcount
from beam_pipelines.wordcount import CountWords, split_words

from conftest import SUPPORT_FILES, read_shards


def parse_counts(lines):
  return {word: int(count) for word, count in (line.rsplit(': ', 1) for line in lines)}


class SplitWordsTest(unittest.TestCase):
  """split_words: maximal runs of Unicode letters (Java's [^\\p{L}]+ separators)."""

  CASES = [
      ('', []),
      ('   \t ', []),
      ('hello world', ['hello', 'world']),
      ("it's don't", ['it', 's', 'don', 't']),
      ('snake_case', ['snake', 'case']),
      ('route66 R2D2 4x4', ['route', 'R', 'D', 'x']),
      ('café naïve Straße', ['café', 'naïve', 'Straße']),
      ('Привет, мир! 你好世界', ['Привет', 'мир', '你好世界']),
      ('x² ½cup Ⅻo', ['x', 'cup', 'o']),  # No/Nl numerics are not letters
      ('emoji😀smile', ['emoji', 'smile']),
      ('a—b–c', ['a', 'b', 'c']),
      ('Word word WORD', ['Word', 'word', 'WORD']),
  ]

  def test_cases(self):
    for line, expected in self.CASES:
      with self.subTest(line=line):
        self.assertEqual(list(split_words(line)), expected)

  def test_every_letter_is_kept_and_every_non_letter_separates(self):
    # Exhaustive over the Basic Multilingual Plane: 'a' + char + 'b' is one word iff char is a
    # letter (Unicode category L*), else the two words 'a' and 'b'.
    import unicodedata
    for code in range(0x10000):
      char = chr(code)
      if 0xD800 <= code <= 0xDFFF:
        continue
      expected = ['a' + char + 'b'] if unicodedata.category(char).startswith('L') else ['a', 'b']
      if list(split_words('a' + char + 'b')) != expected:
        self.fail(f'U+{code:04X} {unicodedata.name(char, "?")}: {list(split_words("a" + char + "b"))}')


class CountWordsTest(unittest.TestCase):
  """The CountWords composite on TestPipeline."""

  LINES = [
      'The river, the RIVER; the river!',
      '',
      '   ',
      "l'été — déjà l'été",
      'Съешь ещё, съешь',
      '42 is not a word, but is_a is',
  ]
  EXPECTED = [
      ('The', 1), ('river', 2), ('the', 2), ('RIVER', 1),
      ('l', 2), ('été', 2), ('déjà', 1),
      ('Съешь', 1), ('ещё', 1), ('съешь', 1),
      ('is', 3), ('not', 1), ('a', 2), ('word', 1), ('but', 1),
  ]

  def test_count_words(self):
    with TestPipeline() as p:
      word_to_count = p | beam.Create(self.LINES) | CountWords()
      assert_that(word_to_count, equal_to(self.EXPECTED))

  def test_no_lines_gives_no_counts(self):
    with TestPipeline() as p:
      word_to_count = p | beam.Create([]) | CountWords()
      assert_that(word_to_count, equal_to([]))

  def test_counters(self):
    p = TestPipeline()
    _ = p | beam.Create(self.LINES) | CountWords()
    result = p.run()
    result.wait_until_finish()
    metrics = result.metrics()
    empty = metrics.query(MetricsFilter().with_name(wordcount.EMPTY_LINES))['counters']
    lengths = metrics.query(MetricsFilter().with_name(wordcount.LINE_LENGTHS))['distributions']
    self.assertEqual(empty[0].committed, 2)
    dist = lengths[0].committed
    self.assertEqual(dist.count, len(self.LINES))
    self.assertEqual(dist.sum, sum(len(line) for line in self.LINES))
    self.assertEqual(dist.max, max(len(line) for line in self.LINES))


class WordCountRunTest(unittest.TestCase):
  """run() end to end on real files, as the CLI does."""

  def setUp(self):
    import tempfile
    self.tmp = tempfile.TemporaryDirectory()
    self.dir = self.tmp.name

  def tearDown(self):
    self.tmp.cleanup()

  def test_golden_reference(self):
    """The integration input gives exactly the checked-in reference (made with Java's regex)."""
    output = f'{self.dir}/counts'
    wordcount.run(['--input', str(SUPPORT_FILES / 'input.txt'), '--output', output,
                   '--num_shards', '3'])
    reference = (SUPPORT_FILES / 'reference.txt').read_text(encoding='utf-8').splitlines()
    shards = read_shards(output)
    self.assertEqual(len(shards), len(set(shards)), 'a word appears in two shards')
    self.assertEqual(parse_counts(shards), parse_counts(reference))

  def test_empty_input_file(self):
    empty = f'{self.dir}/empty.txt'
    open(empty, 'w').close()
    output = f'{self.dir}/counts'
    wordcount.run(['--input', empty, '--output', output, '--num_shards', '1'])
    self.assertEqual(read_shards(output), [])

  def test_glob_over_several_files_and_crlf(self):
    with open(f'{self.dir}/a.txt', 'w', encoding='utf-8', newline='') as f:
      f.write('one two\r\ntwo\r\n')
    with open(f'{self.dir}/b.txt', 'w', encoding='utf-8') as f:
      f.write('two three\n\n')
    output = f'{self.dir}/counts'
    wordcount.run(['--input', f'{self.dir}/*.txt', '--output', output])
    self.assertEqual(parse_counts(read_shards(output)), {'one': 1, 'two': 3, 'three': 1})

  def test_default_input_is_the_bundled_sample(self):
    output = f'{self.dir}/counts'
    wordcount.run(['--output', output])
    counts = parse_counts(read_shards(output))
    self.assertEqual(counts['river'], 4)


@pytest.mark.integration
def test_cli_help_answers_without_importing_beam_or_tensorflow():
  code = ('import runpy, sys\n'
          'sys.argv = ["wordcount", "--help"]\n'
          'try:\n'
          '  runpy.run_module("beam_pipelines.wordcount", run_name="__main__")\n'
          'except SystemExit:\n'
          '  pass\n'
          'assert "tensorflow" not in sys.modules, "--help imported tensorflow"\n'
          'assert "apache_beam" not in sys.modules, "--help imported apache_beam"\n')
  out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
  assert '--num_shards' in out.stdout


@pytest.mark.integration
def test_cli_runs_and_reports(tmp_path):
  output = tmp_path / 'counts'
  proc = subprocess.run(
      [sys.executable, '-m', 'beam_pipelines.wordcount', '--input',
       str(SUPPORT_FILES / 'input.txt'), '--output', str(output)],
      capture_output=True, text=True, check=True)
  assert f'counts written to {output}-*' in proc.stderr
  assert '45 lines read (7 empty)' in proc.stderr  # the counters, as the summary reports them
  reference = (SUPPORT_FILES / 'reference.txt').read_text(encoding='utf-8').splitlines()
  assert parse_counts(read_shards(str(output))) == parse_counts(reference)


def test_a_line_over_the_record_limit_is_refused_before_anything_is_written(tmp_path, monkeypatch):
  monkeypatch.setenv('BEAM_PIPELINES_MAX_RECORD_BYTES', '1000')
  (tmp_path / 'in.txt').write_text('short line\n' + 'x' * 5000 + '\nlast line\n')
  assert wordcount.main(['--input', str(tmp_path / 'in.txt'),
                         '--output', str(tmp_path / 'out' / 'counts')]) == 2
  assert not (tmp_path / 'out').exists()


ML_LIBRARIES = ('pandas', 'sklearn', 'tensorflow', 'tensorflow_data_validation', 'tfx_bsl')


@pytest.mark.integration
def test_the_word_count_runs_where_only_beam_is_installed(tmp_path):
  """A word-count worker (Dataflow, Composer's Beam venv) installs the wheel without its `ml` extra:
  the run must not import pandas, scikit-learn or TensorFlow."""
  output = tmp_path / 'counts'
  code = ('import importlib.abc, runpy, sys\n'
          f'BLOCKED = {ML_LIBRARIES!r}\n'
          'class NotInstalled(importlib.abc.MetaPathFinder):\n'
          '  def find_spec(self, name, path=None, target=None):\n'
          '    if name.split(".")[0] in BLOCKED:\n'
          '      raise ModuleNotFoundError(f"No module named {name!r}", name=name)\n'
          'sys.meta_path.insert(0, NotInstalled())\n'
          f'sys.argv = ["wordcount", "--input", {str(SUPPORT_FILES / "input.txt")!r}, '
          f'"--output", {str(output)!r}]\n'
          'runpy.run_module("beam_pipelines.wordcount", run_name="__main__")\n')
  proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
  assert proc.returncode == 0, proc.stderr[-3000:]
  reference = (SUPPORT_FILES / 'reference.txt').read_text(encoding='utf-8').splitlines()
  assert parse_counts(read_shards(str(output))) == parse_counts(reference)
