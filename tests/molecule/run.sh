#!/usr/bin/env bash
# Runs one molecule scenario of the collection. Scenarios with the docker driver run against the
# engine that DOCKER_HOST names (a lab host's engine; never a dockerd in the machine's default
# namespace); scenarios with the default driver (stack) bring up their own lab and need none.
#   DOCKER_HOST=unix:///tmp/sfm/h1/docker.sock tests/molecule/run.sh docker_host [molecule test args]
#   tests/molecule/run.sh stack
# Env set here (docs/testbed.md "Molecule with locally built images"): the venv's bin on PATH
# (molecule calls ansible-config), HOME/ANSIBLE_HOME in a folder of the run, and roles and
# collections resolved from this checkout so the role is found as stackfleet.cluster.<role>.
set -euo pipefail
scenario=${1:?usage: $0 SCENARIO [molecule test args]}; shift
root=$(cd "$(dirname "$0")/../.." && pwd)
[ -d "$root/extensions/molecule/$scenario" ] || { echo "run.sh: no scenario $scenario" >&2; exit 2; }
# Only docker-driver scenarios need an engine and the base image; others (stack) bring their own lab.
driver=$("$root/.venv/bin/python" -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["driver"]["name"])' \
  "$root/extensions/molecule/$scenario/molecule.yml")
if [ "$driver" = docker ]; then
  : "${DOCKER_HOST:?DOCKER_HOST must name the engine for molecule (e.g. a lab host: tests/lab/lab.py, or tests/molecule/dev_engine.sh up)}"
fi

link=$root/.ansible/collections/ansible_collections/stackfleet/cluster
[ -e "$link" ] || { mkdir -p "$(dirname "$link")"; ln -sfn "$root" "$link"; }

run_dir=${STACKFLEET_MOLECULE_RUN_DIR:-/tmp/stackfleet-molecule/$scenario}
rm -rf "$run_dir"; mkdir -p "$run_dir"
export PATH="$root/.venv/bin:$PATH"
export HOME="$run_dir" ANSIBLE_HOME="$run_dir/.ansible" MOLECULE_EPHEMERAL_DIRECTORY="$run_dir/ephemeral"
export ANSIBLE_COLLECTIONS_PATH="$root/.ansible/collections"
export ANSIBLE_ROLES_PATH="$root/roles"
export ANSIBLE_FORCE_COLOR=0 PY_COLORS=0 ANSIBLE_NOCOLOR=1

[ "$driver" != docker ] || "$root/tests/molecule/build_images.sh"
cd "$root"
start=$(date +%s)
rc=0
timeout 1200 molecule test -s "$scenario" "$@" || rc=$?
echo "run.sh: molecule test -s $scenario exited $rc after $(( $(date +%s) - start )) s"
exit "$rc"
