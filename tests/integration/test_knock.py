"""Knocks: while nothing listens the check knocks every few tens of ms and logs in the
moment something answers, without one login more than the backoff schedule allows.

Real servers, a real PgBouncer, real network namespaces; the logins each server saw
are counted in its own log (``log_connections``), never inferred from the client.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import cli, pg
from tests.support.ci import unavailable
from tests.support.pg import ServerFactory
from tests.support.pgbouncer import PgBouncer, pgbouncer_binary

# Delays that climb to 4-8 s between logins: an attempt that comes sooner than its
# delay said was started by a knock.
SLOW_SCHEDULE = {"PREFLIGHT_BACKOFF_MAX": "8"}


class Watched:
    """A running preflight whose JSON events are read as they come."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            cli.preflight_command(), env=env, stderr=subprocess.PIPE, text=True
        )
        self.events: list[dict[str, Any]] = []

    def until(self, name: str, count: int = 1) -> dict[str, Any]:
        """Read events until the ``count``-th ``name``; fail if the process ends first."""
        assert self.proc.stderr is not None
        seen = 0
        for line in self.proc.stderr:
            event: dict[str, Any] = json.loads(line)
            self.events.append(event)
            if event["event"] == name:
                seen += 1
                if seen == count:
                    return event
        raise AssertionError(f"ended before {name}: {self.events}")

    def finish(self, timeout: float = 60) -> int:
        """The rest of the events (the run ends by its own deadline) and the exit code."""
        assert self.proc.stderr is not None
        rest = self.proc.stderr.read()  # through the same buffer as until()
        self.proc.stderr.close()
        self.events += cli.parse_events(rest)
        return self.proc.wait(timeout=timeout)

    def named(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == name]


@pytest.fixture
def watched() -> Iterator[list[Watched]]:
    """Every preflight a test starts is ended with it."""
    runs: list[Watched] = []
    yield runs
    for run in runs:
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.communicate()
        if run.proc.stderr is not None:
            run.proc.stderr.close()


def _env(host: str, port: int, **extra: str) -> dict[str, str]:
    return cli.base_env(
        SQL_HOST=host,
        SQL_PORT=str(port),
        SQL_DATABASE=pg.APP_DB,
        SQL_USER=pg.APP_USER,
        SQL_PASSWORD=pg.APP_PASSWORD,
        SQL_SSL_MODE="disable",
        **extra,
    )


def _tcp_logins(server: pg.LocalServer) -> int:
    """Connections the server accepted over TCP (the tests' own admin uses the socket)."""
    return server.log_text().count("connection received: host=127.0.0.1")


@pytest.mark.parametrize("transport", ["tcp", "unix socket"])
def test_a_server_that_comes_up_is_noticed_by_a_knock(
    transport: str, make_server: ServerFactory, watched: list[Watched]
) -> None:
    """Once the delay between logins is seconds long, the login after the server comes up
    happens long before its turn (a knock started it), and every connection the server
    saw was a logged attempt (no connection for the knock itself)."""
    server = make_server("knocked", settings={"log_connections": "on"})
    server.stop()
    server.logfile.write_text("")
    host = server.host if transport == "tcp" else str(server.dir)
    run = Watched(_env(host, server.port, PREFLIGHT_TIMEOUT="60", **SLOW_SCHEDULE))
    watched.append(run)
    refused = run.until("preflight.attempt_failed")
    while refused["next_delay"] < 1.5:
        refused = run.until("preflight.attempt_failed")
    assert refused["reason"] == "refused"
    server.start()
    assert run.finish() == 0
    number = refused["attempt"] + 1  # the first attempt after the server came up
    (after,) = [
        e
        for e in run.events
        if e.get("attempt") == number
        or (e["event"] == "preflight.ready" and e["attempts"] == number)
    ]
    assert after["elapsed"] < refused["elapsed"] + refused["next_delay"]
    answered = [e for e in run.named("preflight.attempt_failed") if e["reason"] != "refused"]
    assert {e["reason"] for e in answered} <= {"starting_up"}
    marker = "host=127.0.0.1" if transport == "tcp" else "host=[local]"
    assert server.log_text().count(f"connection received: {marker}") == len(answered) + 1


def _never_ready(make_server: ServerFactory) -> pg.LocalServer:
    """A real server that accepts TCP and never finishes starting: a standby with no
    primary and hot_standby off ("the database system is not accepting connections")."""
    server = make_server("starting", settings={"log_connections": "on", "hot_standby": "off"})
    server.stop()
    signal_file = server.datadir / "standby.signal"
    signal_file.write_text("")
    subprocess.run(["chown", "postgres:postgres", str(signal_file)], check=False)
    server.logfile.write_text("")
    return server


def test_a_starting_server_gets_the_backoff_not_the_knocks(
    make_server: ServerFactory, watched: list[Watched]
) -> None:
    """Refused, then a server that accepts TCP but is starting: every connection it saw
    was a logged attempt, at the backoff's pace (no more than 15 in 4 s), none a knock."""
    server = _never_ready(make_server)
    run = Watched(_env(server.host, server.port, PREFLIGHT_TIMEOUT="5"))
    watched.append(run)
    assert run.until("preflight.attempt_failed", 2)["reason"] == "refused"
    server.start()
    assert run.finish() == 10
    failed = run.named("preflight.failed")[-1]
    assert failed["reason"] == "starting_up"
    answered = [e for e in run.named("preflight.attempt_failed") if e["reason"] != "refused"]
    assert {e["reason"] for e in answered} == {"starting_up"}
    seen = _tcp_logins(server)
    # Each attempt that reached the server, and the last one (cut by the deadline or not).
    assert len(answered) <= seen <= len(answered) + 1
    assert 3 <= seen <= 15
    assert 5.0 <= failed["elapsed"] < 5.5  # the deadline holds


@pytest.fixture
def pooler(workspace: Path, make_server: ServerFactory) -> Iterator[PgBouncer]:
    """A real PgBouncer in front of a server that is stopped."""
    if pgbouncer_binary() is None:
        unavailable("pgbouncer (Debian package pgbouncer) is not installed")
    server = make_server("behindpooler")
    settings = {"server_login_retry": 5, "query_wait_timeout": 1}
    bouncer = PgBouncer(workspace, server.port, settings=settings)
    bouncer.start()
    server.stop()
    try:
        yield bouncer
    finally:
        bouncer.destroy()


def test_a_pooler_in_front_of_a_stopped_server_gets_the_backoff(
    pooler: PgBouncer, watched: list[Watched]
) -> None:
    """PgBouncer accepts at once while its server is down (and holds each login for
    query_wait_timeout): no knock, and every login PgBouncer logged was a logged attempt."""
    run = Watched(_env(pooler.host, pooler.port, PREFLIGHT_TIMEOUT="4"))
    watched.append(run)
    assert run.finish() == 10
    failed = run.named("preflight.failed")[-1]
    assert failed["reason"] == "pooler_waiting"
    logins = len(re.findall(r"login attempt: db=", pooler.log_text()))
    assert failed["attempts"] - 1 <= logins <= failed["attempts"]
    assert logins <= 13  # 4 s of the schedule: 0.05-0.1, 0.1-0.2, 0.2-0.4, then 0.4-0.8 s


def _behind_iptables(rule: str, port: int, env: dict[str, str], tmp_path: Path) -> cli.Run:
    """The preflight in a private network namespace whose loopback port ``port`` is
    answered by the iptables ``rule`` (what kube-proxy does for a Service with no
    endpoints); the packets the rule matched are written next to the run."""
    counts = tmp_path / "counts"
    script = (
        f"ip link set lo up && iptables -A OUTPUT -p tcp --syn -d 127.0.0.1 --dport {port} "
        f'-j {rule} && "$@"; code=$?; iptables -L OUTPUT -v -x -n > {counts}; exit $code'
    )
    done = subprocess.run(
        cli.unshare(script, cli.preflight_command(), "--net"),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return cli.Run(done.returncode, done.stdout, done.stderr, 0, cli.parse_events(done.stderr))


def _matched(tmp_path: Path) -> int:
    for line in (tmp_path / "counts").read_text().splitlines():
        if "dpt:" in line:
            return int(line.split()[0])
    raise AssertionError("no rule in the counts")


@pytest.mark.root
def test_service_with_no_endpoints_rejecting(tmp_path: Path) -> None:
    """A REJECT (kube-proxy's answer for a Service with no endpoints) is a refusal: the check
    knocks between logins (more SYNs than attempts, at most 40 a second) and keeps its deadline."""
    port = pg.free_port()
    env = _env("127.0.0.1", port, PREFLIGHT_TIMEOUT="3")
    result = _behind_iptables("REJECT", port, env, tmp_path)
    assert result.code == 10, result.stderr
    failed = result.event("preflight.failed")
    assert failed["reason"] == "refused"
    assert 3.0 <= failed["elapsed"] < 3.5
    syns = _matched(tmp_path)
    assert failed["attempts"] < syns <= failed["attempts"] + 40 * 3


@pytest.mark.root
def test_service_with_no_endpoints_dropping(tmp_path: Path) -> None:
    """A silent DROP (IPVS with no real server, a NetworkPolicy) is a timeout: no knocks,
    each login waits its connect timeout, and the deadline holds."""
    port = pg.free_port()
    env = _env("127.0.0.1", port, PREFLIGHT_TIMEOUT="5", PREFLIGHT_CONNECT_TIMEOUT="2")
    result = _behind_iptables("DROP", port, env, tmp_path)
    assert result.code == 10, result.stderr
    failed = result.event("preflight.failed")
    assert failed["reason"] == "timeout"
    assert 5.0 <= failed["elapsed"] < 5.5
    assert failed["attempts"] <= 3
    # Each login's SYN and its retransmissions (1 s, then 2 s later), nothing more.
    assert _matched(tmp_path) <= failed["attempts"] * 3


def test_knocks_keep_the_log_json_with_a_loose_pgpass(tmp_path: Path) -> None:
    """With no password and a .pgpass libpq warns about on every start, dozens of knocks on a
    closed port leave stderr one JSON object per line."""
    home = tmp_path / "home"
    home.mkdir()
    pgpass = home / ".pgpass"
    pgpass.write_text(f"*:*:*:*:{pg.APP_PASSWORD}\n")
    pgpass.chmod(0o644)
    env = _env("127.0.0.1", pg.free_port(), PREFLIGHT_TIMEOUT="2", HOME=str(home))
    del env["SQL_PASSWORD"]
    result = cli.run(env)  # parses every stderr line as JSON
    assert result.code == 10
    assert result.event("preflight.failed")["reason"] == "refused"
