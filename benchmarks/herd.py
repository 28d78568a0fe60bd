"""3. The herd: 100 processes wait for a server with few connection slots; this
checkout and the code before issue 19, one herd after the other."""

from __future__ import annotations

import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass

from benchmarks.common import (
    BASELINE,
    BASELINE_REV,
    PREFLIGHT,
    Servers,
    app_env,
    attempt_stamps,
    verdict,
)
from tests.support import pg

TITLE = "3. The herd"


@dataclass
class Herd:
    codes: Counter[int]
    last_ready: float
    received: int
    too_many: int
    starting_up: int
    recovering: int
    peak: int
    attempts: int
    last_first: float
    rows: list[str]


def _watch_peak(server: pg.LocalServer, peak: list[int], stop: threading.Event) -> None:
    import psycopg

    while not stop.is_set():
        try:
            with server.admin() as conn:
                while not stop.is_set():
                    (count,) = conn.execute(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE backend_type = 'client backend' AND usename = %s",
                        [pg.APP_USER],
                    ).fetchone() or (0,)
                    peak[0] = max(peak[0], int(count))
                    time.sleep(0.005)
        except psycopg.OperationalError:
            time.sleep(0.01)


def _herd(server: pg.LocalServer, command: str, processes: int, down: float) -> Herd:
    """One herd: the server starts ``down`` s after the last process's first attempt
    (100 Python start-ups on a loaded 2-core machine take tens of seconds)."""
    server.stop()
    server.logfile.write_text("")
    env = app_env(server, PREFLIGHT_TIMEOUT="300")
    procs = [
        subprocess.Popen(
            [command], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        for _ in range(processes)
    ]
    t0 = time.monotonic()
    wall0 = time.time()
    outputs: list[list[str]] = [[] for _ in procs]
    waiting = threading.Semaphore(0)

    def read(proc: subprocess.Popen[str], lines: list[str]) -> None:
        assert proc.stderr is not None
        announced = False
        for line in proc.stderr:
            if not announced and "preflight.attempt_failed" in line:
                announced = True
                waiting.release()
            lines.append(line)
        if not announced:  # ended without one: do not keep the herd waiting
            waiting.release()
        proc.wait()

    readers = [
        threading.Thread(target=read, args=(p, lines), daemon=True)
        for p, lines in zip(procs, outputs, strict=True)
    ]
    for reader in readers:
        reader.start()
    cap = time.monotonic() + 180
    for _ in procs:
        waiting.acquire(timeout=max(0.0, cap - time.monotonic()))
    time.sleep(down)
    up_at = time.monotonic() - t0
    server.start(wait=False)
    peak = [0]
    stop = threading.Event()
    watcher = threading.Thread(target=_watch_peak, args=(server, peak, stop), daemon=True)
    watcher.start()
    for reader in readers:
        reader.join(timeout=300)
    last_ready = time.monotonic() - t0
    stop.set()
    watcher.join(timeout=5)
    attempt_times, first_attempts = attempt_stamps(["".join(lines) for lines in outputs], wall0)
    log = server.log_text()
    histogram = Counter(int(t * 10) for t in attempt_times)
    rows = []
    for slot in range(max(0, int(up_at * 10) - 10), max(histogram) + 1):
        count = histogram.get(slot, 0)
        marker = " <- server starts" if slot == int(up_at * 10) else ""
        rows.append(f"{slot / 10:5.1f}s {count:4d} {'#' * min(count, 100)}{marker}")
    return Herd(
        codes=Counter(p.returncode for p in procs),
        last_ready=last_ready - up_at,
        # TCP attempts only: the monitor connects over the Unix socket ([local]).
        received=log.count("connection received: host=127.0.0.1"),
        too_many=log.count("too many clients") + log.count("remaining connection slots"),
        starting_up=log.count("the database system is starting up"),
        recovering=log.count("the database system is not yet accepting connections"),
        peak=peak[0],
        attempts=len(attempt_times),
        last_first=max(first_attempts),
        rows=rows,
    )


def measure(servers: Servers, processes: int, down: float) -> str:
    server = servers.make(
        "herd",
        settings={"max_connections": 20, "log_connections": "on", "log_disconnections": "on"},
    )
    now = _herd(server, PREFLIGHT, processes, down)
    before = _herd(server, BASELINE, processes, down)
    server.stop()

    def row(name: str, a: object, b: object) -> str:
        return f"| {name} | {a} | {b} |"

    ok = now.codes == {0: processes}
    polite = now.received <= before.received
    return "\n".join(
        [
            f"{processes} processes started together; the server starts {down:g} s after the "
            "last of them made its first attempt, with `max_connections=20`. The two herds "
            "run one after the other.",
            "",
            f"| measure | now | before ({BASELINE_REV}) |",
            "|---|---|---|",
            row("exit codes", dict(now.codes), dict(before.codes)),
            row(
                "last one ready, after the server was started",
                f"{now.last_ready:.2f} s",
                f"{before.last_ready:.2f} s",
            ),
            row(
                "connection attempts the server saw (`connection received` in its log)",
                now.received,
                before.received,
            ),
            row("of those refused as too many clients", now.too_many, before.too_many),
            row("of those refused as starting up", now.starting_up, before.starting_up),
            row(
                'of those refused in its crash recovery ("not yet accepting connections")',
                now.recovering,
                before.recovering,
            ),
            row(
                "peak concurrent client connections (pg_stat_activity, 5 ms polling)",
                now.peak,
                before.peak,
            ),
            row("logged attempts in all (the preflights' logs)", now.attempts, before.attempts),
            row(
                "when the last process made its first attempt",
                f"{now.last_first:.2f} s",
                f"{before.last_first:.2f} s",
            ),
            "",
            f"- Target: all {processes} exit 0: **{verdict(ok)}**.",
            f"- Target: server-side connection attempts ≤ before's: **{now.received} vs "
            f"{before.received} — {verdict(polite)}**.",
            "",
            "Logged attempts per 100 ms from 1 s before the server starts (now, all processes; "
            "knocks are not logged):",
            "",
            "```",
            *now.rows,
            "```",
        ]
    )


def run(servers: Servers, smoke: bool) -> str:
    return measure(servers, 5 if smoke else 100, 1.0 if smoke else 5.0)
