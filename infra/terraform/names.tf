# The one place Terraform spells resource names. They must equal the defaults in
# functions/config.py and the local emulator topology (infra/local/topology.py);
# tests/unit/test_infra_drift.py parses this file and fails on any difference.
locals {
  names = {
    stripe_events_topic        = "stripe-events"
    entitlements_topic         = "entitlement-changed"
    dead_letter_topic          = "stripe-events-dead-letter"
    stripe_events_subscription = "stripe-events-subscriber"
    dead_letter_subscription   = "stripe-events-dead-letter-ops"
    probe_subscription         = "entitlement-changed-probe"
    webhook_function           = "stripe-webhook"
  }

  # Firestore collections the TTL policy and the composite indexes apply to (the
  # constants in functions/adapters/firestore_repository.py).
  collections = {
    processed_events = "processed_events"
    outbox           = "outbox"
    failures         = "failures"
  }

  firestore_location = coalesce(var.firestore_location, var.region)
}
