#!/usr/bin/env bash
# One-shot, idempotent set-up of a fresh Debian 12 machine (as root) for stackfleet:
# system packages, the pinned .venv, the collection link and ansible-test's offline pip bootstrap.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

# ansible-test sanity silently skips its shell script check when the shellcheck binary is absent.
# docker-compose (1.29): the unit tests compare from_compose's reading of compose files with `docker-compose config`.
APT_PACKAGES=(docker.io etcd-server etcd-client busybox-static iproute2 iptables haproxy
              debootstrap openssl curl rsync make shellcheck docker-compose)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian starts docker.io's own daemon on install; the lab runs its own daemons and never needs it.

if [ ! -x .venv/bin/python ] || ! cmp -s requirements/constraints.txt .venv/.constraints 2>/dev/null; then
  echo "setup: building .venv from requirements/constraints.txt"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check --upgrade 'pip>=24'
  .venv/bin/pip install -q --disable-pip-version-check -r requirements/dev.in -c requirements/constraints.txt
  cp requirements/constraints.txt .venv/.constraints
fi

# ansible.cfg's collections_path points here, so `stackfleet.cluster` resolves to this checkout.
link=.ansible/collections/ansible_collections/stackfleet/cluster
mkdir -p "$(dirname "$link")"
[ -L "$link" ] || ln -sfn "$root" "$link"

# ansible-test bootstraps pip from the internet unless a cached get-pip exists; serve it offline.
mkdir -p "$HOME/.ansible/test/cache"
pip_version=24_2  # the pip that ansible-test 2.19 bootstraps
cp scripts/get_pip_offline.py "$HOME/.ansible/test/cache/get_pip_${pip_version}.py"
echo "setup: ready ($(.venv/bin/ansible --version | head -1))"
