"""The golden-file gate (CompareXComMapsOperator): parse, merge, compare, render; each failure mode."""

from __future__ import annotations

import pytest

from beam_pipelines.harness import compare


class TestParseCounts:

  def test_parses_key_value_lines_and_skips_blank_lines(self):
    assert compare.parse_counts('a: 1\n\nBäume: 2\n') == {'a': '1', 'Bäume': '2'}

  def test_splits_on_the_last_separator(self):
    assert compare.parse_counts('a: b: 3') == {'a: b': '3'}

  def test_a_line_without_separator_names_source_and_line(self):
    with pytest.raises(ValueError, match=r'shard-1:2: not a "key: value" line'):
      compare.parse_counts('a: 1\nbroken\n', 'shard-1')

  def test_a_repeated_key_is_an_error(self):
    with pytest.raises(ValueError, match="key 'a' appears twice"):
      compare.parse_counts('a: 1\na: 2\n')


class TestMergeMaps:

  def test_merges_shards(self):
    assert compare.merge_maps([('s0', {'a': '1'}), ('s1', {'b': '2'})]) == {'a': '1', 'b': '2'}

  def test_a_key_in_two_shards_is_an_error(self):
    with pytest.raises(ValueError, match="'a' appears in two shards: s0 and s1"):
      compare.merge_maps([('s0', {'a': '1'}), ('s1', {'a': '1'})])


class TestCompareMaps:
  EXPECTED = {'apple': '2', 'pear': '1', 'plum': '3'}

  def test_equal_maps(self):
    result = compare.compare_maps(self.EXPECTED, dict(self.EXPECTED))
    assert result.equal
    assert compare.render(result) == 'outputs match the reference'

  def test_missing_key(self):
    result = compare.compare_maps(self.EXPECTED, {'apple': '2', 'plum': '3'})
    assert (result.missing, result.wrong, result.unexpected) == (['pear'], [], [])
    assert '1 missing: pear' in compare.render(result)

  def test_wrong_value(self):
    result = compare.compare_maps(self.EXPECTED, {'apple': '2', 'pear': '5', 'plum': '3'})
    assert result.wrong == [('pear', '1', '5')]
    assert '1 wrong: pear (expected 1, got 5)' in compare.render(result)

  def test_unexpected_key(self):
    result = compare.compare_maps(self.EXPECTED, dict(self.EXPECTED, kiwi='1'))
    assert result.unexpected == ['kiwi']
    assert '1 unexpected: kiwi' in compare.render(result)

  def test_the_message_names_every_difference(self):
    actual = {'apple': '9', 'kiwi': '1', 'fig': '4'}
    message = compare.render(compare.compare_maps(self.EXPECTED, actual))
    for word in ('apple (expected 2, got 9)', 'pear', 'plum', 'kiwi', 'fig'):
      assert word in message
    assert message.startswith('outputs differ from the reference: 2 missing: pear, plum; ')

  def test_empty_output_misses_everything(self):
    result = compare.compare_maps(self.EXPECTED, {})
    assert result.missing == ['apple', 'pear', 'plum'] and not result.equal
