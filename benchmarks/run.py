"""Benchmarks for the preflight; each scenario is a module of this package,
and its section of benchmarks/RESULTS.md is rewritten when it runs.

    make bench                         # every scenario but chaos, full counts (minutes)
    make chaos                         # the randomised fault injection (benchmarks/chaos.py)
    make chaos-migrate                 # concurrent migrate runners under faults (migrate_chaos.py)
    .venv/bin/python -m benchmarks.run startup recovery herd jitter image
    .venv/bin/python -m benchmarks.run tradeoff       # the herd against the notice target (15 min)
    .venv/bin/python -m benchmarks.run chaos --chaos-runs 600
    .venv/bin/python -m benchmarks.run migrate-chaos --chaos-runs 200
    .venv/bin/python -m benchmarks.run migrate-cost   # the runner against manage.py migrate
    .venv/bin/python -m benchmarks.run --smoke --out /tmp/r.md   # seconds; what the tests run

Each comparison runs both sides in the same run, alternating, and reports
the ratio of medians: absolute times on a shared machine drift, ratios hold.
Servers are throwaway local PostgreSQL servers (tests/support/pg.py).
Sections of RESULTS.md that a run does not produce are kept as they were.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmarks.common import ROOT, Servers, machine, prepare_baseline, prepare_venv

# part name -> module in this package (module.TITLE, module.run(servers, smoke)).
SCENARIOS = {
    "startup": "startup",
    "recovery": "notice",
    "starting": "starting",
    "herd": "herd",
    "tradeoff": "tradeoff",
    "jitter": "jitter",
    "image": "image",
    "chaos": "chaos",
    "migrate-chaos": "migrate_chaos",
    "migrate-cost": "migrate_check",
}
# Parts that take --chaos-runs: (default runs, smoke runs).
CHAOS_RUNS = {"chaos": (500, 14), "migrate-chaos": (200, 9)}
# What `make bench` runs; the chaos runs have their own targets (`make chaos`,
# `make chaos-migrate`), they take long, and so does the knock-gap trade-off.
DEFAULT = ["startup", "recovery", "starting", "herd", "jitter", "image"]
HEADER = "Written by `benchmarks/run.py` (one module per section); do not edit by hand."


def split_sections(text: str) -> tuple[list[str], list[tuple[str, str]]]:
    """(the lines before the first section, [(title, body)]) of a RESULTS.md."""
    head: list[str] = []
    sections: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("## "):
            sections.append((line[3:].strip(), []))
        elif sections:
            sections[-1][1].append(line)
        else:
            head.append(line)
    return head, [(title, "\n".join(body).strip("\n")) for title, body in sections]


def _order(title: str) -> tuple[int, str]:
    match = re.match(r"(\d+)", title)
    return (int(match.group(1)) if match else 1000, title)


def _key(title: str) -> str:
    """What identifies a section across runs: its number ("3b.") or its whole title."""
    first = title.split(" ", 1)[0]
    return first if re.fullmatch(r"\d+[a-z]?\.", first) else title


def _old_note(head: Sequence[str]) -> str:
    """A file written before sections carried their own note has one date and
    command in its header: carry them into the sections kept from it."""
    found: dict[str, str] = {}
    for line in head:
        if match := re.match(r"- (Date|Command): (.*)$", line):
            found[match.group(1)] = match.group(2)
    if "Date" not in found or "Command" not in found:
        return ""
    command = found["Command"].split(" (from", 1)[0]
    return f"_Measured {found['Date']} by {command}._"


def merge(old: str, new: Sequence[tuple[str, str]], header: Sequence[str]) -> str:
    """RESULTS.md with ``new`` sections replacing (by number) or joining the old ones."""
    head, kept = split_sections(old)
    replaced = {_key(title) for title, _ in new}
    note = _old_note(head)
    survivors = [
        (title, body if body.startswith("_Measured") or not note else f"{note}\n\n{body}")
        for title, body in kept
        if _key(title) not in replaced
    ]
    sections = sorted([*survivors, *new], key=lambda s: _order(s[0]))
    lines = list(header)
    for title, body in sections:
        lines += ["", f"## {title}", "", body]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "parts",
        nargs="*",
        metavar="PART",
        help=f"{', '.join(SCENARIOS)} (default: {' '.join(DEFAULT)})",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny counts, for the tests")
    parser.add_argument(
        "--chaos-runs",
        type=int,
        default=None,
        help="chaos runs (chaos: default 500, smoke 14; migrate-chaos: 200, smoke 9)",
    )
    parser.add_argument("--chaos-seed", type=int, default=1, help="chaos random seed")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "RESULTS.md"))
    args = parser.parse_args(argv)
    parts = args.parts or DEFAULT
    if set(parts) - set(SCENARIOS):
        parser.error(f"parts are {', '.join(SCENARIOS)}")
    modules = [importlib.import_module(f"benchmarks.{SCENARIOS[part]}") for part in parts]
    prepare_venv()
    prepare_baseline()
    servers = Servers()
    sections: list[tuple[str, str]] = []
    command = "python -m benchmarks.run " + " ".join(parts) + (" --smoke" if args.smoke else "")
    today = datetime.date.today().isoformat()
    try:
        for part, module in zip(parts, modules, strict=True):
            if args.smoke and not getattr(module, "SMOKE", True):
                continue
            if part in CHAOS_RUNS:
                full, small = CHAOS_RUNS[part]
                runs = args.chaos_runs or (small if args.smoke else full)
                body = module.run(servers, args.smoke, runs=runs, seed=args.chaos_seed)
                run_command = f"{command} --chaos-runs {runs} --chaos-seed {args.chaos_seed}"
            else:
                body = module.run(servers, args.smoke)
                run_command = command
            note = f"_Measured {today} by `{run_command}`._"
            sections.append((module.TITLE, f"{note}\n\n{body}"))
    finally:
        servers.close()
    header = [
        "# Benchmark results",
        "",
        f"- Machine: {machine()}",
        "- Each section names the command (from the repository root, with "
        "`.venv/bin/python`) and the date that produced it.",
        "",
        HEADER,
    ]
    out = Path(args.out)
    old = out.read_text() if out.exists() else ""
    text = merge(old, sections, header)
    out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
