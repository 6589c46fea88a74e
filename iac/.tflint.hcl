# tflint: the bundled Terraform ruleset with every rule on (documented and typed variables and
# outputs, snake_case names, no unused declarations, pinned providers, standard module files).
# Offline here: only the bundled ruleset, no plugin download. Run: make infra-lint
config {
  call_module_type = "none"
}

plugin "terraform" {
  enabled = true
  preset  = "all"
}
