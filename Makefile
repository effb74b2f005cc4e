# Developer and CI entry points for the dcspark.dcm collection.
#   make setup   system packages, .venv from requirements-dev.txt, the dcspark.dcm link
#   make test    setup, Docker engine, then lint, sanity, doc, molecule and pytest (what .ci/run runs)
#   make sandbox simulated hosts on the local Docker engine, site.yml, then the face cluster and its app
#                (sandbox-down removes it all)

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DELETE_ON_ERROR:
.DEFAULT_GOAL := test

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
VENV_STAMP := $(VENV)/.requirements-dev.stamp
# The checkout itself, seen by Ansible as dcspark.dcm (ansible.cfg: collections_path).
COLLECTION_LINK := .collections/ansible_collections/dcspark/dcm

# Tools of the venv come first for everything the recipes start (ansible-lint and
# molecule call ansible-playbook, ansible-config... from PATH).
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup system-deps docker test lint sanity doc pytest unit bench clean sandbox sandbox-down molecule molecule-default molecule-flannel molecule-local awx-ee-context bench-spark

setup: system-deps $(VENV_STAMP) $(COLLECTION_LINK)

system-deps:
	scripts/ensure-system-deps.sh "$(PYTHON)"

# Rebuilt only when the pins change; the second `make setup` costs well under a second.
$(VENV_STAMP): requirements-dev.txt
	scripts/ensure-system-deps.sh "$(PYTHON)"
	[[ -x $(VENV)/bin/python ]] || "$(PYTHON)" -m venv $(VENV)
	$(VENV)/bin/python -m pip install --disable-pip-version-check -q -r requirements-dev.txt
	touch $@

$(COLLECTION_LINK):
	mkdir -p $(@D)
	ln -sfn ../../.. $@

docker:
	scripts/ensure-docker.sh

# Each step stops the run on failure; pytest runs last so its summary closes the output.
# Every step's output is also kept in .build/<step>.log; when a step fails, the failing tests it names
# are printed again at the very end (scripts/failed-tests.sh), where a CI log's tail shows them.
test: setup
	scripts/ensure-docker.sh
	mkdir -p .build
	for step in lint sanity doc molecule-default; do \
	  echo "== $$(date -u +%T) make $$step"; \
	  step_rc=0; $(MAKE) --no-print-directory $$step 2>&1 | tee .build/$$step.log || step_rc=$$?; \
	  if [ "$$step_rc" -ne 0 ]; then \
	    echo "== $$(date -u +%T) make $$step failed (rc $$step_rc); failing tests named in .build/$$step.log:"; \
	    scripts/failed-tests.sh .build/$$step.log; exit "$$step_rc"; \
	  fi; \
	done
	# The flannel and local scenarios (their own hosts and lab networks, one after the other) and the unit
	# and integration tests (their own labelled containers) share only the engine: they run side by side,
	# the scenarios' output kept in files and shown when all are done.
	mkdir -p .build
	rm -f .build/scenarios.log
	echo "== $$(date -u +%T) make molecule-flannel, then molecule-local (output: .build/molecule-*.log) beside make pytest"
	{ flannel_rc=0; $(MAKE) --no-print-directory molecule-flannel > .build/molecule-flannel.log 2>&1 || flannel_rc=$$?; \
	  echo "== $$(date -u +%T) molecule-flannel ended with rc $$flannel_rc" >> .build/scenarios.log; \
	  local_rc=0; $(MAKE) --no-print-directory molecule-local > .build/molecule-local.log 2>&1 || local_rc=$$?; \
	  echo "== $$(date -u +%T) molecule-local ended with rc $$local_rc" >> .build/scenarios.log; \
	  [ "$$flannel_rc" -eq 0 ] && [ "$$local_rc" -eq 0 ]; } & scenarios=$$!; \
	  pytest_rc=0; $(MAKE) --no-print-directory pytest 2>&1 | tee .build/pytest.log || pytest_rc=$$?; \
	  scenarios_rc=0; wait $$scenarios || scenarios_rc=$$?; \
	  for scenario in flannel local; do echo "== molecule-$$scenario:"; cat .build/molecule-$$scenario.log; done; \
	  cat .build/scenarios.log; \
	  echo "== make pytest ended with rc $$pytest_rc, the scenarios with rc $$scenarios_rc"; \
	  if [ "$$pytest_rc" -ne 0 ] || [ "$$scenarios_rc" -ne 0 ]; then \
	    echo "== failing tests:"; scripts/failed-tests.sh .build/pytest.log .build/molecule-flannel.log .build/molecule-local.log; exit 1; \
	  fi
	echo "== $$(date -u +%T) make test: every step passed"

lint: $(VENV_STAMP) $(COLLECTION_LINK)
	$(VENV)/bin/ansible-lint --offline

sanity: $(VENV_STAMP)
	scripts/ansible-test-sanity.sh

doc: $(VENV_STAMP) $(COLLECTION_LINK)
	scripts/check-docs.sh

pytest: $(VENV_STAMP) $(COLLECTION_LINK)
	$(VENV)/bin/python -m pytest tests/unit tests/integration -ra --durations=20

unit: $(VENV_STAMP) $(COLLECTION_LINK)
	$(VENV)/bin/python -m pytest tests/unit -ra

bench: $(VENV_STAMP) $(COLLECTION_LINK)
	$(VENV)/bin/python benchmarks/bench_core.py

# The paper's evaluation on the sandbox (make sandbox first): DCSpark against native Spark
# standalone, then docs/benchmarks.json and docs/benchmarks.png from every result there is.
bench-spark: setup
	scripts/ensure-docker.sh
	scripts/ensure-bench-deps.sh "$(PYTHON)"
	$(VENV)/bin/python benchmarks/bench_spark.py
	$(VENV)/bin/python benchmarks/report.py

# The sandbox: simulated hosts (containers running systemd and their own dockerd) on the local
# engine, provisioned with site.yml. `make sandbox-down` removes exactly what it created.
SANDBOX_INVENTORY := inventories/sandbox
SANDBOX_SPEC ?= face.json

sandbox: setup
	scripts/ensure-docker.sh
	$(VENV)/bin/ansible-playbook -i $(SANDBOX_INVENTORY) playbooks/sandbox_up.yml
	$(VENV)/bin/ansible-playbook -i $(SANDBOX_INVENTORY) playbooks/site.yml
	$(VENV)/bin/ansible-playbook -i $(SANDBOX_INVENTORY) playbooks/deploy_cluster.yml -e spec=$(SANDBOX_SPEC)

sandbox-down: $(VENV_STAMP) $(COLLECTION_LINK)
	scripts/ensure-docker.sh
	$(VENV)/bin/ansible-playbook -i $(SANDBOX_INVENTORY) playbooks/sandbox_down.yml

# molecule/default: its own sandbox (dcspark-molecule-*), site.yml twice, testinfra, teardown.
# molecule/flannel: two hosts on the flannel backend (flanneld's test double, see docs/flannel.md).
# molecule/local: one host that is the whole pool (inventories/local's settings, bridge backend).
molecule: molecule-default molecule-flannel molecule-local

molecule-default: $(VENV_STAMP) $(COLLECTION_LINK)
	scripts/ensure-docker.sh
	COLUMNS=$${COLUMNS:-250} $(VENV)/bin/molecule test

molecule-flannel: $(VENV_STAMP) $(COLLECTION_LINK)
	scripts/ensure-docker.sh
	COLUMNS=$${COLUMNS:-250} $(VENV)/bin/molecule test -s flannel

# molecule/local: the paper's local mode on one simulated host (inventories/local, bridge backend).
molecule-local: $(VENV_STAMP) $(COLLECTION_LINK)
	scripts/ensure-docker.sh
	COLUMNS=$${COLUMNS:-250} $(VENV)/bin/molecule test -s local

# The AWX execution environment's build context (awx/execution-environment.yml, docs/awx.md):
# the collection tarball of this checkout, then `ansible-builder create` into .build/awx-ee.
# Build the image where a registry is at hand: ansible-builder build -f awx/execution-environment.yml ...
awx-ee-context: $(VENV_STAMP)
	$(VENV)/bin/ansible-galaxy collection build --force --output-path awx/ .
	$(VENV)/bin/ansible-builder create -f awx/execution-environment.yml -c .build/awx-ee

clean:
	rm -rf $(VENV) .build .collections
