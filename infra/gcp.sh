#!/usr/bin/env bash
# The GCP side of beam-pipelines, from an empty project: APIs, the harness bucket (private,
# versioned, lifecycle rules), Artifact Registry, a private subnetwork for Dataflow, one service
# account per actor with write access only to the prefixes it owns, the signing key in Secret
# Manager, the Composer environment and the Cloud Build triggers (test on push; prod manual, for a
# named build, behind an approval). docs/moving-to-gcp.md walks through it.
#
#   PROJECT_ID=my-project BUCKET=my-project-beam-pipelines GITHUB_OWNER=me GITHUB_REPO=beam-pipelines \
#     infra/gcp.sh            # DRY_RUN=1 prints the gcloud commands instead of running them
#   ... infra/gcp.sh check    # reports where existing resources differ from what this script makes
#
# Each step is idempotent: an existing resource is kept as it is (`check` says when it differs).
# Settings (environment): PROJECT_ID, BUCKET, GITHUB_OWNER, GITHUB_REPO are required; REGION
# (us-central1), ZONE (us-central1-b), COMPOSER_ENV (beam-pipelines), COMPOSER_IMAGE
# (composer-3-airflow-<the major of requirements/airflow-lock.txt>, the Airflow CI runs the DAGs
# on), AR_REPO (beam-pipelines), NETWORK (beam-pipelines), SUBNET (dataflow), SUBNET_RANGE
# (10.10.0.0/20), MAX_WORKERS (10), SIGNING_SECRET (beam-pipelines-signing-key).
set -euo pipefail
cd "$(dirname "$0")/.."

: "${PROJECT_ID:?set PROJECT_ID}" "${BUCKET:?set BUCKET (without gs://)}"
: "${GITHUB_OWNER:?set GITHUB_OWNER}" "${GITHUB_REPO:?set GITHUB_REPO}"
REGION=${REGION:-us-central1}
ZONE=${ZONE:-us-central1-b}
COMPOSER_ENV=${COMPOSER_ENV:-beam-pipelines}
AIRFLOW_MAJOR=$(sed -n 's/^apache-airflow==\([0-9]*\)\..*/\1/p' requirements/airflow-lock.txt)
COMPOSER_IMAGE=${COMPOSER_IMAGE:-composer-3-airflow-${AIRFLOW_MAJOR}}
AR_REPO=${AR_REPO:-beam-pipelines}
NETWORK=${NETWORK:-beam-pipelines}
SUBNET=${SUBNET:-dataflow}
SUBNET_RANGE=${SUBNET_RANGE:-10.10.0.0/20}
MAX_WORKERS=${MAX_WORKERS:-10}
SIGNING_SECRET=${SIGNING_SECRET:-beam-pipelines-signing-key}

SA_DOMAIN="${PROJECT_ID}.iam.gserviceaccount.com"
BUILD_SA="beam-pipelines-build@${SA_DOMAIN}"      # Cloud Build: build, test, import DAGs
DEPLOY_SA="beam-pipelines-deploy@${SA_DOMAIN}"    # Cloud Build: the approved prod deploy
COMPOSER_SA="beam-pipelines-composer@${SA_DOMAIN}"  # Composer: runs the DAGs, launches jobs
DATAFLOW_SA="beam-pipelines-dataflow@${SA_DOMAIN}"  # Dataflow workers
CONTAINER_REPO="${REGION}-docker.pkg.dev/${PROJECT_ID}/${AR_REPO}"

say() {  # prints a command, each word quoted as the shell would read it
  printf '+'
  printf ' %q' "$@"
  printf '\n'
}

run() {  # prints the command; runs it unless DRY_RUN=1
  say "$@"
  if [ "${DRY_RUN:-0}" != 1 ]; then "$@"; fi
}

exists() {  # exists DESCRIBE-COMMAND...: true if the resource is there (always false in a dry run)
  [ "${DRY_RUN:-0}" != 1 ] && "$@" >/dev/null 2>&1
}

apis() {
  run gcloud services enable --project "$PROJECT_ID" cloudbuild.googleapis.com \
    composer.googleapis.com dataflow.googleapis.com artifactregistry.googleapis.com \
    compute.googleapis.com storage.googleapis.com iam.googleapis.com
}

storage() {
  exists gcloud storage buckets describe "gs://${BUCKET}" --project "$PROJECT_ID" ||
    run gcloud storage buckets create "gs://${BUCKET}" --project "$PROJECT_ID" \
      --location "$REGION" --uniform-bucket-level-access --public-access-prevention
  # Object versions keep every overwritten record (variables, reports) recoverable; the
  # lifecycle rules (infra/lifecycle.json) delete Dataflow's temp and staging files after 7 days
  # and overwritten versions after 30, so the bucket does not grow without end.
  run gcloud storage buckets update "gs://${BUCKET}" --versioning \
    --lifecycle-file infra/lifecycle.json
}

registry() {
  exists gcloud artifacts repositories describe "$AR_REPO" --location "$REGION" \
      --project "$PROJECT_ID" ||
    run gcloud artifacts repositories create "$AR_REPO" --repository-format docker \
      --location "$REGION" --project "$PROJECT_ID" \
      --description "beam-pipelines SDK containers, tagged by build id"
}

network() {
  exists gcloud compute networks describe "$NETWORK" --project "$PROJECT_ID" ||
    run gcloud compute networks create "$NETWORK" --subnet-mode custom --project "$PROJECT_ID"
  exists gcloud compute networks subnets describe "$SUBNET" --region "$REGION" \
      --project "$PROJECT_ID" ||
    run gcloud compute networks subnets create "$SUBNET" --network "$NETWORK" \
      --region "$REGION" --range "$SUBNET_RANGE" --enable-private-ip-google-access \
      --project "$PROJECT_ID"
  # Dataflow workers talk to each other on 12345-12346 (shuffle, streaming): nothing else comes in.
  exists gcloud compute firewall-rules describe "${NETWORK}-dataflow" --project "$PROJECT_ID" ||
    run gcloud compute firewall-rules create "${NETWORK}-dataflow" --network "$NETWORK" \
      --direction INGRESS --action allow --rules tcp:12345-12346 --source-tags dataflow \
      --target-tags dataflow --project "$PROJECT_ID"
}

service_accounts() {
  local sa
  for sa in "$BUILD_SA" "$DEPLOY_SA" "$COMPOSER_SA" "$DATAFLOW_SA"; do
    exists gcloud iam service-accounts describe "$sa" --project "$PROJECT_ID" ||
      run gcloud iam service-accounts create "${sa%%@*}" --project "$PROJECT_ID" \
        --display-name "${sa%%@*}"
  done
}

grant_project() {  # grant_project SA ROLE
  run gcloud projects add-iam-policy-binding "$PROJECT_ID" --member "serviceAccount:$1" \
    --role "$2" --condition None
}

grant_bucket() {  # grant_bucket SA ROLE
  run gcloud storage buckets add-iam-policy-binding "gs://${BUCKET}" \
    --member "serviceAccount:$1" --role "$2"
}

prefixes_condition() {  # prefixes_condition BUCKET TITLE PREFIX...: an IAM condition on object names
  local bucket=$1 title=$2 expression='' prefix
  shift 2
  for prefix in "$@"; do
    expression+="${expression:+ || }resource.name.startsWith(\"projects/_/buckets/${bucket}/objects/${prefix}\")"
  done
  printf 'expression=%s,title=%s' "$expression" "$title"
}

grant_prefixes() {  # grant_prefixes SA TITLE PREFIX...: read the bucket, write only those prefixes
  local sa=$1 title=$2
  shift 2
  grant_bucket "$sa" roles/storage.objectViewer
  run gcloud storage buckets add-iam-policy-binding "gs://${BUCKET}" \
    --member "serviceAccount:$sa" --role roles/storage.objectUser \
    --condition "$(prefixes_condition "$BUCKET" "$title" "$@")"
}

grant_repo() {  # grant_repo SA ROLE
  run gcloud artifacts repositories add-iam-policy-binding "$AR_REPO" --location "$REGION" \
    --project "$PROJECT_ID" --member "serviceAccount:$1" --role "$2"
}

grant_act_as() {  # grant_act_as WHO TARGET_SA: WHO may run things as TARGET_SA
  run gcloud iam service-accounts add-iam-policy-binding "$2" --project "$PROJECT_ID" \
    --member "serviceAccount:$1" --role roles/iam.serviceAccountUser
}

# Who may write where in the bucket (the layout of beam_pipelines/store/layout.py). Everyone reads
# everything; writes are by prefix, so a test build, a DAG or a Dataflow worker cannot write what
# prod runs (prod/variables.json, prod/artifacts/) or a build's "test passed" record.
TEST_BUILD_PREFIXES=(test/)
DEPLOY_PREFIXES=(prod/)
COMPOSER_PREFIXES=(test/evidence/ test/results/ test/staging/ test/temp/ prod/results/
                   prod/staging/ prod/temp/ prod/ct/ prod/registry/)
DATAFLOW_PREFIXES=(test/results/ test/staging/ test/temp/ prod/results/ prod/staging/ prod/temp/
                   prod/ct/)

iam() {
  # Cloud Build (test): the test area only, push images, run Composer commands, write logs.
  grant_prefixes "$BUILD_SA" test-area "${TEST_BUILD_PREFIXES[@]}"
  grant_repo "$BUILD_SA" roles/artifactregistry.writer
  grant_project "$BUILD_SA" roles/composer.user
  grant_project "$BUILD_SA" roles/logging.logWriter
  # Cloud Build (prod deploy): prod only, no image push.
  grant_prefixes "$DEPLOY_SA" prod-area "${DEPLOY_PREFIXES[@]}"
  grant_project "$DEPLOY_SA" roles/composer.user
  grant_project "$DEPLOY_SA" roles/logging.logWriter
  # Composer: its worker role, launch Dataflow jobs as the workers' account; writes run outputs,
  # test-run evidence and continuous training's records (ct pushes to the registry).
  grant_project "$COMPOSER_SA" roles/composer.worker
  grant_project "$COMPOSER_SA" roles/dataflow.developer
  grant_act_as "$COMPOSER_SA" "$DATAFLOW_SA"
  grant_prefixes "$COMPOSER_SA" dag-outputs "${COMPOSER_PREFIXES[@]}"
  # Dataflow workers: the worker role, job outputs and temp files, pull the SDK container.
  grant_project "$DATAFLOW_SA" roles/dataflow.worker
  grant_prefixes "$DATAFLOW_SA" job-outputs "${DATAFLOW_PREFIXES[@]}"
  grant_repo "$DATAFLOW_SA" roles/artifactregistry.reader
}

secrets() {
  # The key that signs "test passed" records (docs/harness.md): only the two builds read it.
  exists gcloud secrets describe "$SIGNING_SECRET" --project "$PROJECT_ID" ||
    run gcloud secrets create "$SIGNING_SECRET" --project "$PROJECT_ID" \
      --replication-policy automatic
  local sa
  for sa in "$BUILD_SA" "$DEPLOY_SA"; do
    run gcloud secrets add-iam-policy-binding "$SIGNING_SECRET" --project "$PROJECT_ID" \
      --member "serviceAccount:$sa" --role roles/secretmanager.secretAccessor
  done
}

composer() {
  exists gcloud composer environments describe "$COMPOSER_ENV" --location "$REGION" \
      --project "$PROJECT_ID" ||
    run gcloud composer environments create "$COMPOSER_ENV" --location "$REGION" \
      --project "$PROJECT_ID" --image-version "$COMPOSER_IMAGE" --environment-size small \
      --service-account "$COMPOSER_SA"
  # The DAG import writes to the environment's own bucket: each build only its own DAG files
  # (`invoke dags` stages them with per-environment names: beam_pipelines_test_*, _prod_*, _ct_*).
  local dag_bucket
  dag_bucket=$(gcloud composer environments describe "$COMPOSER_ENV" --location "$REGION" \
    --project "$PROJECT_ID" --format 'value(config.dagGcsPrefix)' 2>/dev/null || true)
  dag_bucket=${dag_bucket:-gs://COMPOSER_BUCKET/dags}
  dag_bucket=${dag_bucket#gs://}
  dag_bucket=${dag_bucket%/dags}
  run gcloud storage buckets add-iam-policy-binding "gs://${dag_bucket}" \
    --member "serviceAccount:$BUILD_SA" --role roles/storage.objectUser \
    --condition "$(prefixes_condition "$dag_bucket" test-dags dags/beam_pipelines_test_)"
  run gcloud storage buckets add-iam-policy-binding "gs://${dag_bucket}" \
    --member "serviceAccount:$DEPLOY_SA" --role roles/storage.objectUser \
    --condition "$(prefixes_condition "$dag_bucket" prod-dags dags/beam_pipelines_prod_ \
                   dags/beam_pipelines_ct_)"
}

triggers() {
  local common=(--project "$PROJECT_ID" --region "$REGION" --repo-owner "$GITHUB_OWNER"
                --repo-name "$GITHUB_REPO")
  local subs="_BUCKET=${BUCKET},_COMPOSER_ENV=${COMPOSER_ENV},_COMPOSER_REGION=${REGION}"
  # Every push to main: build, test, SDK container, test DAG on Dataflow.
  exists gcloud builds triggers describe beam-pipelines-test --region "$REGION" \
      --project "$PROJECT_ID" ||
    run gcloud builds triggers create github --name beam-pipelines-test "${common[@]}" \
      --branch-pattern '^main$' --build-config build/cloudbuild.yaml \
      --service-account "projects/${PROJECT_ID}/serviceAccounts/${BUILD_SA}" \
      --substitutions "${subs},_BUILD_SERVICE_ACCOUNT=${BUILD_SA},_CONTAINER_REPO=${CONTAINER_REPO},_DATAFLOW_SERVICE_ACCOUNT=${DATAFLOW_SA},_DATAFLOW_SUBNETWORK=regions/${REGION}/subnetworks/${SUBNET},_DATAFLOW_ZONE=${ZONE},_DATAFLOW_MAX_WORKERS=${MAX_WORKERS}"
  # Prod: a manual trigger, run for one named build (`gcloud builds triggers run beam-pipelines-prod
  # --substitutions _DEPLOY_BUILD_ID=<build id>`); nothing runs until a Cloud Build approver, who
  # sees that build id in the approval, approves it.
  exists gcloud builds triggers describe beam-pipelines-prod --region "$REGION" \
      --project "$PROJECT_ID" ||
    run gcloud builds triggers create manual --name beam-pipelines-prod --project "$PROJECT_ID" \
      --region "$REGION" --repo "https://github.com/${GITHUB_OWNER}/${GITHUB_REPO}" \
      --repo-type GITHUB --branch main --build-config build/cloudbuild-prod.yaml \
      --require-approval \
      --service-account "projects/${PROJECT_ID}/serviceAccounts/${DEPLOY_SA}" \
      --substitutions "${subs},_BUILD_SERVICE_ACCOUNT=${DEPLOY_SA},_DEPLOY_BUILD_ID="
}

expect() {  # expect WHAT WANTED DESCRIBE-COMMAND...: one drift line when the value differs
  local what=$1 wanted=$2 found
  shift 2
  say "$@"
  [ "${DRY_RUN:-0}" = 1 ] && return 0
  found=$("$@" 2>/dev/null || echo '<missing>')
  if [ "$found" != "$wanted" ]; then
    echo "drift: $what is '$found', expected '$wanted'"
    DRIFT=1
  fi
}

check() {  # reports existing resources that differ from what this script creates; exit 1 if any
  DRIFT=0
  local where=(--project "$PROJECT_ID")
  expect 'bucket versioning' True gcloud storage buckets describe "gs://${BUCKET}" "${where[@]}" \
    --format 'value(versioning_enabled)'
  expect 'bucket lifecycle rules' "$(tr -d ' \n' < infra/lifecycle.json)" \
    bash -c "gcloud storage buckets describe gs://${BUCKET} --project ${PROJECT_ID} --format 'json(lifecycle_config)' | tr -d ' \n'"
  expect 'Composer image' "$COMPOSER_IMAGE" gcloud composer environments describe \
    "$COMPOSER_ENV" --location "$REGION" "${where[@]}" --format 'value(config.softwareConfig.imageVersion)'
  expect 'Composer service account' "$COMPOSER_SA" gcloud composer environments describe \
    "$COMPOSER_ENV" --location "$REGION" "${where[@]}" --format 'value(config.nodeConfig.serviceAccount)'
  expect 'prod trigger service account' "projects/${PROJECT_ID}/serviceAccounts/${DEPLOY_SA}" \
    gcloud builds triggers describe beam-pipelines-prod --region "$REGION" "${where[@]}" \
    --format 'value(serviceAccount)'
  expect 'prod trigger approval' True gcloud builds triggers describe beam-pipelines-prod \
    --region "$REGION" "${where[@]}" --format 'value(approvalConfig.approvalRequired)'
  expect 'prod trigger is manual (no push event)' '' gcloud builds triggers describe \
    beam-pipelines-prod --region "$REGION" "${where[@]}" --format 'value(github.push.branch)'
  expect 'test trigger service account' "projects/${PROJECT_ID}/serviceAccounts/${BUILD_SA}" \
    gcloud builds triggers describe beam-pipelines-test --region "$REGION" "${where[@]}" \
    --format 'value(serviceAccount)'
  if [ "$DRIFT" = 1 ]; then
    echo "infra/gcp.sh check: drift found (above): fix it by hand or delete and re-create" >&2
    exit 1
  fi
  echo "infra/gcp.sh check: no drift"
}

main() {
  if [ "${1:-}" = check ]; then
    check
    return
  fi
  apis
  storage
  registry
  network
  service_accounts
  iam
  secrets
  composer
  triggers
  echo "infra/gcp.sh: done. Cloud Build substitutions: _BUCKET=${BUCKET} _CONTAINER_REPO=${CONTAINER_REPO} _BUILD_SERVICE_ACCOUNT=${BUILD_SA} _DATAFLOW_SERVICE_ACCOUNT=${DATAFLOW_SA}"
}

main "$@"
