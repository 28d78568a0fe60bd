"""3. The herd: 100 processes wait for a server with few connection slots."""

from __future__ import annotations

import subprocess
import threading
import time
from collections import Counter

from benchmarks.common import PREFLIGHT, Servers, app_env, attempt_stamps, verdict
from tests.support import pg

TITLE = "3. The herd"


def measure(servers: Servers, processes: int, down: float) -> str:
    server = servers.make(
        "herd",
        settings={"max_connections": 20, "log_connections": "on", "log_disconnections": "on"},
    )
    server.stop()
    server.logfile.write_text("")
    env = app_env(server, PREFLIGHT_TIMEOUT="120")
    procs = [
        subprocess.Popen(
            [PREFLIGHT], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        for _ in range(processes)
    ]
    t0 = time.monotonic()
    wall0 = time.time()
    time.sleep(down)
    server.start(wait=False)
    peak = [0]
    stop = threading.Event()

    def monitor() -> None:
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

    watcher = threading.Thread(target=monitor, daemon=True)
    watcher.start()
    outputs = [p.communicate(timeout=180)[1] for p in procs]
    last_ready = time.monotonic() - t0
    stop.set()
    watcher.join(timeout=5)
    codes = Counter(p.returncode for p in procs)
    attempt_times, first_attempts = attempt_stamps(outputs, wall0)
    log = server.log_text()
    # TCP attempts only: the monitor above connects over the Unix socket ([local]).
    received = log.count("connection received: host=127.0.0.1")
    too_many = log.count("too many clients") + log.count("remaining connection slots")
    histogram = Counter(int(t * 10) for t in attempt_times)
    up_at = down
    rows = []
    for slot in range(max(0, int(up_at * 10) - 10), max(histogram) + 1):
        count = histogram.get(slot, 0)
        marker = " <- server starts" if slot == int(up_at * 10) else ""
        rows.append(f"{slot / 10:5.1f}s {count:4d} {'#' * min(count, 100)}{marker}")
    return "\n".join(
        [
            "| measure | value |",
            "|---|---|",
            f"| processes | {processes}, started together; server down for {down:g} s, then "
            "`max_connections=20` |",
            f"| exit codes | {dict(codes)} |",
            f"| time until the last one was ready | {last_ready:.2f} s after the start "
            f"({last_ready - down:.2f} s after the server was started) |",
            f"| connection attempts the server saw (`connection received` in its log) | "
            f"{received} |",
            f"| of those refused as too many clients | {too_many} |",
            f"| peak concurrent client connections (pg_stat_activity, 5 ms polling) | {peak[0]} |",
            f"| client attempts in all (from the preflights' logs) | {len(attempt_times)} |",
            f"| when the last process made its first attempt | {max(first_attempts):.2f} s "
            "(100 Python start-ups share 2 cores) |",
            "",
            f"- Target: all {processes} exit 0: **{verdict(codes == {0: processes})}**.",
            "",
            "Attempts per 100 ms from 1 s before the server starts (client side, all processes):",
            "",
            "```",
            *rows,
            "```",
        ]
    )


def run(servers: Servers, smoke: bool) -> str:
    return measure(servers, 5 if smoke else 100, 1.0 if smoke else 5.0)
