#!/usr/bin/env bash
# The project's one test command (README, .ci/run): set-up on a fresh machine, then every suite.
#   scripts/test.sh              everything: lint, unit, sanity, integration (real lab), molecule, bench smoke
#   scripts/test.sh unit sanity  only the named stages
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
[ "$(id -u)" = 0 ] || { echo "test.sh: run as root (the lab creates network namespaces and daemons)" >&2; exit 2; }

./scripts/setup.sh
export PATH="$root/.venv/bin:$PATH"
export ANSIBLE_CONFIG="$root/ansible.cfg"

stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(lint unit sanity integration molecule bench)

declare -A took
run_stage() {
  local name=$1; shift
  local t0=$SECONDS
  echo "=== $name"
  "$@"
  took[$name]=$((SECONDS - t0))
}

lint() {
  ruff check plugins tests bench
  antsibull-changelog lint
  yamllint --strict .          # .yamllint
  ansible-lint --nocolor       # .ansible-lint: production profile, roles, playbooks, extensions, meta
}
unit() { HYPOTHESIS_PROFILE=ci pytest tests/unit -q -p no:cacheprovider -n 2 -rs; }
sanity() { ./scripts/sanity.sh; }
# Two workers, each with its own labs (conftest.lab_spec); a file stays on one worker so its
# module-scoped lab is brought up once. The LAMP images are built first, once per machine
# (~2 min; cached by recipe under /var/cache/stackfleet/images, then ~0.1 s).
integration() {
  python tests/lab/lab_lamp_images.py build
  pytest tests/integration -q -p no:cacheprovider -rs -n 2 --dist loadfile --durations=10
}
molecule_all() { tests/molecule/run_all.sh; }
bench() { python bench/placement.py --quick; }

for s in "${stages[@]}"; do
  case $s in
    lint) run_stage lint lint ;;
    unit) run_stage unit unit ;;
    sanity) run_stage sanity sanity ;;
    integration) run_stage integration integration ;;
    molecule) run_stage molecule molecule_all ;;
    bench) run_stage bench bench ;;
    *) echo "test.sh: unknown stage '$s'" >&2; exit 2 ;;
  esac
done
echo "=== all green:"
for s in "${stages[@]}"; do printf '  %-12s %4ss\n' "$s" "${took[$s]:-?}"; done
