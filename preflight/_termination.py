"""The Kubernetes termination message: why the init container failed, in one line."""

from __future__ import annotations

import os

from ._env import DEFAULT_TERMINATION_LOG

# Kubernetes keeps at most 4096 bytes of a container's termination message.
MAX_BYTES = 4096


def clip(line: str, limit: int = MAX_BYTES) -> bytes:
    """``line`` as one line of UTF-8, at most ``limit`` bytes, never split mid-character."""
    data = " ".join(line.split()).encode("utf-8")
    if len(data) <= limit:
        return data
    return data[: limit - 3].decode("utf-8", "ignore").encode("utf-8") + b"..."


DEFAULT_PATH = DEFAULT_TERMINATION_LOG


def write(path: str, line: str) -> bool:
    """Write the message when ``path`` is writable; report whether it was written.

    The kubelet creates ``/dev/termination-log``; the preflight never creates a
    file there itself (on a laptop that would litter ``/dev``), but it does
    create a path that was configured explicitly.
    """
    flags = os.O_WRONLY | os.O_TRUNC
    if path != DEFAULT_PATH:
        flags |= os.O_CREAT
    try:
        fd = os.open(path, flags, 0o644)
    except OSError:
        return False
    try:
        os.write(fd, clip(line))
    except OSError:
        return False
    finally:
        os.close(fd)
    return True
