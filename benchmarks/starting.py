"""2b. Logins a starting server sees: a real server that accepts TCP and never
finishes starting (a standby with no primary and hot_standby off), reached by a
preflight that waited on refusals first; this checkout and the code before
issue 19, alternating."""

from __future__ import annotations

import signal
import statistics
import subprocess
import time

from benchmarks.common import (
    BASELINE,
    BASELINE_REV,
    PREFLIGHT,
    Servers,
    app_env,
    closed_port_env,
    in_turn,
    verdict,
)
from tests.support import pg

TITLE = "2b. Logins a starting server sees, and what knocking costs the client"

REFUSED_FOR = 2.0  # seconds of refusals before the server starts
STARTING_FOR = 6.0  # seconds the server is watched while it starts


def _one(server: pg.LocalServer, command: str) -> float:
    """TCP connections per second the server saw while starting."""
    server.stop()
    server.logfile.write_text("")
    proc = subprocess.Popen(
        [command],
        env=app_env(server, PREFLIGHT_TIMEOUT="0"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(REFUSED_FOR)
    server.start(wait=False)
    time.sleep(STARTING_FOR)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    return server.log_text().count("connection received: host=127.0.0.1") / STARTING_FOR


def _cpu_while_refused(command: str, seconds: int) -> float:
    """CPU seconds (user + system) of a run that waits ``seconds`` on a closed port."""
    import tempfile

    env = closed_port_env(SQL_PASSWORD="p", PREFLIGHT_TIMEOUT=str(seconds))  # noqa: S106 - nothing listens
    with tempfile.NamedTemporaryFile("r") as report:
        subprocess.run(
            ["/usr/bin/time", "-f", "%U %S", "-o", report.name, command],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        user, system = report.read().split()[-2:]
    return float(user) + float(system)


def measure(servers: Servers, rounds: int) -> str:
    server = servers.make("starting", settings={"log_connections": "on", "hot_standby": "off"})
    server.stop()
    standby = server.datadir / "standby.signal"
    standby.write_text("")
    subprocess.run(["chown", "postgres:postgres", str(standby)], check=False)
    now: list[float] = []
    before: list[float] = []
    for index in range(rounds):
        pairs = [(PREFLIGHT, now), (BASELINE, before)]
        for command, into in in_turn(pairs, index):
            into.append(_one(server, command))
    server.stop()
    cpu_now = [_cpu_while_refused(PREFLIGHT, 10) for _ in range(rounds)]
    cpu_before = [_cpu_while_refused(BASELINE, 10) for _ in range(rounds)]
    med, then = statistics.median(now), statistics.median(before)
    return "\n".join(
        [
            f"{rounds} rounds per contender, alternating: {REFUSED_FOR:g} s of refusals, then "
            f'{STARTING_FOR:g} s of a server that answers every login with "the database '
            'system is not accepting connections" (counted in its log, `log_connections`).',
            "",
            f"| measure | now | before ({BASELINE_REV}) |",
            "|---|---|---|",
            f"| server-side connection attempts per second while starting, median | "
            f"{med:.2f} | {then:.2f} |",
            f"| min / max | {min(now):.2f} / {max(now):.2f} | "
            f"{min(before):.2f} / {max(before):.2f} |",
            f"| CPU seconds of a 10 s wait on a closed port (start-up included), median | "
            f"{statistics.median(cpu_now):.2f} | {statistics.median(cpu_before):.2f} |",
            "",
            "Now this answer (a state that lasts, as a crash recovery's \"not yet accepting "
            'connections" and a shutdown do) gets the crowded pause, 0.4-1.6 s at the cap '
            'and 1 s on average. "The database system is starting up", a start\'s first '
            "moments, gets quick steps (0.05-0.1, 0.1-0.2, 0.2-0.4 s), then one pause of "
            "twice the capped delay (0.8-1.6 s) for each login that came early (the answered "
            "knock's and the quick ones), then 0.4-0.8 s as before; no real server stays "
            "there for seconds, so that bound is a property in `tests/unit/test_retry.py` "
            "(`preflight/_retry.py` `_Schedule`).",
            "",
            f"- Target: at most before's rate: "
            f"**{med:.2f} vs {then:.2f} per second — {verdict(med <= then)}**.",
        ]
    )


def run(servers: Servers, smoke: bool) -> str:
    return measure(servers, 1 if smoke else 3)
