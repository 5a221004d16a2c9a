# The entry points in main.py, deployed as Cloud Run functions (2nd gen) from the
# repository root. Each runs as its own service account; the webhook is the only one
# the internet may invoke.
locals {
  # Environment every function reads through functions/config.py CommonSettings. Keys
  # are the settings fields upper-cased; test_infra_drift.py checks each key against
  # the settings class the function loads and each name against functions/config.py.
  common_env = {
    GOOGLE_CLOUD_PROJECT       = var.project_id
    STRIPE_EVENTS_TOPIC        = google_pubsub_topic.stripe_events.name
    ENTITLEMENTS_TOPIC         = google_pubsub_topic.entitlements.name
    DEAD_LETTER_TOPIC          = google_pubsub_topic.dead_letter.name
    STRIPE_EVENTS_SUBSCRIPTION = local.names.stripe_events_subscription
    DEAD_LETTER_SUBSCRIPTION   = local.names.dead_letter_subscription
    STRIPE_LIVEMODE            = var.stripe_livemode
    LOG_LEVEL                  = "INFO"
  }

  # ingress: ALLOW_INTERNAL_ONLY still admits Pub/Sub push and Cloud Scheduler from this
  # project, so only the webhook is reachable from outside.
  # firestore_role: granted on the billing database only (IAM condition in iam.tf).
  # publishes: topics (keys of local.topics) the function's service account may publish to.
  # secrets: environment variable => key of local.secrets, mounted at the pinned version.
  functions = {
    stripe_webhook = {
      name           = local.names.webhook_function
      entry_point    = "stripe_webhook"
      description    = "Verifies Stripe webhook signatures and publishes events to stripe-events."
      ingress        = "ALLOW_ALL"
      memory         = "512Mi"
      timeout        = 30
      concurrency    = 40
      min_instances  = 1
      max_instances  = 50
      firestore_role = null
      publishes      = ["stripe_events"]
      secrets        = { STRIPE_WEBHOOK_SECRET = "stripe_webhook_secret" }
      env = {
        # Pub/Sub's 10 MB message limit covers this; see the topology note in pubsub.tf.
        WEBHOOK_MAX_BODY_BYTES    = 1048576
        WEBHOOK_TOLERANCE_SECONDS = 300
      }
    }
    process_stripe_event = {
      name        = "process-stripe-event"
      entry_point = "process_stripe_event"
      description = "Applies Stripe events to billing state; fed by the stripe-events push subscription."
      ingress     = "ALLOW_INTERNAL_ONLY"
      memory      = "512Mi"
      # Equal to the subscription's ack deadline: a request that outlives it is redelivered anyway.
      timeout        = 60
      concurrency    = 10
      min_instances  = 0
      max_instances  = 20
      firestore_role = "roles/datastore.user"
      publishes      = ["entitlements", "dead_letter"]
      # Thin event notifications name an object; the subscriber reads its current state.
      secrets = { STRIPE_API_KEY = "stripe_api_key" }
      env = {
        # Must equal the subscription's dead_letter_policy so the subscriber knows the last attempt.
        MAX_DELIVERY_ATTEMPTS = var.max_delivery_attempts
        # The token bucket is per instance: 20 instances x 4 reads/s stays under Stripe's
        # 100 reads/s in live mode (a test-mode account, 25/s, meets 429s, which the
        # gateway retries and then redelivers).
        STRIPE_MAX_REQUESTS_PER_SECOND = 4
      }
    }
    relay_sweep = {
      name           = "relay-sweep"
      entry_point    = "relay_sweep"
      description    = "Publishes outbox entries whose inline relay did not complete (Cloud Scheduler, every minute)."
      ingress        = "ALLOW_INTERNAL_ONLY"
      memory         = "256Mi"
      timeout        = 300
      concurrency    = 1
      min_instances  = 0
      max_instances  = 2
      firestore_role = "roles/datastore.user"
      publishes      = ["entitlements"]
      secrets        = {}
      env            = {}
    }
    reevaluate_due = {
      name           = "reevaluate-due"
      entry_point    = "reevaluate_due"
      description    = "Applies time-based changes that ran out: grace periods, overrides, cancelled periods (Cloud Scheduler, every 15 minutes)."
      ingress        = "ALLOW_INTERNAL_ONLY"
      memory         = "256Mi"
      timeout        = 300
      concurrency    = 1
      min_instances  = 0
      max_instances  = 1
      firestore_role = "roles/datastore.user"
      publishes      = ["entitlements"]
      secrets        = {}
      env            = {}
    }
    reconcile_all = {
      name          = "reconcile-all"
      entry_point   = "reconcile_all"
      description   = "Reconciles Firestore billing state with Stripe: every customer nightly, open anomalies every minute (Cloud Scheduler)."
      ingress       = "ALLOW_INTERNAL_ONLY"
      memory        = "512Mi"
      timeout       = 1800
      concurrency   = 1
      min_instances = 0
      # Two: the every-minute anomaly run must not wait behind the 30-minute nightly one
      # (both are idempotent per customer, so overlapping runs are safe).
      max_instances  = 2
      firestore_role = "roles/datastore.user"
      # Catch-up republishes events Stripe failed to deliver onto stripe-events.
      publishes = ["stripe_events", "entitlements"]
      secrets   = { STRIPE_API_KEY = "stripe_api_key" }
      env       = {}
    }
    # The three customer-facing APIs call Stripe and read the account link (checkout also
    # creates it); subscription state comes back through the webhook like every other
    # Stripe change. Each request also carries an HS256 bearer token our product backend
    # mints with INTERNAL_AUTH_SECRET (functions/entrypoints/auth.py), on top of IAM.
    create_checkout_session = {
      name           = "create-checkout-session"
      entry_point    = "create_checkout_session"
      description    = "Creates a Stripe Checkout session for a Dataface account."
      ingress        = var.internal_api_ingress
      memory         = "256Mi"
      timeout        = 30
      concurrency    = 20
      min_instances  = 0
      max_instances  = 10
      firestore_role = "roles/datastore.user"
      publishes      = []
      secrets = {
        STRIPE_API_KEY       = "stripe_api_key"
        INTERNAL_AUTH_SECRET = "internal_auth_secret"
      }
      env = local.api_env
    }
    create_portal_session = {
      name           = "create-portal-session"
      entry_point    = "create_portal_session"
      description    = "Creates a Stripe customer portal session for a Dataface account."
      ingress        = var.internal_api_ingress
      memory         = "256Mi"
      timeout        = 30
      concurrency    = 20
      min_instances  = 0
      max_instances  = 10
      firestore_role = "roles/datastore.viewer"
      publishes      = []
      secrets = {
        STRIPE_API_KEY       = "stripe_api_key"
        INTERNAL_AUTH_SECRET = "internal_auth_secret"
      }
      env = local.api_env
    }
    change_subscription = {
      name           = "change-subscription"
      entry_point    = "change_subscription"
      description    = "Upgrades, downgrades or cancels a subscription through the Stripe API."
      ingress        = var.internal_api_ingress
      memory         = "256Mi"
      timeout        = 30
      concurrency    = 20
      min_instances  = 0
      max_instances  = 10
      firestore_role = "roles/datastore.viewer"
      publishes      = []
      secrets = {
        STRIPE_API_KEY       = "stripe_api_key"
        INTERNAL_AUTH_SECRET = "internal_auth_secret"
      }
      env = local.api_env
    }
    # The synthetic probe: posts a signed event for the reserved probe customer to the
    # public webhook URL, as Stripe would, and waits for its entitlement-changed message
    # on its own subscription (Cloud Scheduler, every 5 minutes). The URL is the webhook's
    # deterministic function URL: referring to fn["stripe_webhook"] here would be a cycle.
    synthetic_probe = {
      name           = "synthetic-probe"
      entry_point    = "synthetic_probe"
      description    = "End-to-end probe of the billing pipeline (Cloud Scheduler, every 5 minutes)."
      ingress        = "ALLOW_INTERNAL_ONLY"
      memory         = "256Mi"
      timeout        = 180
      concurrency    = 1
      min_instances  = 0
      max_instances  = 1
      firestore_role = "roles/datastore.viewer"
      publishes      = []
      secrets        = { STRIPE_WEBHOOK_SECRET = "stripe_webhook_secret" }
      env = {
        PROBE_WEBHOOK_URL     = "https://${var.region}-${var.project_id}.cloudfunctions.net/${local.names.webhook_function}"
        PROBE_SUBSCRIPTION    = local.names.probe_subscription
        PROBE_TIMEOUT_SECONDS = 120
      }
    }
    # The current-entitlements read API for the Dataface app and downstream services:
    # reads our records only (no Stripe key), behind IAM and a bearer token minted for
    # audience dataface-entitlements. Warm instances keep its p99 at cold start low.
    entitlements_api = {
      name           = "entitlements-api"
      entry_point    = "entitlements_api"
      description    = "Current entitlements by Dataface account or Stripe customer, from Firestore."
      ingress        = var.internal_api_ingress
      memory         = "256Mi"
      timeout        = 10
      concurrency    = 40
      min_instances  = 1
      max_instances  = 20
      firestore_role = "roles/datastore.viewer"
      publishes      = []
      secrets        = { INTERNAL_AUTH_SECRET = "internal_auth_secret" }
      env            = {}
    }
  }

  # Defence in depth (functions/entrypoints/oidc.py): the subscriber and the jobs verify
  # the OIDC token their caller attaches themselves, so a wrong ingress or invoker grant
  # does not open them. The audience is the service's deterministic run.app URL, known
  # before the function exists (a function's env cannot name its own service_config uri);
  # Cloud Run accepts it as an audience like its other URL, and pubsub.tf / scheduler.tf
  # put this same value in the tokens they request.
  invoker_accounts = {
    process_stripe_event = google_service_account.pubsub_push.email
    relay_sweep          = google_service_account.scheduler.email
    reevaluate_due       = google_service_account.scheduler.email
    reconcile_all        = google_service_account.scheduler.email
    synthetic_probe      = google_service_account.scheduler.email
  }
  run_url = {
    for fn, f in local.functions :
    fn => "https://${f.name}-${data.google_project.this.number}.${var.region}.run.app"
  }
  oidc_env = {
    for fn, account in local.invoker_accounts : fn => {
      OIDC_AUDIENCE         = local.run_url[fn]
      OIDC_SERVICE_ACCOUNTS = account
    }
  }

  # Where Stripe sends the customer back; from configuration only (never the request),
  # so the functions cannot be used as an open redirect.
  api_env = {
    CHECKOUT_SUCCESS_URL = var.checkout_success_url
    CHECKOUT_CANCEL_URL  = var.checkout_cancel_url
    PORTAL_RETURN_URL    = var.portal_return_url
  }
}

# Source: the repository root, minus what the functions never import. The object name
# carries the archive hash so any source change rolls every function.
data "archive_file" "source" {
  type        = "zip"
  source_dir  = "${path.module}/../.."
  output_path = "${path.module}/.terraform/billing-source.zip"
  excludes = [
    ".git", ".venv", ".venv-checkov", ".dev", ".mypy_cache", ".pytest_cache", ".ruff_cache",
    "tests", "bench", "runbooks", "infra/terraform", "dataface_billing.egg-info",
  ]
}

resource "google_storage_bucket" "source" {
  #checkov:skip=CKV_GCP_62:Access logs of a bucket that only Cloud Build reads (deploy artifacts, no customer data) would be noise; Cloud Audit Logs already record admin access.
  name                        = "${var.project_id}-billing-functions-source"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  versioning {
    enabled = true
  }

  # Old source archives are only needed to roll back a few releases.
  lifecycle_rule {
    condition {
      age = 30
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.enabled]
}

# Named by the release's commit (and the archive hash, so a dirty tree cannot reuse a
# name): each release's archive stays in the bucket for rollback (30 days, versioned).
resource "google_storage_bucket_object" "source" {
  name   = "releases/${var.release}/billing-${data.archive_file.source.output_md5}.zip"
  bucket = google_storage_bucket.source.name
  source = data.archive_file.source.output_path
}

resource "google_cloudfunctions2_function" "fn" {
  #checkov:skip=CKV_GCP_124:Only stripe_webhook has ALLOW_ALL ingress (Stripe calls it from the internet and it authenticates by signature); the skip covers the for_each block, so tests/unit/test_terraform_checks.py asserts that every other function stays internal.
  for_each = local.functions

  name        = each.value.name
  location    = var.region
  description = each.value.description
  labels      = { release = substr(var.release, 0, 40) }

  build_config {
    runtime         = "python311"
    entry_point     = each.value.entry_point
    service_account = google_service_account.builder.id

    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    service_account_email            = google_service_account.fn[each.key].email
    ingress_settings                 = each.value.ingress
    available_memory                 = each.value.memory
    available_cpu                    = "1"
    timeout_seconds                  = each.value.timeout
    max_instance_request_concurrency = each.value.concurrency
    min_instance_count               = each.value.min_instances
    max_instance_count               = each.value.max_instances
    # false while a release is a candidate (infra/release/deploy.sh): the new revision
    # exists and is probed, the serving one keeps the traffic until the probe passed.
    all_traffic_on_latest_revision = var.shift_traffic

    environment_variables = merge(local.common_env, each.value.env, lookup(local.oidc_env, each.key, {}))

    dynamic "secret_environment_variables" {
      for_each = each.value.secrets
      content {
        key        = secret_environment_variables.key
        project_id = var.project_id
        secret     = google_secret_manager_secret.secret[secret_environment_variables.value].secret_id
        version    = local.secrets[secret_environment_variables.value].version
      }
    }
  }

  # The accessor grant must exist before the first revision starts, or it crash-loops.
  depends_on = [google_secret_manager_secret_iam_member.accessor]
}
