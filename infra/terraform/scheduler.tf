# Every job calls a private function with an OIDC token for the scheduler identity, which
# holds run.invoker on exactly these services (iam.tf).
locals {
  scheduled = {
    relay_sweep = {
      job      = "billing-relay-sweep"
      schedule = "* * * * *"
      # A sweep that has not answered within a minute overlaps the next run anyway.
      deadline = "60s"
    }
    reevaluate_due = {
      job      = "billing-reevaluate-due"
      schedule = "*/15 * * * *"
      deadline = "300s"
    }
    reconcile_all = {
      job      = "billing-reconcile-nightly"
      schedule = "0 3 * * *"
      deadline = "1800s"
    }
    # Runbook: runbooks/synthetic-probe.md. The probe waits up to PROBE_TIMEOUT_SECONDS.
    synthetic_probe = {
      job      = "billing-synthetic-probe"
      schedule = "*/5 * * * *"
      deadline = "180s"
    }
  }
}

resource "google_cloud_scheduler_job" "job" {
  for_each = local.scheduled

  name             = each.value.job
  region           = var.region
  schedule         = each.value.schedule
  time_zone        = "Etc/UTC"
  attempt_deadline = each.value.deadline

  retry_config {
    retry_count          = 1
    min_backoff_duration = "10s"
    max_backoff_duration = "60s"
  }

  http_target {
    http_method = "POST"
    uri         = google_cloudfunctions2_function.fn[each.key].service_config[0].uri

    oidc_token {
      service_account_email = google_service_account.scheduler.email
      # What the job checks (OIDC_AUDIENCE, functions.tf).
      audience = local.run_url[each.key]
    }
  }

  depends_on = [google_cloud_run_v2_service_iam_member.scheduler]
}

# The same function every minute for the customers with an open anomaly: an anomaly is a
# question the event stream could not answer, and Stripe's current object answers it
# long before the nightly run would.
resource "google_cloud_scheduler_job" "reconcile_anomalies" {
  name             = "billing-reconcile-anomalies"
  region           = var.region
  schedule         = "* * * * *"
  time_zone        = "Etc/UTC"
  attempt_deadline = "60s"

  retry_config {
    retry_count          = 0
    min_backoff_duration = "10s"
    max_backoff_duration = "60s"
  }

  http_target {
    http_method = "POST"
    uri         = "${google_cloudfunctions2_function.fn["reconcile_all"].service_config[0].uri}?scope=anomalies"

    oidc_token {
      service_account_email = google_service_account.scheduler.email
      audience              = local.run_url["reconcile_all"]
    }
  }

  depends_on = [google_cloud_run_v2_service_iam_member.scheduler]
}
