# cepage — run `make help` for the list of targets.
# Every target that needs Python sets up .venv itself (once, then only when the lock changes).

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV    ?= .venv
BIN     := $(VENV)/bin
PYTHON  ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
             command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { echo $$p; break; }; done)
LOCK    := requirements/dev.lock
STAMP   := $(VENV)/.installed
PYTEST  := $(BIN)/pytest

.PHONY: help setup deps up test test-unit test-integration test-ui test-monitoring test-docker test-infra lint format typecheck bench bench-up bench-cold-start lock clean distclean

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): $(LOCK) pyproject.toml
	@test -n "$(PYTHON)" || { echo "cepage needs Python >= 3.11 (python3.11 or newer on PATH)."; exit 1; }
	@echo "==> Setting up $(VENV) with $(PYTHON) from $(LOCK)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
	  echo "$(PYTHON) -m venv failed: on Debian/Ubuntu, sudo apt-get install python3-venv (docs/install.md)."; exit 1; }
	@$(BIN)/python -m pip install -q --upgrade "uv>=0.4"
	@$(BIN)/uv pip sync -q --compile-bytecode --python $(BIN)/python $(LOCK)
	@$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	@touch $@

setup: $(STAMP) ## Create .venv with the locked dependencies (done by every target that needs it)

deps: ## Install what every test layer drives: Debian packages (sudo if not root), Go, tools in ~/.cache/cepage
	@bash .ci/deps

up: $(STAMP) ## Run the local stack: MLflow UI :5000, API :3000, UI :8501 (trains on first run)
	@$(BIN)/cepage up

test: $(STAMP) ## The whole suite (~75 min on 2 cores: the rehearsal runs beside the other layers); layers whose tools are missing skip and are listed at the end: make deps
	@$(MAKE) --no-print-directory lint typecheck
	@# Two pytest processes: tests/rehearsal (mostly waiting on disk and hosts) beside the
	@# rest (mostly CPU); each prints its slowest tests at its end: where CI's time goes.
	@$(BIN)/python -m tests.tools.suite $(PYTEST)

test-unit: $(STAMP) ## Unit tests only (seconds)
	@$(PYTEST) tests/unit

test-integration: $(STAMP) ## Integration tests: real MLflow store, real bentoml serve over HTTP, the CLI
	@$(PYTEST) tests/integration

test-ui: $(STAMP) ## UI tests: Streamlit AppTest against the real service, and the real browser
	@$(PYTEST) tests/ui

test-monitoring: $(STAMP) ## promtool/amtool checks, alert unit tests, dashboards against a real Prometheus
	@$(PYTEST) tests/monitoring

test-docker: $(STAMP) ## Docker: hadolint, compose validation, real image builds and the multi-container check
	@$(PYTEST) tests/docker

test-infra: $(STAMP) ## Terraform: fmt, validate, real dev/prod plans, compliance features, checkov
	@$(PYTEST) tests/infra

lint: $(STAMP) ## ruff lint + format check
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .

format: $(STAMP) ## Apply ruff formatting and safe fixes
	@$(BIN)/ruff check --fix .
	@$(BIN)/ruff format .

typecheck: $(STAMP) ## mypy on all Python
	@$(BIN)/mypy train bento ui cli stack contracts modelfile tests bench scripts monitoring

bench: $(STAMP) ## Benchmark: in-process vs cepage service vs mlflow models serve vs FastAPI; writes docs/performance.md
	@$(BIN)/python -m bench.serving --write docs/performance.md

bench-up: $(STAMP) ## Time `make up` on a fresh clone (set-up included) and warm; writes docs/performance.md
	@$(BIN)/python -m bench.up --write docs/performance.md

bench-cold-start: $(STAMP) ## Where each server's cold start goes (arbiter, worker, imports, model load); writes docs/performance.md
	@$(BIN)/python -m bench.cold_start --write docs/performance.md

.PHONY: screenshots
screenshots: $(STAMP) ## Retake the docs' pictures (docs/img/) from the real stack in a temporary home, with Chromium (~2 min)
	@$(BIN)/python -m scripts.screenshots --out docs/img

lock: $(STAMP) ## Re-resolve the lock files from pyproject.toml, with hashes (the venv's uv)
	@for extra in dev service ui; do \
	  $(BIN)/uv pip compile pyproject.toml --extra $$extra --python-version 3.11 --universal -q \
	    --no-header --annotation-style line --generate-hashes -o requirements/$$extra.lock; done

# --- Docker (compose/) ---
COMPOSE_DEV := docker compose -f compose/docker-compose.yml -f compose/docker-compose.dev.yml

.PHONY: docker-images compose-up compose-down

docker-images: $(STAMP) ## Build every image compose builds (scripts/images.sh names): service (from the newest Bento), ui, mlflow, retrain, proxy
	@BENTOML_HOME=$${BENTOML_HOME:-.cepage/bentoml} $(BIN)/bentoml containerize cepage:latest -t cepage-service:bento
	@$(COMPOSE_DEV) --profile jobs build

compose-up: ## The whole stack in Docker (dev); fill compose/.env from .env.example first
	@test -f compose/.env || { echo "cp .env.example compose/.env and fill in the secrets"; exit 1; }
	@$(COMPOSE_DEV) up -d

compose-down: ## Stop the Docker stack (keeps its volumes)
	@$(COMPOSE_DEV) down

# --- Scaleway infrastructure (iac/) ---
ENV       ?= dev
TERRAFORM ?= terraform
INFRA     := TERRAFORM="$(TERRAFORM)" iac/infra.sh

.PHONY: infra-bootstrap infra-plan infra-apply infra-destroy infra-output infra-lint

infra-bootstrap: ## Create the Terraform state bucket once: make infra-bootstrap SUFFIX=yourorg
	@$(INFRA) bootstrap $(SUFFIX)

infra-plan: ## Plan the Scaleway infrastructure of ENV=dev|prod and save the plan (needs SCW_*)
	@$(INFRA) plan $(ENV)

infra-apply: ## Apply the saved plan of ENV=dev|prod (or plan and ask for confirmation)
	@$(INFRA) apply $(ENV)

infra-destroy: ## Destroy everything of ENV=dev|prod (asks for confirmation)
	@$(INFRA) destroy $(ENV)

infra-lint: ## tflint (every rule of the bundled Terraform ruleset) on iac/ and iac/bootstrap
	@tflint="$$(command -v tflint || bash tests/tools/tflint.sh | tail -n1)"; \
	  for dir in iac iac/bootstrap; do "$$tflint" --chdir=$$dir --config="$$PWD/iac/.tflint.hcl" || exit 1; done

infra-output: ## Terraform outputs of ENV=dev|prod as JSON (ansible_inventory is Ansible's inventory)
	@$(INFRA) output $(ENV)

# --- From an empty Scaleway project to a serving environment (scripts/bootstrap.py) ---
.PHONY: bootstrap teardown

bootstrap: $(STAMP) ## One command, resumable, never destroys: state bucket, infra, images, MLflow, first model, release, deploy, smoke: make bootstrap ENV=dev [SUFFIX=yourorg] [FROM=step] [INIT_VAULT=1]
	@TERRAFORM="$(TERRAFORM)" $(BIN)/python -m scripts.bootstrap run $(ENV) $(if $(SUFFIX),--suffix $(SUFFIX)) $(if $(FROM),--from $(FROM)) $(if $(INIT_VAULT),--init-vault)

teardown: $(STAMP) ## Remove ENV=dev|prod completely (registry images, infra, bootstrap state); asks you to type ENV [EMPTY_BUCKETS=1 for prod's] [YES=1]
	@TERRAFORM="$(TERRAFORM)" $(BIN)/python -m scripts.bootstrap teardown $(ENV) $(if $(EMPTY_BUCKETS),--empty-buckets) $(if $(YES),--yes)

# --- Deploy with Ansible (playbooks/) ---
DEPLOY := ANSIBLE_PLAYBOOK=$(abspath $(BIN))/ansible-playbook playbooks/deploy.sh

.PHONY: deploy rollback restore test-ansible

deploy: $(STAMP) ## Configure ENV=dev|prod's instances and deploy the stack [IMAGE_TAG=tag IMAGE_DIGESTS=file] (Terraform outputs + vault)
	@IMAGE_TAG="$(IMAGE_TAG)" IMAGE_DIGESTS="$(IMAGE_DIGESTS)" $(DEPLOY) deploy $(ENV)

rollback: $(STAMP) ## Redeploy the image tag deployed before the current one on ENV=dev|prod
	@$(DEPLOY) rollback $(ENV)

restore: $(STAMP) ## Restore MLflow (database + artifacts) of ENV=dev|prod from the backups bucket [DUMP=name]
	@DUMP="$(DUMP)" $(DEPLOY) restore $(ENV)

test-ansible: $(STAMP) ## Ansible: ansible-lint (production), syntax checks, a real apply + idempotence, backup/restore
	@$(PYTEST) tests/ansible

.PHONY: rehearse
rehearse: $(STAMP) ## The deployed topology on this machine: hosts with systemd and their own Docker, a registry, a load balancer; deploys under load, rollback, restore, a killed host (~45 min warm, the images built by it)
	@$(PYTEST) tests/rehearsal

# --- Reliability: load, soak (bench/, tests/reliability/) ---
LOADTEST_ARGS ?=
SOAK_DURATION ?= 600

.PHONY: loadtest soak test-reliability

loadtest: $(STAMP) ## Load test (locust: predictions, batches, feedback): req/s, p50/p95/p99, errors; LOADTEST_ARGS="--url http://127.0.0.1:3000" drives `make up`
	@$(BIN)/python -m bench.loadtest --write docs/performance.md $(LOADTEST_ARGS)

soak: $(STAMP) ## Soak: SOAK_DURATION s (600) under load; RSS growth and errors into docs/performance.md
	@$(BIN)/python -m bench.loadtest --soak --duration $(SOAK_DURATION) --write docs/performance.md

test-reliability: $(STAMP) ## Faults, zero-downtime rollout and OpenAPI fuzzing against real processes (~4 min)
	@$(PYTEST) tests/reliability

# --- GitHub Actions (.github/) ---

.PHONY: test-workflows lint-config smoke infra-compliance

test-workflows: $(STAMP) ## Workflow checks: actionlint, yamllint, permissions/pins/targets, smoke.py against a real service
	@$(PYTEST) tests/workflows

lint-config: $(STAMP) ## yamllint, actionlint (+shellcheck), workflow/dependabot schemas, hadolint, ansible-lint
	@$(BIN)/yamllint --strict .
	@$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	@$(BIN)/check-jsonschema --builtin-schema vendor.github-actions .github/actions/*/action.yml
	@$(BIN)/check-jsonschema --builtin-schema vendor.dependabot .github/dependabot.yml
	@"$$(command -v actionlint || bash tests/tools/actionlint.sh | tail -n1)" -no-color -oneline
	@$(BIN)/hadolint --failure-threshold info compose/*/Dockerfile
	@if [ -d playbooks ]; then $(BIN)/ansible-lint --offline playbooks; fi

smoke: $(STAMP) ## Smoke-test a deployed service: make smoke URL=https://api.example.org (env: CEPAGE_API_KEY, CEPAGE_SMOKE_PROMETHEUS_URL)
	@test -n "$(URL)" || { echo "usage: make smoke URL=https://api.example.org"; exit 2; }
	@$(BIN)/python scripts/smoke.py "$(URL)"

infra-compliance: ## Plan ENV=dev|prod, check it with terraform-compliance, write iac/.terraform/reports/ENV.md
	@TERRAFORM="$(TERRAFORM)" bash scripts/plan-report.sh $(ENV)

clean: ## Remove the local stack's data (.cepage/) and the linters' and tests' caches; keeps .venv
	rm -rf .cepage .pytest_cache .mypy_cache .ruff_cache .hypothesis

distclean: clean ## clean, plus .venv, build files and Terraform's/Ansible's local caches (not ~/.cache/cepage)
	rm -rf $(VENV) .ansible iac/.terraform iac/bootstrap/.terraform build dist *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	@echo "Kept: ~/.cache/cepage (tools built for the tests, shared by every clone): rm -rf ~/.cache/cepage"
