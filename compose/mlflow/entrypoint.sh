#!/bin/sh
# Start the MLflow tracking server from environment variables (one place). The backend URI,
# password included, reaches mlflow through its own MLFLOW_BACKEND_STORE_URI variable, never its
# command line: no process's argv (what `ps` shows anyone in the container) holds the password.
# The backend store and artifact destination come from the compose file / .env:
#   MLFLOW_BACKEND_STORE_URI      postgresql+psycopg2://USER:PASSWORD@HOST:5432/DB (a managed
#                                 database); when empty, with POSTGRES_PASSWORD: the compose
#                                 stack's `postgres` container (POSTGRES_HOST, POSTGRES_PORT:
#                                 postgres, 5432); with neither: SQLite in /mlflow
#                                 (a single-container trial). Name the driver: SQLAlchemy 2.1 reads
#                                 a bare postgresql:// as psycopg 3, and the image ships psycopg2.
#   MLFLOW_ARTIFACTS_DESTINATION  s3://BUCKET/PREFIX (with MLFLOW_S3_ENDPOINT_URL,
#                                 AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) or a local path
#   MLFLOW_ALLOWED_HOSTS          Host headers accepted (MLflow 3's DNS-rebinding check),
#                                 default: mlflow, mlflow:5000, localhost, 127.0.0.1 and the proxy's
#   MLFLOW_WORKERS                gunicorn/uvicorn workers (default 2)
# /metrics (request counts, latencies) is exposed for Prometheus' `mlflow` job.
set -eu
metrics_dir="${MLFLOW_PROMETHEUS_DIR:-/tmp/mlflow-metrics}"
mkdir -p "${metrics_dir}"
if [ -z "${MLFLOW_BACKEND_STORE_URI:-}" ] && [ -n "${POSTGRES_PASSWORD:-}" ]; then
  # The password URL-encoded: any character may appear in a generated one.
  password="$(python3 -c 'import os, urllib.parse; print(urllib.parse.quote(os.environ["POSTGRES_PASSWORD"], safe=""))')"
  MLFLOW_BACKEND_STORE_URI="postgresql+psycopg2://mlflow:${password}@${POSTGRES_HOST:-postgres}:${POSTGRES_PORT:-5432}/mlflow"
fi
export MLFLOW_BACKEND_STORE_URI="${MLFLOW_BACKEND_STORE_URI:-sqlite:////mlflow/mlflow.db}"
allowed="${MLFLOW_ALLOWED_HOSTS:-mlflow,mlflow:5000,localhost,localhost:*,127.0.0.1,127.0.0.1:*}"
exec mlflow server \
  --artifacts-destination "${MLFLOW_ARTIFACTS_DESTINATION}" \
  --serve-artifacts \
  --host 0.0.0.0 \
  --port "${MLFLOW_PORT:-5000}" \
  --workers "${MLFLOW_WORKERS:-2}" \
  --allowed-hosts "${allowed}" \
  --expose-prometheus "${metrics_dir}" \
  "$@"
