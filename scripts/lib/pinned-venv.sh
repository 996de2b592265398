# shellcheck shell=bash
# Sourced by scripts/install*.sh: one way to make a pinned Python 3.11 environment.
#   pinned_venv VENV LOCK     creates VENV (if missing) and installs LOCK into it with a pinned uv
# Runs from the repository root; $PYTHON picks the interpreter (default python3.11, else python3).

PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
# Checked when sourced, before anything is installed: every lock of requirements/ is for 3.11.
"$PYTHON" - <<'PY'
import sys
if sys.version_info[:2] != (3, 11):
    sys.exit(f"beam-pipelines' locks (requirements/*lock.txt) are for Python 3.11; found "
             f"{sys.version.split()[0]}. Set PYTHON=/path/to/python3.11.")
PY

pinned_venv() {
  local venv=$1 lock=$2
  [ -x "$venv/bin/python" ] || "$PYTHON" -m venv "$venv"
  # uv installs a lock of hundreds of lines in under a minute (pip takes minutes); it is pinned too.
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check 'uv==0.13.9'
  VIRTUAL_ENV="$PWD/$venv" "$venv/bin/uv" pip install --quiet --compile-bytecode -r "$lock"
}
