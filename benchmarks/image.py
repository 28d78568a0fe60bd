"""4. The image: the base before (bookworm, Python 3.11) and after (trixie, 3.13), side by side.

Not part of the smoke: building the images takes minutes (once; buildah caches
the layers).  Both images come from the same Dockerfile, each on its debootstrap
stand-in base (``scripts/image.sh``, ``SUITE=bookworm`` or ``trixie``).
"""

from __future__ import annotations

import json
import os
import statistics

from benchmarks.common import Servers, verdict
from tests.support import image as img
from tests.support.pg import APP_DB, APP_PASSWORD, APP_USER

TITLE = "4. The image"
SMOKE = False  # building the image takes minutes
BEFORE = "localhost/preflight:bookworm"
ROUNDS = 6  # per image, alternating (ABBA); each round runs every command RUNS times
RUNS = 5

# Runs inside the image as its user: `preflight explain` and a real check against
# a local server, RUNS times each; wall times and the children's peak RSS.
_INSIDE = """
import json, os, resource, subprocess, sys, time
def timed(args):
    times = []
    for _ in range(int(sys.argv[1])):
        start = time.perf_counter()
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return times
explain = timed(["preflight", "explain"])
rss_explain = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
check = timed(["preflight"])
rss_check = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"explain": explain, "check": check, "rss_explain": rss_explain,
                  "rss_check": rss_check}))
"""


def _size(name: str) -> int:
    """The bytes of every file in the image, uncompressed (symlinks not followed)."""
    with img.mounted(name) as root:
        return sum(p.lstat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def _spread(values: list[float]) -> str:
    """``median ms (q1 to q3)``."""
    q1, median, q3 = statistics.quantiles(values, n=4)
    return f"{median * 1000:.0f} ms ({q1 * 1000:.0f} to {q3 * 1000:.0f})"


def _packages(name: str) -> list[str]:
    """MB per top-level entry of the venv's site-packages."""
    with img.mounted(name) as root:
        site = root / img.site_packages(name).lstrip("/")
        sizes = {
            entry.name: sum(f.lstat().st_size for f in [entry, *entry.rglob("*")] if f.is_file())
            for entry in site.iterdir()
        }
        return [f"{size / 1e6:6.2f} MB  {name}" for name, size in sorted(sizes.items())]


def _inside(name: str, env: dict[str, str]) -> dict[str, list[float] | int]:
    ran = img.run(
        env,
        "-c",
        _INSIDE,
        str(RUNS),
        image=name,
        command=["/opt/preflight/bin/python"],
        timeout=300,
    )
    if ran.code != 0:
        raise RuntimeError(ran.stderr)
    result: dict[str, list[float] | int] = json.loads(ran.stdout)
    return result


def measure(servers: Servers) -> str:
    if not img.buildah_available() or os.geteuid() != 0:
        return "Not measured: building the images needs root, buildah and debootstrap."
    images = {"before": BEFORE, "after": img.IMAGE}
    img.build(BEFORE, "bookworm")
    img.build(img.IMAGE, "trixie")
    server = servers.make("bench-image")
    env = {
        "SQL_HOST": "127.0.0.1",
        "SQL_PORT": str(server.port),
        "SQL_DATABASE": APP_DB,
        "SQL_USER": APP_USER,
        "SQL_PASSWORD": APP_PASSWORD,
    }
    times: dict[str, dict[str, list[float]]] = {k: {"explain": [], "check": []} for k in images}
    rss: dict[str, dict[str, int]] = {k: {"explain": 0, "check": 0} for k in images}
    for round_ in range(ROUNDS):
        order = list(images.items())
        for side, name in order if round_ % 2 == 0 else reversed(order):
            got = _inside(name, env)
            for kind in ("explain", "check"):
                values = got[kind]
                assert isinstance(values, list)
                times[side][kind] += values
                peak = got[f"rss_{kind}"]
                assert isinstance(peak, int)
                rss[side][kind] = max(rss[side][kind], peak)
    rows = []
    for side, name in images.items():
        layer, files = img.venv_footprint(name)
        standin = f"localhost/preflight-base-standin:{'bookworm' if side == 'before' else 'trixie'}"
        python = img.site_packages(name).split("/")[4].removeprefix("python")
        rows.append(
            (
                side,
                python,
                layer / 1e6,
                files,
                _size(name) / 1e6,
                _size(standin) / 1e6,
                _spread(times[side]["explain"]),
                _spread(times[side]["check"]),
                rss[side]["explain"] / 1024,
                rss[side]["check"] / 1024,
            )
        )
    layer_after = rows[1][2]
    lines = [
        "Both from this Dockerfile, each on its debootstrap stand-in base: "
        "`scripts/image.sh` with `SUITE=bookworm` (before: `python:3.11-slim-bookworm`) "
        "and `SUITE=trixie` (after: `python:3.13-slim-trixie`).  The stand-ins carry "
        "Debian's own `python3` (3.11.2 / 3.13.5) and a minbase Debian (apt, perl-base), "
        "so *whole-image* sizes are those of the stand-ins, not of the published "
        "python images (which this machine cannot pull).  Start-up and RSS run inside "
        "each image as its user (`buildah run --isolation chroot`), "
        f"{ROUNDS} rounds x {RUNS} runs per image, alternating which goes first; medians.  "
        "`check` is a real check (exit 0) against a local PostgreSQL 15.",
        "",
        "| base | Python | venv layer | files | whole image (stand-in) | base stand-in "
        "| `explain` wall (IQR) | `check` wall (IQR) | peak RSS `explain` | peak RSS `check` |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for side, python, layer_mb, count, whole, base, explain, check, rss_e, rss_c in rows:
        lines.append(
            f"| {side} | {python} | {layer_mb:.1f} MB | {count} | {whole:.0f} MB | {base:.0f} MB "
            f"| {explain} | {check} | {rss_e:.1f} MiB "
            f"| {rss_c:.1f} MiB |"
        )
    (e0, c0) = (statistics.median(times["before"][k]) for k in ("explain", "check"))
    (e1, c1) = (statistics.median(times["after"][k]) for k in ("explain", "check"))
    (r0, q0), (r1, q1) = (rows[0][8], rows[0][9]), (rows[1][8], rows[1][9])
    lines += [
        "",
        f"Ratios after/before: `explain` wall {e1 / e0:.2f}, `check` wall {c1 / c0:.2f}, "
        f"peak RSS `explain` {r1 / r0:.2f}, `check` {q1 / q0:.2f}.  Wall times are medians "
        "(interquartile range) on 2 shared cores: where the ranges overlap, no difference "
        "in start-up is shown; RSS repeats to within 1 %.",
        "",
        f"- The venv layer (`/opt/preflight`, all the image adds to its base): "
        f"**{layer_after:.1f} MB** on the new base — target ≤ 18 MB: "
        f"**{verdict(layer_after <= 18)}**.",
        "- What is in it on the new base (site-packages by package):",
        "",
        "```",
        *_packages(img.IMAGE),
        "```",
        "",
        "No pip, setuptools or compiler: `tests/image/test_image.py` checks that. "
        "psycopg-binary carries its own libpq and OpenSSL (`psycopg_binary.libs`).",
        "- Distroless (`gcr.io/distroless/python3-*`) was not measured: this machine has no "
        "registry access, and a debootstrap stand-in for it would be a guess at its "
        "contents.  The image would need only its `python3` (the check runs no shell), so "
        "it may serve; measure it where the registry is reachable before switching.",
    ]
    return "\n".join(lines)


def run(servers: Servers, smoke: bool) -> str:
    return measure(servers)
