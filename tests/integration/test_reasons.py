"""Every reason the docs document comes from a real scenario.

Most reasons have their scenario next to the feature (test_check, test_environment,
test_migrate, test_pooler, test_faults); the ones with no other home are here, and
the last test checks that each reason is asserted somewhere in the integration or
deployment tests.
"""

from __future__ import annotations

import re
import socket
import struct
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from preflight import Reason
from tests.integration.test_check import TLS_ONLY_HBA, app_env, checked, closed_port_env, run
from tests.support import cli
from tests.support.pg import LocalServer, ServerFactory

TESTS = Path(__file__).resolve().parents[1]


@pytest.mark.root
def test_network_no_route_to_host(tmp_path: Path) -> None:
    """A host the network cannot route to (an ICMP host-unreachable, on loopback in a private
    network namespace): reason network, retried until the deadline."""
    env = closed_port_env(tmp_path, timeout="2")
    port = env["SQL_PORT"]
    script = (
        "ip link set lo up && iptables -A OUTPUT -p tcp -d 127.0.0.1 "
        f'--dport {port} -j REJECT --reject-with icmp-host-unreachable && exec "$@"'
    )
    command = cli.unshare(script, cli.preflight_command(), "--net")
    result = checked(cli.run_command(command, env, timeout=60), tmp_path, 10)
    failed = result.event("preflight.failed")
    assert failed["reason"] == "network"
    assert failed["attempts"] > 1


def test_tls_failed_protocol_mismatch(
    make_server: ServerFactory, server_tls: tuple[str, str], tmp_path: Path
) -> None:
    """A TLS handshake that cannot agree (client wants TLS 1.3, server offers 1.2 at most):
    tls_failed, exit 6, not retried."""
    server = make_server(
        "tls12",
        tls=server_tls,
        hba=TLS_ONLY_HBA,
        settings={"ssl_max_protocol_version": "'TLSv1.2'"},
    )
    env = app_env(server, tmp_path, SQL_SSL_MODE="require", PGSSLMINPROTOCOLVERSION="TLSv1.3")
    failed = run(env, tmp_path, 6).event("preflight.failed")
    assert (failed["reason"], failed["attempts"]) == ("tls_failed", 1)


def _error_response(message: str) -> bytes:
    fields = b"SFATAL\x00VFATAL\x00CXX000\x00M" + message.encode() + b"\x00\x00"
    return b"E" + struct.pack("!i", len(fields) + 4) + fields


@pytest.fixture
def strange_server() -> Iterator[int]:
    """A loopback server that speaks just enough of the protocol to send an error nobody
    has classified."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    length = struct.unpack("!i", conn.recv(4))[0]
                    body = conn.recv(length - 4)
                    if body[:4] == struct.pack("!i", 80877103):  # SSLRequest: no TLS here
                        conn.sendall(b"N")
                        length = struct.unpack("!i", conn.recv(4))[0]
                        conn.recv(length - 4)
                    conn.sendall(_error_response("the flux capacitor is out of alignment"))
                except OSError:
                    continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield int(listener.getsockname()[1])
    stop.set()
    thread.join(2)
    listener.close()


def test_unknown_message_is_retried_until_the_deadline(strange_server: int, tmp_path: Path) -> None:
    """A message nobody has classified: reason unknown, retried, exit 10 at the deadline."""
    env = {**closed_port_env(tmp_path, timeout="2"), "SQL_PORT": str(strange_server)}
    result = run(env, tmp_path, 10)
    failed = result.event("preflight.failed")
    assert failed["reason"] == "unknown"
    assert "flux capacitor" in failed["message"]
    assert failed["attempts"] > 1


def test_starting_up_then_ready(make_server: ServerFactory, template: Any, tmp_path: Path) -> None:
    """A standby that takes no connections (hot_standby=off) answers "starting up"/"not
    accepting connections": retried as starting_up until it is promoted, then exit 0."""
    primary = make_server("primary-su")
    standby = LocalServer.standby_of(primary, template, "standby-su")
    with open(standby.datadir / "postgresql.conf", "a") as conf:
        conf.write("hot_standby = off\n")
    standby.start(wait=False)
    try:
        env = app_env(standby, tmp_path, PREFLIGHT_TIMEOUT="60")
        child = cli.spawn(cli.preflight_command(), env)
        child.wait_for_event("preflight.attempt_failed", count=2, reason="starting_up")
        subprocess.run(standby.server_command("promote", "-w"), check=True, capture_output=True)
        run = child.finish(timeout=60)
    finally:
        standby.destroy()
    result = checked(run, tmp_path, 0)
    reasons = {e["reason"] for e in result.events if e["event"] == "preflight.attempt_failed"}
    assert "starting_up" in reasons


def test_every_reason_has_a_scenario() -> None:
    """Each reason is asserted by name in a test that runs real components."""
    sources = (
        "\n".join(
            p.read_text()
            for folder in ("integration", "deploy")
            for p in sorted((TESTS / folder).glob("test_*.py"))
            if p.name != "test_reasons.py"
        )
        + (TESTS / "integration" / "test_reasons.py").read_text().split("def test_every_reason")[0]
    )
    internal = {Reason.INTERNAL_ERROR}  # a bug: unit-tested by injecting one (test_process)
    missing = [
        r.value for r in Reason if r not in internal and not re.search(rf'"{r.value}"', sources)
    ]
    assert not missing, f"reasons with no real scenario: {missing}"
