"""Run the real ``preflight`` CLI as a subprocess and read what it said."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Environment the CLI runs with: nothing from the test process leaks in
# except what Python itself needs.
_KEEP = ("PATH", "LANG", "LC_ALL", "PYTHONPATH", "HOME", "SYSTEMROOT")


def base_env(**variables: str) -> dict[str, str]:
    env = {k: os.environ[k] for k in _KEEP if k in os.environ}
    # coverage's subprocess measurement (make test) travels in these.
    env.update({k: v for k, v in os.environ.items() if k.startswith("COVERAGE_")})
    env["PREFLIGHT_LOG_FORMAT"] = "json"
    env.update(variables)
    return env


def isolated(
    command: Sequence[str],
    hosts: Mapping[str, str],
    workdir: Path,
    mounts: Mapping[str, Path] | None = None,
    files: Mapping[Path, Path] | None = None,
) -> list[str]:
    """Wrap ``command`` in a private mount namespace whose /etc/hosts maps ``hosts``.

    The machine's own /etc/hosts is never touched; resolv.conf points at a
    loopback port where nothing answers, so unknown names fail at once.
    ``mounts`` maps a directory path (as a pod would see a volume) to a host
    directory whose files appear there, inside the namespace only; ``files``
    maps an existing file (such as the OS trust store) to a stand-in bound over it.
    """
    hosts_file = workdir / "hosts"
    lines = ["127.0.0.1 localhost", "::1 localhost"]
    lines += [f"{address} {name}" for name, address in hosts.items()]
    hosts_file.write_text("\n".join(lines) + "\n")
    resolv = workdir / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    steps = [
        f"mount --bind {shlex.quote(str(hosts_file))} /etc/hosts",
        f"mount --bind {shlex.quote(str(resolv))} /etc/resolv.conf",
    ]
    for number, (target, source) in enumerate((mounts or {}).items()):
        steps.append(_volume(Path(target), source, workdir / f"volume-{number}"))
    for original, stand_in in (files or {}).items():
        steps.append(f"mount --bind {shlex.quote(str(stand_in))} {shlex.quote(str(original))}")
    return unshare(" && ".join([*steps, 'exec "$@"']), command)


def unshare(script: str, command: Sequence[str], *namespaces: str) -> list[str]:
    """Run ``script`` (which ends by running ``"$@"``) and ``command`` in new,
    private namespaces: a mount namespace always, plus any in ``namespaces``."""
    return [
        "unshare",
        "--mount",
        *namespaces,
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        script,
        "sh",
        *command,
    ]


def _volume(target: Path, source: Path, shadow: Path) -> str:
    """The shell step that makes ``source``'s files appear at ``target``.

    A target that does not exist yet gets a copy of its nearest existing
    ancestor with the target added, bound over that ancestor.
    """
    if target.is_dir():
        return f"mount --bind {shlex.quote(str(source))} {shlex.quote(str(target))}"
    ancestor = target.parent
    while not ancestor.is_dir():
        ancestor = ancestor.parent
    assert str(ancestor) not in ("/", "/etc"), f"will not shadow {ancestor} for {target}"
    shutil.copytree(ancestor, shadow, symlinks=True)
    shutil.copytree(source, shadow / target.relative_to(ancestor))
    return f"mount --bind {shlex.quote(str(shadow))} {shlex.quote(str(ancestor))}"


@dataclass
class Run:
    """A finished CLI run."""

    code: int
    stdout: str
    stderr: str
    seconds: float
    events: list[dict[str, Any]] = field(default_factory=list)

    def event(self, name: str) -> dict[str, Any]:
        found = [e for e in self.events if e.get("event") == name]
        assert found, f"no {name} event in {self.stderr}"
        return found[-1]

    def names(self) -> list[str]:
        return [str(e.get("event")) for e in self.events]


def parse_events(stderr: str) -> list[dict[str, Any]]:
    """Every stderr line must be one JSON object with a dotted ``event`` name; no traceback."""
    assert "Traceback" not in stderr, stderr
    events = []
    for line in stderr.splitlines():
        event = json.loads(line)  # raises (and fails the test) on a non-JSON line
        assert isinstance(event, dict)
        assert str(event["event"]).startswith("preflight."), line
        assert {"timestamp", "level"} <= event.keys(), line
        events.append(event)
    return events


def preflight_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "preflight", *args]


def run(
    env: Mapping[str, str],
    *args: str,
    hosts: Mapping[str, str] | None = None,
    workdir: Path | None = None,
    mounts: Mapping[str, Path] | None = None,
    timeout: float = 120,
    json_stderr: bool = True,
) -> Run:
    command = preflight_command(*args)
    if hosts is not None:
        assert workdir is not None
        command = isolated(command, hosts, workdir, mounts)
    start = time.monotonic()
    done = subprocess.run(
        command, env=dict(env), capture_output=True, text=True, timeout=timeout, check=False
    )
    result = Run(done.returncode, done.stdout, done.stderr, time.monotonic() - start)
    if json_stderr:
        result.events = parse_events(done.stderr)
    return result


def assert_no_secret(secret: str, *texts: str) -> None:
    """The secret, or its URL-encoded form, appears in none of ``texts``."""
    from urllib.parse import quote

    for text in texts:
        assert secret not in text
        assert quote(secret, safe="") not in text
