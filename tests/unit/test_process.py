"""The process around the check: log rendering and the termination message."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from preflight import _logging, _termination


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
    """A registered secret never reaches a log line, in values or keys."""
    stream = io.StringIO()
    _logging.configure("json", stream)
    _logging.set_secrets(["Tq9-log-secret"])
    _logging.get_logger().error("preflight.failed", message='database "Tq9-log-secret"')
    assert "Tq9-log-secret" not in stream.getvalue()
    assert 'database \\"***\\"' in stream.getvalue()
    _logging.set_secrets([])


@given(st.text(min_size=0, max_size=3000))
def test_clip_is_one_line_of_at_most_4_kib(text: str) -> None:
    """The termination message is one line, valid UTF-8, at most 4096 bytes."""
    data = _termination.clip(text * 3)
    assert len(data) <= 4096
    assert b"\n" not in data
    data.decode("utf-8")


def test_termination_log_written_only_where_allowed(tmp_path: Path) -> None:
    """A configured path is created; the default path is never created."""
    target = tmp_path / "reason"
    assert _termination.write(str(target), "auth_failed (auth_failed): no\nway")
    assert target.read_text() == "auth_failed (auth_failed): no way"
    assert not _termination.write(str(tmp_path / "missing-dir" / "x"), "m")
    default = Path(_termination.DEFAULT_PATH)
    if not default.exists():  # outside a pod: must stay absent
        assert not _termination.write(str(default), "m")
        assert not default.exists()
