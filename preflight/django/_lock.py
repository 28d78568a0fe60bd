"""The migration lock: one PostgreSQL advisory lock per database, on a session of its own.

Standard library and Django only, like everything under ``preflight/django/``.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import socket
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from .._jsonlog import iso

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


# --- the lock's session ---

# libpq parameters of the lock's own connection (the app's Django connection keeps its
# own): TCP keepalives after 10 s idle, every 5 s, 3 lost = dead, and unacknowledged
# data for 30 s = dead (libpq 12 and later), so a runner notices a dead peer in ~30 s.
KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}
TCP_USER_TIMEOUT_MS = 30_000
# The same, for the server's end of the session, set for the lock's transaction only
# (SET LOCAL: nothing outlives it, not even on a pooled server connection), with the
# idle-in-transaction timeout a DBA may set on the role turned off for it.
SESSION_SETTINGS = (
    ("idle_in_transaction_session_timeout", "0", 90600),
    ("tcp_keepalives_idle", "10", 90600),
    ("tcp_keepalives_interval", "5", 90600),
    ("tcp_keepalives_count", "3", 90600),
    ("tcp_user_timeout", str(TCP_USER_TIMEOUT_MS), 120000),
)
# The lock in pg_locks: a bigint advisory key shows as (classid, objid) with objsubid 1.
HOLDS_EXPR = (
    "EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = pg_backend_pid()"
    " AND l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
    " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND l.classid::bigint = %s AND l.objid::bigint = %s)"
)
# Who blocks a backend's lock wait, without what they run (their query may hold values).
BLOCKERS_SQL = (
    "SELECT a.pid, a.application_name, a.xact_start FROM pg_stat_activity a"
    " WHERE a.pid = ANY (pg_blocking_pids(%s)) ORDER BY a.pid"
)
HOLDER_SQL = (
    "SELECT l.pid, a.application_name, host(a.client_addr), a.client_port, a.state,"
    " coalesce(a.xact_start, a.backend_start), a.state_change"
    " FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid"
    " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
    " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND l.classid::bigint = %s AND l.objid::bigint = %s"
    " ORDER BY l.pid LIMIT 1"
)


def libpq_version(driver: Any) -> int:
    """The libpq the app's driver runs on (psycopg2 or psycopg 3), 0 when unknown."""
    with contextlib.suppress(Exception):
        extensions = getattr(driver, "extensions", None)
        if extensions is not None and hasattr(extensions, "libpq_version"):
            return int(extensions.libpq_version())  # psycopg2
        pq = getattr(driver, "pq", None)
        if pq is not None:
            return int(pq.version())  # psycopg 3
    return 0


def lock_options(options: dict[str, Any], libpq: int, connect_timeout: int) -> dict[str, Any]:
    """The lock connection's OPTIONS: the app's, plus keepalives, a TCP user timeout where
    libpq has it, the connect timeout clipped to the deadline, and a recognisable name."""
    merged = {**options, **KEEPALIVES, "connect_timeout": connect_timeout}
    if libpq >= 120000:
        merged["tcp_user_timeout"] = TCP_USER_TIMEOUT_MS
    merged.setdefault("application_name", f"preflight-migrate {socket.gethostname()}"[:63])
    return merged


class Holder(NamedTuple):
    """The session holding the lock, as pg_stat_activity shows it (None: not visible)."""

    pid: int
    application_name: str | None
    client_addr: str | None
    client_port: int | None
    state: str | None
    since: datetime | None
    state_since: datetime | None

    def fields(self) -> dict[str, Any]:
        return {
            "holder_pid": self.pid,
            "holder_application_name": self.application_name,
            "holder_client_addr": self.client_addr,
            "holder_client_port": self.client_port,
            "holder_state": self.state,
            "holder_since": iso(self.since),
            "holder_state_since": iso(self.state_since),
        }

    def describe(self) -> str:
        where = f"{self.client_addr}:{self.client_port}" if self.client_addr else "a local socket"
        since = iso(self.since) or "an unknown time"
        return (
            f"pid {self.pid} ({self.application_name or 'no application_name'}, from {where}, "
            f"{self.state or 'state not visible'}, since {since})"
        )


class LockSession:
    """The lock's own connection: a second Django ``DatabaseWrapper`` for the alias.

    The lock is a **transaction-scoped** advisory lock, taken in a transaction this
    connection keeps open for the whole run (``BEGIN`` ... ``ROLLBACK``):

    - it ends with the transaction, so it can never outlive the run, not even on a
      pooled server connection (a session lock through a transaction pooler stays
      on whatever server connection ran it);
    - a pooler in any mode keeps a client inside a transaction on one server
      connection, so no two runners can hold it at once, whatever sits between;
    - ``SET LOCAL`` turns the role's ``idle_in_transaction_session_timeout`` off
      and sets TCP keepalives and ``tcp_user_timeout`` on the server's end for this
      transaction only; ``idle_session_timeout`` never applies inside a transaction;
    - being a separate connection, no management command that closes Django's
      connections (a ``--then`` command may) can drop it.

    The transaction takes no snapshot between statements and writes nothing, so it
    holds back neither vacuum nor anyone's lock.
    """

    def __init__(self, alias: str) -> None:
        from django.db import connections

        self.alias = alias
        self.conn: Any = connections.create_connection(alias)
        # The blocker sampler asks from its own thread, one statement at a time.
        self.conn.inc_thread_sharing()
        self._mutex = threading.Lock()
        # create_connection shares the settings dict with Django's own connection.
        self.conn.settings_dict = copy.deepcopy(self.conn.settings_dict)
        self._options = dict(self.conn.settings_dict.get("OPTIONS") or {})
        self.key = 0
        self.classid = self.objid = 0
        self.server_version = 0
        self.pid: int | None = None  # the backend pid while the lock is held
        self.locked = False

    @property
    def vendor(self) -> str:
        return str(self.conn.vendor)

    def driver(self) -> str:
        return str(getattr(self.conn.Database, "__name__", "unknown"))

    def query(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first row of ``sql``, or None."""
        rows = self.rows(sql, params)
        return rows[0] if rows else None

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._mutex, self.conn.cursor() as cursor:
            cursor.execute(sql, list(params))
            return list(cursor.fetchall())

    def execute(self, sql: str) -> None:
        """A statement that returns no rows (BEGIN, ROLLBACK)."""
        with self._mutex, self.conn.cursor() as cursor:
            cursor.execute(sql)

    def value(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self.query(sql, params)
        return row[0] if row else None

    def connect(self, connect_timeout: int) -> None:
        """Connect with the lock's options and compute the key (PostgreSQL only)."""
        if self.vendor == "postgresql":
            self.conn.settings_dict["OPTIONS"] = lock_options(
                self._options, libpq_version(self.conn.Database), connect_timeout
            )
        self.conn.ensure_connection()
        if self.vendor == "postgresql":
            self.key = lock_key(self.value("SELECT current_database()"))
            self.classid, self.objid = lock_parts(self.key)
            self.server_version = int(self.value("SHOW server_version_num"))

    def try_lock(self) -> bool | Holder:
        """Take the lock if free: True; False if this session already carries it (a
        leaked session lock on a pooled server connection); else the holder."""
        self.execute("BEGIN")
        try:
            pid, leaked = self.query("SELECT pg_backend_pid(), " + HOLDS_EXPR, self._key())
            if leaked:
                self.execute("ROLLBACK")
                return False
            if self.value("SELECT pg_try_advisory_xact_lock(%s)", [self.key]):
                for name, setting, since in SESSION_SETTINGS:
                    if self.server_version >= since:
                        self.value("SELECT set_config(%s, %s, true)", [name, setting])
                self.pid = int(pid)
                self.locked = True
                return True
            holder = self.holder()
            self.execute("ROLLBACK")
        except BaseException:
            self.close()
            raise
        return holder if holder is not None else Holder(0, None, None, None, None, None, None)

    def _key(self) -> list[int]:
        return [self.classid, self.objid]

    def holder(self) -> Holder | None:
        row = self.query(HOLDER_SQL, self._key())
        return Holder(int(row[0]), *row[1:]) if row else None

    def holds(self) -> bool:
        """Whether this session still holds the lock (raises if the session is gone)."""
        return bool(self.value("SELECT " + HOLDS_EXPR, self._key()))

    def blockers(self, pid: int) -> list[str]:
        """The sessions blocking backend ``pid``: pid, application_name, transaction start."""
        return [
            f"pid {row[0]} ({row[1] or 'no application_name'}, in a transaction since "
            f"{iso(row[2]) or 'an unknown time'})"
            for row in self.rows(BLOCKERS_SQL, [pid])
        ]

    def release(self) -> None:
        """End the lock's transaction, and with it the lock."""
        self.locked = False
        self.execute("ROLLBACK")

    def close(self) -> None:
        self.locked = False
        with contextlib.suppress(Exception):  # closing a broken connection may fail too
            self.conn.close()


# Django's own connection (the one that migrates), for the session only: a role's
# idle_session_timeout must not end it while a follow-up works without the database,
# and the server's end notices a vanished runner in ~30 s, so the transaction of a
# migration it was in is rolled back instead of holding its locks for hours.
DJANGO_SESSION_SETTINGS = (
    ("idle_session_timeout", "0", 140000),
    ("tcp_keepalives_idle", "10", 90600),
    ("tcp_keepalives_interval", "5", 90600),
    ("tcp_keepalives_count", "3", 90600),
    ("tcp_user_timeout", str(TCP_USER_TIMEOUT_MS), 120000),
)


def harden_django_connection(alias: str, lock: LockSession) -> None:
    """Keepalives for Django's own connection of ``alias`` in this process (OPTIONS, and
    ``DJANGO_SESSION_SETTINGS`` each time Django connects; not the lock's connection)."""
    from django.db import connections
    from django.db.backends.signals import connection_created

    conn = connections[alias]
    if conn.vendor != "postgresql":
        return
    libpq = libpq_version(conn.Database)
    options = conn.settings_dict.setdefault("OPTIONS", {})
    for name, value in KEEPALIVES.items():
        options.setdefault(name, value)
    if libpq >= 120000:
        options.setdefault("tcp_user_timeout", TCP_USER_TIMEOUT_MS)

    def created(sender: Any, connection: Any, **_kwargs: Any) -> None:
        if connection.alias != alias or connection is lock.conn:
            return
        version = int(connection.pg_version)
        with connection.cursor() as cursor:
            for setting, value, since in DJANGO_SESSION_SETTINGS:
                if version >= since:
                    cursor.execute("SELECT set_config(%s, %s, false)", [setting, value])

    connection_created.connect(created, weak=False, dispatch_uid=f"preflight-migrate-{alias}")
