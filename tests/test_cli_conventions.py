"""CLI conventions: no task has a short flag (one letter must not flip a gate or mean two things),
unknown pipeline flags are a usage error naming the closest known flag while Beam's options pass,
and long work shows a live line on a terminal only, ending with a timed summary."""

from __future__ import annotations

import argparse
import io
import json
import os
import pathlib
import subprocess
import sys

import pytest
from invoke import Collection

import tasks
from beam_pipelines import runtime
from beam_pipelines.store import console

REPO = pathlib.Path(__file__).resolve().parents[1]


def _invoke(*args: str, bucket: pathlib.Path) -> subprocess.CompletedProcess:
  env = dict(os.environ, PYTHONPATH=str(REPO), BEAM_PIPELINES_BUCKET=str(bucket))
  return subprocess.run([sys.executable, '-m', 'invoke', *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=120)


class TestShortFlags:
  def test_no_task_has_a_short_flag(self):
    collection = Collection.from_module(tasks)
    for name in collection.task_names:
      task = collection[name]
      for argument in task.get_arguments():
        shorts = [n for n in argument.names if len(n) == 1]
        assert not shorts, f'`invoke {name}` has the short flag -{shorts[0]} for --{argument.name}'

  @pytest.mark.integration
  def test_approval_dash_f_does_not_turn_the_gate_off(self, tmp_path):
    settings = tmp_path / 'prod' / 'settings.json'
    settings.parent.mkdir(parents=True)
    settings.write_text(json.dumps({'require_approval': True}))
    done = _invoke('approval', '-f', bucket=tmp_path)
    assert done.returncode != 0
    assert json.loads(settings.read_text())['require_approval'] is True

  @pytest.mark.integration
  def test_deploy_dash_b_is_not_taken_for_build_id_or_bucket(self, tmp_path):
    done = _invoke('deploy', '-b', 'x', bucket=tmp_path)
    assert done.returncode != 0 and "'-b'" in done.stderr
    assert not (tmp_path / 'prod').exists()


class TestUnknownPipelineFlags:
  @staticmethod
  def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='python -m beam_pipelines.wordcount', allow_abbrev=False)
    parser.add_argument('--num_shards', type=int)
    parser.add_argument('--output')
    return parser

  def test_a_mistyped_own_flag_exits_2_naming_the_closest(self, capsys):
    with pytest.raises(SystemExit) as exit_:
      runtime.reject_unknown_flags(self._parser(), ['--num_shard', '2'])
    assert exit_.value.code == 2
    assert 'unknown flag --num_shard; did you mean --num_shards?' in capsys.readouterr().err

  def test_a_mistyped_beam_option_names_the_beam_option(self, capsys):
    with pytest.raises(SystemExit) as exit_:
      runtime.reject_unknown_flags(self._parser(), ['--runnr=DirectRunner'])
    assert exit_.value.code == 2 and 'did you mean --runner?' in capsys.readouterr().err

  @pytest.mark.parametrize('args, message', [
      (['--direct_num_workers', 'two'], "argument --direct_num_workers: invalid int value: 'two'"),
      (['--runner'], 'argument --runner: expected one argument')])
  def test_a_beam_option_with_a_bad_value_exits_2_naming_the_value(self, capsys, args, message):
    with pytest.raises(SystemExit) as exit_:
      runtime.reject_unknown_flags(self._parser(), args)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert message in err and 'unknown flag' not in err

  def test_beam_options_pass_through(self):
    runtime.reject_unknown_flags(self._parser(), [
        '--runner', 'DirectRunner', '--direct_num_workers', '2', '--direct_running_mode',
        'multi_processing', '--dry_run', 'True', '--experiments=use_runner_v2', '--project', 'p'])

  @pytest.mark.integration
  def test_the_wordcount_cli_exits_2_on_a_mistyped_flag(self, tmp_path):
    done = subprocess.run([sys.executable, '-m', 'beam_pipelines.wordcount', '--num_shard', '2',
                           '--output', str(tmp_path / 'out')], cwd=REPO, capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=120)
    assert done.returncode == 2 and '--num_shards' in done.stderr
    assert not list(tmp_path.iterdir())


class _Terminal(io.StringIO):
  def isatty(self) -> bool:
    return True


class TestLiveLine:
  def test_draws_in_place_on_a_terminal_cut_to_its_width(self, monkeypatch):
    monkeypatch.setenv('COLUMNS', '40')
    terminal = _Terminal()
    line = console.LiveLine('build: unit tests', terminal)
    line.update('120 passed, 0 failed, 3 skipped and a long tail of words')
    drawn = terminal.getvalue()
    assert drawn.startswith('\r') and len(drawn) == 1 + 39

  def test_is_silent_when_not_a_terminal_but_still_summarises(self, capsys):
    line = console.LiveLine('ct: step training')
    line.update('running')
    line.finish('done')
    err = capsys.readouterr().err
    assert '\r' not in err
    assert err.startswith('[beam-pipelines] ct: step training: done (') and err.endswith('s)\n')

  def test_nested_ticking_draws_only_the_outer_line(self):
    outer_terminal, inner_terminal = _Terminal(), _Terminal()
    with console.ticking('outer', delay=0.0, stream=outer_terminal):
      with console.ticking('inner', delay=0.0, stream=inner_terminal) as inner:
        inner.update('x')
    assert inner_terminal.getvalue() == ''
