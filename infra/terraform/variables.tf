variable "project_id" {
  description = "Google Cloud project that hosts the billing backend."
  type        = string
}

variable "region" {
  description = "Region for the functions, Cloud Scheduler jobs and the source bucket."
  type        = string
  default     = "us-central1"
}

variable "firestore_location" {
  description = "Firestore location (a region or multi-region such as nam5); defaults to var.region."
  type        = string
  default     = null
}

variable "notification_channels" {
  description = "Cloud Monitoring notification channel ids (projects/P/notificationChannels/N) that every alert pages."
  type        = list(string)
  default     = []
}

variable "runbook_base_url" {
  description = "Where the repository's runbooks/ folder is browsable; alert documentation links <this>/<runbook>.md."
  type        = string
  default     = "runbooks"
}

variable "stripe_livemode" {
  description = "True in production: the webhook then accepts only live-mode events (STRIPE_LIVEMODE)."
  type        = bool
  default     = false
}

variable "stripe_webhook_secret_version" {
  description = "Secret Manager version of the webhook secret(s) the webhook mounts. Pin a number so a rotation is an explicit apply that rolls a new revision (DEPLOY.md)."
  type        = string
  default     = "latest"
}

variable "stripe_api_key_version" {
  description = "Secret Manager version of the Stripe API key; pinned like the webhook secret."
  type        = string
  default     = "latest"
}

variable "internal_auth_secret_version" {
  description = "Secret Manager version of INTERNAL_AUTH_SECRET (the bearer-token key shared with the product backend); pinned like the others."
  type        = string
  default     = "latest"
}

variable "checkout_success_url" {
  description = "Where Stripe Checkout returns the customer after paying (CHECKOUT_SUCCESS_URL)."
  type        = string

  validation {
    condition     = startswith(var.checkout_success_url, "https://")
    error_message = "Must be an https:// URL."
  }
}

variable "checkout_cancel_url" {
  description = "Where Stripe Checkout returns the customer on cancel (CHECKOUT_CANCEL_URL)."
  type        = string

  validation {
    condition     = startswith(var.checkout_cancel_url, "https://")
    error_message = "Must be an https:// URL."
  }
}

variable "portal_return_url" {
  description = "Where the Stripe customer portal returns the customer (PORTAL_RETURN_URL)."
  type        = string

  validation {
    condition     = startswith(var.portal_return_url, "https://")
    error_message = "Must be an https:// URL."
  }
}

variable "max_delivery_attempts" {
  description = "Deliveries before Pub/Sub dead-letters an event; also MAX_DELIVERY_ATTEMPTS for the subscriber (Pub/Sub allows 5-100)."
  type        = number
  default     = 5

  validation {
    condition     = var.max_delivery_attempts >= 5 && var.max_delivery_attempts <= 100
    error_message = "Pub/Sub accepts 5 to 100 delivery attempts."
  }
}

variable "internal_api_invokers" {
  description = "IAM members (serviceAccount:...) of our own services allowed to call the checkout, portal, change-subscription and entitlements-api functions."
  type        = list(string)
  default     = []
}

variable "internal_api_ingress" {
  description = "Ingress of the checkout, portal, change-subscription and entitlements-api functions. Internal by default: callers reach them through a VPC; IAM still authenticates every call."
  type        = string
  default     = "ALLOW_INTERNAL_ONLY"

  validation {
    condition     = contains(["ALLOW_INTERNAL_ONLY", "ALLOW_INTERNAL_AND_GCLB", "ALLOW_ALL"], var.internal_api_ingress)
    error_message = "One of ALLOW_INTERNAL_ONLY, ALLOW_INTERNAL_AND_GCLB, ALLOW_ALL."
  }
}

variable "oldest_unacked_age_threshold_seconds" {
  description = "Alert when the oldest undelivered stripe-events message is older than this."
  type        = number
  default     = 600
}

variable "webhook_5xx_ratio_threshold" {
  description = "Alert when this fraction of webhook requests over 5 minutes answer 5xx (Stripe then retries)."
  type        = number
  default     = 0.01
}

variable "webhook_4xx_ratio_threshold" {
  description = "Alert when this fraction of webhook requests over 10 minutes is rejected with 4xx (signature failures, stale timestamps)."
  type        = number
  default     = 0.05
}

variable "relay_lag_threshold_ms" {
  description = "Alert when the 99th percentile of outbox relay lag (state change to entitlement message) exceeds this."
  type        = number
  default     = 120000
}

variable "labels" {
  description = "Extra labels on every resource that supports them."
  type        = map(string)
  default     = {}
}

variable "probe_latency_threshold_ms" {
  description = "Synthetic probe end-to-end latency (webhook post to entitlement message) above which the probe alert fires."
  type        = number
  default     = 60000
}

variable "release" {
  description = "Git commit of the release being deployed: names the source archive and labels every function (infra/release/deploy.sh passes it)."
  type        = string
  default     = "manual"

  validation {
    condition     = can(regex("^([0-9a-f]{7,40}|manual)$", var.release))
    error_message = "release is a git commit (7-40 lowercase hex) or \"manual\"."
  }
}

variable "shift_traffic" {
  description = "Send all traffic to the newest revisions. The release pipeline applies false first (candidate revisions, probed), then true."
  type        = bool
  default     = true
}
