"""2. Time to notice a database that comes up: start the server after a random
delay and measure from the first login that works to the preflight's exit 0."""

from __future__ import annotations

import json
import random
import statistics
import subprocess
import threading
import time

from benchmarks.common import (
    PREFLIGHT,
    Servers,
    app_env,
    event_time,
    percentile,
    stop_cleanly,
    verdict,
)
from tests.support import pg

TITLE = "2. Time to notice a database that comes up"


def _accepting(server: pg.LocalServer) -> float:
    """Poll until a login works; the monotonic time it first did."""
    import psycopg

    while True:
        try:
            with server.admin():
                return time.monotonic()
        except psycopg.OperationalError:
            time.sleep(0.002)


def measure(servers: Servers, runs: int, delay: tuple[float, float]) -> str:
    server = servers.make("recovery")
    stop_cleanly(server)
    rng = random.Random(1)
    latencies: list[float] = []
    rates: list[float] = []
    attempts_per_run: list[int] = []
    saw_starting_up: list[int] = []
    to_ready: list[float] = []  # accepting -> the preflight logs preflight.ready
    for _ in range(runs):
        proc = subprocess.Popen(
            [PREFLIGHT],
            env=app_env(server, PREFLIGHT_TIMEOUT="0"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        started = time.monotonic()
        exited: list[float] = []
        stderr: list[str] = []

        def wait(
            p: subprocess.Popen[str] = proc,
            stderr: list[str] = stderr,
            exited: list[float] = exited,
        ) -> None:
            assert p.stderr is not None
            stderr.append(p.stderr.read())
            p.wait()
            exited.append(time.monotonic())

        waiter = threading.Thread(target=wait)
        waiter.start()
        time.sleep(rng.uniform(*delay))
        server.start(wait=False)
        accepted = _accepting(server)
        accepted_wall = time.time() - (time.monotonic() - accepted)
        waiter.join(timeout=30)
        if proc.returncode != 0:
            raise RuntimeError(f"preflight exited {proc.returncode}: {stderr}")
        latencies.append(exited[0] - accepted)
        events = [json.loads(line) for line in stderr[0].splitlines()]
        failed = [e for e in events if e["event"] == "preflight.attempt_failed"]
        attempts_per_run.append(len(failed) + 1)
        ready_wall = event_time(events[-1])
        to_ready.append(ready_wall - accepted_wall)
        if any(e["reason"] == "starting_up" for e in failed):
            saw_starting_up.append(1)
        late = [e for e in failed if e["elapsed"] >= 3.0]
        down_for = accepted - started
        if late and down_for > 3.5:
            rates.append(len(late) / (down_for - 3.0))
        stop_cleanly(server)
    p95 = percentile(latencies, 0.95)
    med = statistics.median(latencies)
    rate = statistics.median(rates) if rates else float("nan")
    return "\n".join(
        [
            "| measure | value |",
            "|---|---|",
            f"| runs | {runs} (server started after a random {delay[0]:g}-{delay[1]:g} s) |",
            f"| notice latency median | {med * 1000:.0f} ms |",
            f"| notice latency p95 | {p95 * 1000:.0f} ms |",
            f"| notice latency min / max | {min(latencies) * 1000:.0f} / "
            f"{max(latencies) * 1000:.0f} ms |",
            f"| of which until `preflight.ready` is logged, median | "
            f"{statistics.median(to_ready) * 1000:.0f} ms (the rest is process exit) |",
            f"| attempts per run median (min-max) | {statistics.median(attempts_per_run):g} "
            f"({min(attempts_per_run)}-{max(attempts_per_run)}) |",
            f"| attempt rate after the first 3 s, median | {rate:.2f} per second |",
            f'| runs where an attempt met "the database system is starting up" | '
            f"{len(saw_starting_up)} |",
            "",
            "Latency is measured from the first moment a login succeeds (a 2 ms polling loop "
            "in the benchmark) to the preflight's exit 0.",
            "",
            f"- Target: median ≤ 0.5 s: **{med:.3f} s — {verdict(med <= 0.5)}**.",
            f"- Target: p95 ≤ 1.2 s: **{p95:.3f} s — {verdict(p95 <= 1.2)}**.",
            "- Target: ≤ about 2 attempts/s per process after the first seconds: "
            + (
                f"**{rate:.2f}/s — {verdict(rate <= 2.2)}**."
                if rates
                else "not measured (no run was down for more than 3.5 s)."
            ),
        ]
    )


def run(servers: Servers, smoke: bool) -> str:
    if smoke:
        return measure(servers, 2, (0.5, 1.0))
    return measure(servers, 20, (2.0, 8.0))
