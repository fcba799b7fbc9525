#!/usr/bin/env bash
# ansible-test must run from inside .../ansible_collections/<ns>/<name>; run it on a copy of the
# files git knows (tracked + new, minus ignored) so stray venvs or outputs never reach it.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=$(mktemp -d /tmp/stackfleet-sanity.XXXXXX)
trap 'rm -rf "$work"' EXIT
dest="$work/ansible_collections/stackfleet/cluster"
mkdir -p "$dest"
git ls-files -z --cached --others --exclude-standard | rsync -a --from0 --files-from=- ./ "$dest/"
cd "$dest"
git init -q && git add -A   # ansible-test asks git which files belong to the collection
export PATH="$root/.venv/bin:$PATH"
ansible-test sanity --python 3.11 --venv --color no "$@"
