"""The fast exit: the process leaves without interpreter teardown once its outcome is
written, and nothing it wrote is lost (a pipe through ``head``, a closed stderr,
/dev/full), for every exit code, with the deadline unchanged.

Every run here is the real CLI in a real process against a real server.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_check import app_env, closed_port_env
from tests.support import cli
from tests.support.pg import APP_PASSWORD, free_port

# The preflight's own entry point, with an atexit hook that would speak at teardown.
_TEARDOWN_SPY = (
    "import atexit, sys; "
    "atexit.register(lambda: sys.stderr.write('TEARDOWN\\n')); "
    "sys.argv[0] = 'preflight'; "
    "from preflight._entry import run; run()"
)


def _spy(*args: str) -> list[str]:
    return [sys.executable, "-c", _TEARDOWN_SPY, *args]


@pytest.mark.parametrize(
    ("args", "variables", "code"),
    [
        (("--version",), {}, 0),
        (("explain",), {"SQL_HOST": "db", "SQL_DATABASE": "d", "SQL_USER": "u"}, 0),
        ((), {"SQL_PORT": "x"}, 3),
        (("--timout", "5"), {}, 2),
    ],
)
def test_no_interpreter_teardown_after_the_outcome(
    args: tuple[str, ...], variables: dict[str, str], code: int, tmp_path: Path
) -> None:
    """The process ends with os._exit: an atexit hook never runs, whatever the exit code."""
    env = cli.base_env(PREFLIGHT_TERMINATION_LOG=str(tmp_path / "t"), **variables)
    done = subprocess.run(
        _spy(*args), env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == code, done.stderr
    assert "TEARDOWN" not in done.stderr


def _through_head(command: list[str], env: dict[str, str], stream: str) -> tuple[int, str]:
    """Run ``command`` with ``stream`` piped into a real ``head``: (exit code, head's output)."""
    pipes: dict[str, Any] = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    pipes[stream] = subprocess.PIPE
    proc = subprocess.Popen(command, env=env, **pipes)
    piped = proc.stdout if stream == "stdout" else proc.stderr
    head = subprocess.Popen(["head", "-n", "100000"], stdin=piped, stdout=subprocess.PIPE)
    assert piped is not None
    piped.close()  # head holds the only reading end now
    out, _ = head.communicate(timeout=120)
    return proc.wait(timeout=120), out.decode()


@pytest.mark.parametrize("args", [("--version",), ("--help",), ("explain",)])
def test_stdout_through_head_is_complete(args: tuple[str, ...], tmp_path: Path) -> None:
    """What --version, --help and explain print reaches `| head` whole (the fast exit flushes)."""
    env = cli.base_env(SQL_HOST="db", SQL_DATABASE="d", SQL_USER="u", COLUMNS="80")
    reference = tmp_path / "stdout"
    with reference.open("w") as sink:
        subprocess.run(cli.preflight_command(*args), env=env, stdout=sink, timeout=60, check=True)
    expected = reference.read_text()
    assert expected.endswith("\n")
    code, out = _through_head(cli.preflight_command(*args), env, "stdout")
    assert (code, out) == (0, expected)
    if args == ("explain",):
        json.loads(out)


# name -> (environment changes, exit code, the last event)
OUTCOMES: dict[str, tuple[Callable[[Any], dict[str, str]], int, str]] = {
    "ready": (lambda server: {}, 0, "preflight.ready"),
    "wrong password": (
        lambda server: {"SQL_PASSWORD": "not-" + APP_PASSWORD},
        4,
        "preflight.failed",
    ),
    "deadline": (
        lambda server: {"SQL_PORT": str(free_port()), "PREFLIGHT_TIMEOUT": "1"},
        10,
        "preflight.failed",
    ),
    "config error": (lambda server: {"SQL_SSL_MODE": "bogus"}, 3, "preflight.failed"),
}


# Whether the deadline stops the loop between two attempts or cuts the last one short
# depends on timing (a loaded machine): the message then says so in this clause.
_CUT_SHORT = re.compile(
    r" \(then the deadline \([^)]*\) passed during an attempt, which it cut short\)"
)


def _steady(text: str) -> str:
    """``text`` without the clause that depends on where the deadline fell."""
    return _CUT_SHORT.sub("", text)


def _reference(server: Any, tmp_path: Path, outcome: str) -> tuple[dict[str, str], cli.Run, str]:
    changes, code, _ = OUTCOMES[outcome]
    env = app_env(server, tmp_path, **changes(server))
    result = cli.run(env)
    assert result.code == code, result.stderr
    termination = tmp_path / "termination-log"
    message = termination.read_text() if termination.exists() else ""
    termination.unlink(missing_ok=True)
    return env, result, message


@pytest.mark.parametrize("outcome", list(OUTCOMES))
def test_final_event_through_head_is_complete(
    outcome: str, plain_server: Any, tmp_path: Path
) -> None:
    """Piped into `head`, stderr ends with the whole final event; code and termination message
    are those of an ordinary run."""
    env, reference, message = _reference(plain_server, tmp_path, outcome)
    _, code, last = OUTCOMES[outcome]
    got, out = _through_head(cli.preflight_command(), env, "stderr")
    events = cli.parse_events(out)
    assert got == code
    assert events[-1]["event"] == last
    retries = "preflight.attempt_failed"  # how many depends on the jitter
    assert [e["event"] for e in events if e["event"] != retries] == [
        name for name in reference.names() if name != retries
    ]
    varies = ("timestamp", "elapsed", "attempts")  # attempts too: the jitter decides
    assert {k: _steady(str(v)) for k, v in events[-1].items() if k not in varies} == {
        k: _steady(str(v)) for k, v in reference.events[-1].items() if k not in varies
    }
    termination = tmp_path / "termination-log"
    assert _steady(termination.read_text() if termination.exists() else "") == _steady(message)


@pytest.mark.parametrize("outcome", list(OUTCOMES))
@pytest.mark.parametrize("stderr", ["closed", "/dev/full"])
def test_exit_code_and_termination_message_without_a_stderr(
    outcome: str, stderr: str, plain_server: Any, tmp_path: Path
) -> None:
    """With stderr closed or on a full disk: the same exit code and the whole termination
    message as an ordinary run."""
    env, _, message = _reference(plain_server, tmp_path, outcome)
    _, code, _ = OUTCOMES[outcome]
    if stderr == "closed":
        done = subprocess.run(
            cli.preflight_command(),
            env=env,
            stderr=subprocess.DEVNULL,
            preexec_fn=lambda: os.close(2),
            timeout=60,
            check=False,
        )
    else:
        with open("/dev/full", "w") as full:
            done = subprocess.run(
                cli.preflight_command(), env=env, stderr=full, timeout=60, check=False
            )
    assert done.returncode == code
    termination = tmp_path / "termination-log"
    assert _steady(termination.read_text() if termination.exists() else "") == _steady(message)
    assert bool(message) == bool(code)  # a failure always leaves its one line


def test_explain_on_a_full_disk_is_not_success(tmp_path: Path) -> None:
    """`explain > /dev/full` cannot print its document: exit 2 (output_failed), said on stderr."""
    env = cli.base_env(SQL_HOST="db", SQL_DATABASE="d", SQL_USER="u")
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            cli.preflight_command("explain"),
            env=env,
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 2
    assert cli.parse_events(done.stderr)[-1]["reason"] == "output_failed"


def test_deadline_is_kept(tmp_path: Path) -> None:
    """Against a refused port with PREFLIGHT_TIMEOUT=2 the run ends exit 10 after 2 s, not
    sooner and well within 1 s after."""
    result = cli.run(closed_port_env(tmp_path, timeout="2"))
    assert result.code == 10
    failed = result.event("preflight.failed")
    assert failed["reason"] == "refused"
    assert 2.0 <= failed["elapsed"] < 2.5
    assert result.seconds < 3.5


def test_sigterm_still_exits_143_with_stderr_closed(tmp_path: Path) -> None:
    """SIGTERM while waiting: exit 143 through the fast exit, even with stderr closed."""
    env = closed_port_env(tmp_path, timeout="0")
    proc = subprocess.Popen(
        _spy(),
        env={**env, "PREFLIGHT_LOG_FORMAT": "json"},
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    try:
        line = proc.stderr.readline()
        while line and "preflight.attempt_failed" not in line:
            line = proc.stderr.readline()
        assert line, "the run ended before its first failed attempt"
        proc.stderr.close()  # from now on stderr is a broken pipe
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 143
        assert time.monotonic() - sent < 1.5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# The entry point again, reporting the garbage collector's state as the plan is logged
# (start-up done, no attempt made yet) and after each failed attempt (before the wait).
_GC_SPY = (
    "import gc, sys; "
    "import preflight._cli as cli; "
    "plan, retry = cli._Run._log_plan, cli._Run._on_retry; "
    "cli._Run._log_plan = lambda self, p: (plan(self, p), "
    "sys.stderr.write(f'GC plan {gc.isenabled()}\\n')); "
    "cli._Run._on_retry = lambda self, d: (retry(self, d), "
    "sys.stderr.write(f'GC wait {gc.isenabled()} {gc.get_freeze_count() > 0}\\n')); "
    "sys.argv[0] = 'preflight'; "
    "from preflight._entry import run; run()"
)


def test_collector_is_off_for_start_up_and_on_for_the_wait(tmp_path: Path) -> None:
    """The garbage collector is off until the first attempt fails, then on, with what
    start-up made frozen out of its reach."""
    env = closed_port_env(tmp_path, timeout="0.5")
    done = subprocess.run(
        [sys.executable, "-c", _GC_SPY], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 10, done.stderr
    states = [line for line in done.stderr.splitlines() if line.startswith("GC ")]
    assert states[0] == "GC plan False"
    assert len(states) > 1
    assert set(states[1:]) == {"GC wait True True"}
