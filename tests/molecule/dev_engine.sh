#!/usr/bin/env bash
# A throwaway Docker engine for developing molecule scenarios, following docs/testbed.md:
# its own network namespace (sfm-h1 on bridge sfmbr0, 10.249.0.0/24), its own state under
# /tmp/sfm, plaintext only on its unix socket. The machine's default namespace never runs a dockerd.
#   tests/molecule/dev_engine.sh up     # prints the DOCKER_HOST to export
#   tests/molecule/dev_engine.sh down   # unconditional teardown; safe to repeat
set -euo pipefail

NS=sfm-h1 BRIDGE=sfmbr0 GW=10.249.0.1/24 ADDR=10.249.0.11/24 VETH=veth-sfm-h1
STATE=/tmp/sfm/h1
SOCK=$STATE/docker.sock PIDFILE=$STATE/docker.pid

up() {
  mkdir -p "$STATE"
  ip link show "$BRIDGE" >/dev/null 2>&1 || {
    ip link add "$BRIDGE" type bridge; ip addr add "$GW" dev "$BRIDGE"; ip link set "$BRIDGE" up; }
  iptables -C FORWARD -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT 2>/dev/null \
    || iptables -I FORWARD -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT
  if ! ip netns list | grep -qw "$NS"; then
    ip netns add "$NS"
    ip link add "$VETH" type veth peer name eth0 netns "$NS"
    ip link set "$VETH" master "$BRIDGE" up
    ip netns exec "$NS" ip addr add "$ADDR" dev eth0
    ip netns exec "$NS" ip link set eth0 up
    ip netns exec "$NS" ip link set lo up
  fi
  if [ -s "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    echo "DOCKER_HOST=unix://$SOCK"; return
  fi
  # nsenter (not `ip netns exec`, which hides the cgroup mounts); with only --net it execs,
  # so $! is dockerd itself. --tls=false avoids the 15 s plaintext start-up delay.
  nsenter --net=/var/run/netns/"$NS" dockerd \
    --data-root "$STATE/docker" --exec-root "$STATE/exec" --pidfile "$PIDFILE" \
    -H "unix://$SOCK" --tls=false --bridge none --iptables=false --cgroup-parent "$NS" \
    </dev/null >"$STATE/dockerd.log" 2>&1 &
  disown
  for _ in $(seq 1 60); do
    docker -H "unix://$SOCK" version >/dev/null 2>&1 && { echo "DOCKER_HOST=unix://$SOCK"; return; }
    sleep 0.5
  done
  echo "dev_engine: dockerd did not answer within 30 s; see $STATE/dockerd.log" >&2
  return 1
}

down() {
  set +e
  if [ -S "$SOCK" ]; then
    mapfile -t ids < <(timeout 30 docker -H "unix://$SOCK" ps -aq)
    [ ${#ids[@]} -gt 0 ] && timeout 60 docker -H "unix://$SOCK" rm -f "${ids[@]}" >/dev/null
  fi
  if [ -s "$PIDFILE" ]; then
    pid=$(cat "$PIDFILE")
    kill "$pid" 2>/dev/null
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null
  fi
  # nsfs and overlay mounts under the state dir would keep the namespace alive / block rm.
  grep -o " /tmp/sfm/[^ ]*" /proc/mounts | sort -r | while read -r m; do umount -l "$m"; done
  ip netns del "$NS" 2>/dev/null
  ip link del "$BRIDGE" 2>/dev/null
  while iptables -D FORWARD -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT 2>/dev/null; do :; done
  rm -rf /tmp/sfm
  return 0
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
