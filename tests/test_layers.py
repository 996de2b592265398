"""The floor plan as a test: each floor imports only itself and the floors below it, no module of
the package is part of an import circle, pipelines never import one another, and an import of the
package's own modules inside a function says why on its line (docs/architecture.md).

The checker reads the source with ``ast`` (nothing is imported), so it sees imports inside
functions too. Its own tests build small trees that break each rule and show that it fails them.
"""

from __future__ import annotations

import ast
import pathlib
from typing import Dict, List, Set, Tuple

import pytest

from conftest import REPO

PACKAGE = 'beam_pipelines'
# Bottom to top. A module belongs to the first floor one of whose prefixes it matches.
FLOORS: Tuple[Tuple[str, Tuple[str, ...]], ...] = (
    ('store', ('beam_pipelines.store',)),
    ('ml', ('beam_pipelines.ml',)),
    ('pages', ('beam_pipelines.pages',)),
    ('runtime', ('beam_pipelines.submission', 'beam_pipelines.runtime', 'beam_pipelines.batch_runner')),
    ('pipelines', ('beam_pipelines.wordcount', 'beam_pipelines.features', 'beam_pipelines.validate',
                   'beam_pipelines.train', 'beam_pipelines.evaluate', 'beam_pipelines.predict',
                   'beam_pipelines.taxi_data')),
    ('ct', ('beam_pipelines.ct', 'beam_pipelines.experiment', 'beam_pipelines.tracking')),
    ('harness', ('beam_pipelines.harness',)),
    ('tasks', ('tasks',)),
)
ISOLATED_FLOORS = ('pipelines',)  # modules of these floors never import one another


def module_name(root: pathlib.Path, path: pathlib.Path) -> str:
  parts = list(path.relative_to(root).with_suffix('').parts)
  if parts[-1] == '__init__':
    parts.pop()
  return '.'.join(parts)


def floor_of(module: str) -> int:
  """Index of the floor of ``module`` in FLOORS; -1 for the package's ``__init__``."""
  if module == PACKAGE:
    return -1
  for index, (_, prefixes) in enumerate(FLOORS):
    if any(module == p or module.startswith(p + '.') for p in prefixes):
      return index
  raise AssertionError(f'{module} is on no floor: add it to FLOORS and to docs/architecture.md')


def imported_modules(node: ast.AST, known: Set[str]) -> List[str]:
  """The package modules an import statement names (``from a import b`` may name module a.b)."""
  if isinstance(node, ast.Import):
    names = [alias.name for alias in node.names]
  elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
    names = [f'{node.module}.{alias.name}' if f'{node.module}.{alias.name}' in known
             else node.module for alias in node.names]
  else:
    return []
  found = []
  for name in names:
    while name and name not in known:
      name = name.rpartition('.')[0]
    if name:
      found.append(name)
  return found


def scan(root: pathlib.Path) -> Tuple[Dict[str, Set[str]], List[str]]:
  """(module -> package modules it imports anywhere, uncommented function-local imports)."""
  files = {module_name(root, p): p for p in sorted((root / PACKAGE).rglob('*.py'))}
  if (root / 'tasks.py').exists():
    files['tasks'] = root / 'tasks.py'
  known = set(files)
  graph: Dict[str, Set[str]] = {}
  local_imports = []
  for module, path in files.items():
    source = path.read_text(encoding='utf-8')
    lines = source.splitlines()
    tree = ast.parse(source)
    graph[module] = set()
    for function in [n for n in ast.walk(tree)
                     if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]:
      for node in ast.walk(function):
        if imported_modules(node, known) and '#' not in lines[node.lineno - 1]:
          local_imports.append(f'{path.relative_to(root)}:{node.lineno}: {lines[node.lineno - 1].strip()}')
    for node in ast.walk(tree):
      graph[module].update(m for m in imported_modules(node, known) if m != module)
  return graph, sorted(set(local_imports))


def violations(root: pathlib.Path) -> List[str]:
  """Every broken rule of the floor plan in the tree at ``root``, one line each."""
  graph, local_imports = scan(root)
  problems = [f'function-local import without a comment saying why: {line}'
              for line in local_imports]
  for module, targets in sorted(graph.items()):
    here = floor_of(module)
    for target in sorted(targets):
      there = floor_of(target)
      if there > here:
        problems.append(f'upward import: {module} ({FLOORS[here][0]}) imports {target} '
                        f'({FLOORS[there][0]})')
      elif there == here and FLOORS[here][0] in ISOLATED_FLOORS:
        problems.append(f'sideways import: pipeline {module} imports pipeline {target}')
  problems += [f'import circle: {" -> ".join(cycle)}' for cycle in circles(graph)]
  return problems


def circles(graph: Dict[str, Set[str]]) -> List[List[str]]:
  """The strongly connected components of more than one module (Tarjan's algorithm)."""
  index: Dict[str, int] = {}
  low: Dict[str, int] = {}
  stack: List[str] = []
  found = []

  def visit(node: str) -> None:
    index[node] = low[node] = len(index)
    stack.append(node)
    for target in sorted(graph.get(node, ())):
      if target not in index:
        visit(target)
        low[node] = min(low[node], low[target])
      elif target in stack:
        low[node] = min(low[node], index[target])
    if low[node] == index[node]:
      component = []
      while True:
        member = stack.pop()
        component.append(member)
        if member == node:
          break
      if len(component) > 1:
        found.append(sorted(component))

  for node in sorted(graph):
    if node not in index:
      visit(node)
  return found


def test_the_package_keeps_its_floor_plan():
  assert violations(REPO) == []


def test_every_module_is_on_a_floor_named_in_the_architecture_doc():
  graph, _ = scan(REPO)
  doc = (REPO / 'docs' / 'architecture.md').read_text(encoding='utf-8')
  for name, prefixes in FLOORS:
    assert f'**{name}**' in doc, f'docs/architecture.md does not describe the floor {name}'
  for module in graph:
    floor_of(module)


# The checker's own tests: a small tree per broken rule.

def _tree(tmp_path: pathlib.Path, files: Dict[str, str]) -> pathlib.Path:
  for name, text in {'beam_pipelines/__init__.py': '', 'beam_pipelines/store/__init__.py': '',
                     'beam_pipelines/ml/__init__.py': '', 'beam_pipelines/ct/__init__.py': '',
                     'beam_pipelines/harness/__init__.py': '', **files}.items():
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
  return tmp_path


def test_a_downward_tree_passes(tmp_path):
  root = _tree(tmp_path, {
      'beam_pipelines/store/bucket.py': 'import os\n',
      'beam_pipelines/ml/spec.py': 'from beam_pipelines.store import bucket\n',
      'beam_pipelines/features.py': 'from beam_pipelines.ml import spec\n',
      'beam_pipelines/ct/loop.py': 'from beam_pipelines import features\n',
      'tasks.py': 'def t():\n  from beam_pipelines.ct import loop  # slow import: only when run\n'})
  assert violations(root) == []


def test_an_upward_import_fails(tmp_path):
  root = _tree(tmp_path, {
      'beam_pipelines/store/bucket.py': 'from beam_pipelines.harness import deploy\n',
      'beam_pipelines/harness/deploy.py': 'import os\n'})
  assert violations(root) == [
      'upward import: beam_pipelines.store.bucket (store) imports beam_pipelines.harness.deploy '
      '(harness)']


def test_an_upward_import_inside_a_function_fails_too(tmp_path):
  root = _tree(tmp_path, {
      'beam_pipelines/ml/registry.py':
          'def push():\n  from beam_pipelines.ct import loop  # dodges a circle\n',
      'beam_pipelines/ct/loop.py': ''})
  assert violations(root) == [
      'upward import: beam_pipelines.ml.registry (ml) imports beam_pipelines.ct.loop (ct)']


def test_a_circle_within_a_floor_fails(tmp_path):
  root = _tree(tmp_path, {
      'beam_pipelines/runtime.py': 'from beam_pipelines import submission\n',
      'beam_pipelines/submission.py':
          'def f():\n  from beam_pipelines.runtime import progress  # circle\n'})
  assert violations(root) == [
      'import circle: beam_pipelines.runtime -> beam_pipelines.submission']


def test_pipelines_importing_each_other_fail(tmp_path):
  root = _tree(tmp_path, {
      'beam_pipelines/features.py': 'import os\n',
      'beam_pipelines/validate.py': 'from beam_pipelines.features import read_summary\n'})
  assert violations(root) == [
      'sideways import: pipeline beam_pipelines.validate imports pipeline beam_pipelines.features']


def test_an_uncommented_function_local_import_fails(tmp_path):
  root = _tree(tmp_path, {
      'beam_pipelines/store/bucket.py': 'import os\n',
      'beam_pipelines/harness/status.py': 'def f():\n  from beam_pipelines.store import bucket\n'})
  assert violations(root) == [
      'function-local import without a comment saying why: '
      'beam_pipelines/harness/status.py:2: from beam_pipelines.store import bucket']


def test_a_module_on_no_floor_is_named():
  with pytest.raises(AssertionError, match='beam_pipelines.newthing is on no floor'):
    floor_of('beam_pipelines.newthing')
