# Private Container Registry namespace for the stack's images (model service, UI, MLflow).

resource "scaleway_registry_namespace" "main" {
  name        = local.unique
  description = "${local.name}: images of the cepage stack"
  is_public   = false
}
