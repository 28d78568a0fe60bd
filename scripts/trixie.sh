#!/usr/bin/env bash
# Debian trixie roots from debootstrap: shared test infrastructure, built once
# and cached outside the repository (never committed).
#
#   scripts/trixie.sh base     # $CACHE/base: python3 (3.13), python3-venv, ca-certificates
#   scripts/trixie.sh server   # $CACHE/server: base + PostgreSQL 17 (TLS) + postgresql-17-pgvector
#
# `base` is the image tests' stand-in for python:3.13-slim-trixie (scripts/image.sh
# standin) and the interpreter of the Django 6.0 app venvs; `server` is a copy of
# it with PostgreSQL 17 added, so debootstrap runs once for both.  Its `postgres`
# user has this machine's postgres UID/GID, so a data directory in /tmp works
# inside and outside the root alike.  Each root is built in a temporary
# directory and renamed into place when complete: an interrupted build is redone.
# Root only (debootstrap, chroot).  PREFLIGHT_TRIXIE_CACHE moves the cache.
set -euo pipefail

CACHE=${PREFLIGHT_TRIXIE_CACHE:-/var/tmp/preflight-trixie}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SERVER_PACKAGES="postgresql-17 postgresql-17-pgvector"

base() {
  [ -x "$CACHE/base/usr/bin/python3" ] && return 0
  mkdir -p "$CACHE"
  rm -rf "$CACHE/base.tmp"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    trixie "$CACHE/base.tmp" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 || {
    tail -20 "$CACHE/debootstrap.log" >&2
    exit 1
  }
  rm -rf "$CACHE/base.tmp/var/cache/apt/archives/"*.deb
  mv "$CACHE/base.tmp" "$CACHE/base"
}

# apt-get inside the root, in a private mount namespace with /proc, /dev and
# this machine's resolver and CA bundle (the machine's own files stay as they are).
in_root() {
  local root=$1
  shift
  unshare --mount --propagation private -- sh -c '
    root=$1; shift
    mount -t proc proc "$root/proc"
    mount --rbind /dev "$root/dev"
    mount --bind /etc/resolv.conf "$root/etc/resolv.conf"
    mount --bind /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
    exec chroot "$root" "$@"' sh "$root" "$@"
}

server() {
  # Current only while its postgres user is this machine's (a data directory
  # written outside the root must be owned by the same UID inside it).
  if [ -x "$CACHE/server/usr/lib/postgresql/17/bin/postgres" ] &&
    [ "$(chroot "$CACHE/server" id -u postgres)" = "$(id -u postgres)" ]; then
    return 0
  fi
  rm -rf "$CACHE/server"
  base
  local tmp="$CACHE/server.tmp" uid gid
  rm -rf "$tmp"
  cp -a "$CACHE/base" "$tmp"
  uid=$(id -u postgres)
  gid=$(id -g postgres)
  touch "$tmp/etc/resolv.conf"
  # No service starts in the root, and no cluster is created by the package.
  printf '#!/bin/sh\nexit 101\n' >"$tmp/usr/sbin/policy-rc.d"
  chmod 755 "$tmp/usr/sbin/policy-rc.d"
  mkdir -p "$tmp/etc/postgresql-common"
  echo "create_main_cluster = false" >"$tmp/etc/postgresql-common/createcluster.conf"
  in_root "$tmp" groupadd --system --gid "$gid" postgres
  in_root "$tmp" useradd --system --uid "$uid" --gid "$gid" --home-dir /var/lib/postgresql \
    --shell /bin/sh postgres
  {
    in_root "$tmp" apt-get update
    in_root "$tmp" env DEBIAN_FRONTEND=noninteractive apt-get install --yes \
      --no-install-recommends $SERVER_PACKAGES
    in_root "$tmp" apt-get clean
  } >"$CACHE/server.log" 2>&1 || {
    tail -20 "$CACHE/server.log" >&2
    exit 1
  }
  rm -rf "$tmp/var/lib/apt/lists/"*
  mv "$tmp" "$CACHE/server"
}

case "${1:-}" in
  base) base ;;
  server) server ;;
  *) echo "usage: $0 base|server" >&2; exit 2 ;;
esac
