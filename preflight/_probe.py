"""One attempt: resolve, log in, run the queries, read what the server is.

This is the only module that talks to PostgreSQL.  Every failure leaves it as
a classified :class:`PreflightError`; the deadline leaves it as
:class:`DeadlineReached` (after cancelling a running query).
"""

from __future__ import annotations

import contextlib
import os
import select
import time
from collections.abc import Iterator
from typing import Any, NamedTuple

import psycopg
from psycopg import pq, sql
from psycopg.conninfo import make_conninfo

from ._deadline import Deadline, DeadlineReached
from ._dns import ResolveError, resolve
from ._errors import PreflightError, error_for
from ._exit_codes import REASONS, Reason
from ._extensions import Extensions, read_extensions
from ._extensions import require as require_extensions
from ._failures import classify, driver_error
from ._hosts import Kind, needs_lookup
from ._plan import Plan
from ._settings import password_now


class ServerFacts(NamedTuple):
    """What one successful attempt learned about the server."""

    server_version: str
    tls: bool
    tls_protocol: str | None
    in_recovery: bool
    address: str | None
    extensions: Extensions = Extensions()
    notices: tuple[str, ...] = ()  # what libpq wrote to stderr itself


_FACTS = """
SELECT 1,
       current_setting('server_version'),
       pg_is_in_recovery(),
       (SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid())
"""


def require(facts: ServerFacts, kind: Kind) -> None:
    """Raise :class:`CheckFailed` when a required extension is not installed."""
    require_extensions(facts.extensions, kind)


def _addresses(plan: Plan, deadline: Deadline, timeout: int) -> list[str | None]:
    """Where to connect: resolved here under the deadline, or left to libpq."""
    if plan.hostaddr is not None or not needs_lookup(plan.host):
        return [None]  # PGHOSTADDR, an IP literal or a socket: libpq needs no DNS
    # One lookup waits at most the per-attempt timeout, so a silent resolver is
    # retried like a silent server (and never forever, even with no deadline).
    wait = min(deadline.remaining(), float(timeout))
    try:
        return list(resolve(plan.host, plan.settings.port, wait))
    except ResolveError as exc:
        raise error_for(Reason.DNS, str(exc), hint=_dns_hint(plan.host)) from None
    except DeadlineReached:
        raise DeadlineReached(
            f"the DNS lookup of {plan.host} did not answer",
            reason=Reason.DNS,
            hint=REASONS[Reason.DNS].hint,
        ) from None


def _dns_hint(host: str) -> str | None:
    if "." in host.strip("."):
        return None
    return (
        f"{host} is a short name, which resolves only inside the same Kubernetes namespace "
        "or on the same docker compose network: use name.namespace for a Service in "
        "another namespace; in compose, put this service on the database's network"
    )


def _conninfo(
    plan: Plan, deadline: Deadline, timeout: int, address: str | None, reread: bool
) -> str:
    # The app's own parameters (a URL's application_name, options, sslcert...) go
    # through, so the check logs in as the app would; its connect_timeout only
    # shortens the check's own, which the deadline bounds.
    params: dict[str, Any] = {"application_name": "preflight", **plan.libpq_params()}
    if address is not None:
        params["hostaddr"] = address
    password = password_now(plan.settings) if reread else plan.settings.password
    if password is not None:
        params["password"] = password.reveal()
    limit = deadline.connect_timeout(timeout)
    app_limit = params.pop("connect_timeout", "")
    if app_limit.strip().isdigit() and int(app_limit) >= 2:
        limit = min(limit, int(app_limit))
    return make_conninfo("", connect_timeout=limit, **params)


def _failure(exc: psycopg.Error, plan: Plan) -> PreflightError:
    error = driver_error(exc)  # what the migrate runner says of the same failure
    negotiation = plan.libpq_env.variables.get("PGSSLNEGOTIATION", "")
    if error.reason is Reason.CONNECTION_LOST and negotiation.lower() == "direct":
        return error_for(
            Reason.LIBPQ_OPTION,
            error.message
            + " (PGSSLNEGOTIATION=direct: servers before PostgreSQL 17 close a direct TLS "
            "handshake)",
        )
    if error.reason is Reason.DNS:
        return error_for(Reason.DNS, error.message, hint=_dns_hint(plan.host))
    return error


@contextlib.contextmanager
def _cancel_at_deadline(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """If the deadline interrupts a query, cancel it on the server before leaving."""
    try:
        yield
    except DeadlineReached:
        with contextlib.suppress(Exception):
            conn.cancel_safe(timeout=0.5)
        raise DeadlineReached(
            "logged in, but the queries did not finish (a lock held on a catalog, or a "
            "stalled connection?)",
            hint="the server took the login but a query hung: look for a transaction holding "
            "a lock (pg_locks, pg_stat_activity) or a proxy that stalls the connection",
        ) from None


@contextlib.contextmanager
def _libpq_stderr() -> Iterator[list[str]]:
    """Catch what libpq writes straight to file descriptor 2.

    libpq prints some warnings itself (a .pgpass file with loose permissions), which
    would break the one-JSON-object-per-line log; they are caught here and reported
    as events or as part of the failure instead.
    """
    lines: list[str] = []
    try:
        saved = os.dup(2)
    except OSError:  # stderr is closed: nothing to protect
        yield lines
        return
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    os.dup2(write_end, 2)
    os.close(write_end)
    try:
        yield lines
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        with contextlib.suppress(BlockingIOError):
            data = os.read(read_end, 65536)
            lines.extend(" ".join(x.split()) for x in data.decode("utf-8", "replace").splitlines())
        os.close(read_end)
        lines[:] = [line for line in lines if line]


class Doorstep:
    """Where the next login would connect, and a login a knock has already started.

    The check loop keeps one between attempts: each attempt writes down the
    connection strings it used (:attr:`doors`), :func:`knock` leaves the login it
    started (:attr:`started`), and the next attempt goes on with that login.
    """

    def __init__(self) -> None:
        self.doors: list[tuple[str | None, str]] = []  # (address, conninfo), last attempt's
        self.passwordless = False  # libpq then reads .pgpass, and may warn, as it starts
        self.started: tuple[str | None, pq.abc.PGconn] | None = None

    def take(self) -> tuple[str | None, pq.abc.PGconn] | None:
        started, self.started = self.started, None
        return started

    def close(self) -> None:
        """Drop a started login nobody went on with (the deadline came first)."""
        started = self.take()
        if started is not None:
            started[1].finish()


def _refused(pgconn: pq.abc.PGconn) -> bool:
    message = pgconn.error_message.decode("utf-8", "replace")
    return classify(message)[0] is Reason.REFUSED


def _knock_at(pgconn: pq.abc.PGconn, wait: float) -> bool:
    """True when the connection libpq started is refused: nothing listens there.

    Anything else (the port answers, another failure, no answer within ``wait``)
    is False: the login goes on from where it is.
    """
    end = time.monotonic() + wait
    while True:
        if pgconn.status == pq.ConnStatus.BAD:
            return _refused(pgconn)
        status = pgconn.connect_poll()
        if status == pq.PollingStatus.FAILED:
            return _refused(pgconn)
        left = end - time.monotonic()
        if status != pq.PollingStatus.WRITING or left <= 0:
            return False  # connected (libpq now waits for the server), or still on its way
        select.select([], [pgconn.socket], [], left)


def knock(doorstep: Doorstep, wait: float) -> bool | None:
    """Start the next login now, if anything answers where the last one connected.

    A knock is the first step of a login (libpq's own non-blocking connect, about
    0.1 ms): refused, it reached no server, because nothing listens; otherwise the
    login it started is left in ``doorstep.started`` for the next attempt, so a
    knock never adds a connection the server sees.  Returns True when a login
    was started, False when every address refused, None when there is nowhere
    to knock (no attempt has connected yet).
    """
    if not doorstep.doors:
        return None
    for address, conninfo in doorstep.doors:
        # Without a password libpq may warn on fd 2 as it starts (a loose .pgpass): caught,
        # the login says it again.  With one there is nothing to catch (about half a knock).
        guard: contextlib.AbstractContextManager[list[str]] = (
            _libpq_stderr() if doorstep.passwordless else contextlib.nullcontext([])
        )
        with guard:
            pgconn = pq.PGconn.connect_start(conninfo.encode())
        try:
            refused = _knock_at(pgconn, wait)
        except BaseException:
            pgconn.finish()
            raise
        if not refused:
            doorstep.started = (address, pgconn)
            return True
        pgconn.finish()
    return False


def _go_on(pgconn: pq.abc.PGconn, deadline: Deadline, timeout: int) -> psycopg.Connection[Any]:
    """Finish a login a knock started: what ``psycopg.connect`` does after libpq's
    first poll, within the per-attempt timeout."""
    end = time.monotonic() + deadline.connect_timeout(timeout)
    try:
        while (status := pgconn.connect_poll()) != pq.PollingStatus.OK:
            if status == pq.PollingStatus.FAILED:
                message = pgconn.error_message.decode("utf-8", "replace")
                raise psycopg.OperationalError(f"connection failed: {message}")
            left = end - time.monotonic()
            if left <= 0:
                raise psycopg.errors.ConnectionTimeout("connection timeout expired")
            fd = pgconn.socket
            if status == pq.PollingStatus.READING:
                select.select([fd], [], [], left)
            else:
                select.select([], [fd], [], left)
    except BaseException:
        pgconn.finish()
        raise
    pgconn.nonblocking = 1
    return psycopg.Connection(pgconn)


def _connect(
    plan: Plan, deadline: Deadline, timeout: int, reread: bool, doorstep: Doorstep | None
) -> tuple[psycopg.Connection[Any], str | None, tuple[str, ...]]:
    """Log in, trying each address of the name in turn within the deadline (or go
    on with the login a knock started)."""
    started = doorstep.take() if doorstep is not None else None
    addresses = [started[0]] if started else _addresses(plan, deadline, timeout)
    doors: list[tuple[str | None, str]] = []
    last: PreflightError | None = None
    for address in addresses:
        failure = None
        with _libpq_stderr() as notices:
            try:
                if started:
                    conn = _go_on(started[1], deadline, timeout)
                else:
                    conninfo = _conninfo(plan, deadline, timeout, address, reread)
                    doors.append((address, conninfo))
                    conn = psycopg.connect(conninfo)
            except psycopg.Error as exc:
                failure = _failure(exc, plan)
        if failure is None:
            return conn, address, tuple(notices)
        if notices:
            failure.message += " (libpq: " + " ".join(notices) + ")"
        last = failure
        if not failure.retryable or deadline.remaining() <= 0:
            break
    if doorstep is not None and not started:
        doorstep.doors = doors
        doorstep.passwordless = plan.settings.password is None
    assert last is not None
    raise last


def probe(
    plan: Plan,
    deadline: Deadline,
    *,
    connect_timeout: int,
    require_extensions: tuple[str, ...] = (),
    create_extensions: bool = False,
    reread_password: bool = False,
    doorstep: Doorstep | None = None,
) -> ServerFacts:
    """Connect once, run ``SELECT 1`` and read the facts; raise a classified error.

    After the login it is one round trip: ``BEGIN; SET LOCAL statement_timeout =
    <time left>; SELECT 1, <facts>; COMMIT`` in one simple-protocol query string
    (the connection in autocommit, so psycopg adds no BEGIN of its own).  Fewer
    round trips hold a server slot for less time, which matters when a herd
    meets a small server.  Required extensions take their own transaction after.

    ``reread_password`` reads a mounted password file again (PREFLIGHT_RETRY_AUTH:
    the secret may be rotated while the check waits).  With a ``doorstep`` the
    attempt writes down where it connected, and goes on with a login a knock
    started there.
    """
    conn, address, notices = _connect(plan, deadline, connect_timeout, reread_password, doorstep)
    try:
        with conn, _cancel_at_deadline(conn):
            # One round trip: the whole transaction in one simple-protocol query string
            # (a transaction pooler hands it one server connection from BEGIN to COMMIT).
            conn.autocommit = True
            limit = _time_limit(deadline)
            statements = [sql.SQL("BEGIN"), *limit, sql.SQL(_FACTS), sql.SQL("COMMIT")]
            cursor = conn.execute(sql.SQL("; ").join(statements))
            for _ in statements[:-2]:
                cursor.nextset()  # past BEGIN's result (and the time limit's) to the facts
            one, version, in_recovery, protocol = cursor.fetchone() or (None, "", False, None)
            if one != 1:
                raise error_for(Reason.UNKNOWN, f"SELECT 1 returned {one!r}")
            if plan.role == "rw" and in_recovery:
                raise error_for(
                    Reason.READ_ONLY, f"{plan.host} reached a server in recovery (a standby)"
                )
            extensions = Extensions()
            if require_extensions:
                with conn.transaction():
                    for statement in limit:
                        conn.execute(statement)
                    extensions = read_extensions(conn, require_extensions, create_extensions)
            return ServerFacts(
                server_version=str(version),
                tls=conn.pgconn.ssl_in_use,
                tls_protocol=protocol,
                in_recovery=bool(in_recovery),
                address=address,
                extensions=extensions,
                notices=notices,
            )
    except psycopg.Error as exc:
        raise _failure(exc, plan) from None


def _time_limit(deadline: Deadline) -> list[sql.Composed]:
    """``SET LOCAL statement_timeout`` to the time left, so that a query stuck on a lock
    ends at the deadline on the server too; nothing without a deadline."""
    left = deadline.remaining()
    if left == float("inf"):
        return []
    millis = max(1, int(left * 1000))
    return [sql.SQL("SET LOCAL statement_timeout = {}").format(millis)]
