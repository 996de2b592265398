#!/usr/bin/env bash
# Creates .venv-mlflow (Python 3.11) with MLflow from requirements/mlflow-lock.txt. Used only by the
# tests of the opt-in MLflow mirror (tests/test_mlflow_mirror.py): a local tracking server and
# MLflow's Python client reading back what the mirror wrote. The project itself never imports
# mlflow (it speaks MLflow's REST API), and MLflow cannot share .venv with TFDV (see
# requirements/mlflow.in).
# Usage: scripts/install-mlflow.sh    # idempotent: re-running only installs what changed
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
"$PYTHON" - <<'PY'
import sys
if sys.version_info[:2] != (3, 11):
    sys.exit(f"requirements/mlflow-lock.txt is for Python 3.11; found {sys.version.split()[0]}. "
             "Set PYTHON=/path/to/python3.11.")
PY

VENV=${MLFLOW_VENV:-.venv-mlflow}
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check 'uv==0.13.9'
export VIRTUAL_ENV="$PWD/$VENV"
"$VENV/bin/uv" pip install --quiet --compile-bytecode -r requirements/mlflow-lock.txt
echo "MLflow installed in $VENV ($("$VENV/bin/python" -c 'from importlib.metadata import version as v; print("mlflow", v("mlflow"))'))"
