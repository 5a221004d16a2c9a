# Log-based metrics over the structured log contract (functions/log.py: one JSON line
# per request/event, fields named in the issue) and alert policies on top of them and
# on Pub/Sub's own subscription metrics. Every policy links its runbook.
locals {
  run_logs = "resource.type=\"cloud_run_revision\""

  webhook_logs    = "${local.run_logs} AND resource.labels.service_name=\"${local.functions.stripe_webhook.name}\" AND jsonPayload.message=\"webhook_request\" AND jsonPayload.component=\"webhook\""
  probe_logs      = "${local.run_logs} AND resource.labels.service_name=\"${local.functions.synthetic_probe.name}\" AND jsonPayload.component=\"probe\""
  subscriber_logs = "${local.run_logs} AND resource.labels.service_name=\"${local.functions.process_stripe_event.name}\""

  # Counters: name => filter and the JSON fields copied into metric labels. Label values
  # are short codes from the log contract (never ids), keeping cardinality bounded.
  counters = {
    webhook_requests = {
      description = "Webhook requests, every outcome."
      filter      = local.webhook_logs
      labels      = { outcome = "jsonPayload.outcome" }
    }
    webhook_4xx = {
      description = "Webhook requests rejected with a 4xx (bad or missing signature, stale timestamp, invalid JSON, too large)."
      filter      = "${local.webhook_logs} AND jsonPayload.status_code>=400 AND jsonPayload.status_code<500"
      labels      = { outcome = "jsonPayload.outcome", reason = "jsonPayload.reason" }
    }
    webhook_5xx = {
      description = "Webhook requests answered 5xx (publish failed): Stripe will retry them."
      filter      = "${local.webhook_logs} AND jsonPayload.status_code>=500"
      labels      = { outcome = "jsonPayload.outcome" }
    }
    events_processed = {
      description = "Stripe events the subscriber finished, by decision and event type."
      filter      = "${local.subscriber_logs} AND jsonPayload.message=\"event_processed\" AND jsonPayload.component=\"subscriber\""
      labels      = { decision = "jsonPayload.decision", event_type = "jsonPayload.event_type" }
    }
    events_failed = {
      description = "Subscriber attempts that failed and were nacked or dead-lettered."
      filter      = "${local.subscriber_logs} AND jsonPayload.message=\"event_failed\""
      labels      = { reason_code = "jsonPayload.reason_code", transient = "jsonPayload.transient" }
    }
    anomalies = {
      description = "Anomalies the subscriber recorded (events that contradict the known state); the every-minute reconcile resolves most."
      filter      = "${local.subscriber_logs} AND jsonPayload.message=\"anomaly_recorded\""
      labels      = { anomaly_code = "jsonPayload.anomaly_code" }
    }
    anomalies_unresolved = {
      description = "Customers whose open anomaly a reconcile against Stripe could not resolve."
      filter      = "${local.run_logs} AND resource.labels.service_name=\"${local.functions.reconcile_all.name}\" AND jsonPayload.message=\"anomaly_unresolved\""
      labels      = {}
    }
    probe_completed = {
      description = "Synthetic probes whose event came back as an entitlement-changed message."
      filter      = "${local.probe_logs} AND jsonPayload.message=\"probe_completed\""
      labels      = {}
    }
    relay_failures = {
      description = "Outbox entries whose entitlement publish failed (the sweep retries them)."
      filter      = "${local.run_logs} AND jsonPayload.message=\"outbox_relay_failed\""
      labels      = {}
    }
  }

  # Distributions: name => filter and the numeric field to bucket (milliseconds).
  distributions = {
    event_latency = {
      description = "Subscriber processing latency per event."
      filter      = "${local.subscriber_logs} AND jsonPayload.message=\"event_processed\" AND jsonPayload.component=\"subscriber\""
      field       = "jsonPayload.latency_ms"
    }
    probe_latency = {
      description = "Synthetic probe: signed webhook post to its entitlement-changed message."
      filter      = "${local.probe_logs} AND jsonPayload.message=\"probe_completed\""
      field       = "jsonPayload.latency_ms"
    }
    relay_lag = {
      description = "Time from a billing state change to its entitlement message being published."
      filter      = "${local.run_logs} AND jsonPayload.message=\"outbox_relayed\" AND jsonPayload.component=\"relay\""
      field       = "jsonPayload.relay_lag_ms"
    }
  }

  metric_prefix = "logging.googleapis.com/user"
  runbook       = trimsuffix(var.runbook_base_url, "/")
}

resource "google_logging_metric" "counter" {
  for_each = local.counters

  name        = "billing/${each.key}"
  description = each.value.description
  filter      = each.value.filter

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"

    dynamic "labels" {
      for_each = each.value.labels
      content {
        key        = labels.key
        value_type = "STRING"
      }
    }
  }

  label_extractors = { for label, field in each.value.labels : label => "EXTRACT(${field})" }

  depends_on = [google_project_service.enabled]
}

resource "google_logging_metric" "distribution" {
  for_each = local.distributions

  name            = "billing/${each.key}"
  description     = each.value.description
  filter          = each.value.filter
  value_extractor = "EXTRACT(${each.value.field})"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = "ms"
  }

  # 1 ms to ~9 h in 2x steps: covers a fast event and a relay stuck for hours.
  bucket_options {
    exponential_buckets {
      num_finite_buckets = 25
      growth_factor      = 2
      scale              = 1
    }
  }

  depends_on = [google_project_service.enabled]
}

resource "google_monitoring_alert_policy" "dead_letter_backlog" {
  display_name          = "Billing: dead-lettered Stripe events"
  combiner              = "OR"
  severity              = "CRITICAL"
  notification_channels = var.notification_channels

  conditions {
    display_name = "${local.names.dead_letter_subscription} has undelivered messages"

    condition_threshold {
      filter          = "resource.type=\"pubsub_subscription\" AND resource.labels.subscription_id=\"${google_pubsub_subscription.dead_letter.name}\" AND metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "A Stripe event failed ${var.max_delivery_attempts} deliveries (or permanently) and was dead-lettered: a customer's entitlement may be wrong until it is replayed. Runbook: ${local.runbook}/dead-letter-backlog.md"
  }
}

resource "google_monitoring_alert_policy" "oldest_unacked" {
  display_name          = "Billing: stripe-events backlog is getting old"
  combiner              = "OR"
  severity              = "CRITICAL"
  notification_channels = var.notification_channels

  conditions {
    display_name = "oldest unacked message on ${local.names.stripe_events_subscription}"

    condition_threshold {
      filter          = "resource.type=\"pubsub_subscription\" AND resource.labels.subscription_id=\"${google_pubsub_subscription.stripe_events.name}\" AND metric.type=\"pubsub.googleapis.com/subscription/oldest_unacked_message_age\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.oldest_unacked_age_threshold_seconds
      duration        = "60s"

      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "The subscriber is not keeping up or keeps failing on the oldest event, so entitlement changes are delayed. Look for event_failed lines and dead-letter growth. Runbook: ${local.runbook}/dead-letter-backlog.md"
  }
}

resource "google_monitoring_alert_policy" "webhook_5xx" {
  display_name          = "Billing: webhook 5xx rate"
  combiner              = "OR"
  severity              = "CRITICAL"
  notification_channels = var.notification_channels

  conditions {
    display_name = "5xx share of webhook requests"

    condition_threshold {
      filter             = "metric.type=\"${local.metric_prefix}/${google_logging_metric.counter["webhook_5xx"].name}\" AND resource.type=\"cloud_run_revision\""
      denominator_filter = "metric.type=\"${local.metric_prefix}/${google_logging_metric.counter["webhook_requests"].name}\" AND resource.type=\"cloud_run_revision\""
      comparison         = "COMPARISON_GT"
      threshold_value    = var.webhook_5xx_ratio_threshold
      duration           = "300s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }

      denominator_aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "The webhook cannot publish to stripe-events (outcome publish_failed). Stripe retries with backoff for 3 days, but a sustained outage delays every billing change. Runbook: ${local.runbook}/webhook-5xx.md"
  }
}

resource "google_monitoring_alert_policy" "webhook_4xx" {
  display_name          = "Billing: webhook rejections (signature failures)"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = var.notification_channels

  conditions {
    display_name = "4xx share of webhook requests"

    condition_threshold {
      filter             = "metric.type=\"${local.metric_prefix}/${google_logging_metric.counter["webhook_4xx"].name}\" AND resource.type=\"cloud_run_revision\""
      denominator_filter = "metric.type=\"${local.metric_prefix}/${google_logging_metric.counter["webhook_requests"].name}\" AND resource.type=\"cloud_run_revision\""
      comparison         = "COMPARISON_GT"
      threshold_value    = var.webhook_4xx_ratio_threshold
      duration           = "600s"

      aggregations {
        alignment_period     = "600s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }

      denominator_aggregations {
        alignment_period     = "600s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "Many webhook requests are rejected (label reason: bad_signature, stale_timestamp, ...). Usually a secret rotated on one side only or clock skew; rarely someone probing the endpoint. Stripe's real events are not being accepted. Runbook: ${local.runbook}/signature-failures.md"
  }
}

resource "google_monitoring_alert_policy" "relay_lag" {
  display_name          = "Billing: entitlement relay lag"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = var.notification_channels

  conditions {
    display_name = "p99 relay lag"

    condition_threshold {
      filter          = "metric.type=\"${local.metric_prefix}/${google_logging_metric.distribution["relay_lag"].name}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.relay_lag_threshold_ms
      duration        = "300s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_PERCENTILE_99"
        cross_series_reducer = "REDUCE_MAX"
      }
    }
  }

  conditions {
    display_name = "outbox relay failures"

    condition_threshold {
      filter          = "metric.type=\"${local.metric_prefix}/${google_logging_metric.counter["relay_failures"].name}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "600s"

      aggregations {
        alignment_period     = "600s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "Entitlement messages reach the product late (or not at all while publishes fail): customers may keep or miss access they paid for. Check the relay-sweep scheduler job and outbox_relay_failed lines. Runbook: ${local.runbook}/relay-lag.md"
  }
}

resource "google_monitoring_alert_policy" "anomalies" {
  display_name          = "Billing: anomalies reconcile could not resolve"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = var.notification_channels

  conditions {
    display_name = "anomaly_unresolved lines"

    condition_threshold {
      filter          = "metric.type=\"${local.metric_prefix}/${google_logging_metric.counter["anomalies_unresolved"].name}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period     = "600s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "The subscriber recorded an anomaly (an event that contradicts the stored billing state) and the every-minute reconcile against Stripe could not resolve it (an unknown price, Stripe unreachable for that customer). A human decides. Runbook: ${local.runbook}/anomalies.md"
  }
}

# The pipeline as a whole: every component can be up while nothing turns a Stripe event
# into an entitlement change (a stuck push loop, a broken deploy). The probe proves it.
resource "google_monitoring_alert_policy" "synthetic_probe" {
  display_name          = "Billing: synthetic probe not completing"
  combiner              = "OR"
  severity              = "CRITICAL"
  notification_channels = var.notification_channels

  conditions {
    display_name = "no probe completed for 15 minutes"

    condition_absent {
      filter   = "metric.type=\"${local.metric_prefix}/${google_logging_metric.counter["probe_completed"].name}\" AND resource.type=\"cloud_run_revision\""
      duration = "900s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  conditions {
    display_name = "probe latency above threshold"

    condition_threshold {
      filter          = "metric.type=\"${local.metric_prefix}/${google_logging_metric.distribution["probe_latency"].name}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.probe_latency_threshold_ms
      duration        = "600s"

      aggregations {
        alignment_period     = "600s"
        per_series_aligner   = "ALIGN_PERCENTILE_99"
        cross_series_reducer = "REDUCE_MAX"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "The synthetic probe's signed event did not come back as an entitlement-changed message (or came back slowly): the pipeline is not turning Stripe events into access changes, whatever the per-component alerts say. Runbook: ${local.runbook}/synthetic-probe.md"
  }
}
