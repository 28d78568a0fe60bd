"""The Kubernetes termination message: why the init container failed, in one line."""

from __future__ import annotations

import os

from ._options import DEFAULT_TERMINATION_LOG

# Kubernetes keeps at most 4096 bytes of a container's termination message.
MAX_BYTES = 4096


def clip(line: str, limit: int = MAX_BYTES) -> bytes:
    """``line`` as one line of UTF-8, at most ``limit`` bytes, never split mid-character."""
    data = " ".join(line.split()).encode("utf-8", "backslashreplace")
    if len(data) <= limit:
        return data
    return data[: limit - 3].decode("utf-8", "ignore").encode("utf-8") + b"..."


def write(path: str, line: str) -> str | None:
    """Write the message; return why it could not be written, or None.

    The kubelet creates ``/dev/termination-log``; the preflight never creates a
    file there itself (on a laptop that would litter ``/dev``), but it does
    create a path that was configured explicitly.  It never follows a symbolic
    link (``O_NOFOLLOW``), so a link planted at the path cannot make it
    truncate another file.
    """
    flags = os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK
    if path != DEFAULT_TERMINATION_LOG:
        flags |= os.O_CREAT
    elif not os.path.exists(path):
        return None  # not in a pod: nothing to write, nothing to report
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        return exc.strerror or str(exc)
    try:
        if not os.path.isfile(path) and path != DEFAULT_TERMINATION_LOG:
            return "not a regular file"
        os.ftruncate(fd, 0)
        os.write(fd, clip(line))
    except OSError as exc:
        return exc.strerror or str(exc)
    finally:
        os.close(fd)
    return None
