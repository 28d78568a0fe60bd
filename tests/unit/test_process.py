"""The process around the check: log rendering and the termination message."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from preflight import _logging, _termination
from preflight._redact import Redactor


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("fmt", "stream", "is_json"),
    [
        ("auto", io.StringIO(), True),
        ("auto", _Tty(), False),
        ("json", _Tty(), True),
        ("console", io.StringIO(), False),
    ],
)
def test_renderer_choice(fmt: str, stream: io.StringIO, is_json: bool) -> None:
    """JSON unless stderr is a terminal (auto) or console is asked for."""
    _logging.configure(fmt, stream)
    _logging.get_logger().info("preflight.plan", kind="local")
    line = stream.getvalue().strip()
    assert "preflight.plan" in line
    if is_json:
        event = json.loads(line)
        assert event["event"] == "preflight.plan"
        assert event["timestamp"].endswith("Z")
        assert event["level"] == "info"
    else:
        with pytest.raises(json.JSONDecodeError):
            json.loads(line)


def test_registered_secret_is_redacted_in_logs() -> None:
    """A registered secret never reaches a log line; keys, event and level stay as they are."""
    stream = io.StringIO()
    _logging.configure("json", stream)
    _logging.set_redactor(Redactor(["Tq9-log-secret-value"]))
    _logging.get_logger().error("preflight.failed", message='database "Tq9-log-secret-value"')
    event = json.loads(stream.getvalue())
    assert "Tq9-log-secret-value" not in stream.getvalue()
    assert event["message"] == 'database "[withheld]"'
    assert (event["event"], event["level"]) == ("preflight.failed", "error")


class _Broken(io.StringIO):
    def write(self, _text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


class _Full(io.StringIO):
    def write(self, _text: str) -> int:
        raise OSError(28, "No space left on device")


class _Closed(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.close()


@pytest.mark.parametrize("stream", [_Broken(), _Full(), _Closed()])
def test_a_log_line_that_cannot_be_written_is_dropped(stream: io.StringIO) -> None:
    """EPIPE, a full disk or a closed stderr never raises out of the logger."""
    _logging.configure("json", stream)
    _logging.get_logger().info("preflight.ready", attempts=1)
    _logging.get_logger().error("preflight.failed", reason="refused")


@given(st.text(min_size=0, max_size=3000))
def test_clip_is_one_line_of_at_most_4_kib(text: str) -> None:
    """The termination message is one line, valid UTF-8, at most 4096 bytes."""
    data = _termination.clip(text * 3)
    assert len(data) <= 4096
    assert b"\n" not in data
    data.decode("utf-8")


def test_termination_log_is_created_at_a_configured_path(tmp_path: Path) -> None:
    """A configured path is created (or truncated) and holds one line."""
    target = tmp_path / "reason"
    target.write_text("an older, longer message")
    assert _termination.write(str(target), "auth_failed (auth_failed): no\nway") is None
    assert target.read_text() == "auth_failed (auth_failed): no way"


def test_termination_log_reports_why_it_could_not_write(tmp_path: Path) -> None:
    """A path that cannot be written gives the reason, for the warning event."""
    why = _termination.write(str(tmp_path / "missing-dir" / "x"), "m")
    assert why == "No such file or directory"


def test_termination_log_never_follows_a_symlink(tmp_path: Path) -> None:
    """A link planted at the path cannot make the preflight truncate its target."""
    victim = tmp_path / "victim"
    victim.write_text("precious")
    link = tmp_path / "termination-log"
    link.symlink_to(victim)
    why = _termination.write(str(link), "m")
    assert why is not None
    assert victim.read_text() == "precious"


def test_default_path_is_never_created(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside a pod, /dev/termination-log is absent and stays absent, without a warning."""
    absent = tmp_path / "termination-log"
    monkeypatch.setattr(_termination, "DEFAULT_TERMINATION_LOG", str(absent))
    assert _termination.write(str(absent), "m") is None
    assert not absent.exists()


def test_an_unexpected_exception_is_exit_1_without_its_text(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A bug becomes exit 1, reason internal_error, naming the type but never the message
    (which could quote input), and no traceback."""
    from contextlib import redirect_stderr

    from preflight import _cli

    def broken(_self: object) -> int:
        raise RuntimeError("Zx-secret-in-a-bug-message")

    monkeypatch.setattr(_cli._Run, "check", broken)
    err = io.StringIO()
    with redirect_stderr(err):
        code = _cli.main(
            ["--termination-log", str(tmp_path / "t")],
            environ={"SQL_HOST": "db", "SQL_DATABASE": "d", "SQL_USER": "u"},
        )
    assert code == 1
    failed = json.loads(err.getvalue().splitlines()[-1])
    assert (failed["reason"], failed["message"]) == ("internal_error", "unexpected RuntimeError")
    assert "Zx-secret" not in err.getvalue()
    assert "Traceback" not in err.getvalue()


def test_a_signal_during_start_up_is_acted_on_once_the_run_begins() -> None:
    """SIGTERM caught by the early handler is not lost: install() raises it at once."""
    import os
    import signal

    from preflight import _signals
    from preflight._errors import Interrupted

    previous = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        _signals.install_early()
        os.kill(os.getpid(), signal.SIGTERM)
        with pytest.raises(Interrupted) as stop:
            _signals.install()
        assert stop.value.exit_code == 143
    finally:
        signal.signal(signal.SIGTERM, previous[0])
        signal.signal(signal.SIGINT, previous[1])
