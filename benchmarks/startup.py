"""1. Start-up to ready: the preflight against its floor, pg_isready and Django."""

from __future__ import annotations

import re
import statistics
import subprocess
import time

from benchmarks.common import (
    BASELINE,
    BASELINE_REV,
    PREFLIGHT,
    PYTHON,
    Sample,
    Servers,
    app_env,
    base_env,
    fmt_mib,
    fmt_ms,
    run_measured,
    verdict,
)
from tests.support import pg

TITLE = "1. Start-up to ready (server already up)"

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


def measure(servers: Servers, runs: int) -> str:
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
        f"preflight before ({BASELINE_REV})": ([BASELINE], env),
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
    before = statistics.median(samples[names[2]].seconds) / floor
    rss_mib = statistics.median(pre.rss_kib) / 1024
    lines += [
        "",
        f"Runs: {runs} per command, alternating (the order rotates each round). "
        f"Median of the per-round preflight/floor ratios: {statistics.median(pair_ratios):.2f} "
        f"(before: {before:.2f}x the floor, in the same rounds).",
        "",
        f"- Target: preflight median wall time ≤ 1.0x the floor: "
        f"**{ratio:.2f}x — {verdict(ratio <= 1.0)}**.",
        f"- Target: peak RSS ≤ 40 MiB: **{rss_mib:.1f} MiB — {verdict(rss_mib <= 40)}**.",
        "",
        *exit_cost(env, runs),
        "",
        "What the preflight imports beyond the floor: `python -X importtime -c "
        f'"import psycopg; {_OURS}"`, every module after psycopg with 500 µs or more, '
        "cumulative µs (import order; nesting shown by indentation):",
        "",
        "```",
        *import_profile(),
        "```",
        "",
        *tenacity_cost(runs),
        "",
        *collector_cost(env, runs),
    ]
    return "\n".join(lines)


# The entry point as the console script runs it, with gc.disable() made a no-op (or not).
_ENTRY = "import gc, sys; {patch}sys.argv[0] = 'preflight'; from preflight._entry import run; run()"


def collector_cost(env: dict[str, str], runs: int) -> list[str]:
    """Start-up with the garbage collector on, against the entry point as it is (off)."""
    variants = {
        "off": [PYTHON, "-c", _ENTRY.format(patch="")],
        "on": [PYTHON, "-c", _ENTRY.format(patch="gc.disable = lambda: None; ")],
    }
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    rss: dict[str, list[int]] = {name: [] for name in variants}
    for _ in range(runs):  # alternating, as above
        for name, command in variants.items():
            wall, peak, code = run_measured(command, env)
            if code != 0:
                raise RuntimeError(f"the entry point with the collector {name} exited {code}")
            seconds[name].append(wall)
            rss[name].append(peak)
    saved = (statistics.median(seconds["on"]) - statistics.median(seconds["off"])) * 1000
    more = (statistics.median(rss["off"]) - statistics.median(rss["on"])) / 1024
    return [
        f"The garbage collector is off while the process starts (`preflight/_entry.py`) and "
        f"on again from the first wait. The same entry point with `gc.disable()` made a "
        f"no-op, {runs} alternating runs each: the collector costs **{saved:.1f} ms** of "
        f"start-up to ready (median difference), and leaving it off costs "
        f"**{more:.2f} MiB** of peak RSS.",
    ]


def tenacity_cost(runs: int) -> list[str]:
    """What importing tenacity adds to a process that has psycopg and structlog."""
    base = [PYTHON, "-c", "import psycopg, structlog"]
    more = [PYTHON, "-c", "import psycopg, structlog, tenacity"]
    without: list[float] = []
    with_it: list[float] = []
    for _ in range(runs):  # alternating, as above
        without.append(run_measured(base, base_env())[0])
        with_it.append(run_measured(more, base_env())[0])
    cost = (statistics.median(with_it) - statistics.median(without)) * 1000
    return [
        f"tenacity's import, after psycopg and structlog ({runs} alternating runs each, "
        f"median difference): **{cost:.1f} ms**. Decision (issue 18): one tenacity loop "
        "from the first attempt, tenacity imported up front; the fast exit (issue 19) "
        "saves more than the import costs. Before, the first attempt ran outside the "
        "loop so that a database up at once never imported tenacity.",
    ]


def _output_to_exit(command: list[str], env: dict[str, str]) -> float:
    """Seconds from the last line the process wrote on stderr to its exit."""
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, bufsize=0
    )
    assert proc.stderr is not None
    last = time.perf_counter()
    while proc.stderr.read(65536):
        last = time.perf_counter()
    proc.stderr.close()
    proc.wait()
    return time.perf_counter() - last


def exit_cost(env: dict[str, str], runs: int) -> list[str]:
    """From the final event to the exit, now and before (the interpreter's teardown)."""
    now: list[float] = []
    then: list[float] = []
    for _ in range(runs):
        now.append(_output_to_exit([PREFLIGHT], env))
        then.append(_output_to_exit([BASELINE], env))
    return [
        f"From the final event (`preflight.ready`) to the process's exit, {runs} alternating "
        f"runs each, median: **{statistics.median(now) * 1000:.1f} ms** now (`os._exit` after "
        f"the flushes), {statistics.median(then) * 1000:.1f} ms before (interpreter teardown).",
    ]


# Everything a check imports after psycopg: the entry point, the CLI, the loop, the logs.
_OURS = "import preflight._entry, preflight._cli, preflight._check, preflight._logging"


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
            f"import psycopg; {_OURS}",
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


def run(servers: Servers, smoke: bool) -> str:
    return measure(servers, 3 if smoke else 30)
