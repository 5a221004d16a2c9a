#!/usr/bin/env bash
# The release's deploy steps (infra/release/cloudbuild.json) and the one-command rollback.
#
#   deploy.sh candidate SHA        new revisions of every function from the source archive
#                                  named by SHA; traffic stays on the serving revisions,
#                                  which are recorded first (the rollback target)
#   deploy.sh probe-candidate SHA  the synthetic probe through the new webhook revision
#   deploy.sh shift SHA            all traffic to the new revisions
#   deploy.sh probe-live SHA       the probe through the live URL; on failure, rollback
#   deploy.sh rollback             every function back to the revisions recorded by the
#                                  last `candidate` step (DEPLOY.md, "Rolling back")
#
# Needs REGION and PROJECT_ID (and TF_STATE_BUCKET for the terraform steps); gcloud and
# terraform on PATH, authenticated as the release identity.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
step="${1:?usage: deploy.sh candidate|probe-candidate|shift|probe-live|rollback [SHA]}"
sha="${2:-}"
: "${REGION:?set REGION}" "${PROJECT_ID:?set PROJECT_ID}"
RECORD="gs://${PROJECT_ID}-billing-functions-source/releases/serving-before-last-deploy.txt"
TAG=candidate

tf() { terraform -chdir="$ROOT/infra/terraform" "$@"; }

services() {
    tf output -json function_names | python3 -c 'import json,sys; print("\n".join(sorted(json.load(sys.stdin).values())))'
}

apply() {
    tf init -input=false -backend-config="bucket=${TF_STATE_BUCKET:?set TF_STATE_BUCKET}" >/dev/null
    tf apply -input=false -auto-approve -var "release=${sha:?SHA required}" -var "shift_traffic=$1"
}

record_serving() {
    local out
    out="$(mktemp)"
    for service in $(services); do
        revision="$(gcloud run services describe "$service" --region "$REGION" --format 'value(status.traffic[0].revisionName)')"
        echo "$service $revision" >>"$out"
    done
    gcloud storage cp "$out" "$RECORD"
    echo "deploy.sh: recorded the serving revisions in $RECORD"
}

probe() {
    STRIPE_WEBHOOK_SECRET="$(gcloud secrets versions access latest --secret stripe-webhook-secret)" \
    GOOGLE_CLOUD_PROJECT="$PROJECT_ID" PROBE_WEBHOOK_URL="$1" \
        "${BILLING_OPS:-$ROOT/.venv/bin/billing-ops}" probe run
}

webhook_url() {
    gcloud run services describe stripe-webhook --region "$REGION" --format 'value(status.url)'
}

rollback() {
    local record
    record="$(gcloud storage cat "$RECORD")"
    [[ -n "$record" ]] || { echo "deploy.sh: nothing recorded at $RECORD" >&2; exit 1; }
    while read -r service revision; do
        [[ -n "$service" && -n "$revision" ]] || continue
        gcloud run services update-traffic "$service" --region "$REGION" --to-revisions "$revision=100"
        echo "deploy.sh: $service -> $revision"
    done <<<"$record"
    echo "deploy.sh: rolled back; now deploy the previous commit so Terraform agrees (DEPLOY.md)"
}

case "$step" in
    candidate)
        record_serving
        apply false
        ;;
    probe-candidate)
        latest="$(gcloud run services describe stripe-webhook --region "$REGION" --format 'value(status.latestCreatedRevisionName)')"
        gcloud run services update-traffic stripe-webhook --region "$REGION" --update-tags "$TAG=$latest"
        url="$(webhook_url)"
        status=0
        probe "${url/https:\/\//https://$TAG---}" || status=$?
        gcloud run services update-traffic stripe-webhook --region "$REGION" --remove-tags "$TAG"
        exit "$status"
        ;;
    shift)
        apply true
        ;;
    probe-live)
        if ! probe "$(webhook_url)"; then
            echo "deploy.sh: the live probe failed: rolling back" >&2
            rollback
            exit 1
        fi
        ;;
    rollback)
        rollback
        ;;
    *)
        echo "deploy.sh: unknown step $step" >&2
        exit 2
        ;;
esac
