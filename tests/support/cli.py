"""Run the real ``preflight`` CLI as a subprocess and read what it said."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import threading
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


def finished(code: int, stdout: str, stderr: str, seconds: float = 0.0) -> Run:
    """A Run from what a finished command left, its stderr parsed into events."""
    return Run(code, stdout, stderr, seconds, parse_events(stderr))


def preflight_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "preflight", *args]


def run_command(
    command: Sequence[str],
    env: Mapping[str, str],
    *,
    timeout: float = 120,
    cwd: Path | None = None,
    json_stderr: bool = True,
) -> Run:
    """Run a (wrapped) command to the end; its events parsed unless ``json_stderr`` is off."""
    start = time.monotonic()
    try:
        done = subprocess.run(
            list(command),
            env=dict(env),
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the run did not end within {timeout:g} s") from None
    seconds = time.monotonic() - start
    if not json_stderr:
        return Run(done.returncode, done.stdout, done.stderr, seconds)
    return finished(done.returncode, done.stdout, done.stderr, seconds)


def run(
    env: Mapping[str, str],
    *args: str,
    hosts: Mapping[str, str] | None = None,
    workdir: Path | None = None,
    mounts: Mapping[str, Path] | None = None,
    timeout: float = 120,
    json_stderr: bool = True,
) -> Run:
    """The preflight CLI with ``args``, in a private /etc/hosts mapping ``hosts`` if given."""
    command = preflight_command(*args)
    if hosts is not None:
        assert workdir is not None
        command = isolated(command, hosts, workdir, mounts)
    return run_command(command, env, timeout=timeout, json_stderr=json_stderr)


class Child:
    """A spawned (wrapped) command whose output is read as it arrives, so a test can
    wait for an event the child logs instead of sleeping."""

    def __init__(
        self, command: Sequence[str], env: Mapping[str, str], *, cwd: Path | None = None
    ) -> None:
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            list(command),
            env=dict(env),
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.pid = self.proc.pid
        self._out: list[str] = []
        self._err: list[str] = []
        self._changed = threading.Condition()
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self._out), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self._err), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: Any, lines: list[str]) -> None:
        with stream:
            for line in stream:
                with self._changed:
                    lines.append(line)
                    self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def stderr(self) -> str:
        with self._changed:
            return "".join(self._err)

    def poll(self) -> int | None:
        return self.proc.poll()

    def send_signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def _seen(self, name: str, fields: Mapping[str, Any]) -> list[dict[str, Any]]:
        found = []
        for line in self._err:
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if (
                    isinstance(event, dict)
                    and event.get("event") == name
                    and all(event.get(key) == value for key, value in fields.items())
                ):
                    found.append(event)
        return found

    def wait_for_event(
        self, name: str, count: int = 1, timeout: float = 60, **fields: Any
    ) -> dict[str, Any]:
        """Block until the child has logged ``name`` (with ``fields``, if given) ``count``
        times; that event.  Fails, with what the child said, if it exits first or
        ``timeout`` passes."""
        end = time.monotonic() + timeout
        with self._changed:
            while True:
                found = self._seen(name, fields)
                if len(found) >= count:
                    return found[count - 1]
                left = end - time.monotonic()
                ended = self.proc.poll() is not None and not self._readers[1].is_alive()
                if left <= 0 or ended:
                    why = "exited" if ended else f"did not log it within {timeout:g} s"
                    self.kill()
                    raise AssertionError(
                        f"waiting for {name} #{count}: the child {why}\n{''.join(self._err)}"
                    )
                self._changed.wait(min(left, 0.2))

    def finish(self, timeout: float = 120) -> Run:
        """Wait for the child to exit (killing it past ``timeout``); its Run."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"the child did not end within {timeout:g} s") from None
        finally:
            for reader in self._readers:
                reader.join(timeout=10)
        seconds = time.monotonic() - self.started
        with self._changed:
            return finished(self.proc.returncode, "".join(self._out), "".join(self._err), seconds)

    def kill(self) -> None:
        """Make sure the child is gone (for a ``finally``)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def spawn(command: Sequence[str], env: Mapping[str, str], *, cwd: Path | None = None) -> Child:
    """Start a (wrapped) command; its output is read as it arrives."""
    return Child(command, env, cwd=cwd)


def assert_no_secret(secret: str, *texts: str) -> None:
    """The secret, or its URL-encoded form, appears in none of ``texts``."""
    from urllib.parse import quote

    for text in texts:
        assert secret not in text
        assert quote(secret, safe="") not in text
