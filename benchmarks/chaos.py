"""5. Chaos: randomised fault injection against the real CLI (`make chaos`).

Each run draws one kind of fault and a time at which it heals (some heal
after the deadline, some never), starts the preflight (the production-like
install in .bench/runtime-venv) with PREFLIGHT_TIMEOUT=3, heals the fault, and
records what the preflight did against what the harness knows was true:

- false ready: exit 0 at a moment the database was not ready (the
  preflight's `preflight.ready` timestamp falls outside every window in which
  the harness had made the database ready: server started, lock released,
  standby promoted, pooler's server up, ...);
- fatal on retryable: every fault here heals by itself, so any exit but 0,
  10 (deadline) and 143 (SIGTERM) is a fault classified as fatal;
- deadline overrun: wall time from spawning the process to its exit, minus
  the timeout, for runs that ended at the deadline (process start included);
  for SIGTERM runs, the time from the signal to the exit;
- ready to exit: from the first moment the harness's own probe (login, query,
  and what the fault needs: not in recovery, extensions readable) succeeds
  after healing, to the preflight's exit 0.

Everything listens on loopback or inside network namespaces the run creates.
"""

from __future__ import annotations

import contextlib
import json
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from benchmarks.common import (
    PREFLIGHT,
    Servers,
    base_env,
    chaos_rounds,
    event_time,
    grouped,
    percentile,
    verdict,
)
from tests.support import faults, pg
from tests.support.cli import isolated
from tests.support.pgbouncer import PgBouncer

TITLE = "5. Chaos: randomised fault injection"
TIMEOUT = 3.0
CNPG_HOST = "balancer-postgres-rw"
TWO_ADDRESSES = "twoaddr.example.internal"
INF = float("inf")


def _probe(host: str, port: int, **options: Any) -> bool:
    """The harness's own truth: login, a query, and what ``options`` ask."""
    import psycopg

    want_primary = options.pop("primary", False)
    extensions = options.pop("extensions", False)
    try:
        with psycopg.connect(
            host=host,
            port=port,
            dbname=pg.APP_DB,
            user=pg.APP_USER,
            password=pg.APP_PASSWORD,
            connect_timeout=2,
            autocommit=True,
            **options,
        ) as conn:
            conn.execute("SET statement_timeout = 500")
            conn.execute("SELECT 1")
            if want_primary and conn.execute("SELECT pg_is_in_recovery()").fetchone() != (False,):
                return False
            if extensions:
                conn.execute("SELECT count(*) FROM pg_available_extensions")
            return True
    except psycopg.Error:
        return False


def _start(server: pg.LocalServer) -> None:
    subprocess.run(server.server_command("start", "-w", "-t", "30"), check=True)


def _stop(server: pg.LocalServer) -> None:
    subprocess.run(
        server.server_command("stop", "-m", "immediate", "-w"), check=False, capture_output=True
    )


def _running(server: pg.LocalServer) -> bool:
    done = subprocess.run(server.server_command("status"), capture_output=True, check=False)
    return done.returncode == 0


@dataclass
class Fault:
    """One injected fault, ready to run."""

    kind: str
    command: list[str]
    env: dict[str, str]
    heal: Callable[[], None] | None  # makes the database ready; None: never heals
    ready: Callable[[], bool]  # the harness's probe of real readiness
    windows: list[list[float]] = field(default_factory=list)  # [opened, closed] ready windows
    begin: Callable[[], None] | None = None  # started right after the spawn (restart loops)
    cleanup: Callable[[], None] = lambda: None
    signal_at: float | None = None  # SIGTERM this many seconds after the spawn


class Lab:
    """The servers, pooler and proxies the faults act on; built once per chaos run."""

    def __init__(self, servers: Servers) -> None:
        import trustme

        self.servers = servers
        self.base = servers.base
        self.plain = servers.make("chaos-plain")
        ca = trustme.CA(organization_name="chaos CA")
        leaf = ca.issue_cert("127.0.0.1", "localhost")
        chain = b"".join(blob.bytes() for blob in leaf.cert_chain_pems).decode()
        self.tls = servers.make("chaos-tls", tls=(chain, leaf.private_key_pem.bytes().decode()))
        self.full = servers.make(
            "chaos-full", settings={"max_connections": 8, "superuser_reserved_connections": 1}
        )
        self.pooled = servers.make("chaos-pooled")
        self.primary = servers.make("chaos-primary", settings={"wal_level": "replica"})
        self.pooler = PgBouncer(self.base, self.pooled.port, settings={"server_login_retry": 1})
        self.pooler.start()
        servers.cleanups.append(self.pooler.destroy)
        self.workdir = self.base / "chaos-ns"
        self.workdir.mkdir()

    def env(self, host: str, port: int, **extra: str) -> dict[str, str]:
        return {
            **base_env(),
            "SQL_HOST": host,
            "SQL_PORT": str(port),
            "SQL_DATABASE": pg.APP_DB,
            "SQL_USER": pg.APP_USER,
            "SQL_PASSWORD": pg.APP_PASSWORD,
            "PREFLIGHT_TIMEOUT": str(TIMEOUT),
            **extra,
        }

    def reset(self) -> None:
        """Every server up, the pooler up: the state each run starts from."""
        for server in (self.plain, self.tls, self.full, self.pooled, self.primary):
            if not _running(server):
                _start(server)
        if self.pooler.process is None or self.pooler.process.poll() is not None:
            self.pooler.start()


# --- the kinds of fault ---


def _healing_window(fault: Fault, action: Callable[[], object]) -> Callable[[], None]:
    """Heal with ``action``; the database may be ready from the moment it begins."""

    def heal() -> None:
        fault.windows.append([time.monotonic(), INF])
        action()

    return heal


def cold_start(lab: Lab, rng: random.Random) -> Fault:
    _stop(lab.plain)
    server = lab.plain
    fault = Fault(
        "cold start",
        [PREFLIGHT],
        lab.env(server.host, server.port),
        None,
        lambda: _probe(server.host, server.port, sslmode="disable"),
    )
    fault.heal = _healing_window(fault, lambda: _start(server))
    return fault


def _restart_loop(kind: str, server: pg.LocalServer, env: dict[str, str], **probe: Any) -> Fault:
    """The server restarts again and again (crash, start, up briefly) until healed."""
    stop = threading.Event()
    fault = Fault(kind, [PREFLIGHT], env, None, lambda: _probe(server.host, server.port, **probe))
    _stop(server)
    loop_rng = random.Random()

    def loop() -> None:
        for _ in range(100):  # bounded: the heal stops it much sooner
            if stop.is_set():
                return
            window = [time.monotonic(), INF]
            fault.windows.append(window)
            _start(server)
            if stop.wait(loop_rng.uniform(0.05, 0.4)):
                return
            _stop(server)
            window[1] = time.monotonic()
            if stop.wait(loop_rng.uniform(0.1, 0.6)):
                return

    thread = threading.Thread(target=loop, daemon=True)

    def heal() -> None:
        stop.set()
        thread.join(timeout=30)
        fault.windows.append([time.monotonic(), INF])
        if not _running(server):
            _start(server)

    fault.begin = thread.start
    fault.heal = heal
    return fault


def restart_loop(lab: Lab, rng: random.Random) -> Fault:
    env = lab.env(lab.plain.host, lab.plain.port)
    return _restart_loop("restart loop", lab.plain, env, sslmode="disable")


def restart_loop_tls(lab: Lab, rng: random.Random) -> Fault:
    env = lab.env(lab.tls.host, lab.tls.port, SQL_SSL_MODE="require")
    return _restart_loop("restart loop, TLS", lab.tls, env, sslmode="require")


def _proxied(kind: str, lab: Lab, server: pg.LocalServer, mode: str, **env: str) -> Fault:
    proxy = faults.Proxy((server.host, server.port), mode=mode, cut_after=40)
    sslmode = env.get("SQL_SSL_MODE", "disable")
    fault = Fault(
        kind,
        [PREFLIGHT],
        lab.env(proxy.host, proxy.port, **env),
        None,
        lambda: _probe(proxy.host, proxy.port, sslmode=sslmode),
        cleanup=proxy.close,
    )
    fault.heal = _healing_window(fault, lambda: setattr(proxy, "mode", faults.PASS))
    return fault


def handshake_cut(lab: Lab, rng: random.Random) -> Fault:
    return _proxied("TLS cut mid-handshake", lab, lab.tls, faults.CUT, SQL_SSL_MODE="require")


def stalled_server(lab: Lab, rng: random.Random) -> Fault:
    return _proxied("stalled server (accepts, never answers)", lab, lab.plain, faults.STALL)


def black_hole(lab: Lab, rng: random.Random) -> Fault:
    hole = faults.BlackHole("127.0.0.4")
    return Fault(
        "black hole (SYNs dropped)",
        [PREFLIGHT],
        lab.env(hole.host, hole.port),
        None,
        lambda: False,
        cleanup=hole.close,
    )


def two_black_holes(lab: Lab, rng: random.Random) -> Fault:
    first = faults.BlackHole("127.0.0.5")
    second = faults.BlackHole("127.0.0.6", first.port)
    lines = [f"127.0.0.5 {TWO_ADDRESSES}", f"127.0.0.6 {TWO_ADDRESSES}"]
    command = faults.hosts_wrapped([PREFLIGHT], lab.workdir, lines)

    def cleanup() -> None:
        first.close()
        second.close()

    return Fault(
        "name with two black-hole addresses",
        command,
        lab.env(TWO_ADDRESSES, first.port),
        None,
        lambda: False,
        cleanup=cleanup,
    )


def silent_resolver(lab: Lab, rng: random.Random) -> Fault:
    command = faults.silent_dns([PREFLIGHT], lab.workdir, cap=30)
    return Fault(
        "silent DNS resolver", command, lab.env("db.example.internal", 5432), None, lambda: False
    )


def too_many_clients(lab: Lab, rng: random.Random) -> Fault:
    import psycopg

    server = lab.full
    held = []
    for _ in range(20):  # fill every slot a non-superuser may take
        try:
            held.append(
                psycopg.connect(
                    host=server.host,
                    port=server.port,
                    dbname=pg.APP_DB,
                    user=pg.APP_USER,
                    password=pg.APP_PASSWORD,
                    sslmode="disable",
                )
            )
        except psycopg.OperationalError:
            break

    def release() -> None:
        for conn in held:
            conn.close()
        held.clear()

    fault = Fault(
        "too many clients",
        [PREFLIGHT],
        lab.env(server.host, server.port),
        None,
        lambda: _probe(server.host, server.port, sslmode="disable"),
        cleanup=release,
    )
    fault.heal = _healing_window(fault, release)
    return fault


def catalog_lock(lab: Lab, rng: random.Random) -> Fault:
    server = lab.plain
    stack = contextlib.ExitStack()
    stack.enter_context(faults.catalog_lock(server))
    fault = Fault(
        "lock on pg_extension (required extensions)",
        [PREFLIGHT],
        lab.env(server.host, server.port, PREFLIGHT_REQUIRE_EXTENSIONS="plpgsql"),
        None,
        lambda: _probe(server.host, server.port, sslmode="disable", extensions=True),
        cleanup=stack.close,
    )
    fault.heal = _healing_window(fault, stack.close)
    return fault


def pooler_server_down(lab: Lab, rng: random.Random) -> Fault:
    _stop(lab.pooled)
    pooler = lab.pooler
    fault = Fault(
        "server down behind PgBouncer",
        [PREFLIGHT],
        lab.env(pooler.host, pooler.port, SQL_SSL_MODE="disable"),
        None,
        lambda: _probe(pooler.host, pooler.port, sslmode="disable"),
    )
    fault.heal = _healing_window(fault, lambda: _start(lab.pooled))
    return fault


def pooler_restart(lab: Lab, rng: random.Random) -> Fault:
    pooler = lab.pooler
    pooler.stop()
    fault = Fault(
        "PgBouncer down, then up",
        [PREFLIGHT],
        lab.env(pooler.host, pooler.port, SQL_SSL_MODE="disable"),
        None,
        lambda: _probe(pooler.host, pooler.port, sslmode="disable"),
    )
    fault.heal = _healing_window(fault, pooler.start)
    return fault


def promotion(lab: Lab, rng: random.Random) -> Fault:
    standby = pg.LocalServer.standby_of(lab.primary, lab.servers.template, "chaos-standby")
    standby.start()
    standby.wait_ready()
    command = isolated([PREFLIGHT], {CNPG_HOST: "127.0.0.1"}, lab.workdir)
    fault = Fault(
        "standby promoted on -rw",
        command,
        lab.env(CNPG_HOST, standby.port),
        None,
        lambda: _probe(standby.host, standby.port, primary=True),
        cleanup=standby.destroy,
    )
    fault.heal = _healing_window(
        fault,
        lambda: subprocess.run(
            standby.server_command("promote", "-w"), check=True, capture_output=True
        ),
    )
    return fault


def sigterm(lab: Lab, rng: random.Random) -> Fault:
    """SIGTERM while the check waits on one of the hangs above."""
    hang = rng.choice([silent_resolver, catalog_lock, two_black_holes, stalled_server, cold_start])
    fault = hang(lab, rng)
    fault.kind = f"SIGTERM during: {fault.kind}"
    fault.env["PREFLIGHT_TIMEOUT"] = "60"
    fault.heal = None
    fault.signal_at = rng.uniform(0.8, 2.5)
    return fault


KINDS: list[Callable[[Lab, random.Random], Fault]] = [
    cold_start,
    restart_loop,
    restart_loop_tls,
    handshake_cut,
    stalled_server,
    black_hole,
    two_black_holes,
    silent_resolver,
    too_many_clients,
    catalog_lock,
    pooler_server_down,
    pooler_restart,
    promotion,
    sigterm,
]


# --- one run ---


@dataclass
class Outcome:
    kind: str
    code: int
    healed: bool
    heal_at: float | None
    seconds: float  # spawn to exit
    false_ready: bool = False
    fatal: bool = False
    overrun: float | None = None  # past the deadline (deadline runs) or past the signal
    ready_to_exit: float | None = None
    missed: bool = False  # healed well before the deadline, yet exit 10
    reason: str = ""


def _events(stderr: str) -> list[dict[str, Any]]:
    events = []
    for line in stderr.splitlines():
        with contextlib.suppress(ValueError):
            events.append(json.loads(line))
    return events


@dataclass
class Timeline:
    """What happened in one run, by the harness's monotonic clock."""

    spawned: float
    exited: float = 0.0
    ready_at: float | None = None  # the harness's probe first succeeded after the heal
    signalled: float | None = None
    stderr: str = ""


def _wait_ready(fault: Fault, limit: float = 15) -> float | None:
    """Poll the harness's probe after a heal; when it first succeeded (bounded)."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if fault.ready():
            return time.monotonic()
        time.sleep(0.005)
    return None


def _drive(fault: Fault, heal_at: float | None) -> tuple[Timeline, int]:
    """Spawn the preflight, act on the fault as planned, wait for the exit."""
    line = Timeline(time.monotonic())
    proc = subprocess.Popen(
        fault.command, env=fault.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    chunks: list[str] = []
    exits: list[float] = []

    stream = proc.stderr

    def watch() -> None:
        """Note the exit time as it happens, not when the harness looks."""
        proc.wait()
        exits.append(time.monotonic())

    reader = threading.Thread(target=lambda: chunks.append(stream.read()), daemon=True)
    watcher = threading.Thread(target=watch, daemon=True)
    reader.start()
    watcher.start()
    try:
        if fault.begin is not None:
            fault.begin()
        if fault.signal_at is not None:
            time.sleep(max(0.0, line.spawned + fault.signal_at - time.monotonic()))
            line.signalled = time.monotonic()
            proc.send_signal(signal.SIGTERM)
        elif heal_at is not None and fault.heal is not None:
            while proc.poll() is None and time.monotonic() < line.spawned + heal_at:
                time.sleep(0.01)
            fault.heal()
            line.ready_at = _wait_ready(fault)
        watcher.join(timeout=TIMEOUT + 30)
    finally:
        if proc.poll() is None:
            proc.kill()
        watcher.join(timeout=10)
        reader.join(timeout=10)
        fault.cleanup()
    line.exited = exits[0] if exits else time.monotonic()
    line.stderr = "".join(chunks)
    return line, proc.returncode


def _judge(
    fault: Fault, heal_at: float | None, line: Timeline, code: int, offset: float
) -> Outcome:
    """Compare what the preflight did with what the harness knows was true."""
    events = _events(line.stderr)
    out = Outcome(fault.kind, code, heal_at is not None, heal_at, line.exited - line.spawned)
    failed = [e for e in events if e.get("event") == "preflight.failed"]
    out.reason = str(failed[-1].get("reason", "")) if failed else ""
    if code == 0:
        ready = [e for e in events if e.get("event") == "preflight.ready"]
        ready_mono = event_time(ready[-1]) - offset if ready else line.exited
        out.false_ready = not any(start <= ready_mono <= end for start, end in fault.windows)
        # Only a ready in the final (healed) window measures noticing the heal.
        if line.ready_at is not None and ready_mono >= fault.windows[-1][0]:
            out.ready_to_exit = max(0.0, line.exited - line.ready_at)
    elif code not in (10, 143):
        out.fatal = True
    if line.signalled is not None:
        out.overrun = line.exited - line.signalled  # SIGTERM must act within 1 s
    else:
        out.overrun = max(0.0, out.seconds - TIMEOUT)  # the run must end within TIMEOUT + 1 s
        out.missed = code == 10 and heal_at is not None and heal_at < TIMEOUT - 1.5
    return out


def run_one(lab: Lab, kind: Callable[[Lab, random.Random], Fault], rng: random.Random) -> Outcome:
    lab.reset()
    fault = kind(lab, rng)
    # Three in ten healing faults heal after the deadline: the run must then end at it.
    heal_at: float | None = (
        rng.uniform(0.2, 2.4) if rng.random() < 0.7 else rng.uniform(TIMEOUT + 0.3, 4.5)
    )
    if fault.heal is None:
        heal_at = None
    offset = time.time() - time.monotonic()
    line, code = _drive(fault, heal_at)
    return _judge(fault, heal_at, line, code, offset)


# --- the report ---


def run(servers: Servers, smoke: bool, *, runs: int, seed: int) -> str:
    rng = random.Random(seed)
    lab = Lab(servers)

    def one(kind: Callable[[Lab, random.Random], Fault], _: int) -> Outcome:
        return run_one(lab, kind, rng)

    outcomes, took = chaos_rounds(KINDS, runs, rng, one, "chaos", 1 if smoke else 25)
    return report(outcomes, runs, seed, took)


def report(outcomes: list[Outcome], runs: int, seed: int, took: float) -> str:
    by_kind = grouped(outcomes, lambda outcome: outcome.kind.split(":")[0])
    false_ready = [o for o in outcomes if o.false_ready]
    fatal = [o for o in outcomes if o.fatal]
    overruns = [o.overrun for o in outcomes if o.overrun is not None]
    worst = max(overruns) if overruns else 0.0
    latencies = [o.ready_to_exit for o in outcomes if o.ready_to_exit is not None]
    p99 = percentile(latencies, 0.99) if latencies else float("nan")
    p50 = percentile(latencies, 0.5) if latencies else float("nan")
    lines = [
        f"{runs} runs over {len(by_kind)} kinds of fault (seed {seed}, {took / 60:.1f} min), "
        f"PREFLIGHT_TIMEOUT={TIMEOUT:g}. PgBouncer runs with `server_login_retry = 1` (its "
        "default, 15 s, would add up to 15 s after the server is back, a pooler setting, "
        "not the check).",
        "",
        "| target | figure | verdict |",
        "|---|---|---|",
        f"| false ready: 0 | {len(false_ready)} | **{verdict(not false_ready)}** |",
        f"| retryable faults that ended fatal: 0 | {len(fatal)} | **{verdict(not fatal)}** |",
        f"| deadline overrun ≤ 1 s (worst: spawn to exit less the timeout; SIGTERM: signal "
        "to exit) "
        f"| {worst:.2f} s | **{verdict(worst <= 1.0)}** |",
        f"| server ready to exit 0, p99 ≤ 1.0 s ({len(latencies)} runs; median {p50:.2f} s) "
        f"| {p99:.2f} s | **{verdict(p99 <= 1.0)}** |",
        "",
        "| kind of fault | runs | exit codes | false ready | fatal | worst overrun / signal s "
        "| ready→exit p50 / max s | healed early, still exit 10 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind, group in sorted(by_kind.items()):
        codes = dict(sorted(Counter(o.code for o in group).items()))
        over = [o.overrun for o in group if o.overrun is not None]
        lat = [o.ready_to_exit for o in group if o.ready_to_exit is not None]
        over_text = f"{max(over):.2f}" if over else "-"
        lat_text = f"{percentile(lat, 0.5):.2f} / {max(lat):.2f}" if lat else "-"
        lines.append(
            f"| {kind} | {len(group)} | {codes} | {sum(o.false_ready for o in group)} "
            f"| {sum(o.fatal for o in group)} | {over_text} | {lat_text} "
            f"| {sum(o.missed for o in group)} |"
        )
    misses = Counter(
        (
            o.kind,
            "false ready"
            if o.false_ready
            else f"fatal exit {o.code} ({o.reason})"
            if o.fatal
            else "overrun",
        )
        for o in outcomes
        if o.false_ready or o.fatal or (o.overrun is not None and o.overrun > 1.0)
    )
    slow = Counter(
        o.kind.split(":")[0]
        for o in outcomes
        if o.ready_to_exit is not None and o.ready_to_exit > 1.0
    )
    lines += ["", "Which faults caused the misses:", ""]
    if not misses and not slow:
        lines.append("- none")
    for (kind, what), count in sorted(misses.items()):
        lines.append(f"- {kind}: {what} x {count}")
    for kind, count in sorted(slow.items()):
        lines.append(f"- {kind}: ready→exit over 1 s x {count}")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover - use `python -m benchmarks.run chaos`
    raise SystemExit("run: python -m benchmarks.run chaos [--chaos-runs N]")
