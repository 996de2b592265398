#!/usr/bin/env bash
# Submits the checkout to Cloud Build (build/cloudbuild.yaml unless --config is given). The upload
# has no .git, so the commit is recorded first in SOURCE_VERSION ("<commit> <commit time> [dirty]"),
# which the build reads for its build id and manifest (beam_pipelines/store/identity.py).
#
#   scripts/submit_build.sh --substitutions _BUCKET=...,_COMPOSER_ENV=...   # + any gcloud flag
#   DRY_RUN=1 scripts/submit_build.sh ...                                  # print, do not submit
set -euo pipefail
cd "$(dirname "$0")/.."
version="$(git log -1 --format='%H %ct')"
if [ -n "$(git status --porcelain --untracked-files=normal)" ]; then
  version="$version dirty"
fi
echo "$version" > SOURCE_VERSION
config=(--config build/cloudbuild.yaml)
case " $* " in *" --config"*) config=() ;; esac
command=(gcloud builds submit "${config[@]}" "$@" .)
printf '+ %s\n' "${command[*]}"
if [ "${DRY_RUN:-0}" != 1 ]; then "${command[@]}"; fi
