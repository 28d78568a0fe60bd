"""6. Migrate chaos: concurrent migrate runners under randomised faults (`make chaos-migrate`).

Each run creates a fresh database, starts 3-5 runners of ``python -m
preflight.django migrate --then visit`` at once (in an app venv of the tests,
alternating balancer's Django 4.2.3 + psycopg2-binary 2.9.6 and Django 5.2 +
psycopg 3), each through a TCP proxy of its own, injects one kind of fault,
waits for every runner to exit, and judges them by the server's records:

- double-applied: a migration recorded twice in ``django_migrations``, or the
  slow migration (``slow_applied``) or the data migration (``ledger_marker``)
  committed more than once;
- exit 0 after a lost lock or a failed follow-up: a runner that exited 0 although
  the harness had cut it off from the server (frozen, killed sessions), or its
  ``--then`` failed, or its follow-up overlapped another runner's;
- advisory locks left behind: any advisory lock on the server once every
  runner has exited and the harness's own sessions are gone (after a frozen
  peer: once the runner's documented dead-peer bound has passed);
- deadline overrun: for a runner that exited 10, the time from its spawn to its
  exit, less ``--timeout`` (and the same from its first log line, reported).

Everything listens on loopback; the freeze needs root (TCP repair mode, see
tests/support/faults.py ``Proxy.freeze``).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import random
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from benchmarks.common import Servers, chaos_rounds, grouped, percentile, verdict
from tests.support import appvenv, faults, pg
from tests.support import migrate as m
from tests.support.pgbouncer import PgBouncer

TITLE = "6. Migrate chaos: concurrent runners under faults"
SHORT = 3.0  # --timeout where the deadline is the point
LONG = 20.0  # --timeout where the runners should finish
# The runner's documented bound for a dead peer's lock (keepalives 10 s + 3 x 5 s, or
# tcp_user_timeout 30 s), plus a margin: after it, a lock left is a lock left behind.
DEAD_PEER = 45.0
CAP = 120.0  # a runner still running after this is killed and counted as hung


@dataclass
class Scenario:
    """One run: how its runners start, what the harness does meanwhile, what it knows."""

    kind: str
    timeout: float = LONG
    slow: str = "1"
    then: tuple[str, ...] = ("visit",)
    act: Callable[[Run], None] = lambda run: None
    prepare: Callable[[Lab, str, contextlib.ExitStack], None] = lambda lab, db, stack: None
    follow_up_fails: bool = False
    via_pooler: bool = False
    stall: bool = False


@dataclass
class Run:
    """A run under way: its runners, their proxies, and what the harness did to them."""

    lab: Lab
    scenario: Scenario
    database: str
    runners: list[m.Runner]
    proxies: list[faults.Proxy]
    stack: contextlib.ExitStack  # the harness's own sessions (a stranger's lock)
    cut_off: set[int] = field(default_factory=set)  # runners the harness cut off
    frozen: bool = False  # a peer vanished: its lock may take DEAD_PEER to free

    def holder(self, timeout: float = 30) -> int | None:
        """The index of the runner that took the lock (None if none did in time)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for index, runner in enumerate(self.runners):
                if runner.named("preflight.migrate.locked"):
                    return index
            if all(r.proc.poll() is not None for r in self.runners):
                return None
            time.sleep(0.02)
        return None

    def migrating(self, timeout: float = 30) -> bool:
        """Until a runner's session is inside the slow migration (its ``pg_sleep``)."""
        return faults.wait_for(
            lambda: m.sessions_in(self.lab.server, self.database, "query LIKE '%%pg_sleep%%'"),
            timeout,
            step=0.05,
        )


class Lab:
    """The server, the transaction-mode PgBouncer and the app venvs; built once."""

    def __init__(self, servers: Servers) -> None:
        self.server = servers.make("mchaos")
        self.pooler = PgBouncer(
            servers.base, self.server.port, pool_mode="transaction", any_database=True
        )
        self.pooler.start()
        servers.cleanups.append(self.pooler.destroy)
        self.venvs = [appvenv.ready(appvenv.BALANCER), appvenv.ready(appvenv.SPECS[3])]
        self.logs = Path(tempfile.mkdtemp(prefix="mchaos-", dir=servers.base))


# --- the kinds of fault ---


def kill_holder(signum: int) -> Callable[[Run], None]:
    """Signal the lock holder while it is inside the slow migration."""

    def act(run: Run) -> None:
        holder = run.holder()
        if holder is not None and run.migrating():
            run.runners[holder].proc.send_signal(signum)
            run.cut_off.add(holder)

    return act


def sigkill(rng: random.Random) -> Scenario:
    return Scenario("kill -9 of the holder mid-migration", slow="3", act=kill_holder(9))


def sigterm(rng: random.Random) -> Scenario:
    return Scenario("SIGTERM to the holder mid-migration", slow="3", act=kill_holder(15))


def freeze_holder(rng: random.Random) -> Scenario:
    """The holder's network freezes mid-migration (no FIN, no RST), then it is killed."""
    delay = rng.uniform(0.0, 2.0)

    def act(run: Run) -> None:
        holder = run.holder()
        if holder is None or not run.migrating():
            return
        run.proxies[holder].freeze(vanish_upstream=True)
        run.cut_off.add(holder)
        run.frozen = True
        proc = run.runners[holder].proc
        faults.wait_for(lambda: proc.poll() is not None, delay, step=0.05)
        proc.kill()

    return Scenario(
        "freeze of the holder mid-migration, then kill -9",
        timeout=DEAD_PEER + 15,
        slow="4",
        act=act,
    )


def _idle_role(lab: Lab, database: str, stack: contextlib.ExitStack) -> None:
    with lab.server.admin() as conn:
        conn.execute(
            psycopg.sql.SQL("ALTER ROLE {} IN DATABASE {} SET idle_session_timeout = '1s'").format(
                psycopg.sql.Identifier(pg.APP_USER), psycopg.sql.Identifier(database)
            )
        )


def idle_session_timeout(rng: random.Random) -> Scenario:
    """The role has idle_session_timeout = 1 s while a 2-3 s migration runs."""
    return Scenario(
        "role with idle_session_timeout = 1 s", slow=f"{rng.uniform(2, 3):.1f}", prepare=_idle_role
    )


def pooler(rng: random.Random) -> Scenario:
    return Scenario("PgBouncer in transaction mode", via_pooler=True)


def stalled(rng: random.Random) -> Scenario:
    return Scenario("stalled server (SSLRequest answered, then silence)", SHORT, stall=True)


def _stranger(lab: Lab, database: str, stack: contextlib.ExitStack) -> None:
    stack.enter_context(m.stranger(lab.server, database))


def stranger(rng: random.Random) -> Scenario:
    """A plain session holds the lock, and lets go before or after the deadline."""
    hold = rng.uniform(0.5, 2.0) if rng.random() < 0.5 else SHORT + 2

    def act(run: Run) -> None:
        faults.wait_for(lambda: all(r.proc.poll() is not None for r in run.runners), hold)
        run.stack.close()

    return Scenario("stranger holding the lock", SHORT, act=act, prepare=_stranger)


def failing_follow_up(rng: random.Random) -> Scenario:
    status = rng.choice([1, 3, 256])
    return Scenario(
        f"failing follow-up (exit {status})",
        then=("visit", f"failwith {status}"),
        follow_up_fails=True,
    )


def drop_waiters(rng: random.Random) -> Scenario:
    """The network of every runner but the holder freezes during the lock wait."""

    def act(run: Run) -> None:
        holder = run.holder()
        if holder is None:
            return
        for index, runner in enumerate(run.runners):
            if index == holder or runner.proc.poll() is not None:
                continue
            with contextlib.suppress(AssertionError):
                runner.wait_event("preflight.migrate.waiting", timeout=10)
            run.proxies[index].freeze(vanish_upstream=True)
            run.cut_off.add(index)
            run.frozen = True

    return Scenario("network drop during the lock wait", SHORT + 3, slow="5", act=act)


KINDS: list[Callable[[random.Random], Scenario]] = [
    sigkill,
    sigterm,
    freeze_holder,
    idle_session_timeout,
    pooler,
    stalled,
    stranger,
    failing_follow_up,
    drop_waiters,
]


# --- one run ---


@dataclass
class Outcome:
    kind: str
    codes: list[int]
    double_applied: bool = False
    exit0_after_loss: int = 0  # runners
    locks_left: int = 0
    overruns: list[float] = field(default_factory=list)  # first log line to exit, less timeout
    spawn_overruns: list[float] = field(default_factory=list)  # spawn to exit, less timeout
    hung: int = 0  # runners killed at CAP
    notes: list[str] = field(default_factory=list)  # what else went wrong


def _start(
    lab: Lab,
    scenario: Scenario,
    database: str,
    count: int,
    number: int,
    stack: contextlib.ExitStack,
) -> Run:
    venv = lab.venvs[number % len(lab.venvs)]
    runners: list[m.Runner] = []
    proxies: list[faults.Proxy] = []
    args = ["--timeout", f"{scenario.timeout:g}"]
    for then in scenario.then:
        args += ["--then", then]
    for index in range(count):
        if scenario.via_pooler:
            host, port = lab.pooler.host, lab.pooler.port
        else:
            mode = faults.HANDSHAKE_STALL if scenario.stall else faults.PASS
            proxy = faults.Proxy((lab.server.host, lab.server.port), mode=mode)
            proxies.append(proxy)
            host, port = proxy.host, proxy.port
        env = m.app_env(
            host, port, database, DJANGOAPP_SLOW_SECONDS=scenario.slow, DJANGOAPP_SLOW_RECORD="1"
        )
        log = lab.logs / f"run-{number}-{index}.log"
        runners.append(m.Runner(venv, env, log, *args))
    return Run(lab, scenario, database, runners, proxies, stack)


def _overlapping(visits: Sequence[tuple[Any, ...]]) -> set[int]:
    """Pids of follow-ups that ran while another one did."""
    pids: set[int] = set()
    for (pid_a, start_a, end_a), (pid_b, start_b, end_b) in itertools.combinations(visits, 2):
        if start_a < end_b and start_b < end_a:
            pids |= {int(pid_a), int(pid_b)}
    return pids


def _judge(run: Run) -> Outcome:
    lab, database = run.lab, run.database
    codes = [r.proc.returncode for r in run.runners]
    out = Outcome(run.scenario.kind, codes)
    recorded = m.recorded(lab.server, database)
    out.double_applied = (
        len(recorded) != len(set(recorded))
        or m.slow_applications(lab.server, database) > 1
        or m.seed_rows(lab.server, database) > 1
    )
    visits: list[tuple[Any, ...]] = []
    if m.fetch(lab.server, database, "SELECT to_regclass('ledger_visit')") != [(None,)]:
        visits = m.fetch(lab.server, database, "SELECT pid, started, finished FROM ledger_visit")
    overlapping = _overlapping(visits)
    for index, runner in enumerate(run.runners):
        if runner.proc.returncode != 0:
            continue
        if index in run.cut_off or run.scenario.follow_up_fails or runner.pid in overlapping:
            out.exit0_after_loss += 1
    for runner in run.runners:
        if runner.proc.returncode == 10 and runner.exited is not None:
            with contextlib.suppress(AssertionError):
                out.overruns.append(runner.overrun(run.scenario.timeout))
            out.spawn_overruns.append(runner.seconds() - run.scenario.timeout)
    if overlapping:  # two follow-ups at once: the lock was not exclusive
        out.notes.append("overlapping follow-ups")
    if run.scenario.via_pooler and 0 in codes and set(codes) != {0}:
        # Not one of the targets, but not the either/or: serialise or all refuse.
        out.notes.append("mixed outcome through the pooler (some exit 0, some refused)")
    return out


def _locks_left(lab: Lab, database: str, grace: float) -> int:
    """Advisory locks in ``database`` still there after ``grace`` seconds."""

    def mine() -> list[tuple[Any, ...]]:
        return [lock for lock in m.advisory_locks(lab.server) if lock[0] == database]

    faults.wait_for(lambda: not mine(), grace, step=0.1)
    return len(mine())


def run_one(
    lab: Lab, rng: random.Random, kind: Callable[[random.Random], Scenario], number: int
) -> Outcome:
    scenario = kind(rng)
    database = m.new_database(lab.server, "mchaos")
    runners: list[m.Runner] = []
    proxies: list[faults.Proxy] = []
    try:
        with contextlib.ExitStack() as stack:
            scenario.prepare(lab, database, stack)
            run = _start(lab, scenario, database, rng.randint(3, 5), number, stack)
            runners, proxies = run.runners, run.proxies
            scenario.act(run)
            hung = 0
            for runner in runners:
                try:
                    runner.proc.wait(timeout=max(0.1, runner.spawned + CAP - time.monotonic()))
                except subprocess.TimeoutExpired:
                    runner.kill()
                    hung += 1
                runner.finish(timeout=10)
        out = _judge(run)  # the stranger is gone: a lock left now is the runners'
        out.hung = hung
        out.locks_left = _locks_left(lab, database, DEAD_PEER if run.frozen else 1.0)
        return out
    finally:
        for runner in runners:
            runner.kill()
        for proxy in proxies:
            proxy.close()
        m.drop_database(lab.server, database)


# --- the report ---


def run(servers: Servers, smoke: bool, *, runs: int, seed: int) -> str:
    rng = random.Random(seed)
    lab = Lab(servers)
    one = functools.partial(run_one, lab, rng)
    outcomes, took = chaos_rounds(KINDS, runs, rng, one, "migrate chaos", 1 if smoke else 10)
    return report(outcomes, runs, seed, took)


def report(outcomes: list[Outcome], runs: int, seed: int, took: float) -> str:
    by_kind = grouped(outcomes, lambda outcome: outcome.kind.split(" (exit")[0])
    doubled = sum(o.double_applied for o in outcomes)
    lost = sum(o.exit0_after_loss for o in outcomes)
    left = sum(o.locks_left for o in outcomes)
    hung = sum(o.hung for o in outcomes)
    first_line = [x for o in outcomes for x in o.overruns]
    overruns = [x for o in outcomes for x in o.spawn_overruns]
    worst = max(overruns, default=0.0)
    runners = sum(len(o.codes) for o in outcomes)
    lines = [
        f"{runs} runs over {len(by_kind)} kinds of fault, {runners} runners in all, 3-5 at "
        f"once per run (seed {seed}, {took / 60:.1f} min); `--timeout {SHORT:g}` where the "
        f"deadline is the point, {LONG:g} s otherwise; a runner still running after "
        f"{CAP:g} s is killed and counted as hung.",
        "",
        "| target | figure | verdict |",
        "|---|---|---|",
        f"| double-applied migrations: 0 | {doubled} | **{verdict(not doubled)}** |",
        f"| runners exiting 0 after a lost lock or a failed follow-up: 0 | {lost} "
        f"| **{verdict(not lost)}** |",
        f"| advisory locks left behind: 0 | {left} | **{verdict(not left)}** |",
        f"| deadline overrun ≤ 1 s (worst, spawn to exit less the timeout; "
        f"{len(overruns)} runners exited 10) | {worst:.2f} s | **{verdict(worst <= 1.0)}** |",
        f"| runners hung (killed at {CAP:g} s): 0 | {hung} | **{verdict(not hung)}** |",
        "",
        "The overrun counts from the spawn, so Python's start-up (3-5 at once on a shared "
        f"2-core machine) is in it: p50 {percentile(overruns, 0.5) if overruns else 0.0:.2f} s. "
        "From each runner's first log line instead: worst "
        f"{max(first_line, default=0.0):.2f} s.",
        "",
        "| kind of fault | runs | runner exit codes | double-applied | exit 0 after loss "
        "| locks left | worst overrun s |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind, group in sorted(by_kind.items()):
        codes = dict(sorted(Counter(c for o in group for c in o.codes).items()))
        over = [x for o in group for x in o.spawn_overruns]
        lines.append(
            f"| {kind} | {len(group)} | {codes} | {sum(o.double_applied for o in group)} "
            f"| {sum(o.exit0_after_loss for o in group)} | {sum(o.locks_left for o in group)} "
            f"| {f'{max(over):.2f}' if over else '-'} |"
        )
    misses = Counter(
        (o.kind, what)
        for o in outcomes
        for what, bad in (
            ("double-applied", o.double_applied),
            ("exit 0 after a loss", o.exit0_after_loss),
            ("lock left", o.locks_left),
            ("overrun", any(x > 1.0 for x in o.spawn_overruns)),
            ("hung", o.hung),
            *((note, True) for note in o.notes),
        )
        if bad
    )
    lines += ["", "Which faults caused the misses:", ""]
    if not misses:
        lines.append("- none")
    for (kind, what), count in sorted(misses.items()):
        lines.append(f"- {kind}: {what} x {count}")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover - use `python -m benchmarks.run migrate-chaos`
    raise SystemExit("run: python -m benchmarks.run migrate-chaos [--chaos-runs N]")
