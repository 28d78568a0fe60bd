#!/usr/bin/env bash
# Install the Debian packages the demo and the tests need, where they are missing.
# Idempotent: installs nothing when everything is there.
set -euo pipefail

missing=()
have_pg_server() { compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; }
have_pg_server || missing+=(postgresql postgresql-contrib)
command -v buildah >/dev/null || missing+=(buildah)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v kubectl >/dev/null || missing+=(kubectl)
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v unshare >/dev/null || missing+=(util-linux)
[ -x /usr/bin/time ] || missing+=(time)
command -v ip >/dev/null || missing+=(iproute2)
command -v iptables >/dev/null || missing+=(iptables)
# PgBouncer (what CloudNativePG's Pooler runs) for the pooler tests and the chaos run.
{ command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ]; } || missing+=(pgbouncer)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
  # One package this Debian lacks must not block the rest: install one by one,
  # and let the tests that need a missing tool say so (in CI they fail, not skip).
  for package in "${missing[@]}"; do
    apt-get install -y -qq --no-install-recommends "$package" >/dev/null ||
      echo "could not install $package; the tests that need it will report it" >&2
  done
fi
have_pg_server || { echo "PostgreSQL server binaries are required" >&2; exit 1; }
# Debian's postgresql package starts a cluster of its own; the tests use their own servers.
if command -v pg_ctlcluster >/dev/null; then
  service postgresql stop >/dev/null 2>&1 || true
fi
# Debian's pgbouncer package may start a pooler of its own on 6432; the tests run their own.
service pgbouncer stop >/dev/null 2>&1 || true
