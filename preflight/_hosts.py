"""Host facts and classification: which kind of PostgreSQL does the host point at?

Pure logic, no I/O.  Every question about a host string is answered here and only
here: is it a socket directory, an IP literal, does it need a DNS lookup, does it
end in a dot, is it a usable host at all.  The classification rules are a table
(first match wins); docs/configuration.md shows the same table and a test keeps the
two in step.
"""

from __future__ import annotations

import enum
import ipaddress
import json
import re
from typing import NamedTuple


class Kind(enum.StrEnum):
    """The kinds of database the preflight tells apart."""

    LOCAL = "local"
    AWS_RDS = "aws-rds"
    CLOUDNATIVEPG = "cloudnativepg"
    INTERNAL = "internal"
    EXTERNAL = "external"

    @property
    def in_cluster(self) -> bool:
        """True for kinds reached over a private network (TLS preferred, not required)."""
        return self in (Kind.LOCAL, Kind.CLOUDNATIVEPG, Kind.INTERNAL)


class HostClass(NamedTuple):
    """The result of classifying one host."""

    kind: Kind
    evidence: str
    role: str | None = None  # CloudNativePG service role: "rw", "ro" or "r"
    pooler: bool = False  # a CloudNativePG Pooler (PgBouncer), by its name


# The Kubernetes cluster domain the `name.namespace.svc.<domain>` form may end in.
CLUSTER_DOMAIN = "cluster.local"


# One row per rule, in the order they are tried.  ``RULES`` is what the
# classification table in docs/configuration.md is generated from.
RULES: tuple[tuple[Kind, str], ...] = (
    (
        Kind.LOCAL,
        "`localhost`, loopback addresses (`127.0.0.0/8`, `::1`, bracketed or not), "
        "or a Unix-socket directory (an absolute path)",
    ),
    (
        Kind.AWS_RDS,
        "a name under `rds.amazonaws.com` or `rds.amazonaws.com.cn`, including the China "
        "form `….rds.<region>.amazonaws.com.cn`: instances, Aurora cluster/reader/custom "
        "endpoints, RDS Proxy",
    ),
    (
        Kind.CLOUDNATIVEPG,
        "a Kubernetes service name whose first label ends in `-rw`, `-ro` or `-r`, written "
        "as `name`, `name.namespace`, `name.namespace.svc` or "
        "`name.namespace.svc.<cluster domain>` (matched as a suffix; the domain is "
        "`cluster.local`, or the pod's from `/etc/resolv.conf`, or `SQL_CLUSTER_DOMAIN`; "
        "with a final dot only `name.` and the full form, as the resolver does not complete "
        "a fully qualified name); "
        "a first label that also contains `pooler` is a CloudNativePG `Pooler` (PgBouncer) "
        "in front of it",
    ),
    (
        Kind.INTERNAL,
        "any other one- or two-label name, or `name.namespace.svc[.<cluster domain>]`: a "
        "docker compose service (`db`) or a plain Kubernetes Service",
    ),
    (
        Kind.EXTERNAL,
        "anything else: a fully qualified domain name (`example.com.` with a final dot "
        "too), or an IP address that is not loopback",
    ),
)

# Plain strings: compiled (and cached) by the re module on first use only.
_RDS_SUFFIX = (
    r"(?:^|\.)(?P<suffix>rds\.amazonaws\.com(?:\.cn)?|rds\.[a-z0-9-]+\.amazonaws\.com\.cn)$"
)
_CNPG_ROLE = r"^.+-(?P<role>rw|ro|r)$"
# What the Amazon endpoint's second label says about the endpoint.
_RDS_ENDPOINTS = (
    ("cluster-custom-", "Aurora custom endpoint"),
    ("cluster-ro-", "Aurora reader endpoint"),
    ("cluster-", "Aurora cluster endpoint"),
    ("proxy-", "RDS Proxy endpoint"),
)


SOCKET_PATH_LIMIT = 108  # sun_path, with the socket file name <dir>/.s.PGSQL.<port>


def is_socket(host: str) -> bool:
    """True for a Unix-socket directory: an absolute path (libpq's own rule)."""
    return host.strip().startswith("/")


def has_trailing_dot(host: str) -> bool:
    """True for a name written fully qualified with a final dot (never a socket path)."""
    name = host.strip()
    return name.endswith(".") and name != "." and not is_socket(name)


def _unbracketed(host: str) -> str:
    name = host.strip()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    return name


def normalize_host(host: str) -> str:
    """Lower-case, strip whitespace, brackets around IPv6 and one trailing dot."""
    name = _unbracketed(host)
    if is_socket(name):
        return name  # a socket directory is a path: keep its case
    name = name.lower()
    if name.endswith(".") and name != ".":
        name = name[:-1]
    return name


def parse_ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address if ``name`` (already normalized) is an IP literal, else None."""
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def needs_lookup(host: str) -> bool:
    """False for a socket directory or an IP literal (libpq connects without DNS)."""
    return not is_socket(host) and parse_ip(_unbracketed(host)) is None


def libpq_host(host: str) -> str:
    """The host as libpq takes it: no brackets around IPv6, no surrounding space, and no
    trailing dot after an IP address (libpq would look that up as a name)."""
    name = _unbracketed(host)
    if has_trailing_dot(name) and parse_ip(name[:-1]) is not None:
        name = name[:-1]
    return name


_LABEL = r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$"


def check_host(host: str) -> str | None:
    """What is wrong with a host value, or None when it is usable (one rule for
    ``SQL_HOST`` and the host of ``DATABASE_URL``)."""
    raw = host.strip()
    if "://" in raw:
        return "looks like a URL, not a host name; give the host name alone"
    if "," in raw:
        return f"{json.dumps(raw)} lists several hosts; the preflight checks exactly one host"
    if is_socket(raw):
        if len(raw.encode()) + len("/.s.PGSQL.65535") >= SOCKET_PATH_LIMIT:
            return (
                "the socket directory is longer than a Unix socket path allows "
                f"({SOCKET_PATH_LIMIT} bytes with the file name)"
            )
        return None
    name = normalize_host(raw)
    if parse_ip(name) is not None:
        return None
    head, sep, tail = raw.rpartition(":")
    if sep and tail.isdigit():
        bare = _unbracketed(head)
        return f"{json.dumps(raw)} includes a port; give the host {bare} and the port {tail} apart"
    if "@" in raw:
        return "contains '@'; give the user apart and the host name alone"
    if len(name) > 253 or not all(re.match(_LABEL, part) for part in name.split(".")):
        return f"{json.dumps(raw)} is not a valid host name, IP address or socket directory"
    return None


def _is_loopback(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped.is_loopback
    return addr.is_loopback


def cnpg_role(host: str) -> str | None:
    """The CloudNativePG role suffix of the first label (``rw``/``ro``/``r``), if any."""
    match = re.match(_CNPG_ROLE, normalize_host(host).split(".", 1)[0])
    return match.group("role") if match else None


def _local_or_ip(name: str) -> HostClass | None:
    """``local`` for a socket, localhost or loopback; ``external`` for another IP."""
    if is_socket(name):
        return HostClass(Kind.LOCAL, f"{name} is an absolute path: a Unix-socket directory")
    if name == "localhost":
        return HostClass(Kind.LOCAL, "localhost is the local machine")
    addr = parse_ip(name)
    if addr is None:
        return None
    if _is_loopback(addr):
        return HostClass(Kind.LOCAL, f"{name} is a loopback address")
    return HostClass(Kind.EXTERNAL, f"{name} is an IP address that is not loopback")


def _rds(name: str) -> HostClass | None:
    rds = re.search(_RDS_SUFFIX, name)
    if rds is None:
        return None
    labels = name.split(".")
    endpoint = next(
        (
            text
            for prefix, text in _RDS_ENDPOINTS
            if len(labels) > 1 and labels[1].startswith(prefix)
        ),
        "RDS instance endpoint",
    )
    return HostClass(Kind.AWS_RDS, f"name is under {rds.group('suffix')} ({endpoint})")


def _service(name: str, domain: str, *, absolute: bool = False) -> HostClass:
    """A CloudNativePG service, a plain in-cluster name, or an outside one.  ``absolute``
    (written with a final dot): the resolver's search list does not complete the name, so
    only the full ``name.namespace.svc.<domain>`` (or a single label) is in-cluster."""
    labels = name.split(".")
    if absolute and 2 <= len(labels) <= 3:
        return HostClass(
            Kind.EXTERNAL,
            f"{name}. is written with a final dot: a fully qualified name, which the "
            "resolver does not complete with the cluster's search domains",
        )
    service_form = len(labels) <= 2 or (labels[2] == "svc" and ".".join(labels[3:]) in ("", domain))
    role = cnpg_role(name)
    if role is not None and service_form:
        if "pooler" in labels[0]:
            return HostClass(
                Kind.CLOUDNATIVEPG,
                f"service {labels[0]} ends in -{role} and names a pooler: a CloudNativePG "
                f"Pooler (PgBouncer) in front of the {role} service, not the server itself",
                role,
                pooler=True,
            )
        return HostClass(
            Kind.CLOUDNATIVEPG,
            f"service {labels[0]} ends in -{role}: a CloudNativePG {role} service",
            role,
        )
    if len(labels) <= 2:
        count = "one label" if len(labels) == 1 else "two labels"
        return HostClass(
            Kind.INTERNAL, f"{name} has {count}: a compose service or a Kubernetes Service"
        )
    if service_form:
        return HostClass(
            Kind.INTERNAL, f"{name} is written name.namespace.svc: a Kubernetes Service"
        )
    return HostClass(Kind.EXTERNAL, f"{name} is a fully qualified domain name")


def classify_host(host: str, domain: str = CLUSTER_DOMAIN) -> HostClass:
    """Classify ``host`` into a :class:`Kind` with the evidence for it (first rule wins).

    ``domain`` is the Kubernetes cluster domain (``cluster.local`` unless the pod's
    resolver or ``SQL_CLUSTER_DOMAIN`` says otherwise).
    """
    name = normalize_host(host)
    absolute = has_trailing_dot(host)
    return (
        _local_or_ip(name)
        or _rds(name)
        or _service(name, normalize_host(domain), absolute=absolute)
    )
