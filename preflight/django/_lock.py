"""The migration lock's key: one PostgreSQL advisory lock per database.

Standard library only, like everything under ``preflight/django/``.
"""

from __future__ import annotations

import hashlib

LOCK_PREFIX = "preflight.migrate:"
# The same key computed by the server, for people looking at pg_locks.
LOCK_KEY_SQL = (
    "SELECT ('x' || left(encode(sha256(convert_to("
    "'preflight.migrate:' || current_database(), 'UTF8')), 'hex'), 16))::bit(64)::bigint"
)


def lock_key(database: str) -> int:
    """The advisory lock key for ``database``: a signed 64-bit integer.

    The first 8 bytes, big-endian, of SHA-256 of ``"preflight.migrate:" +
    database`` (UTF-8).  :data:`LOCK_KEY_SQL` computes the same on the server.
    """
    digest = hashlib.sha256((LOCK_PREFIX + database).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def lock_parts(key: int) -> tuple[int, int]:
    """``(classid, objid)`` under which ``pg_locks`` shows a bigint advisory key."""
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    return unsigned >> 32, unsigned & 0xFFFFFFFF
