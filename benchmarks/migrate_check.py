"""What the schema gate costs: ``preflight.django migrate --check`` against Django's own.

    .venv/bin/python -m benchmarks.migrate_check                 # prints a Markdown section
    .venv/bin/python -m benchmarks.migrate_check --runs 3 --notice 1   # a quick look

Both commands run in the app venvs of the tests (tests/support/appvenv.py:
balancer's Django 4.2.3 + psycopg2-binary 2.9.6, and Django 5.2 + psycopg 3),
in the test project (tests/fixtures/djangoapp), against a throwaway local
server whose schema is current, alternating, each under GNU time for its peak
RSS.  Then the notice latency: ``--check`` waits on a fresh database while a
runner migrates, and the time from the last migration's commit (the server's
``django_migrations.applied``) to the gate's exit is measured.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support import appvenv, cli, pg  # noqa: E402 - the tests' helpers


def env_for(server: pg.LocalServer, database: str, **extra: str) -> dict[str, str]:
    return cli.base_env(
        SQL_HOST=server.host,
        SQL_PORT=str(server.port),
        SQL_DATABASE=database,
        SQL_USER=pg.APP_USER,
        SQL_PASSWORD=pg.APP_PASSWORD,
        DJANGO_SETTINGS_MODULE="appsite.settings",
        PREFLIGHT_TERMINATION_LOG=os.devnull,
        **extra,
    )


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


def create_database(server: pg.LocalServer, name: str) -> None:
    with server.admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}" OWNER "{pg.APP_USER}"')


def cost(server: pg.LocalServer, venv: appvenv.AppVenv, runs: int) -> list[str]:
    database = f"bench_{venv.spec.name.replace('-', '_')}"
    create_database(server, database)
    env = env_for(server, database)
    gate = appvenv.app_command(venv, "-m", "preflight.django", "migrate")
    subprocess.run(gate, cwd=appvenv.DJANGOAPP, env=env, capture_output=True, check=True)
    sides = {
        "preflight.django migrate --check": [*gate, "--check"],
        "manage.py migrate --check": appvenv.app_command(venv, "manage.py", "migrate", "--check"),
    }
    results: dict[str, list[tuple[float, int]]] = {name: [] for name in sides}
    for _ in range(runs):
        for name, command in sides.items():
            results[name].append(measured(command, env))
    rows = []
    for name, values in results.items():
        walls = [wall for wall, _ in values]
        rss = [kib / 1024 for _, kib in values]
        rows.append(
            f"| {venv.spec.name} | `{name}` | {statistics.median(walls) * 1000:.0f} ms "
            f"(min {min(walls) * 1000:.0f}, max {max(walls) * 1000:.0f}) "
            f"| {statistics.median(rss):.1f} MiB (max {max(rss):.1f}) |"
        )
    return rows


def notice(server: pg.LocalServer, venv: appvenv.AppVenv, number: int) -> float:
    """Seconds from the last migration's commit to the waiting gate's exit."""
    database = f"notice_{venv.spec.name.replace('-', '_')}_{number}"
    create_database(server, database)
    env = env_for(server, database)
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


def stop_time(server: pg.LocalServer, venv: appvenv.AppVenv, number: int) -> float:
    """Seconds from SIGTERM to exit for a runner inside a 60 s ``pg_sleep`` migration."""
    database = f"stop_{venv.spec.name.replace('-', '_')}_{number}"
    create_database(server, database)
    env = env_for(server, database, DJANGOAPP_SLOW_SECONDS="60")
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="runs of each command per venv")
    parser.add_argument("--notice", type=int, default=5, help="notice-latency runs per venv")
    args = parser.parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="bench-migrate-"))
    base.chmod(0o755)
    server = pg.LocalServer(pg.Template(base), "bench-migrate")
    server.start()
    try:
        pg.create_app_database(server)
        venvs = [appvenv.ready(appvenv.BALANCER), appvenv.ready(appvenv.SPECS[3])]
        rows: list[str] = []
        latencies: dict[str, list[float]] = {}
        stops: dict[str, list[float]] = {}
        for venv in venvs:
            rows += cost(server, venv, args.runs)
            latencies[venv.spec.name] = [notice(server, venv, n) for n in range(args.notice)]
            stops[venv.spec.name] = [stop_time(server, venv, n) for n in range(args.notice)]
    finally:
        server.destroy()
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "## Schema gate: `migrate --check` cost and notice latency",
        "",
        f"`.venv/bin/python -m benchmarks.migrate_check --runs {args.runs} "
        f"--notice {args.notice}` on {stamp}, {platform.python_version()}, "
        f"{os.cpu_count()} cores (shared). The schema is current; each command runs "
        f"{args.runs} times per venv, alternating; wall time from process start to exit, "
        "peak RSS from GNU time.",
        "",
        "| app venv | command | wall time, median | peak RSS, median |",
        "|---|---|---|---|",
        *rows,
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
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
