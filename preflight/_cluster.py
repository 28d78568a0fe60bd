"""What a Kubernetes pod's environment says on its own: service links and the cluster domain.

- **Service links.**  A Service named ``sql`` puts ``SQL_SERVICE_HOST``,
  ``SQL_SERVICE_PORT``, ``SQL_PORT=tcp://IP:PORT`` and ``SQL_PORT_<n>_TCP*`` into
  every pod of its namespace (``enableServiceLinks`` is on by default).  They are
  recognised as such, reported once, and never taken for the app's settings.
- **The cluster domain** (``cluster.local`` unless the cluster was set up otherwise):
  ``SQL_CLUSTER_DOMAIN`` when set, else in a pod the resolver's search list
  (``search <ns>.svc.<domain> svc.<domain> <domain>``), else ``cluster.local``.

Pure but for one bounded read of ``/etc/resolv.conf``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ._hosts import CLUSTER_DOMAIN, check_host, normalize_host

RESOLV_CONF = "/etc/resolv.conf"
RESOLV_CONF_LIMIT = 65536
# The variables a Service named <PREFIX> (lower-case, dashes as underscores) injects.
_LINK = (
    r"^(?P<service>[A-Z0-9_]+?)_(?:SERVICE_HOST|SERVICE_PORT(?:_[A-Z0-9_]+)?"
    r"|PORT_[0-9]+_(?:TCP|UDP|SCTP)(?:_PROTO|_PORT|_ADDR)?)$"
)
_LINK_VALUE = r"^(?:tcp|udp|sctp)://[0-9a-fA-F:.\[\]]+:[0-9]+$"


def is_link_value(value: str) -> bool:
    """True for ``tcp://10.96.0.12:5432``: the value a service link gives ``<NAME>_PORT``."""
    return re.match(_LINK_VALUE, value.strip()) is not None


def service_links(environ: Mapping[str, str], prefix: str) -> list[str]:
    """The service-link variables of the Service named after ``prefix`` (``SQL``), sorted."""
    names = []
    for name in environ:
        match = re.match(_LINK, name)
        if match and match.group("service") == prefix:
            names.append(name)
    port = f"{prefix}_PORT"
    if is_link_value(environ.get(port, "")):
        names.append(port)
    return sorted(names)


def services_links(environ: Mapping[str, str], prefix: str) -> list[str]:
    """The service-link variables of every Service whose variables start with ``prefix_``
    (``sql-rw`` of a CloudNativePG Cluster named ``sql`` gives ``SQL_RW_*``), sorted.

    A Service counts only where its ``<NAME>_SERVICE_HOST`` is set, as Kubernetes always
    sets it, so a typo such as ``SQL_PORT_X`` is never taken for a link."""
    services = [
        name.removesuffix("_SERVICE_HOST")
        for name in environ
        if name.startswith(prefix + "_") and name.endswith("_SERVICE_HOST")
    ]
    names = {n for service in services for n in service_links(environ, service)}
    return sorted(names | set(service_links(environ, prefix)))


def link_advice(prefix: str) -> str:
    service = prefix.lower().replace("_", "-")
    return (
        f"a Kubernetes service link: a Service named {service} in this namespace injects "
        f"{prefix}_PORT=tcp://IP:PORT, {prefix}_SERVICE_* and {prefix}_PORT_*_TCP* into "
        "every pod; set the variable explicitly in the container's env, or set "
        "enableServiceLinks: false on the pod spec"
    )


def search_domain(resolv_conf: str) -> str | None:
    """The cluster domain a pod's ``resolv.conf`` names: ``x`` of a ``svc.x`` search entry."""
    domain = None
    for line in resolv_conf.splitlines():
        words = line.split()
        if words[:1] == ["search"]:  # the last search line wins, as for the resolver
            found = [w[len("svc.") :] for w in words[1:] if w.lower().startswith("svc.")]
            domain = normalize_host(found[0]) if found else None
            domain = None if domain is None or check_host(domain) else domain
    return domain or None


def cluster_domain(environ: Mapping[str, str], path: str = RESOLV_CONF) -> str:
    """``SQL_CLUSTER_DOMAIN``, else (in a pod) the resolver's, else ``cluster.local``."""
    explicit = normalize_host(environ.get("SQL_CLUSTER_DOMAIN", ""))
    if explicit:
        return explicit
    if not environ.get("KUBERNETES_SERVICE_HOST"):
        return CLUSTER_DOMAIN
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read(RESOLV_CONF_LIMIT)
    except OSError:
        return CLUSTER_DOMAIN
    return search_domain(text) or CLUSTER_DOMAIN
