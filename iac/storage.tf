# Object Storage: MLflow's artifact store and the backups (MLflow store dumps, Grafana,
# Prometheus snapshots). Both private; backups versioned, with expiry of old objects and versions.

resource "scaleway_object_bucket" "mlflow_artifacts" {
  name          = "${local.unique}-mlflow-artifacts"
  tags          = local.tag_map
  force_destroy = var.force_destroy_buckets

  lifecycle_rule {
    id                                     = "abort-incomplete-uploads"
    enabled                                = true
    abort_incomplete_multipart_upload_days = 7
  }
}

resource "scaleway_object_bucket_acl" "mlflow_artifacts" {
  bucket = scaleway_object_bucket.mlflow_artifacts.id
  acl    = "private"
}

resource "scaleway_object_bucket" "backups" {
  name          = "${local.unique}-backups"
  tags          = local.tag_map
  force_destroy = var.force_destroy_buckets

  versioning {
    enabled = true
  }

  lifecycle_rule {
    id      = "expire-old-backups"
    enabled = true

    expiration {
      days = var.backup_retention_days
    }

    noncurrent_version_expiration {
      noncurrent_days = var.backup_retention_days
    }
  }

  lifecycle_rule {
    id                                     = "abort-incomplete-uploads"
    enabled                                = true
    abort_incomplete_multipart_upload_days = 7
  }
}

resource "scaleway_object_bucket_acl" "backups" {
  bucket = scaleway_object_bucket.backups.id
  acl    = "private"
}
