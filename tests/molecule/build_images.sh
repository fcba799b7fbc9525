#!/usr/bin/env bash
# Builds the molecule base image without a registry and imports it into the engine named by
# DOCKER_HOST. The image is a Debian 12 systemd rootfs whose apt cache already holds docker.io
# and its dependencies, so roles install packages for real inside a container that has no network.
#
# The rootfs tarball is cached (building it is the only step that needs the Debian mirror);
# later runs only `docker import` it, and skip even that when the engine already has the image.
# Usage: tests/molecule/build_images.sh            (DOCKER_HOST must name the engine to import into)
#        tests/molecule/build_images.sh --tarball-only
set -euo pipefail

RECIPE_VERSION=2   # bump whenever the recipe below changes: a new tarball name forces a rebuild
IMAGE=${STACKFLEET_MOLECULE_IMAGE:-local/stackfleet-debian-systemd:12}
CACHE_DIR=${STACKFLEET_IMAGE_CACHE:-/var/cache/stackfleet/images}
TARBALL=$CACHE_DIR/debian12-systemd-dockerio-v$RECIPE_VERSION.tar
# The mirror the machine's own apt sources name (deb822 or one-line format).
MIRROR=${DEBIAN_MIRROR:-$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
          | grep -E '^(URIs:|deb )' | grep -oE 'https?://[^ ]+/debian\b' | head -1 || true)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
# python3-apt: ansible.builtin.apt installs it on first use, as on any fresh Debian host.
PRELOADED_PACKAGES=(docker.io python3-apt)

log() { echo "build_images: $*" >&2; }
work=""
# Unconditional clean-up: a half-built rootfs or tarball must never be left around or cached.
trap 'rm -rf "$work" "$TARBALL.tmp"' EXIT

build_tarball() {
  local rootfs start
  start=$(date +%s)
  work=$(mktemp -d /var/tmp/sf-rootfs.XXXXXX)
  rootfs=$work/rootfs
  log "debootstrap bookworm from $MIRROR (a few minutes)"
  timeout 900 debootstrap --variant=minbase --include=python3,systemd,systemd-sysv,dbus \
    bookworm "$rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log" >&2; return 1; }
  cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
  log "pre-downloading ${PRELOADED_PACKAGES[*]} into the rootfs's apt cache"
  # --download-only fills /var/cache/apt/archives; the lists stay so apt can resolve offline.
  timeout 600 chroot "$rootfs" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  timeout 600 chroot "$rootfs" env DEBIAN_FRONTEND=noninteractive \
    apt-get install --download-only -y -qq "${PRELOADED_PACKAGES[@]}" >/dev/null
  : >"$rootfs/etc/resolv.conf"
  # A container needs no getty on a console it does not have.
  rm -f "$rootfs/etc/systemd/system/getty.target.wants/"*
  tar -C "$rootfs" --numeric-owner -cf "$TARBALL.tmp" .
  mv "$TARBALL.tmp" "$TARBALL"
  log "built $TARBALL ($(du -h "$TARBALL" | cut -f1)) in $(( $(date +%s) - start )) s"
}

ensure_tarball() {
  mkdir -p "$CACHE_DIR"
  exec 9>"$CACHE_DIR/.build.lock"
  timeout 1200 flock 9 || { log "timed out waiting for another build"; return 1; }
  if [ -s "$TARBALL" ]; then
    log "cached $TARBALL"
  else
    find "$CACHE_DIR" -maxdepth 1 -name 'debian12-systemd-dockerio-v*.tar' -delete
    build_tarball
  fi
  exec 9>&-
}

ensure_image() {
  : "${DOCKER_HOST:?DOCKER_HOST must name the engine molecule will use}"
  local recipe
  recipe=$(docker image inspect -f '{{ index .Config.Labels "io.stackfleet.recipe" }}' "$IMAGE" 2>/dev/null || true)
  if [ "$recipe" = "$RECIPE_VERSION" ]; then
    log "$IMAGE already present on $DOCKER_HOST"
    return
  fi
  local start
  start=$(date +%s)
  docker import -c 'CMD ["/lib/systemd/systemd"]' -c "LABEL io.stackfleet.recipe=$RECIPE_VERSION" \
    "$TARBALL" "$IMAGE" >/dev/null
  log "imported $IMAGE into $DOCKER_HOST in $(( $(date +%s) - start )) s"
}

ensure_tarball
[ "${1:-}" = "--tarball-only" ] || ensure_image
