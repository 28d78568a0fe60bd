"""Faults injected on loopback: TLS cut mid-handshake, a silent resolver, a
catalog lock, black holes; the deadline and SIGTERM hold in each.

The promise (issue 10): the whole run ends within PREFLIGHT_TIMEOUT + 1 s and
SIGTERM acts within 1 s, whatever hangs.  A process start-up on a machine
shared with other work costs up to about a second more, so wall-clock bounds
below allow TIMEOUT + 2 s (run) and 2 s (signal): the defects they catch took
6 to 20 s longer.  The exact figures are in benchmarks/RESULTS.md (chaos).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from tests.support import pg
from tests.support.cli import base_env, preflight_command, run_command, spawn
from tests.support.faults import (
    CUT,
    PASS,
    STALL,
    BlackHole,
    Proxy,
    catalog_lock,
    hosts_wrapped,
    lock_waiters,
    silent_dns,
    syn_sent,
    terminate_when,
    wait_for,
)
from tests.support.pg import ServerFactory

TIMEOUT = 3
RUN_BOUND = TIMEOUT + 2.0  # the 1 s promise plus a process start-up on a shared machine
SIGNAL_BOUND = 2.0
FATAL = {3, 4, 5, 6, 7}


def app_env(host: str, port: int, **extra: str) -> dict[str, str]:
    return base_env(
        SQL_HOST=host,
        SQL_PORT=str(port),
        SQL_DATABASE=pg.APP_DB,
        SQL_USER=pg.APP_USER,
        SQL_PASSWORD=pg.APP_PASSWORD,
        **extra,
    )


def test_tls_cut_mid_handshake_is_retried(
    make_server: ServerFactory, server_tls: tuple[str, str]
) -> None:
    """A TLS handshake cut by the network is retried (not exit 6) and the run ends ready."""
    server = make_server("tlscut", tls=server_tls)
    proxy = Proxy((server.host, server.port), mode=CUT, cut_after=40)
    try:
        env = app_env(proxy.host, proxy.port, SQL_SSL_MODE="require", PREFLIGHT_TIMEOUT="30")
        proc = spawn(preflight_command(), env)
        wait_for(lambda: proxy.cuts >= 2 or proc.poll() is not None, 20)
        proxy.mode = PASS
        result = proc.finish()
    finally:
        proxy.close()
    assert proxy.cuts >= 1, "the proxy never cut a handshake"
    assert result.code == 0, result.stderr
    failed = [e for e in result.events if e["event"] == "preflight.attempt_failed"]
    assert failed, "no attempt failed: the cut did not reach the check"
    assert all(e["reason"] not in ("tls_failed", "tls_required") for e in failed), failed
    assert result.event("preflight.ready")["tls"] is True


def test_tls_cut_every_time_ends_unreachable(
    make_server: ServerFactory, server_tls: tuple[str, str]
) -> None:
    """A link that cuts every handshake is a network fault: exit 10 at the deadline, not 6."""
    server = make_server("tlscut10", tls=server_tls)
    proxy = Proxy((server.host, server.port), mode=CUT, cut_after=40)
    try:
        env = app_env(proxy.host, proxy.port, SQL_SSL_MODE="require", PREFLIGHT_TIMEOUT="3")
        result = run_command(preflight_command(), env, timeout=30)
    finally:
        proxy.close()
    assert result.code == 10, result.stderr
    assert result.event("preflight.failed")["reason"] == "connection_lost"
    assert result.seconds <= RUN_BOUND


@pytest.mark.root
def test_silent_resolver_deadline(tmp_path: Path) -> None:
    """A resolver that never answers: the run still ends within the deadline (exit 10)."""
    command = silent_dns(preflight_command(), tmp_path)
    env = app_env("db.example.internal", 5432, PREFLIGHT_TIMEOUT=str(TIMEOUT))
    result = run_command(command, env, timeout=30)
    assert result.code == 10, result.stderr
    assert result.seconds <= RUN_BOUND, f"took {result.seconds:.1f} s"


def test_catalog_lock_deadline(make_server: ServerFactory) -> None:
    """A lock held on pg_extension stops the extension query; the deadline still holds."""
    server = make_server("lock")
    env = app_env(
        server.host,
        server.port,
        PREFLIGHT_TIMEOUT=str(TIMEOUT),
        PREFLIGHT_REQUIRE_EXTENSIONS="plpgsql",
    )
    with catalog_lock(server):
        result = run_command(preflight_command(), env, timeout=30)
    assert result.code == 10, result.stderr
    assert result.seconds <= RUN_BOUND, f"took {result.seconds:.1f} s"


def test_catalog_lock_released_is_ready(make_server: ServerFactory) -> None:
    """A catalog lock released while the check waits: the check ends ready."""
    server = make_server("lockfree")
    env = app_env(
        server.host, server.port, PREFLIGHT_TIMEOUT="30", PREFLIGHT_REQUIRE_EXTENSIONS="plpgsql"
    )
    with ExitStack() as stack:
        stack.enter_context(catalog_lock(server))
        proc = spawn(preflight_command(), env)
        assert wait_for(lambda: lock_waiters(server) > 0, 30), proc.finish(timeout=60).stderr
        stack.close()
        result = proc.finish()
    assert result.code == 0, result.stderr
    assert result.event("preflight.ready")["extensions"]["installed"] == ["plpgsql"]


TWO_ADDRESSES = "twoaddr.example.internal"


@contextmanager
def two_black_holes() -> Iterator[tuple[int, list[str]]]:
    """One port on two loopback addresses that drop every SYN: (port, hosts lines)."""
    first = BlackHole("127.0.0.2")
    try:
        second = BlackHole("127.0.0.3", first.port)
    except OSError:
        first.close()
        raise
    try:
        yield first.port, [f"127.0.0.2 {TWO_ADDRESSES}", f"127.0.0.3 {TWO_ADDRESSES}"]
    finally:
        first.close()
        second.close()


@pytest.mark.root
def test_two_black_hole_addresses_deadline(tmp_path: Path) -> None:
    """A name with two addresses that both drop packets: one deadline, not one per address."""
    with two_black_holes() as (port, lines):
        command = hosts_wrapped(preflight_command(), tmp_path, lines)
        env = app_env(TWO_ADDRESSES, port, PREFLIGHT_TIMEOUT=str(TIMEOUT))
        result = run_command(command, env, timeout=30)
    assert result.code == 10, result.stderr
    assert result.seconds <= RUN_BOUND, f"took {result.seconds:.1f} s"


# --- SIGTERM in each hang ---

Hanging = Callable[[], bool]  # true once the check is stuck in the hang
Command = tuple[list[str], dict[str, str], Hanging]
Hang = Callable[[Path, ServerFactory, ExitStack], Command]


def _dns_hang(tmp_path: Path, _make: ServerFactory, stack: ExitStack) -> Command:
    command = silent_dns(preflight_command(), tmp_path)
    asked = tmp_path / "resolver.ready.asked"
    return command, app_env("db.example.internal", 5432, PREFLIGHT_TIMEOUT="60"), asked.exists


def _lock_hang(tmp_path: Path, make: ServerFactory, stack: ExitStack) -> Command:
    server = make("locksig")
    stack.enter_context(catalog_lock(server))
    env = app_env(
        server.host, server.port, PREFLIGHT_TIMEOUT="60", PREFLIGHT_REQUIRE_EXTENSIONS="plpgsql"
    )
    return preflight_command(), env, lambda: lock_waiters(server) > 0


def _black_holes_hang(tmp_path: Path, _make: ServerFactory, stack: ExitStack) -> Command:
    port, lines = stack.enter_context(two_black_holes())
    command = hosts_wrapped(preflight_command(), tmp_path, lines)
    fillers = syn_sent(port)  # the black holes' own unanswered SYNs
    env = app_env(TWO_ADDRESSES, port, PREFLIGHT_TIMEOUT="60")
    return command, env, lambda: syn_sent(port) > fillers


def _stalled_server(tmp_path: Path, _make: ServerFactory, stack: ExitStack) -> Command:
    proxy = Proxy(("127.0.0.1", 9), mode=STALL)
    stack.callback(proxy.close)
    env = app_env(proxy.host, proxy.port, PREFLIGHT_TIMEOUT="60", PREFLIGHT_CONNECT_TIMEOUT="30")
    return preflight_command(), env, lambda: proxy.cuts > 0


@pytest.mark.root  # two of the hangs need private namespaces
@pytest.mark.parametrize(
    "hang",
    [_dns_hang, _lock_hang, _black_holes_hang, _stalled_server],
    ids=["silent-resolver", "catalog-lock", "two-black-holes", "stalled-server"],
)
def test_sigterm_acts_within_a_second(
    hang: Hang, tmp_path: Path, make_server: ServerFactory
) -> None:
    """SIGTERM while the check hangs (seen from outside: a query at the resolver, a session
    waiting on the lock, a SYN unanswered, a stalled connection): exit 143 within about a
    second, logged."""
    with ExitStack() as stack:
        command, env, hanging = hang(tmp_path, make_server, stack)
        proc = spawn(command, env)
        took, err = terminate_when(proc, hanging)
    assert proc.proc.returncode == 143, err
    assert '"preflight.interrupted"' in err
    assert took <= SIGNAL_BOUND, f"SIGTERM took {took:.2f} s"
