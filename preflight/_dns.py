"""Name resolution under the deadline.

libpq (and psycopg) resolve names with a blocking ``getaddrinfo``, which no
timeout covers and no signal interrupts: a resolver that never answers (a
NetworkPolicy that blocks kube-dns) would hold the check past its deadline.
So the preflight resolves the name in a worker thread, waits for it at most
the time left (a wait that SIGTERM interrupts), and hands libpq the address
as ``hostaddr``, keeping ``host`` for TLS verification.
"""

from __future__ import annotations

import queue
import socket
import threading


class ResolveError(Exception):
    """The name did not resolve, or the resolver did not answer in time."""


def resolve(host: str, port: int, timeout: float) -> list[str]:
    """The addresses of ``host`` in resolver order, waiting at most ``timeout`` seconds."""
    answers: queue.SimpleQueue[list[str] | OSError] = queue.SimpleQueue()

    def lookup() -> None:
        try:
            found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            answers.put(list(dict.fromkeys(str(item[4][0]) for item in found)))
        except OSError as exc:
            answers.put(exc)

    threading.Thread(target=lookup, name="preflight-dns", daemon=True).start()
    try:
        answer = answers.get(timeout=max(timeout, 0.001))
    except queue.Empty:
        raise ResolveError(f"DNS lookup of {host} did not answer within {timeout:.1f} s") from None
    if isinstance(answer, OSError):
        raise ResolveError(f"failed to resolve host {host!r}: {answer}")
    return answer
