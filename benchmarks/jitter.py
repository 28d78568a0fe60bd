"""3b. Jitter: how evenly the attempts of many waiting processes spread."""

from __future__ import annotations

import statistics
import subprocess
import time
from collections import Counter

from benchmarks.common import PREFLIGHT, Servers, attempt_stamps, closed_port_env

TITLE = "3b. Jitter among waiting processes"


def measure(processes: int, seconds: float) -> str:
    """100 processes wait on a closed port; how evenly do their attempts spread?"""
    env = closed_port_env(PREFLIGHT_TIMEOUT="0")
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


def run(servers: Servers, smoke: bool) -> str:
    return measure(5 if smoke else 100, 6.0 if smoke else 20.0)
