resource "google_firestore_database" "billing" {
  # The code opens the (default) database (functions/adapters/firestore_repository.py).
  name        = "(default)"
  location_id = local.firestore_location
  type        = "FIRESTORE_NATIVE"

  # Billing state is the record of who pays for what: recoverable for 7 days and never
  # deleted by a stray `terraform destroy`.
  point_in_time_recovery_enablement = "POINT_IN_TIME_RECOVERY_ENABLED"
  delete_protection_state           = "DELETE_PROTECTION_ENABLED"
  deletion_policy                   = "ABANDON"

  depends_on = [google_project_service.enabled]
}

# Processed-event markers expire on their own once past Stripe's retry window plus the
# replay horizon (PROCESSED_EVENT_TTL_DAYS sets expire_at when the marker is written).
resource "google_firestore_field" "processed_events_ttl" {
  database   = google_firestore_database.billing.name
  collection = local.collections.processed_events
  field      = "expire_at"

  ttl_config {}

  # Never queried by expire_at: skip the single-field index and its write cost.
  index_config {}
}

# Outbox sweep: collection group query, sent == false and created_at < cutoff.
resource "google_firestore_index" "outbox_unsent" {
  database    = google_firestore_database.billing.name
  collection  = local.collections.outbox
  query_scope = "COLLECTION_GROUP"

  fields {
    field_path = "sent"
    order      = "ASCENDING"
  }

  fields {
    field_path = "created_at"
    order      = "ASCENDING"
  }
}

# Failures listing in billing-ops: dead-lettered (or not) failures, newest first.
resource "google_firestore_index" "failures_by_time" {
  database    = google_firestore_database.billing.name
  collection  = local.collections.failures
  query_scope = "COLLECTION"

  fields {
    field_path = "dead_lettered"
    order      = "ASCENDING"
  }

  fields {
    field_path = "last_failed_at"
    order      = "DESCENDING"
  }
}
