"""3c. What the herd's server-side attempts cost in notice latency: this checkout
with its knock gap, the same checkout with wider gaps, and the code before
issue 19, each through the notice runs of section 2 and the herd of section 3.

A wider gap is the same installed package with one constant changed
(``preflight._retry.KNOCK_GAP``), in a copy of the benchmark venv; nothing else
differs.  This is a measurement of the trade-off, not a setting the product has.
"""

from __future__ import annotations

import random
import re
import shutil
import statistics
import subprocess
from dataclasses import dataclass, field

from benchmarks import herd, notice
from benchmarks.common import (
    BASELINE,
    BASELINE_REV,
    BENCH_VENV,
    PREFLIGHT,
    ROOT,
    Servers,
    base_env,
    in_turn,
    stop_cleanly,
)

TITLE = "3c. The herd against the notice target: the knock gap"

# The knock gaps measured beside this checkout's own (seconds, uniform at random).
WIDER = ((0.1, 0.35), (0.2, 0.6), (0.3, 0.7), (0.4, 0.8))


def knock_gap_venv(gap: tuple[float, float]) -> str:
    """A copy of the benchmark venv whose installed ``preflight._retry`` knocks every
    ``gap``; the path of its ``preflight`` script."""
    venv = ROOT / ".bench" / f"runtime-knock-{gap[0]:g}-{gap[1]:g}"
    shutil.rmtree(venv, ignore_errors=True)
    shutil.copytree(BENCH_VENV, venv, symlinks=True)
    (module,) = venv.glob("lib/python*/site-packages/preflight/_retry.py")
    text, count = re.subn(
        r"^KNOCK_GAP = .*$", f"KNOCK_GAP = {gap!r}", module.read_text(), flags=re.MULTILINE
    )
    if count != 1:
        raise RuntimeError(f"{module} does not define KNOCK_GAP once")
    module.write_text(text)
    script = venv / "bin" / "preflight"
    body = script.read_text().split("\n", 1)[1]
    script.write_text(f"#!{venv / 'bin' / 'python'}\n{body}")  # not the original venv's python
    seen = subprocess.run(
        [
            str(script.with_name("python")),
            "-c",
            "from preflight._retry import KNOCK_GAP as g; print(g)",
        ],
        cwd=venv,
        env=base_env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if seen != repr(gap):
        raise RuntimeError(f"{venv} knocks every {seen}, not {gap!r}")
    return str(script)


@dataclass
class Contender:
    name: str
    command: str
    notice: notice.Runs = field(default_factory=notice.Runs)
    herds: list[herd.Herd] = field(default_factory=list)


def measure(
    servers: Servers,
    runs: int,
    delay: tuple[float, float],
    processes: int,
    rounds: int,
    wider: tuple[tuple[float, float], ...],
) -> str:
    from preflight._retry import KNOCK_GAP

    contenders = [
        Contender(f"now, {KNOCK_GAP[0]:g}-{KNOCK_GAP[1]:g} s (this checkout)", PREFLIGHT),
        *(Contender(f"{a:g}-{b:g} s", knock_gap_venv((a, b))) for a, b in wider),
        Contender(f"before ({BASELINE_REV}): no knocks, logins 0.4-0.8 s apart", BASELINE),
    ]
    server = servers.make("tradeoff-notice", settings={"log_connections": "on"})
    rng = random.Random(1)
    for index in range(runs):
        wait = rng.uniform(*delay)
        for contender in in_turn(contenders, index):
            notice.one_run(server, contender.command, wait, contender.notice)
    stop_cleanly(server)
    for index in range(rounds):
        for number, contender in enumerate(in_turn(contenders, index)):
            name = f"tradeoff-herd-{index}-{number}"
            contender.herds.append(
                herd.fresh_herd(servers, name, contender.command, processes, 5.0)
            )
    before = contenders[-1]
    limit = statistics.median(h.received for h in before.herds)
    lines = [
        f"Notice: {runs} runs per contender, alternating, the server starting after a random "
        f"{delay[0]:g}-{delay[1]:g} s, as in section 2. Herd: {processes} processes, "
        f"{rounds} rounds, as in section 3 (a fresh server per herd). Only the knock gap "
        "differs between the first rows.",
        "",
        "| knock gap | notice median | notice worst | herd: attempts the server saw "
        "(rounds) | herd: median | herd: last one ready, median | both targets |",
        "|---|---|---|---|---|---|---|",
    ]
    for contender in contenders:
        latencies = contender.notice.latencies
        received = [h.received for h in contender.herds]
        median_received = statistics.median(received)
        met = (
            statistics.median(latencies) <= notice.MEDIAN_TARGET
            and max(latencies) <= notice.WORST_TARGET
            and median_received <= limit
        )
        lines.append(
            f"| {contender.name} | {statistics.median(latencies) * 1000:.0f} ms | "
            f"{max(latencies) * 1000:.0f} ms | {' · '.join(map(str, received))} | "
            f"{median_received:g} | "
            f"{statistics.median(h.last_ready for h in contender.herds):.2f} s | "
            f"{'met' if met else '-'} |"
        )
    lines += [
        "",
        f"Targets (issue 19): notice median ≤ {notice.MEDIAN_TARGET * 1000:.0f} ms and worst "
        f"≤ {notice.WORST_TARGET * 1000:.0f} ms; the herd's "
        f"server-side attempts ≤ before's ({limit:g}, the median of its rounds here).",
    ]
    return "\n".join(lines)


def run(servers: Servers, smoke: bool) -> str:
    if smoke:
        return measure(servers, 1, (0.5, 1.0), 5, 1, WIDER[:1])
    return measure(servers, 20, (2.0, 8.0), 100, 2, WIDER)
