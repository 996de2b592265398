#!/usr/bin/env bash
# Creates .venv (Python 3.11) and installs the pinned dependency set plus this project (editable),
# then .venv-airflow (Airflow, only to validate build/dags/; it cannot share .venv with TFDV).
# Usage: scripts/install.sh            # idempotent: re-running only installs what changed
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
"$PYTHON" - <<'PY'
import sys
if sys.version_info[:2] != (3, 11):
    sys.exit(f"beam-pipelines' lock is for Python 3.11; found {sys.version.split()[0]}. "
             "Set PYTHON=/path/to/python3.11.")
PY

VENV=${VENV:-.venv}
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
# uv installs the ~640-line lock in under a minute (pip takes ~2-3); it is itself pinned.
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check 'uv==0.13.9'
export VIRTUAL_ENV="$PWD/$VENV"
"$VENV/bin/uv" pip install --quiet --compile-bytecode -r requirements/lock.txt
"$VENV/bin/uv" pip install --quiet --no-deps --compile-bytecode -e .
echo "beam-pipelines installed in $VENV ($("$VENV/bin/python" -c 'import beam_pipelines; print(beam_pipelines.__version__)'))"
scripts/install-airflow.sh
