#!/usr/bin/env bash
# Every molecule scenario of the collection (extensions/molecule/*/molecule.yml), each through
# tests/molecule/run.sh. The engine is DOCKER_HOST when it is set; otherwise one lab host
# (tests/lab/lab.py, name sfmol, 10.246.0.0/24) is brought up for the run, its unix socket
# exported as DOCKER_HOST, and torn down whatever happens.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
LAB_NAME=${STACKFLEET_MOLECULE_LAB:-sfmol}
LAB_SUBNET=${STACKFLEET_MOLECULE_LAB_SUBNET:-10.246.0.0/24}

if [ -z "${DOCKER_HOST:-}" ]; then
  trap 'python3 "$root/tests/lab/lab.py" down --name "$LAB_NAME" >/dev/null' EXIT
  python3 "$root/tests/lab/lab.py" up --name "$LAB_NAME" --subnet "$LAB_SUBNET" --hosts 1 || exit 1
  export DOCKER_HOST="unix:///tmp/stackfleet-lab/$LAB_NAME/h1/docker.sock"
  [ -S "${DOCKER_HOST#unix://}" ] || { echo "run_all.sh: no engine socket at $DOCKER_HOST" >&2; exit 1; }
fi

passed=() failed=()
for file in "$root"/extensions/molecule/*/molecule.yml; do
  scenario=$(basename "$(dirname "$file")")
  echo "--- molecule scenario $scenario (engine $DOCKER_HOST)"
  if "$root/tests/molecule/run.sh" "$scenario"; then passed+=("$scenario"); else failed+=("$scenario"); fi
done
[ ${#failed[@]} -eq 0 ] || echo "run_all.sh: failed scenarios: ${failed[*]}" >&2
echo "molecule: ${#passed[@]} passed, ${#failed[@]} failed"
[ ${#failed[@]} -eq 0 ] && [ ${#passed[@]} -gt 0 ]
