"""``DATABASE_URL`` (placeholder: replaced by the full parser on the redact branch)."""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import parse_qsl, unquote, urlsplit


class UrlParts(NamedTuple):
    host: str | None = None
    port: int | None = None
    database: str | None = None
    user: str | None = None
    password: str | None = None
    sslmode: str | None = None
    sslrootcert: str | None = None


class UrlResult(NamedTuple):
    parts: UrlParts
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


def parse_database_url(url: str) -> UrlResult:
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return UrlResult(UrlParts(), ("is not a valid URL",))
    if parts.scheme.lower() not in ("postgres", "postgresql"):
        return UrlResult(UrlParts(), ("scheme is not postgres:// or postgresql://",))
    query = dict(parse_qsl(parts.query))
    return UrlResult(
        UrlParts(
            host=parts.hostname or query.get("host"),
            port=port,
            database=unquote(parts.path.lstrip("/")) or None,
            user=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            sslmode=query.get("sslmode"),
            sslrootcert=query.get("sslrootcert"),
        )
    )
