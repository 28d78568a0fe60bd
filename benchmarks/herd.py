"""3. The herd: 100 processes wait for a server with few connection slots; this
checkout and the code before issue 19, in alternating rounds, each herd against
a fresh server with the same history (so each crash recovery redoes the same
WAL)."""

from __future__ import annotations

import datetime
import json
import statistics
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from benchmarks.common import (
    BASELINE,
    BASELINE_REV,
    PREFLIGHT,
    Servers,
    app_env,
    attempt_stamps,
    event_time,
    in_turn,
    percentile,
    verdict,
)
from tests.support import pg

TITLE = "3. The herd"
# The herd's server: few slots, every connection in its log, log times in UTC.
SETTINGS = {
    "max_connections": 20,
    "log_connections": "on",
    "log_disconnections": "on",
    "log_timezone": "UTC",
}


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
    # Per process: when its first attempt that reached the server (any answer but a
    # refusal) was logged, seconds after the server began to listen; and how many of
    # those first answers were the login.
    first_answers: list[float]
    first_ok: int
    window: float  # from listening to accepting logins (its log), seconds


def _logged_at(log: str, marker: str) -> float:
    """When the server logged the first line holding ``marker`` (epoch seconds; its
    log_line_prefix is ``%m``, milliseconds in its log_timezone, :data:`SETTINGS`)."""
    for line in log.splitlines():
        if marker in line:
            stamp = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S.%f")
            return stamp.replace(tzinfo=datetime.UTC).timestamp()
    raise LookupError(f"the server never logged {marker!r}")


def _first_answers(outputs: list[str], since: float) -> tuple[list[float], int]:
    """(each process's first answered attempt, s after ``since``; how many logged in)."""
    times: list[float] = []
    logged_in = 0
    for output in outputs:
        for line in output.splitlines():
            event = json.loads(line)
            ready = event["event"] == "preflight.ready"
            answered = event["event"] == "preflight.attempt_failed" and event["reason"] != "refused"
            if ready or answered:
                times.append(event_time(event) - since)
                logged_in += ready
                break
    return times, logged_in


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
    texts = ["".join(lines) for lines in outputs]
    attempt_times, first_attempts = attempt_stamps(texts, wall0)
    log = server.log_text()
    listening = _logged_at(log, "listening on IPv4 address")
    first_answers, first_ok = _first_answers(texts, listening)
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
        first_answers=first_answers,
        first_ok=first_ok,
        window=_logged_at(log, "ready to accept connections") - listening,
    )


def fresh_herd(servers: Servers, name: str, command: str, processes: int, down: float) -> Herd:
    """One herd against a fresh server of its own (:data:`SETTINGS`), stopped after."""
    server = servers.make(name, settings=SETTINGS)
    try:
        return _herd(server, command, processes, down)
    finally:
        server.stop()


def _spread(values: list[int]) -> str:
    return f"{statistics.median(values):g} ({min(values)}-{max(values)})"


def measure(servers: Servers, processes: int, down: float, rounds: int) -> str:
    herds: dict[str, list[Herd]] = {PREFLIGHT: [], BASELINE: []}
    for index in range(rounds):
        for command in in_turn([PREFLIGHT, BASELINE], index):
            name = f"herd-{index}-{'now' if command == PREFLIGHT else 'before'}"
            herds[command].append(fresh_herd(servers, name, command, processes, down))
    now, before = herds[PREFLIGHT], herds[BASELINE]

    def row(name: str, measure: Callable[[Herd], str]) -> str:
        return f"| {name} | {' · '.join(map(measure, now))} | {' · '.join(map(measure, before))} |"

    def answers(herd: Herd, share: float) -> str:
        return f"{percentile(herd.first_answers, share) * 1000:.0f}"

    received = [h.received for h in now], [h.received for h in before]
    ok = all(h.codes == {0: processes} for h in now)
    polite = statistics.median(received[0]) <= statistics.median(received[1])
    return "\n".join(
        [
            f"{processes} processes started together; the server starts {down:g} s after the "
            "last of them made its first attempt, with `max_connections=20` (17 slots for "
            f"the app's user). {rounds} rounds, the order alternating; each herd gets a fresh "
            "server with the same history, which it crash-stops first, so every start redoes "
            "the same WAL. A cell lists the rounds in order.",
            "",
            f"| measure | now | before ({BASELINE_REV}) |",
            "|---|---|---|",
            row("exit codes", lambda h: str(dict(h.codes))),
            row("last one ready, after the server was started", lambda h: f"{h.last_ready:.2f} s"),
            row(
                "connection attempts the server saw (`connection received` in its log)",
                lambda h: str(h.received),
            ),
            row("of those refused as too many clients", lambda h: str(h.too_many)),
            row("of those refused as starting up", lambda h: str(h.starting_up)),
            row(
                'of those refused in its crash recovery ("not yet accepting connections")',
                lambda h: str(h.recovering),
            ),
            row(
                "from listening to accepting logins (its log)",
                lambda h: f"{h.window * 1000:.0f} ms",
            ),
            row(
                "first attempt that reached the server, ms after it began to listen: "
                "median / p95 / last",
                lambda h: f"{answers(h, 0.5)} / {answers(h, 0.95)} / {answers(h, 1.0)}",
            ),
            row(
                "processes whose first attempt that reached the server logged in",
                lambda h: str(h.first_ok),
            ),
            row(
                "peak concurrent client connections (pg_stat_activity, 5 ms polling)",
                lambda h: str(h.peak),
            ),
            row("logged attempts in all (the preflights' logs)", lambda h: str(h.attempts)),
            row(
                "when the last process made its first attempt",
                lambda h: f"{h.last_first:.2f} s",
            ),
            "",
            f"- Target: all {processes} exit 0 in every round: **{verdict(ok)}**.",
            f"- Target: server-side connection attempts ≤ before's, median of the rounds: "
            f"**{_spread(received[0])} vs {_spread(received[1])} — {verdict(polite)}**.",
            "",
            "Logged attempts per 100 ms from 1 s before the server starts (now, first round, "
            "all processes; knocks are not logged):",
            "",
            "```",
            *now[0].rows,
            "```",
        ]
    )


def run(servers: Servers, smoke: bool) -> str:
    if smoke:
        return measure(servers, 5, 1.0, rounds=1)
    return measure(servers, 100, 5.0, rounds=3)
