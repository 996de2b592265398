#!/usr/bin/env bash
# The Composer side of a build: copy the DAG files to the DAG folder's ROOT, wait until Airflow has
# parsed a DAG, unpause it, trigger it (the tutorial's wait_for_dag_deployed.sh, plus the unpause:
# new DAGs start paused). DIR is a folder `invoke dags --env ENV --out DIR` staged: the DAG files of
# the build an environment runs, with that environment's own copies of the helper modules.
#
#   scripts/composer_dags.sh sources DIR                   # the files to import, one a line
#   scripts/composer_dags.sh import DIR                    # each file to <DAG bucket>/dags/<file>
#   scripts/composer_dags.sh ready DAG_ID                  # wait until parsed (no import error), unpause
#   scripts/composer_dags.sh trigger DAG_ID RUN_ID [CONF]  # ready, then trigger one run (CONF: JSON)
#
# Environment: COMPOSER_ENV, COMPOSER_REGION (for gcloud), DAG_WAIT_SECONDS (default 600).
# AIRFLOW_CLI, when set, is a local Airflow command (e.g. ".venv-airflow/bin/airflow") used instead
# of `gcloud composer environments run`: the same Airflow subcommands, without gcloud's "--".
set -euo pipefail
cd "$(dirname "$0")/.."

airflow_cli() {  # airflow_cli GROUP COMMAND [ARGS...]
  local group=$1 command=$2
  shift 2
  if [ -n "${AIRFLOW_CLI:-}" ]; then
    # shellcheck disable=SC2086
    $AIRFLOW_CLI "$group" "$command" "$@"
  else
    gcloud composer environments run "$COMPOSER_ENV" --location "$COMPOSER_REGION" \
      "$group" "$command" -- "$@"
  fi
}

sources() {  # sources DIR
  # Every file of the staged folder, not the folder: `dags import --source <dir>` would copy the
  # folder itself (dags/dags/...), where the DAGs' imports of their helper modules fail.
  [ -d "${1:-}" ] || { echo "composer_dags: no staged DAG folder '${1:-}' (invoke dags --out DIR)" >&2; exit 2; }
  find "$1" -maxdepth 1 -type f -name '*.py' | LC_ALL=C sort
}

import_dags() {  # import_dags DIR
  local file
  for file in $(sources "$1"); do
    gcloud composer environments storage dags import --environment "$COMPOSER_ENV" \
      --location "$COMPOSER_REGION" --source "$file"
  done
}

ready() {  # ready DAG_ID: wait until Airflow knows the DAG, fail on its import error; unpause it
  local dag_id=$1 waited=0 limit=${DAG_WAIT_SECONDS:-600}
  until airflow_cli dags details "$dag_id" >/dev/null 2>&1; do
    if airflow_cli dags list-import-errors 2>/dev/null | grep -q beam_pipelines; then
      airflow_cli dags list-import-errors >&2
      echo "composer_dags: the DAG files failed to import (above)" >&2
      exit 1
    fi
    if [ "$waited" -ge "$limit" ]; then
      echo "composer_dags: DAG $dag_id not parsed after ${limit}s" >&2
      exit 1
    fi
    sleep 10
    waited=$((waited + 10))
  done
  airflow_cli dags unpause "$dag_id"
  echo "composer_dags: $dag_id parsed and unpaused"
}

trigger() {  # trigger DAG_ID RUN_ID [CONF]: ready, then one run (with CONF, a JSON object)
  ready "$1"
  if [ -n "${3:-}" ]; then
    airflow_cli dags trigger "$1" --run-id "$2" --conf "$3"
  else
    airflow_cli dags trigger "$1" --run-id "$2"
  fi
}

case "${1:-}" in
  sources) sources "${2:-}" ;;
  import) import_dags "${2:-}" ;;
  ready) ready "$2" ;;
  trigger) trigger "$2" "$3" "${4:-}" ;;
  *) echo "usage: $0 sources DIR | import DIR | ready DAG_ID | trigger DAG_ID RUN_ID [CONF]" >&2
     exit 2 ;;
esac
