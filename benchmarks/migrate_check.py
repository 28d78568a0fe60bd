"""7. The migrate runner's cost, against Django's own commands, and the schema gate.

    .venv/bin/python -m benchmarks.run migrate-cost            # RESULTS.md section 7
    .venv/bin/python -m benchmarks.run migrate-cost --smoke    # a quick look

Every command runs in the app venvs of the tests (tests/support/appvenv.py:
balancer's Django 4.2.3 + psycopg2-binary 2.9.6, and Django 5.2 + psycopg 3),
in the test project (tests/fixtures/djangoapp), against a throwaway local
server whose schema is current, the sides alternating, each under GNU time
for its peak RSS:

- ``python -m preflight.django migrate`` (system checks included, as
  ``manage.py migrate`` runs them) against ``manage.py migrate``: target
  within 5 % in wall time and in peak RSS (ratio of medians);
- ``--skip-checks`` beside them, where the runner has it: what the checks cost;
- ``migrate --check`` against ``manage.py migrate --check``, separately.

Then the notice latency: ``--check`` waits on a fresh database while a runner
migrates, and the time from the last migration's commit (the server's
``django_migrations.applied``) to the gate's exit is measured; and the time
from SIGTERM to the exit of a runner inside a long migration statement.
"""

from __future__ import annotations

import datetime
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence

from benchmarks.common import Servers, verdict
from tests.support import appvenv, pg
from tests.support import migrate as m

TITLE = "7. The migrate runner: cost against manage.py, and the schema gate"
TARGET = 1.05  # the runner within 5 % of manage.py migrate


def measured(command: Sequence[str], env: dict[str, str]) -> tuple[float, int]:
    """(wall seconds, peak RSS KiB) of one run, which must exit 0."""
    with tempfile.NamedTemporaryFile("r") as report:
        start = time.perf_counter()
        done = subprocess.run(
            ["/usr/bin/time", "-f", "%M", "-o", report.name, *command],
            cwd=appvenv.DJANGOAPP,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.perf_counter() - start
        assert done.returncode == 0, done.stdout + done.stderr
        return wall, int(report.read().split()[-1])


def _runner(venv: appvenv.AppVenv, *args: str) -> list[str]:
    return appvenv.app_command(venv, "-m", "preflight.django", "migrate", *args)


def _skips_checks(venv: appvenv.AppVenv, env: dict[str, str]) -> bool:
    """Whether this runner has ``--skip-checks``."""
    done = subprocess.run(
        [*_runner(venv), "--help"], cwd=appvenv.DJANGOAPP, env=env, capture_output=True, text=True
    )
    return "--skip-checks" in done.stdout


def _alternate(
    sides: dict[str, list[str]], env: dict[str, str], runs: int
) -> dict[str, list[tuple[float, int]]]:
    """Each side ``runs`` times, in turn (the order rotating each round)."""
    results: dict[str, list[tuple[float, int]]] = {name: [] for name in sides}
    names = list(sides)
    for round_ in range(runs):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            results[name].append(measured(sides[name], env))
    return results


def _paired(values: list[tuple[float, int]], base: list[tuple[float, int]], key: int) -> float:
    """The median of the per-round ratios (the two ran side by side, under the same load)."""
    return float(statistics.median(v[key] / b[key] for v, b in zip(values, base, strict=True)))


def _rows(
    venv: appvenv.AppVenv, results: dict[str, list[tuple[float, int]]], baseline: str
) -> list[str]:
    base = results[baseline]
    rows = []
    for name, values in results.items():
        walls = [wall for wall, _ in values]
        rss = [kib / 1024 for _, kib in values]
        rows.append(
            f"| {venv.spec.name} | `{name}` | {statistics.median(walls) * 1000:.0f} "
            f"({min(walls) * 1000:.0f}-{max(walls) * 1000:.0f}) "
            f"| {_paired(values, base, 0):.3f} "
            f"| {statistics.median(rss):.1f} ({max(rss):.1f}) "
            f"| {_paired(values, base, 1):.3f} |"
        )
    return rows


def cost(
    server: pg.LocalServer, venv: appvenv.AppVenv, runs: int
) -> tuple[list[str], list[str], list[tuple[str, float, float]]]:
    """(migrate rows, --check rows, [(venv, wall ratio, RSS ratio)] of runner vs manage.py)."""
    database = m.new_database(server, f"cost_{venv.spec.name.replace('-', '_')}")
    env = m.app_env(server.host, server.port, database)
    subprocess.run(_runner(venv), cwd=appvenv.DJANGOAPP, env=env, capture_output=True, check=True)
    manage = appvenv.app_command(venv, "manage.py", "migrate")
    migrate_sides = {"manage.py migrate": manage, "preflight.django migrate": _runner(venv)}
    if _skips_checks(venv, env):
        migrate_sides["preflight.django migrate --skip-checks"] = _runner(venv, "--skip-checks")
    migrated = _alternate(migrate_sides, env, runs)
    checked = _alternate(
        {
            "manage.py migrate --check": [*manage, "--check"],
            "preflight.django migrate --check": _runner(venv, "--check"),
        },
        env,
        runs,
    )

    ours, theirs = migrated["preflight.django migrate"], migrated["manage.py migrate"]
    return (
        _rows(venv, migrated, "manage.py migrate"),
        _rows(venv, checked, "manage.py migrate --check"),
        [(venv.spec.name, _paired(ours, theirs, 0), _paired(ours, theirs, 1))],
    )


def notice(server: pg.LocalServer, venv: appvenv.AppVenv) -> float:
    """Seconds from the last migration's commit to the waiting gate's exit."""
    database = m.new_database(server, f"notice_{venv.spec.name.replace('-', '_')}")
    env = m.app_env(server.host, server.port, database)
    gate = appvenv.app_command(venv, "-m", "preflight.django", "migrate")
    checker = subprocess.Popen(
        [*gate, "--check"],
        cwd=appvenv.DJANGOAPP,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.5)  # the gate is up and waiting
    slow = {**env, "DJANGOAPP_SLOW_SECONDS": "1"}
    subprocess.run(gate, cwd=appvenv.DJANGOAPP, env=slow, capture_output=True, check=True)
    checker.wait(timeout=120)
    exited = datetime.datetime.now(datetime.UTC)
    assert checker.returncode == 0
    with server.admin(database) as conn:
        row = conn.execute("SELECT max(applied) FROM django_migrations").fetchone()
    assert row is not None
    return float((exited - row[0]).total_seconds())


def stop_time(server: pg.LocalServer, venv: appvenv.AppVenv) -> float:
    """Seconds from SIGTERM to exit for a runner inside a 60 s ``pg_sleep`` migration."""
    database = m.new_database(server, f"stop_{venv.spec.name.replace('-', '_')}")
    env = m.app_env(server.host, server.port, database, DJANGOAPP_SLOW_SECONDS="60")
    runner = subprocess.Popen(
        appvenv.app_command(venv, "-m", "preflight.django", "migrate"),
        cwd=appvenv.DJANGOAPP,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    with server.admin(database) as conn:
        while not conn.execute(
            "SELECT 1 FROM pg_stat_activity WHERE datname = current_database()"
            " AND query LIKE '%pg_sleep%' AND pid <> pg_backend_pid()"
        ).fetchall():
            time.sleep(0.05)
    sent = time.perf_counter()
    runner.send_signal(signal.SIGTERM)
    assert runner.wait(timeout=60) == 143
    return time.perf_counter() - sent


def run(servers: Servers, smoke: bool) -> str:
    runs, repeats = (2, 1) if smoke else (25, 5)
    server = servers.make("bench-migrate")
    venvs = [appvenv.ready(appvenv.BALANCER), appvenv.ready(appvenv.SPECS[3])]
    migrate_rows: list[str] = []
    check_rows: list[str] = []
    ratios: list[tuple[str, float, float]] = []
    latencies: dict[str, list[float]] = {}
    stops: dict[str, list[float]] = {}
    for venv in venvs:
        rows, checks, ratio = cost(server, venv, runs)
        migrate_rows += rows
        check_rows += checks
        ratios += ratio
        latencies[venv.spec.name] = [notice(server, venv) for _ in range(repeats)]
        stops[venv.spec.name] = [stop_time(server, venv) for _ in range(repeats)]
    header = (
        "| app venv | command | wall ms, median (min-max) | x first row (per-round median) | "
        "peak RSS MiB, median (max) | x first row (per-round median) |"
    )
    lines = [
        f"The schema is current (nothing to apply); each command {runs} times per venv, "
        "the commands alternating (the order rotating each round); wall time from process "
        "start to exit, peak RSS from GNU time. Shared machine: each ratio is the median "
        "of the per-round ratios (the two commands ran one after the other, under the same "
        f"load), {datetime.datetime.now(datetime.UTC):%H:%M} UTC.",
        "",
        "`migrate`: the runner (system checks included, as `manage.py migrate` runs them) "
        "against `manage.py migrate`:",
        "",
        header,
        "|---|---|---|---|---|---|",
        *migrate_rows,
        "",
    ]
    for name, wall, rss in ratios:
        ok = wall <= TARGET and rss <= TARGET
        lines.append(
            f"- Target ({name}): the runner within 5 % of `manage.py migrate`: wall "
            f"{wall:.3f}x, peak RSS {rss:.3f}x: **{verdict(ok)}**."
        )
    lines += [
        "",
        "`--check` (the schema gate: no system checks, nothing applied), reported "
        "separately, against Django's `manage.py migrate --check`:",
        "",
        header,
        "|---|---|---|---|---|---|",
        *check_rows,
        "",
        "Notice latency: `--check` waits on a fresh database while a runner applies the "
        "four migrations (one sleeps 1 s); from the last migration's commit "
        "(`django_migrations.applied`) to the gate's exit:",
        "",
        "| app venv | runs | median | max |",
        "|---|---|---|---|",
    ]
    for name, values in latencies.items():
        lines.append(
            f"| {name} | {len(values)} | {statistics.median(values):.2f} s | {max(values):.2f} s |"
        )
    lines += [
        "",
        "SIGTERM to a runner inside the slow migration (a 60 s `pg_sleep` statement) "
        "until it has exited with 143:",
        "",
        "| app venv | runs | median | max |",
        "|---|---|---|---|",
    ]
    for name, values in stops.items():
        lines.append(
            f"| {name} | {len(values)} | {statistics.median(values) * 1000:.0f} ms "
            f"| {max(values) * 1000:.0f} ms |"
        )
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover - use `python -m benchmarks.run migrate-cost`
    raise SystemExit("run: python -m benchmarks.run migrate-cost [--smoke]")
