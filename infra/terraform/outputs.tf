output "webhook_url" {
  description = "Register this URL as the Stripe webhook endpoint."
  value       = google_cloudfunctions2_function.fn["stripe_webhook"].service_config[0].uri
}

output "function_urls" {
  description = "URL of every function (all but the webhook require an authorised caller)."
  value       = { for k, f in google_cloudfunctions2_function.fn : k => f.service_config[0].uri }
}

output "function_service_accounts" {
  description = "Runtime service account of each function."
  value       = { for k, sa in google_service_account.fn : k => sa.email }
}

output "secret_ids" {
  description = "Secret Manager secrets to add versions to (DEPLOY.md)."
  value       = { for k, s in google_secret_manager_secret.secret : k => s.secret_id }
}

output "function_names" {
  description = "Cloud Run service name of every function (infra/release/deploy.sh rolls these back)."
  value       = { for k, f in google_cloudfunctions2_function.fn : k => f.name }
}
