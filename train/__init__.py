"""Training side of cepage: data, pipeline, evaluation, MLflow tracking, gate, packaging."""
