"""Prints the requirements of the project's wheel with its `ml` extra, read from setup.py (not run).

The container installs these under requirements/lock.txt in a layer of their own, before the
wheel is copied in: the layer changes only when setup.py's requirements or the lock change, so a
new build reuses it and only adds its wheel (``pip install --no-deps``).

    python build/container/runtime_requirements.py setup.py > runtime.txt
"""

from __future__ import annotations

import ast
import sys
from typing import Dict, List


def runtime_requirements(setup_source: str, extra: str = 'ml') -> List[str]:
  """``INSTALL_REQUIRES`` + ``EXTRAS_REQUIRE[extra]``, literal lists assigned in setup.py."""
  found: Dict[str, object] = {}
  for node in ast.parse(setup_source).body:
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(
        node.targets[0], ast.Name) and node.targets[0].id in ('INSTALL_REQUIRES', 'EXTRAS_REQUIRE'):
      found[node.targets[0].id] = ast.literal_eval(node.value)
  base, extras = found.get('INSTALL_REQUIRES'), found.get('EXTRAS_REQUIRE')
  if not isinstance(base, list) or not isinstance(extras, dict) or extra not in extras:
    raise SystemExit(f'setup.py: INSTALL_REQUIRES and EXTRAS_REQUIRE[{extra!r}] must be literals')
  return [*base, *extras[extra]]


if __name__ == '__main__':
  with open(sys.argv[1], encoding='utf-8') as handle:
    print('\n'.join(runtime_requirements(handle.read())))
