#!/usr/bin/env bash
# Creates .venv-airflow (Python 3.11) with Airflow + the Apache Beam and Google providers, from
# requirements/airflow-lock.txt. Used only to validate build/dags/ in a real DagBag (tests/test_dags.py):
# Airflow cannot share .venv with TFDV (see requirements/airflow.in).
# Usage: scripts/install-airflow.sh    # idempotent: re-running only installs what changed
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/pinned-venv.sh
source scripts/lib/pinned-venv.sh

VENV=${AIRFLOW_VENV:-.venv-airflow}
pinned_venv "$VENV" requirements/airflow-lock.txt
echo "Airflow installed in $VENV ($("$VENV/bin/python" -c 'from importlib.metadata import version as v; print("apache-airflow", v("apache-airflow"), "+ apache-beam provider", v("apache-airflow-providers-apache-beam"))'))"
