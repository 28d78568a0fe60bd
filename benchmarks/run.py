"""Benchmarks for the preflight; writes benchmarks/RESULTS.md.

    make bench                         # everything, full counts (about 5 minutes)
    .venv/bin/python -m benchmarks.run startup recovery herd image
    .venv/bin/python -m benchmarks.run --smoke --out /tmp/r.md   # seconds; what the tests run

Each comparison runs both sides in the same run, alternating, and reports
the ratio of medians: absolute times on a shared machine drift, ratios hold.
Servers are throwaway local PostgreSQL servers (tests/support/pg.py).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support import pg  # noqa: E402 - the throwaway-server helper the tests use

BENCH_VENV = ROOT / ".bench" / "venv"
PYTHON = str(BENCH_VENV / "bin" / "python")
PREFLIGHT = str(BENCH_VENV / "bin" / "preflight")


def prepare_venv() -> None:
    """A production-like venv: locked dependencies and a regular (not editable)
    install of this checkout, byte-compiled as in the image.  Django comes from
    the dev lock for the Django-based contender."""
    if not (BENCH_VENV / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True)
        subprocess.run(
            [
                PYTHON,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--require-hashes",
                "-r",
                str(ROOT / "requirements" / "dev.txt"),
            ],
            check=True,
        )
    subprocess.run(
        [PYTHON, "-m", "pip", "install", "--quiet", "--no-deps", "--force-reinstall", str(ROOT)],
        check=True,
    )


FLOOR = """
import sys, psycopg
conn = psycopg.connect(sys.argv[1])
conn.execute("SELECT 1").fetchone()
conn.close()
"""

DJANGO = """
import sys, django
from django.conf import settings
settings.configure(DATABASES={"default": {
    "ENGINE": "django.db.backends.postgresql", "HOST": "127.0.0.1", "PORT": sys.argv[1],
    "NAME": "balancer", "USER": "balancer", "PASSWORD": sys.argv[2],
    "OPTIONS": {"sslmode": "disable", "gssencmode": "disable"}}})
django.setup()
from django.db import connection
connection.ensure_connection()
"""


@dataclass
class Sample:
    seconds: list[float] = field(default_factory=list)
    rss_kib: list[int] = field(default_factory=list)


def run_measured(command: Sequence[str], env: dict[str, str]) -> tuple[float, int, int]:
    """(wall seconds, peak RSS KiB, exit code) of one whole process.

    Peak RSS comes from GNU time: Linux carries ru_maxrss across fork and exec,
    so a child forked straight from this (large) Python process would report
    at least our own size.
    """
    with tempfile.NamedTemporaryFile("r") as report:
        start = time.perf_counter()
        done = subprocess.run(
            ["/usr/bin/time", "-f", "%M", "-o", report.name, *command],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        elapsed = time.perf_counter() - start
        rss = int(report.read().strip().splitlines()[-1])
    return elapsed, rss, done.returncode


def stats(values: Sequence[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def fmt_ms(values: Sequence[float]) -> str:
    med, lo, hi = stats(values)
    return f"{med * 1000:.1f} | {lo * 1000:.1f} | {hi * 1000:.1f}"


def fmt_mib(values: Sequence[int]) -> str:
    med, lo, hi = stats([v / 1024 for v in values])
    return f"{med:.1f} | {lo:.1f} | {hi:.1f}"


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SQL_", "PREFLIGHT_"))}
    env["PREFLIGHT_LOG_FORMAT"] = "json"
    return env


def app_env(server: pg.LocalServer, **extra: str) -> dict[str, str]:
    return {
        **base_env(),
        "SQL_HOST": server.host,
        "SQL_PORT": str(server.port),
        "SQL_DATABASE": pg.APP_DB,
        "SQL_USER": pg.APP_USER,
        "SQL_PASSWORD": pg.APP_PASSWORD,
        **extra,
    }


class Servers:
    """Throwaway servers for one benchmark run."""

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="preflight-bench-"))
        os.chmod(self.base, 0o755)  # noqa: S103 - the server user must enter it
        self.template = pg.Template(self.base)
        self.made: list[pg.LocalServer] = []

    def make(self, name: str, **config: Any) -> pg.LocalServer:
        server = pg.LocalServer(self.template, name, pg.ServerConfig(**config))
        self.made.append(server)
        server.start()
        pg.create_app_database(server)
        return server

    def close(self) -> None:
        for server in self.made:
            server.destroy()
        shutil.rmtree(self.base, ignore_errors=True)


# --- 1. start-up to ready ---


def startup(servers: Servers, runs: int) -> str:
    server = servers.make("startup")
    env = app_env(server)
    conninfo = (
        f"host=127.0.0.1 port={server.port} dbname={pg.APP_DB} user={pg.APP_USER} "
        f"sslmode=disable gssencmode=disable"
    )
    floor_env = {**base_env(), "PGPASSWORD": pg.APP_PASSWORD}
    pg_isready = str(server.bindir / "pg_isready")
    contenders: dict[str, tuple[list[str], dict[str, str]]] = {
        "preflight": ([PREFLIGHT], env),
        "floor (python + psycopg, login + SELECT 1)": ([PYTHON, "-c", FLOOR, conninfo], floor_env),
        "pg_isready (no login)": (
            [
                pg_isready,
                "-q",
                "-h",
                "127.0.0.1",
                "-p",
                str(server.port),
                "-d",
                pg.APP_DB,
                "-U",
                pg.APP_USER,
            ],
            base_env(),
        ),
        "Django ensure_connection()": (
            [PYTHON, "-c", DJANGO, str(server.port), pg.APP_PASSWORD],
            base_env(),
        ),
    }
    samples = {name: Sample() for name in contenders}
    pair_ratios: list[float] = []
    names = list(contenders)
    for command, cenv in contenders.values():  # warm the page cache
        run_measured(command, cenv)
    for index in range(runs):
        order = names[index % len(names) :] + names[: index % len(names)]
        this_run: dict[str, float] = {}
        for name in order:
            command, cenv = contenders[name]
            seconds, rss, code = run_measured(command, cenv)
            if code != 0:
                raise RuntimeError(f"{name} exited {code}")
            samples[name].seconds.append(seconds)
            samples[name].rss_kib.append(rss)
            this_run[name] = seconds
        pair_ratios.append(this_run["preflight"] / this_run[names[1]])
    floor = statistics.median(samples[names[1]].seconds)
    lines = [
        "| command | wall ms median | min | max | x floor (medians) | peak RSS MiB median "
        "| min | max |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        ratio = statistics.median(samples[name].seconds) / floor
        lines.append(
            f"| {name} | {fmt_ms(samples[name].seconds)} | {ratio:.2f} | "
            f"{fmt_mib(samples[name].rss_kib)} |"
        )
    pre = samples["preflight"]
    ratio = statistics.median(pre.seconds) / floor
    rss = statistics.median(pre.rss_kib) / 1024
    lines += [
        "",
        f"Runs: {runs} per command, alternating (the order rotates each round). "
        f"Median of the per-round preflight/floor ratios: {statistics.median(pair_ratios):.2f}.",
        "",
        f"- Target: preflight median wall time ≤ 1.2x the floor: "
        f"**{ratio:.2f}x — {'met' if ratio <= 1.2 else 'missed'}**.",
        f"- Target: peak RSS ≤ 40 MiB: **{rss:.1f} MiB — {'met' if rss <= 40 else 'missed'}**.",
        "",
        "What the preflight imports beyond the floor: `python -X importtime -c "
        '"import psycopg; import preflight._cli, preflight._check"`, every module '
        "after psycopg with 500 µs or more, cumulative µs (import order; nesting "
        "shown by indentation):",
        "",
        "```",
        *import_profile(),
        "```",
    ]
    return "\n".join(lines)


def import_profile() -> list[str]:
    """What the preflight imports beyond the floor (psycopg), cumulative µs.

    psycopg is imported first, so every line below it is the preflight's own
    addition; nested lines (indented) are shown down to 500 µs.
    """
    done = subprocess.run(
        [
            PYTHON,
            "-X",
            "importtime",
            "-c",
            "import psycopg; import preflight._cli, preflight._check",
        ],
        env=base_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    lines = done.stderr.splitlines()
    (start,) = [i for i, line in enumerate(lines) if line.endswith("| psycopg")]
    rows = []
    for line in lines[start:]:
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\s*)(\S+)$", line)
        if match and int(match.group(1)) >= 500 and len(match.group(2)) <= 6:
            rows.append(f"{int(match.group(1)):>8} | {match.group(2)}{match.group(3)}")
    return rows


# --- 2. time to notice recovery ---


def stop_cleanly(server: pg.LocalServer) -> None:
    """A clean (fast) shutdown, so the next start needs no crash recovery."""
    subprocess.run(
        server.server_command("stop", "-m", "fast", "-w"), check=False, capture_output=True
    )


def _accepting(server: pg.LocalServer) -> float:
    """Poll until a login works; the monotonic time it first did."""
    import psycopg

    while True:
        try:
            with server.admin():
                return time.monotonic()
        except psycopg.OperationalError:
            time.sleep(0.002)


def recovery(servers: Servers, runs: int, delay: tuple[float, float]) -> str:
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
        ready_wall = datetime.datetime.fromisoformat(
            events[-1]["timestamp"].replace("Z", "+00:00")
        ).timestamp()
        to_ready.append(ready_wall - accepted_wall)
        if any(e["reason"] == "starting_up" for e in failed):
            saw_starting_up.append(1)
        late = [e for e in failed if e["elapsed"] >= 3.0]
        down_for = accepted - started
        if late and down_for > 3.5:
            rates.append(len(late) / (down_for - 3.0))
        stop_cleanly(server)
    ordered = sorted(latencies)
    p95 = ordered[max(0, round(0.95 * len(ordered)) - 1)]
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
            f"- Target: median ≤ 0.5 s: **{med:.3f} s — {'met' if med <= 0.5 else 'missed'}**.",
            f"- Target: p95 ≤ 1.2 s: **{p95:.3f} s — {'met' if p95 <= 1.2 else 'missed'}**.",
            "- Target: ≤ about 2 attempts/s per process after the first seconds: "
            + (
                f"**{rate:.2f}/s — {'met' if rate <= 2.2 else 'missed'}**."
                if rates
                else "not measured (no run was down for more than 3.5 s)."
            ),
        ]
    )


# --- 3. the herd ---


def herd(servers: Servers, processes: int, down: float) -> str:
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
            f"- Target: all {processes} exit 0: "
            f"**{'met' if codes == {0: processes} else 'missed'}**.",
            "",
            "Attempts per 100 ms from 1 s before the server starts (client side, all processes):",
            "",
            "```",
            *rows,
            "```",
        ]
    )


def attempt_stamps(outputs: Sequence[str], wall0: float) -> tuple[list[float], list[float]]:
    """(every attempt's time, each process's first attempt time), seconds since wall0."""
    every: list[float] = []
    firsts: list[float] = []
    for output in outputs:
        mine = []
        for line in output.splitlines():
            event = json.loads(line)
            if event["event"] in ("preflight.attempt_failed", "preflight.ready"):
                stamp = datetime.datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
                mine.append(stamp.timestamp() - wall0)
        every += mine
        if mine:
            firsts.append(min(mine))
    return every, firsts


def jitter(processes: int, seconds: float) -> str:
    """100 processes wait on a closed port; how evenly do their attempts spread?"""
    env = {
        **base_env(),
        "SQL_HOST": "127.0.0.1",
        "SQL_PORT": str(pg.free_port()),
        "SQL_DATABASE": "d",
        "SQL_USER": "u",
        "PREFLIGHT_TIMEOUT": "0",
    }
    wall0 = time.time()
    procs = [
        subprocess.Popen(
            [PREFLIGHT], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        for _ in range(processes)
    ]
    time.sleep(seconds)
    for proc in procs:
        proc.terminate()
    outputs = [p.communicate(timeout=30)[1] for p in procs]
    codes = Counter(p.returncode for p in procs)
    every, firsts = attempt_stamps(outputs, wall0)
    start = max(firsts) + 3.0  # every process past its first, fast retries
    window = [t for t in every if start <= t < seconds]
    slots = Counter(int((t - start) * 10) for t in window)
    counts = [slots.get(i, 0) for i in range(int((seconds - start) * 10))]
    mean = statistics.mean(counts)
    rate = len(window) / processes / (seconds - start)
    excerpt = [f"{start + i / 10:5.1f}s {c:3d} {'#' * c}" for i, c in enumerate(counts[:30])]
    return "\n".join(
        [
            f"{processes} processes against a closed port for {seconds:g} s, then SIGTERM "
            f"(exit codes {dict(codes)}). Window: from 3 s after the last process's first "
            f"attempt ({start:.1f} s) to {seconds:g} s, {len(counts)} slots of 100 ms.",
            "",
            "| measure | value |",
            "|---|---|",
            f"| attempts in the window | {len(window)} ({rate:.2f} per process per second) |",
            f"| attempts per 100 ms: mean / min / max | {mean:.1f} / {min(counts)} / "
            f"{max(counts)} |",
            f"| coefficient of variation | {statistics.pstdev(counts) / mean:.2f} |",
            "",
            f"In lockstep all {processes} would land in the same slot about every 0.6 s and the "
            "slots between would be empty; with jitter the busiest slot holds "
            f"{max(counts)} attempts. The first 3 s of the window:",
            "",
            "```",
            *excerpt,
            "```",
        ]
    )


# --- 4. the image ---


def image() -> str:
    from tests.support import image as img

    if not img.buildah_available() or os.geteuid() != 0:
        return "Not measured: building the image needs root, buildah and debootstrap."
    img.build()
    size, files = img.venv_footprint()
    mb = size / 1e6
    top = subprocess.run(
        [
            "buildah",
            "run",
            "--isolation",
            "chroot",
            *_container(img.IMAGE),
            "--",
            "python3",
            "-c",
            "import os,sys;r='/opt/preflight/lib/python3.11/site-packages';"
            "print('\\n'.join(f'{sum(os.path.getsize(os.path.join(d,f)) for d,_,fs in "
            "os.walk(os.path.join(r,n)) for f in fs)/1e6:6.2f} MB  {n}' "
            "for n in sorted(os.listdir(r))))",
        ],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return "\n".join(
        [
            f"- The venv layer (`/opt/preflight`, all the image adds to its base): "
            f"**{mb:.1f} MB in {files} files** — target ≤ 18 MB: "
            f"**{'met' if mb <= 18 else 'missed'}**.",
            "- What is in it (site-packages by package):",
            "",
            "```",
            top.strip(),
            "```",
            "",
            "No pip, setuptools or compiler: `tests/image/test_image.py` checks that. "
            "psycopg-binary carries its own libpq and OpenSSL (`psycopg_binary.libs`).",
        ]
    )


def _container(name: str) -> list[str]:
    ctr = subprocess.run(
        ["buildah", "from", name], capture_output=True, text=True, check=True
    ).stdout.strip()
    _CLEANUP.append(
        lambda: subprocess.run(["buildah", "rm", ctr], capture_output=True, check=False)
    )
    return [ctr]


_CLEANUP: list[Callable[[], object]] = []


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    version = subprocess.run(
        [str(pg.pg_bindir() / "postgres"), "--version"],  # type: ignore[operator]
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return (
        f"{platform.system()} {platform.release()}, {os.cpu_count()} cores ({cpu}), "
        f"Python {platform.python_version()}, {version}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "parts", nargs="*", metavar="PART", help="startup, recovery, herd, image (default: all)"
    )
    parser.add_argument("--smoke", action="store_true", help="tiny counts, for the tests")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "RESULTS.md"))
    args = parser.parse_args(argv)
    everything = ["startup", "recovery", "herd", "image"]
    args.parts = args.parts or everything
    if set(args.parts) - set(everything):
        parser.error(f"parts are {', '.join(everything)}")
    prepare_venv()
    servers = Servers()
    sections = []
    command = (
        "python -m benchmarks.run " + " ".join(args.parts) + (" --smoke" if args.smoke else "")
    )
    try:
        if "startup" in args.parts:
            sections.append(
                (
                    "1. Start-up to ready (server already up)",
                    startup(servers, 3 if args.smoke else 30),
                )
            )
        if "recovery" in args.parts:
            sections.append(
                (
                    "2. Time to notice a database that comes up",
                    recovery(
                        servers, 2 if args.smoke else 20, (0.5, 1.0) if args.smoke else (2.0, 8.0)
                    ),
                )
            )
        if "herd" in args.parts:
            sections.append(
                ("3. The herd", herd(servers, 5 if args.smoke else 100, 1.0 if args.smoke else 5.0))
            )
        if "herd" in args.parts:
            sections.append(
                (
                    "3b. Jitter among waiting processes",
                    jitter(5 if args.smoke else 100, 6.0 if args.smoke else 20.0),
                )
            )
        if "image" in args.parts and not args.smoke:
            sections.append(("4. The image", image()))
    finally:
        servers.close()
        for cleanup in _CLEANUP:
            cleanup()
    today = datetime.date.today().isoformat()
    text = [
        "# Benchmark results",
        "",
        f"- Date: {today}",
        f"- Machine: {machine()}",
        f"- Command: `{command}` (from the repository root, with `.venv/bin/python`)",
        "",
        "Written by `benchmarks/run.py`; do not edit by hand.",
    ]
    for title, body in sections:
        text += ["", f"## {title}", "", body]
    Path(args.out).write_text("\n".join(text) + "\n")
    print("\n".join(text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
