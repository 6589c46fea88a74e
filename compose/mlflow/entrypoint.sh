#!/bin/sh
# Start the MLflow tracking server from environment variables (one place, no secrets in argv
# defaults). The backend store and artifact destination come from the compose file / .env:
#   MLFLOW_BACKEND_STORE_URI      postgresql://USER:PASSWORD@postgres:5432/mlflow (default: SQLite
#                                 in /mlflow, for a single-container trial)
#   MLFLOW_ARTIFACTS_DESTINATION  s3://BUCKET/PREFIX (with MLFLOW_S3_ENDPOINT_URL,
#                                 AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) or a local path
#   MLFLOW_ALLOWED_HOSTS          Host headers accepted (MLflow 3's DNS-rebinding check),
#                                 default: mlflow, mlflow:5000, localhost, 127.0.0.1 and the proxy's
#   MLFLOW_WORKERS                gunicorn/uvicorn workers (default 2)
# /metrics (request counts, latencies) is exposed for Prometheus' `mlflow` job.
set -eu
metrics_dir="${MLFLOW_PROMETHEUS_DIR:-/tmp/mlflow-metrics}"
mkdir -p "${metrics_dir}"
allowed="${MLFLOW_ALLOWED_HOSTS:-mlflow,mlflow:5000,localhost,localhost:*,127.0.0.1,127.0.0.1:*}"
exec mlflow server \
  --backend-store-uri "${MLFLOW_BACKEND_STORE_URI}" \
  --artifacts-destination "${MLFLOW_ARTIFACTS_DESTINATION}" \
  --serve-artifacts \
  --host 0.0.0.0 \
  --port "${MLFLOW_PORT:-5000}" \
  --workers "${MLFLOW_WORKERS:-2}" \
  --allowed-hosts "${allowed}" \
  --expose-prometheus "${metrics_dir}" \
  "$@"
