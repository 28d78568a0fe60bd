"""Where the operating system keeps its trusted CA bundle (``SQL_SSL_ROOT_CERT=system``).

libpq before 16 does not know ``sslrootcert=system`` and reads it as a file
name; psycopg-binary's bundled OpenSSL looks for its default bundle in a
directory that does not exist.  So ``system`` is resolved here, to the first
bundle file that exists, and both the check and ``database_config()`` pass that
path to libpq: it then works with any libpq and any OpenSSL build.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

SYSTEM = "system"

# The usual places, Debian/Ubuntu first (the image's base is Debian).
BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu, Alpine
    "/etc/pki/tls/certs/ca-bundle.crt",  # Fedora, RHEL
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",  # RHEL 7+
    "/etc/ssl/ca-bundle.pem",  # openSUSE
    "/etc/ssl/cert.pem",  # Alpine, macOS
)


def system_bundle(environ: Mapping[str, str]) -> str | None:
    """The OS trust store file: ``SSL_CERT_FILE`` when set, else the first bundle found."""
    override = environ.get("SSL_CERT_FILE", "").strip()
    candidates = (override,) if override else BUNDLES
    for path in candidates:
        if os.path.isfile(path):
            return path
    return None


def looked_for(environ: Mapping[str, str]) -> str:
    """The places :func:`system_bundle` tried, for the error message."""
    override = environ.get("SSL_CERT_FILE", "").strip()
    return f"SSL_CERT_FILE={override}" if override else ", ".join(BUNDLES)
