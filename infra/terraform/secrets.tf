# Terraform declares the secrets and who may read them; the values never pass through
# Terraform (or its state). Versions are added with `gcloud secrets versions add` (see
# DEPLOY.md) and each function mounts the version pinned in var.*_version, so a rotation
# is an explicit apply that rolls a new revision.
locals {
  secrets = {
    # Comma-separated whsec_ values: old and new both verify during a roll.
    stripe_webhook_secret = { secret_id = "stripe-webhook-secret", version = var.stripe_webhook_secret_version }
    stripe_api_key        = { secret_id = "stripe-api-key", version = var.stripe_api_key_version }
    # HS256 key shared with the product backend for the checkout/portal/change bearer tokens.
    internal_auth_secret = { secret_id = "billing-internal-auth-secret", version = var.internal_auth_secret_version }
  }

  # One accessor grant per (function, secret it mounts), nothing project-wide.
  secret_grants = merge([
    for fn, f in local.functions : {
      for env, secret in f.secrets : "${fn}/${secret}" => { fn = fn, secret = secret }
    }
  ]...)
}

resource "google_secret_manager_secret" "secret" {
  # Google-managed encryption at rest: a CMEK would add a KMS key whose loss locks out
  # the webhook and the Stripe client; the per-secret accessor grants are the control.
  for_each = local.secrets

  secret_id = each.value.secret_id

  replication {
    auto {}
  }

  depends_on = [google_project_service.enabled]
}

resource "google_secret_manager_secret_iam_member" "accessor" {
  for_each = local.secret_grants

  secret_id = google_secret_manager_secret.secret[each.value.secret].id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.fn[each.value.fn].member
}
