#!/usr/bin/env bash
# Creates .venv-airflow (Python 3.11) with Airflow + the Apache Beam and Google providers, from
# requirements/airflow-lock.txt. Used only to validate build/dags/ in a real DagBag (tests/test_dags.py):
# Airflow cannot share .venv with TFDV (see requirements/airflow.in).
# Usage: scripts/install-airflow.sh    # idempotent: re-running only installs what changed
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
"$PYTHON" - <<'PY'
import sys
if sys.version_info[:2] != (3, 11):
    sys.exit(f"requirements/airflow-lock.txt is for Python 3.11; found {sys.version.split()[0]}. "
             "Set PYTHON=/path/to/python3.11.")
PY

VENV=${AIRFLOW_VENV:-.venv-airflow}
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check 'uv==0.13.9'
export VIRTUAL_ENV="$PWD/$VENV"
"$VENV/bin/uv" pip install --quiet --compile-bytecode -r requirements/airflow-lock.txt
echo "Airflow installed in $VENV ($("$VENV/bin/python" -c 'from importlib.metadata import version as v; print("apache-airflow", v("apache-airflow"), "+ apache-beam provider", v("apache-airflow-providers-apache-beam"))'))"
