"""What every benchmark scenario shares: the production-like venv, measured
runs, formatting, environments and throwaway servers."""

from __future__ import annotations

import datetime
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support import pg  # noqa: E402 - the throwaway-server helper the tests use

BENCH_VENV = ROOT / ".bench" / "runtime-venv"
PYTHON = str(BENCH_VENV / "bin" / "python")
PREFLIGHT = str(BENCH_VENV / "bin" / "preflight")
# The code before issue 19 (hand-written first attempt, no knocks, interpreter
# teardown at exit), measured in the same runs as this checkout: "before".
BASELINE_REV = "15ca252"
BASELINE_VENV = ROOT / ".bench" / f"runtime-baseline-{BASELINE_REV}"
BASELINE = str(BASELINE_VENV / "bin" / "preflight")


def _locked_blocks(lock: Path, names: set[str]) -> str:
    """The pinned, hashed requirement blocks of ``names`` out of a pip-compile lock."""
    blocks: list[str] = []
    keep = False
    for line in lock.read_text().splitlines():
        if line and not line.startswith((" ", "#")):
            keep = line.split("==")[0].strip().lower() in names
        if keep and not line.lstrip().startswith("#"):
            blocks.append(line)
    return "\n".join(blocks) + "\n"


def prepare_venv() -> None:
    """A production-like venv: what the image installs (``requirements/runtime.txt``,
    hash-locked) and a regular (not editable) install of this checkout; Django and
    its two dependencies from the dev lock for the Django-based contender.  Not the
    dev lock as a whole: structlog imports ``rich`` wherever it is installed (twine
    brings it), which costs 5 MiB of RSS the image never pays."""
    if not (BENCH_VENV / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True)
        django = BENCH_VENV / "django-requirements.txt"
        django.write_text(
            _locked_blocks(ROOT / "requirements" / "dev.txt", {"django", "asgiref", "sqlparse"})
        )
        for requirements in (ROOT / "requirements" / "runtime.txt", django):
            pip = [PYTHON, "-m", "pip", "install", "--quiet", "--require-hashes"]
            subprocess.run([*pip, "-r", str(requirements)], check=True)
    subprocess.run(
        [PYTHON, "-m", "pip", "install", "--quiet", "--no-deps", "--force-reinstall", str(ROOT)],
        check=True,
    )


def prepare_baseline() -> None:
    """The same venv with the package of :data:`BASELINE_REV` installed instead."""
    if (BASELINE_VENV / "bin" / "preflight").exists():
        return
    source = ROOT / ".bench" / f"src-{BASELINE_REV}"
    shutil.rmtree(source, ignore_errors=True)
    source.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", BASELINE_REV], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
    shutil.copytree(BENCH_VENV, BASELINE_VENV, symlinks=True)
    python = str(BASELINE_VENV / "bin" / "python")
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--no-deps", "--force-reinstall", str(source)],
        check=True,
    )


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


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile (``share`` in 0..1) of a non-empty sequence."""
    ordered = sorted(values)
    return ordered[max(0, round(share * len(ordered)) - 1)]


def fmt_ms(values: Sequence[float]) -> str:
    med, lo, hi = stats(values)
    return f"{med * 1000:.1f} | {lo * 1000:.1f} | {hi * 1000:.1f}"


def fmt_mib(values: Sequence[int]) -> str:
    med, lo, hi = stats([v / 1024 for v in values])
    return f"{med:.1f} | {lo:.1f} | {hi:.1f}"


def verdict(ok: bool) -> str:
    return "met" if ok else "missed"


def base_env() -> dict[str, str]:
    """This environment without the app's settings, and without PYTHONPATH: each
    contender imports the package installed in its own venv (the smoke test sets
    PYTHONPATH to the checkout, which the baseline would import instead)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SQL_", "PREFLIGHT_", "PG")) and k != "PYTHONPATH"
    }
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


def closed_port_env(**extra: str) -> dict[str, str]:
    """The app's settings pointing at a loopback port where nothing listens."""
    return {
        **base_env(),
        "SQL_HOST": "127.0.0.1",
        "SQL_PORT": str(pg.free_port()),
        "SQL_DATABASE": "d",
        "SQL_USER": "u",
        **extra,
    }


def event_time(event: dict[str, Any]) -> float:
    """An event's ``timestamp`` as seconds since the epoch."""
    stamp = str(event["timestamp"]).replace("Z", "+00:00")
    return datetime.datetime.fromisoformat(stamp).timestamp()


def attempt_stamps(outputs: Sequence[str], wall0: float) -> tuple[list[float], list[float]]:
    """(every attempt's time, each process's first attempt time), seconds since wall0."""
    every: list[float] = []
    firsts: list[float] = []
    for output in outputs:
        mine = []
        for line in output.splitlines():
            event = json.loads(line)
            if event["event"] in ("preflight.attempt_failed", "preflight.ready"):
                mine.append(event_time(event) - wall0)
        every += mine
        if mine:
            firsts.append(min(mine))
    return every, firsts


def stop_cleanly(server: pg.LocalServer) -> None:
    """A clean (fast) shutdown, so the next start needs no crash recovery."""
    subprocess.run(
        server.server_command("stop", "-m", "fast", "-w"), check=False, capture_output=True
    )


Kind = TypeVar("Kind")
Result = TypeVar("Result")


def in_turn(items: Sequence[Kind], index: int) -> list[Kind]:
    """``items`` in round ``index``'s order: as given in even rounds, reversed in odd
    ones, so no contender always goes first."""
    return list(items) if index % 2 == 0 else list(items)[::-1]


def chaos_rounds(
    kinds: Sequence[Kind],
    runs: int,
    rng: random.Random,
    one: Callable[[Kind, int], Result],
    label: str,
    every: int,
) -> tuple[list[Result], float]:
    """``runs`` runs of ``one(kind, number)``, every kind evenly, in a random order;
    (their results, seconds taken).  Progress goes to stdout every ``every`` runs."""
    order = [kinds[i % len(kinds)] for i in range(runs)]
    rng.shuffle(order)
    results: list[Result] = []
    started = time.monotonic()
    for number, kind in enumerate(order, 1):
        results.append(one(kind, number))
        if number % every == 0:
            print(f"{label} {number}/{runs} {time.monotonic() - started:.0f}s", flush=True)
    return results, time.monotonic() - started


def grouped(results: Sequence[Result], key: Callable[[Result], str]) -> dict[str, list[Result]]:
    """``results`` by ``key``, in their order."""
    groups: dict[str, list[Result]] = {}
    for result in results:
        groups.setdefault(key(result), []).append(result)
    return groups


class Servers:
    """Throwaway servers for one benchmark run, and what to clean up after it."""

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="preflight-bench-"))
        os.chmod(self.base, 0o755)  # noqa: S103 - the server user must enter it
        self.template = pg.Template(self.base)
        self.made: list[pg.LocalServer] = []
        self.cleanups: list[Callable[[], object]] = []

    def make(self, name: str, **config: Any) -> pg.LocalServer:
        server = pg.LocalServer(self.template, name, pg.ServerConfig(**config))
        self.made.append(server)
        server.start()
        pg.create_app_database(server)
        return server

    def close(self) -> None:
        for cleanup in reversed(self.cleanups):
            cleanup()
        for server in self.made:
            server.destroy()
        shutil.rmtree(self.base, ignore_errors=True)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    bindir = pg.pg_bindir()
    version = (
        subprocess.run(
            [str(bindir / "postgres"), "--version"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if bindir
        else "no PostgreSQL"
    )
    return (
        f"{platform.system()} {platform.release()}, {os.cpu_count()} cores ({cpu}), "
        f"Python {platform.python_version()}, {version}"
    )
