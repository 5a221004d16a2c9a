# Enabled here so a fresh project converges with one apply; serviceusage and
# cloudresourcemanager themselves must be on before Terraform can call this (DEPLOY.md).
locals {
  apis = [
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudscheduler.googleapis.com",
    "firestore.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "storage.googleapis.com",
  ]
}

resource "google_project_service" "enabled" {
  for_each = toset(local.apis)

  service = each.value
  # Other workloads in the project may use the same APIs: destroying this stack must
  # not switch them off.
  disable_on_destroy = false
}

data "google_project" "this" {
  project_id = var.project_id
}
