# One service account per function plus two caller identities (Pub/Sub push and Cloud
# Scheduler) and the build identity. Every grant is on the narrowest resource the
# provider allows: a topic, a secret, a Cloud Run service, or the billing database.
locals {
  topics = {
    stripe_events = google_pubsub_topic.stripe_events
    entitlements  = google_pubsub_topic.entitlements
    dead_letter   = google_pubsub_topic.dead_letter
  }

  publish_grants = merge([
    for fn, f in local.functions : {
      for topic in f.publishes : "${fn}/${topic}" => { fn = fn, topic = topic }
    }
  ]...)

  firestore_grants = { for fn, f in local.functions : fn => f.firestore_role if f.firestore_role != null }
}

resource "google_service_account" "fn" {
  for_each = local.functions

  # Account ids are 6-30 characters: "fn-" plus the function name, truncated.
  account_id   = substr("fn-${each.value.name}", 0, 30)
  display_name = "billing function ${each.value.name}"
  description  = "Runtime identity of the ${each.value.name} Cloud Run function; only the roles it needs."
}

resource "google_service_account" "pubsub_push" {
  account_id   = "billing-pubsub-push"
  display_name = "billing Pub/Sub push"
  description  = "Identity in the OIDC token Pub/Sub attaches when pushing stripe-events to the subscriber."
}

resource "google_service_account" "scheduler" {
  account_id   = "billing-scheduler"
  display_name = "billing Cloud Scheduler"
  description  = "Identity in the OIDC token Cloud Scheduler sends to the scheduled functions."
}

resource "google_service_account" "builder" {
  account_id   = "billing-functions-builder"
  display_name = "billing functions builder"
  description  = "Cloud Build identity for the functions, instead of the broad default compute account."
}

resource "google_pubsub_topic_iam_member" "publisher" {
  for_each = local.publish_grants

  topic  = local.topics[each.value.topic].name
  role   = "roles/pubsub.publisher"
  member = google_service_account.fn[each.value.fn].member
}

# Firestore roles exist only at project level; the condition narrows them to the one
# database this stack owns.
resource "google_project_iam_member" "firestore" {
  for_each = local.firestore_grants

  project = var.project_id
  role    = each.value
  member  = google_service_account.fn[each.key].member

  condition {
    title       = "billing-database-only"
    description = "Only the billing Firestore database."
    expression  = "resource.name == \"${google_firestore_database.billing.id}\""
  }
}

# Invokers. Cloud Run functions (2nd gen) check run.invoker on the underlying service.
resource "google_cloud_run_v2_service_iam_member" "webhook_public" {
  # Public on purpose: Stripe calls without Google credentials. Every request is
  # authenticated by its Stripe-Signature HMAC and unsigned ones are rejected first.
  location = var.region
  name     = google_cloudfunctions2_function.fn["stripe_webhook"].name
  role     = "roles/run.invoker"
  member   = "allUsers"
}

resource "google_cloud_run_v2_service_iam_member" "subscriber_push" {
  location = var.region
  name     = google_cloudfunctions2_function.fn["process_stripe_event"].name
  role     = "roles/run.invoker"
  member   = google_service_account.pubsub_push.member
}

resource "google_cloud_run_v2_service_iam_member" "scheduler" {
  for_each = local.scheduled

  location = var.region
  name     = google_cloudfunctions2_function.fn[each.key].name
  role     = "roles/run.invoker"
  member   = google_service_account.scheduler.member
}

resource "google_cloud_run_v2_service_iam_member" "internal_api" {
  for_each = {
    for pair in setproduct(["create_checkout_session", "create_portal_session", "change_subscription", "entitlements_api"], var.internal_api_invokers) :
    "${pair[0]}/${pair[1]}" => { fn = pair[0], member = pair[1] }
  }

  location = var.region
  name     = google_cloudfunctions2_function.fn[each.value.fn].name
  role     = "roles/run.invoker"
  member   = each.value.member
}

# Build identity: write build logs and the function images, read the source archive.
resource "google_project_iam_member" "builder" {
  for_each = toset(["roles/logging.logWriter", "roles/artifactregistry.writer"])

  project = var.project_id
  role    = each.value
  member  = google_service_account.builder.member
}

resource "google_storage_bucket_iam_member" "builder_source" {
  bucket = google_storage_bucket.source.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.builder.member
}
