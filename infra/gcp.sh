#!/usr/bin/env bash
# The GCP side of beam-pipelines, from an empty project: APIs, the harness bucket, Artifact
# Registry, a private subnetwork for Dataflow, one service account per actor with least privilege,
# the Composer environment and the Cloud Build triggers (prod behind an approval).
# docs/moving-to-gcp.md walks through it. Each step is idempotent: an existing resource is kept.
#
#   PROJECT_ID=my-project BUCKET=my-project-beam-pipelines GITHUB_OWNER=me GITHUB_REPO=beam-pipelines \
#     infra/gcp.sh            # DRY_RUN=1 prints the gcloud commands instead of running them
#
# Settings (environment): PROJECT_ID, BUCKET, GITHUB_OWNER, GITHUB_REPO are required; REGION
# (us-central1), ZONE (us-central1-b), COMPOSER_ENV (beam-pipelines), COMPOSER_IMAGE
# (composer-3-airflow-2), AR_REPO (beam-pipelines), NETWORK (beam-pipelines), SUBNET (dataflow),
# SUBNET_RANGE (10.10.0.0/20), MAX_WORKERS (10).
set -euo pipefail

: "${PROJECT_ID:?set PROJECT_ID}" "${BUCKET:?set BUCKET (without gs://)}"
: "${GITHUB_OWNER:?set GITHUB_OWNER}" "${GITHUB_REPO:?set GITHUB_REPO}"
REGION=${REGION:-us-central1}
ZONE=${ZONE:-us-central1-b}
COMPOSER_ENV=${COMPOSER_ENV:-beam-pipelines}
COMPOSER_IMAGE=${COMPOSER_IMAGE:-composer-3-airflow-2}
AR_REPO=${AR_REPO:-beam-pipelines}
NETWORK=${NETWORK:-beam-pipelines}
SUBNET=${SUBNET:-dataflow}
SUBNET_RANGE=${SUBNET_RANGE:-10.10.0.0/20}
MAX_WORKERS=${MAX_WORKERS:-10}

SA_DOMAIN="${PROJECT_ID}.iam.gserviceaccount.com"
BUILD_SA="beam-pipelines-build@${SA_DOMAIN}"      # Cloud Build: build, test, import DAGs
DEPLOY_SA="beam-pipelines-deploy@${SA_DOMAIN}"    # Cloud Build: the approved prod deploy
COMPOSER_SA="beam-pipelines-composer@${SA_DOMAIN}"  # Composer: runs the DAGs, launches jobs
DATAFLOW_SA="beam-pipelines-dataflow@${SA_DOMAIN}"  # Dataflow workers
CONTAINER_REPO="${REGION}-docker.pkg.dev/${PROJECT_ID}/${AR_REPO}"

run() {  # prints the command; runs it unless DRY_RUN=1
  printf '+ %s\n' "$*"
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
  # Object versions keep every overwritten record (variables, reports) recoverable.
  run gcloud storage buckets update "gs://${BUCKET}" --versioning
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

grant_repo() {  # grant_repo SA ROLE
  run gcloud artifacts repositories add-iam-policy-binding "$AR_REPO" --location "$REGION" \
    --project "$PROJECT_ID" --member "serviceAccount:$1" --role "$2"
}

grant_act_as() {  # grant_act_as WHO TARGET_SA: WHO may run things as TARGET_SA
  run gcloud iam service-accounts add-iam-policy-binding "$2" --project "$PROJECT_ID" \
    --member "serviceAccount:$1" --role roles/iam.serviceAccountUser
}

iam() {
  # Cloud Build (test): the bucket's objects, push images, run Composer commands, write logs.
  grant_bucket "$BUILD_SA" roles/storage.objectAdmin
  grant_repo "$BUILD_SA" roles/artifactregistry.writer
  grant_project "$BUILD_SA" roles/composer.user
  grant_project "$BUILD_SA" roles/logging.logWriter
  # Cloud Build (prod deploy): the same bucket and Composer rights, no image push.
  grant_bucket "$DEPLOY_SA" roles/storage.objectAdmin
  grant_project "$DEPLOY_SA" roles/composer.user
  grant_project "$DEPLOY_SA" roles/logging.logWriter
  # Composer: its own worker role, launch Dataflow jobs as the workers' account, the bucket.
  grant_project "$COMPOSER_SA" roles/composer.worker
  grant_project "$COMPOSER_SA" roles/dataflow.developer
  grant_act_as "$COMPOSER_SA" "$DATAFLOW_SA"
  grant_bucket "$COMPOSER_SA" roles/storage.objectAdmin
  # Dataflow workers: the worker role, the bucket (inputs, outputs, temp), pull the SDK container.
  grant_project "$DATAFLOW_SA" roles/dataflow.worker
  grant_bucket "$DATAFLOW_SA" roles/storage.objectAdmin
  grant_repo "$DATAFLOW_SA" roles/artifactregistry.reader
}

composer() {
  exists gcloud composer environments describe "$COMPOSER_ENV" --location "$REGION" \
      --project "$PROJECT_ID" ||
    run gcloud composer environments create "$COMPOSER_ENV" --location "$REGION" \
      --project "$PROJECT_ID" --image-version "$COMPOSER_IMAGE" --environment-size small \
      --service-account "$COMPOSER_SA"
  # The DAG import writes to the environment's own bucket: both builds need it.
  local dag_bucket
  dag_bucket=$(gcloud composer environments describe "$COMPOSER_ENV" --location "$REGION" \
    --project "$PROJECT_ID" --format 'value(config.dagGcsPrefix)' 2>/dev/null || true)
  dag_bucket=${dag_bucket:-gs://COMPOSER_BUCKET/dags}
  local sa
  for sa in "$BUILD_SA" "$DEPLOY_SA"; do
    run gcloud storage buckets add-iam-policy-binding "${dag_bucket%/dags}" \
      --member "serviceAccount:$sa" --role roles/storage.objectAdmin
  done
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
  # Prod: run by hand, and nothing runs until a Cloud Build approver approves it.
  exists gcloud builds triggers describe beam-pipelines-prod --region "$REGION" \
      --project "$PROJECT_ID" ||
    run gcloud builds triggers create github --name beam-pipelines-prod "${common[@]}" \
      --branch-pattern '^main$' --build-config build/cloudbuild-prod.yaml --require-approval \
      --service-account "projects/${PROJECT_ID}/serviceAccounts/${DEPLOY_SA}" \
      --substitutions "${subs},_BUILD_SERVICE_ACCOUNT=${DEPLOY_SA}"
}

main() {
  apis
  storage
  registry
  network
  service_accounts
  iam
  composer
  triggers
  echo "infra/gcp.sh: done. Cloud Build substitutions: _BUCKET=${BUCKET} _CONTAINER_REPO=${CONTAINER_REPO} _BUILD_SERVICE_ACCOUNT=${BUILD_SA} _DATAFLOW_SERVICE_ACCOUNT=${DATAFLOW_SA}"
}

main "$@"
