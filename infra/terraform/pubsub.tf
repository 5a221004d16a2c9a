# Topology mirrors infra/local/topology.py (what `make dev` provisions on the emulator):
# same topics, same push subscription to the subscriber, same ordering, ack deadline,
# backoff and dead-lettering. tests/unit/test_infra_drift.py compares the two.
#
# Why a push subscription and not an Eventarc trigger: Eventarc caps events at 512 KB,
# while the webhook accepts bodies up to WEBHOOK_MAX_BODY_BYTES = 1 MiB. A push
# subscription does not pass through Eventarc, so the limit is Pub/Sub's 10 MB per
# message; the base64 push envelope (~1.4 MiB for our largest event) is far below Cloud
# Run's 32 MiB request limit. Locally the emulator pushes to the functions-framework the
# same way, so both environments exercise the same delivery path.

resource "google_pubsub_topic" "stripe_events" {
  #checkov:skip=CKV_GCP_83:Google-managed encryption; the events are Stripe's own copies (no card data, Stripe never sends PANs), and a CMEK adds a KMS key whose loss would halt billing.
  name = local.names.stripe_events_topic

  # Lets an operator seek the subscription back a day to replay after a bad deploy.
  message_retention_duration = "86400s"

  depends_on = [google_project_service.enabled]
}

resource "google_pubsub_topic" "entitlements" {
  #checkov:skip=CKV_GCP_83:Google-managed encryption; entitlement messages carry plan and status only, no payment data.
  name = local.names.entitlements_topic

  message_retention_duration = "86400s"

  depends_on = [google_project_service.enabled]
}

resource "google_pubsub_topic" "dead_letter" {
  #checkov:skip=CKV_GCP_83:Google-managed encryption; same data as stripe-events.
  name = local.names.dead_letter_topic

  depends_on = [google_project_service.enabled]
}

resource "google_pubsub_subscription" "stripe_events" {
  name  = local.names.stripe_events_subscription
  topic = google_pubsub_topic.stripe_events.id

  # Messages keyed by Stripe customer reach the subscriber in publish order per customer
  # (the state machine still tolerates reordering; ordering only makes it rare).
  enable_message_ordering = true

  # Covers a Firestore transaction with retries plus the entitlement publish.
  ack_deadline_seconds = 60

  # Stripe retries for 3 days; keep undelivered events a week so an outage of the
  # subscriber loses nothing.
  message_retention_duration = "604800s"
  retain_acked_messages      = false

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = var.max_delivery_attempts
  }

  push_config {
    push_endpoint = google_cloudfunctions2_function.fn["process_stripe_event"].service_config[0].uri

    oidc_token {
      service_account_email = google_service_account.pubsub_push.email
      # What the subscriber checks (OIDC_AUDIENCE, functions.tf).
      audience = local.run_url["process_stripe_event"]
    }
  }

  # Never expire for inactivity: a quiet week must not delete the subscription.
  expiration_policy {
    ttl = ""
  }

  # Pushing before the push identity may invoke the subscriber only burns delivery attempts.
  depends_on = [google_cloud_run_v2_service_iam_member.subscriber_push]
}

# Pull subscription on the dead-letter topic: operators inspect and replay from it
# (`billing-ops`), and its backlog is what the dead-letter alert watches.
resource "google_pubsub_subscription" "dead_letter" {
  name  = local.names.dead_letter_subscription
  topic = google_pubsub_topic.dead_letter.id

  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"
  retain_acked_messages      = false

  expiration_policy {
    ttl = ""
  }
}

# Pub/Sub's service agent forwards undeliverable messages: it must publish to the
# dead-letter topic and acknowledge (subscribe) on the source subscription.
locals {
  pubsub_service_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

resource "google_pubsub_topic_iam_member" "dead_letter_agent_publisher" {
  topic  = google_pubsub_topic.dead_letter.name
  role   = "roles/pubsub.publisher"
  member = local.pubsub_service_agent
}

resource "google_pubsub_subscription_iam_member" "dead_letter_agent_subscriber" {
  subscription = google_pubsub_subscription.stripe_events.name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
}

# Projects created before April 2021 need the agent to mint OIDC tokens for push; the
# grant is scoped to the push identity only, not project-wide.
resource "google_service_account_iam_member" "push_token_creator" {
  service_account_id = google_service_account.pubsub_push.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_service_agent
}

# The synthetic probe's own pull subscription: only its messages (attribute synthetic),
# kept briefly (a probe waits two minutes at most), never expiring.
resource "google_pubsub_subscription" "probe" {
  name   = local.names.probe_subscription
  topic  = google_pubsub_topic.entitlements.id
  filter = "attributes.synthetic = \"true\""

  ack_deadline_seconds       = 30
  message_retention_duration = "600s"
  retain_acked_messages      = false

  expiration_policy {
    ttl = ""
  }
}

resource "google_pubsub_subscription_iam_member" "probe_subscriber" {
  subscription = google_pubsub_subscription.probe.name
  role         = "roles/pubsub.subscriber"
  member       = google_service_account.fn["synthetic_probe"].member
}
