#!/usr/bin/env bash
# Creates .venv-mlflow (Python 3.11) with MLflow from requirements/mlflow-lock.txt. Used only by the
# tests of the opt-in MLflow mirror (tests/test_mlflow_mirror.py): a local tracking server and
# MLflow's Python client reading back what the mirror wrote. The project itself never imports
# mlflow (it speaks MLflow's REST API), and MLflow cannot share .venv with TFDV (see
# requirements/mlflow.in).
# Usage: scripts/install-mlflow.sh    # idempotent: re-running only installs what changed
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/pinned-venv.sh
source scripts/lib/pinned-venv.sh

VENV=${MLFLOW_VENV:-.venv-mlflow}
pinned_venv "$VENV" requirements/mlflow-lock.txt
echo "MLflow installed in $VENV ($("$VENV/bin/python" -c 'from importlib.metadata import version as v; print("mlflow", v("mlflow"))'))"
