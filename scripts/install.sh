#!/usr/bin/env bash
# Creates .venv (Python 3.11) and installs the pinned dependency set plus this project (editable),
# then .venv-airflow (Airflow, only to validate build/dags/; it cannot share .venv with TFDV),
# .venv-mlflow (MLflow, only for the tests of the opt-in MLflow mirror; likewise), and
# Debian's chromium + chromium-driver when missing (the browser tests of the HTML reports).
# Usage: scripts/install.sh            # idempotent: re-running only installs what changed
#        BEAM_PIPELINES_INSTALL=core scripts/install.sh   # .venv only (a Cloud Build step that
#                                     # needs neither the browser, Airflow nor MLflow)
set -euo pipefail
ONLY=${BEAM_PIPELINES_INSTALL:-all}
case "$ONLY" in all|core) ;; *) echo "BEAM_PIPELINES_INSTALL must be all or core, got $ONLY" >&2; exit 2 ;; esac
cd "$(dirname "$0")/.."

# shellcheck source=scripts/lib/pinned-venv.sh
source scripts/lib/pinned-venv.sh

# Headless Chromium for the browser tests of the HTML reports (Debian's packages; root or sudo).
if [ "$ONLY" = all ] && ! { command -v chromium && command -v chromedriver; } >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=$([ "$(id -u)" = 0 ] && echo || echo sudo)
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "install Chromium and chromedriver for the browser tests (tests/test_reports.py)" >&2
  fi
fi

VENV=${VENV:-.venv}
pinned_venv "$VENV" requirements/lock.txt
VIRTUAL_ENV="$PWD/$VENV" "$VENV/bin/uv" pip install --quiet --no-deps --compile-bytecode -e .
echo "beam-pipelines installed in $VENV ($("$VENV/bin/python" -c 'import beam_pipelines; print(beam_pipelines.__version__)'))"
if [ "$ONLY" = all ]; then
  scripts/install-airflow.sh
  scripts/install-mlflow.sh
fi
