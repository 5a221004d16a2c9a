#!/usr/bin/env bash
# Stands in for gcloud, terraform and billing-ops in tests/unit/test_release_pipeline.py:
# records each call, answers in the real commands' output formats.
echo "$(basename "$0") $*" >> "$STUB_LOG"
case "$(basename "$0") $*" in
  "terraform -chdir="*" output -json function_names")
    echo '{"a": "stripe-webhook", "b": "synthetic-probe"}' ;;
  "gcloud run services describe "*"status.traffic[0].revisionName"*) echo "$4-00001-old" ;;
  "gcloud run services describe "*"latestCreatedRevisionName"*) echo "$4-00002-new" ;;
  "gcloud run services describe "*"status.url"*) echo "https://$4-abc-ew.a.run.app" ;;
  "gcloud storage cp "*) cp "$3" "$STUB_STORE" ;;
  "gcloud storage cat "*) cat "$STUB_STORE" ;;
  "gcloud secrets versions access "*) echo "whsec_stub" ;;
  "billing-ops probe run")
    echo "PROBE_WEBHOOK_URL=$PROBE_WEBHOOK_URL" >> "$STUB_LOG"
    exit "${PROBE_EXIT:-0}" ;;
esac
