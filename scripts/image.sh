#!/usr/bin/env bash
# Build and run the real Dockerfile without a Docker engine, with Debian's buildah.
#
#   scripts/image.sh standin   # a stand-in for the Dockerfile's base, from debootstrap
#   scripts/image.sh build     # buildah bud of ./Dockerfile -> localhost/preflight:test
#
# The stand-in is Debian trixie with python3 (3.13), python3-venv and
# ca-certificates: the `base` root of scripts/trixie.sh (debootstrap, cached in
# /var/tmp/preflight-trixie and shared with the tests).  It is tagged $STANDIN
# and passed as BASE_IMAGE (the Dockerfile pins the real base by digest, a name
# no local image can take), so `--pull=never` builds offline.  SUITE=bookworm
# builds on a bookworm stand-in instead (the previous base, for the benchmark's
# before/after).  On a machine with a Docker engine, use
# `docker build -t preflight .` instead.
set -euo pipefail
cd "$(dirname "$0")/.."

SUITE=${SUITE:-trixie}
STANDIN=${STANDIN:-localhost/preflight-base-standin:$SUITE}
IMAGE=${IMAGE:-localhost/preflight:test}
CACHE=${PREFLIGHT_IMAGE_CACHE:-/var/tmp/preflight-image}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

rootfs() {
  if [ "$SUITE" = trixie ]; then
    bash scripts/trixie.sh base
    echo "${PREFLIGHT_TRIXIE_CACHE:-/var/tmp/preflight-trixie}/base"
    return 0
  fi
  mkdir -p "$CACHE"
  if [ ! -x "$CACHE/$SUITE/usr/bin/python3" ]; then
    rm -rf "$CACHE/$SUITE"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
      "$SUITE" "$CACHE/$SUITE" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1
  fi
  echo "$CACHE/$SUITE"
}

standin() {
  if buildah inspect --type image "$STANDIN" >/dev/null 2>&1; then
    return 0
  fi
  local root
  root=$(rootfs)
  mkdir -p "$CACHE"
  tar -C "$root" --exclude=./var/cache/apt/archives -cf "$CACHE/rootfs.tar" .
  ctr=$(buildah from scratch)
  buildah add "$ctr" "$CACHE/rootfs.tar" / >/dev/null
  buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --cmd python3 "$ctr"
  buildah commit --rm "$ctr" "$STANDIN" >/dev/null
  rm -f "$CACHE/rootfs.tar"
}

build() {
  standin
  # pip inside the build needs this machine's CA bundle and pip config.
  local mounts=()
  [ -f /etc/ssl/certs/ca-certificates.crt ] &&
    mounts+=(--volume /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro)
  [ -f /etc/pip.conf ] && mounts+=(--volume /etc/pip.conf:/etc/pip.conf:ro)
  buildah bud --isolation chroot --pull=never --layers "${mounts[@]}" \
    --build-arg "BASE_IMAGE=$STANDIN" -t "$IMAGE" . >&2
}

case "${1:-build}" in
  standin) standin ;;
  build) build ;;
  *) echo "usage: $0 standin|build" >&2; exit 2 ;;
esac
