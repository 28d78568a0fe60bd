"""Host classification: which kind of PostgreSQL does ``SQL_HOST`` point at?

Pure logic, no I/O.  The rules are a table (first match wins); docs/configuration.md
shows the same table and a test keeps the two in step.
"""

from __future__ import annotations

import enum
import ipaddress
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
        "`name.namespace.svc.cluster.local` (matched as a suffix); a first label that "
        "also contains `pooler` is a CloudNativePG `Pooler` (PgBouncer) in front of it",
    ),
    (
        Kind.INTERNAL,
        "any other one- or two-label name, or `name.namespace.svc[.cluster.local]`: a "
        "docker compose service (`db`) or a plain Kubernetes Service",
    ),
    (
        Kind.EXTERNAL,
        "anything else: a fully qualified domain name, or an IP address that is not loopback",
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


def normalize_host(host: str) -> str:
    """Lower-case, strip whitespace, brackets around IPv6 and one trailing dot."""
    name = host.strip()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if name.startswith("/"):
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
    if name.startswith("/"):
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


def _service(name: str) -> HostClass:
    """A CloudNativePG service, a plain in-cluster name, or an outside one."""
    labels = name.split(".")
    service_form = len(labels) <= 2 or (
        labels[2] == "svc" and ".".join(labels[3:]) in ("", CLUSTER_DOMAIN)
    )
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


def classify_host(host: str) -> HostClass:
    """Classify ``host`` into a :class:`Kind` with the evidence for it (first rule wins)."""
    name = normalize_host(host)
    return _local_or_ip(name) or _rds(name) or _service(name)
