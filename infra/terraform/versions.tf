terraform {
  required_version = ">= 1.5"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.0"
    }
    archive = {
      source  = "hashicorp/archive"
      version = "~> 2.4"
    }
  }

  # Partial configuration: the bucket comes from `terraform init -backend-config=...` (see
  # DEPLOY.md) so no project id is baked into the code and state never lives on a laptop.
  backend "gcs" {
    prefix = "billing"
  }
}

provider "google" {
  project = var.project_id
  region  = var.region

  default_labels = merge(var.labels, { app = "dataface-billing" })
}
