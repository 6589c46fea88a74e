# Object Storage: MLflow's artifact store, the backups (MLflow store dumps, Grafana, Prometheus
# snapshots) and the production log (the model service's predictions and feedback, moved there
# from the hosts every 5 minutes; docs/operations.md#the-production-log). All private; backups
# versioned, with expiry of old objects and versions; the production log expires after
# production_log_retention_days.

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

# The production log: Parquet files under production/ (predictions/ and feedback/, Hive
# partitions), written by the hosts' key (the cepage-production-log timer), read by the `retrain`
# key (the weekly retrain workflow). Not versioned: every file is a new object, never overwritten,
# and an expired file must be gone (personal data), not kept as an old version.
resource "scaleway_object_bucket" "production_log" {
  name          = "${local.unique}-production-log"
  tags          = local.tag_map
  force_destroy = var.force_destroy_buckets

  lifecycle_rule {
    id      = "expire-old-production-log"
    enabled = true

    expiration {
      days = var.production_log_retention_days
    }
  }

  lifecycle_rule {
    id                                     = "abort-incomplete-uploads"
    enabled                                = true
    abort_incomplete_multipart_upload_days = 7
  }
}

resource "scaleway_object_bucket_acl" "production_log" {
  bucket = scaleway_object_bucket.production_log.id
  acl    = "private"
}
