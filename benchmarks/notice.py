"""2. Time to notice a database that comes up: start the server after a random
delay and measure from the first login that works to the preflight's exit 0,
for this checkout and for the code before issue 19, alternating."""

from __future__ import annotations

import json
import random
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass, field

from benchmarks.common import (
    BASELINE,
    BASELINE_REV,
    PREFLIGHT,
    Servers,
    app_env,
    event_time,
    in_turn,
    percentile,
    stop_cleanly,
    verdict,
)
from tests.support import pg

TITLE = "2. Time to notice a database that comes up"
# Issue 19's targets for the notice latency, seconds.
MEDIAN_TARGET = 0.15
WORST_TARGET = 0.35


def _accepting(server: pg.LocalServer) -> float:
    """Poll until a login works; the monotonic time it first did."""
    import psycopg

    while True:
        try:
            with server.admin():
                return time.monotonic()
        except psycopg.OperationalError:
            time.sleep(0.002)


@dataclass
class Runs:
    """What one contender's runs measured."""

    latencies: list[float] = field(default_factory=list)
    to_ready: list[float] = field(default_factory=list)  # accepting -> preflight.ready logged
    attempts: list[int] = field(default_factory=list)
    server_logins: list[int] = field(default_factory=list)  # TCP connections the server saw
    starting_up: int = 0  # runs where an attempt met "the database system is starting up"
    rates: list[float] = field(default_factory=list)  # logged attempts per second after 3 s


def one_run(server: pg.LocalServer, command: str, delay: float, into: Runs) -> None:
    """One run: the preflight waits, the server starts after ``delay`` s."""
    stop_cleanly(server)
    server.logfile.write_text("")
    proc = subprocess.Popen(
        [command],
        env=app_env(server, PREFLIGHT_TIMEOUT="0"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    started = time.monotonic()
    exited: list[float] = []
    stderr: list[str] = []

    def wait() -> None:
        assert proc.stderr is not None
        stderr.append(proc.stderr.read())
        proc.wait()
        exited.append(time.monotonic())

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(delay)
    server.start(wait=False)
    accepted = _accepting(server)
    accepted_wall = time.time() - (time.monotonic() - accepted)
    waiter.join(timeout=30)
    if proc.returncode != 0:
        raise RuntimeError(f"{command} exited {proc.returncode}: {stderr}")
    into.latencies.append(exited[0] - accepted)
    events = [json.loads(line) for line in stderr[0].splitlines()]
    failed = [e for e in events if e["event"] == "preflight.attempt_failed"]
    into.attempts.append(len(failed) + 1)
    into.to_ready.append(event_time(events[-1]) - accepted_wall)
    into.server_logins.append(server.log_text().count("connection received: host=127.0.0.1"))
    if any(e["reason"] == "starting_up" for e in failed):
        into.starting_up += 1
    late = [e for e in failed if e["elapsed"] >= 3.0]
    down_for = accepted - started
    if late and down_for > 3.5:
        into.rates.append(len(late) / (down_for - 3.0))


def _ms(values: list[float], share: float | None = None) -> str:
    value = statistics.median(values) if share is None else percentile(values, share)
    return f"{value * 1000:.0f} ms"


def measure(servers: Servers, runs: int, delay: tuple[float, float]) -> str:
    server = servers.make("recovery", settings={"log_connections": "on"})
    rng = random.Random(1)
    now, before = Runs(), Runs()
    for index in range(runs):
        wait = rng.uniform(*delay)
        for command, into in in_turn([(PREFLIGHT, now), (BASELINE, before)], index):
            one_run(server, command, wait, into)
    stop_cleanly(server)
    rows = [
        ("notice latency median", _ms(now.latencies), _ms(before.latencies)),
        ("notice latency p95", _ms(now.latencies, 0.95), _ms(before.latencies, 0.95)),
        ("notice latency worst", _ms(now.latencies, 1.0), _ms(before.latencies, 1.0)),
        ("notice latency best", _ms(now.latencies, 0.0), _ms(before.latencies, 0.0)),
        ("until `preflight.ready` is logged, median", _ms(now.to_ready), _ms(before.to_ready)),
        (
            "logged attempts per run, median (min-max)",
            f"{statistics.median(now.attempts):g} ({min(now.attempts)}-{max(now.attempts)})",
            f"{statistics.median(before.attempts):g} "
            f"({min(before.attempts)}-{max(before.attempts)})",
        ),
        (
            "TCP connections the server saw per run (its log), median (max)",
            f"{statistics.median(now.server_logins):g} ({max(now.server_logins)})",
            f"{statistics.median(before.server_logins):g} ({max(before.server_logins)})",
        ),
        (
            'runs where an attempt met "the database system is starting up"',
            str(now.starting_up),
            str(before.starting_up),
        ),
        (
            "logged attempts per second after the first 3 s, median",
            f"{statistics.median(now.rates):.2f}" if now.rates else "-",
            f"{statistics.median(before.rates):.2f}" if before.rates else "-",
        ),
    ]
    med = statistics.median(now.latencies)
    worst = max(now.latencies)
    return "\n".join(
        [
            f"{runs} runs per contender, alternating; the server starts after a random "
            f"{delay[0]:g}-{delay[1]:g} s (the same delay for both in a round). Latency runs "
            "from the first moment a login succeeds (a 2 ms polling loop over the Unix "
            "socket) to the preflight's exit 0.",
            "",
            f"| measure | now | before ({BASELINE_REV}) |",
            "|---|---|---|",
            *(f"| {name} | {a} | {b} |" for name, a, b in rows),
            "",
            f"- Target: median ≤ {MEDIAN_TARGET:g} s: **{med:.3f} s — "
            f"{verdict(med <= MEDIAN_TARGET)}**.",
            f"- Target: worst ≤ {WORST_TARGET:g} s: **{worst:.3f} s — "
            f"{verdict(worst <= WORST_TARGET)}**.",
            "- A connection the server saw is a login (an answered knock is the login it "
            "started); a refused knock reaches no server process.",
        ]
    )


def run(servers: Servers, smoke: bool) -> str:
    if smoke:
        return measure(servers, 2, (0.5, 1.0))
    return measure(servers, 20, (2.0, 8.0))
