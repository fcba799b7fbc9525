# Developer entry points. Lab targets drive tests/lab/lab.py (docs/lab.md); run them as root.
PYTHON ?= $(if $(wildcard .venv/bin/python),.venv/bin/python,python3)
LAB_NAME ?= sf
LAB_SUBNET ?= 10.231.0.0/24
LAB_HOSTS ?= 3
LAB_FLAGS ?=
LAB := $(PYTHON) tests/lab/lab.py --name $(LAB_NAME)

# requests lets these override the lab CA given to docker SDK / community.docker clients.
unexport REQUESTS_CA_BUNDLE CURL_CA_BUNDLE

.PHONY: lab-up lab-down lab-status

lab-up:  ## bring the lab up (LAB_FLAGS=--etcd for a running etcd cluster)
	$(LAB) up --subnet $(LAB_SUBNET) --hosts $(LAB_HOSTS) $(LAB_FLAGS)

lab-down:  ## tear everything down, also after a failed lab-up
	$(LAB) down

lab-status:
	$(LAB) status
