"""Fault injection on loopback: a cutting TCP proxy, a black hole, a silent
DNS resolver in a private network namespace, a lock on a catalog.

Everything here listens on 127.0.0.0/8 only, or inside a network namespace
the test creates; every thread and process stops by itself (on ``close()``,
when the process it serves exits, or after a hard cap).
"""

from __future__ import annotations

import contextlib
import shlex
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from tests.support.cli import Child, unshare
from tests.support.pg import APP_DB, APP_USER, LocalServer

PASS = "pass"  # forward both ways
CUT = "cut"  # forward the client's bytes; close after ``cut_after`` bytes from the server
STALL = "stall"  # accept, read, never answer (a hung server or a stalled stream)
RESET = "reset"  # accept and close at once
# Accept, answer the SSLRequest ("S": go ahead with TLS) and a GSSENCRequest ("N"),
# then read and never answer: a server that hangs in the middle of the handshake.
HANDSHAKE_STALL = "handshake-stall"
MODES = (PASS, CUT, STALL, RESET, HANDSHAKE_STALL)
SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
TCP_REPAIR = 19  # linux/tcp.h; not in Python's socket module


class Proxy:
    """A TCP proxy on 127.0.0.1 in front of ``target``, whose behaviour can be
    switched while it runs (``proxy.mode = CUT``).

    In ``CUT`` mode the server's first ``cut_after`` bytes reach the client and
    then both sides are closed: with TLS and a small ``cut_after`` the cut
    lands in the middle of the handshake (after the server's ``S`` answer to
    the SSLRequest and part of its ServerHello).

    :meth:`freeze` stops every connection, open ones included, as a network
    that drops packets does: nothing is forwarded either way and nothing is
    closed, so no FIN and no RST reaches either side.
    """

    def __init__(
        self, target: tuple[str, int], mode: str = PASS, cut_after: int = 40, port: int = 0
    ) -> None:
        assert mode in MODES
        self.target = target
        self.mode = mode
        self.cut_after = cut_after
        self.cuts = 0  # connections cut (any mode but PASS)
        self._listener = socket.create_server(("127.0.0.1", port), backlog=64)
        self._listener.settimeout(0.2)
        self.host = "127.0.0.1"
        self.port = int(self._listener.getsockname()[1])
        self._stop = threading.Event()
        self._frozen = threading.Event()
        self._upstream: set[socket.socket] = set()  # our sockets to the server
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _track(self, *socks: socket.socket) -> None:
        with self._lock:
            self._open.update(socks)

    def _close(self, *socks: socket.socket) -> None:
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
            with self._lock:
                self._open.discard(sock)
                self._upstream.discard(sock)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._track(client)
            threading.Thread(target=self._serve, args=(client, self.mode), daemon=True).start()

    def _serve(self, client: socket.socket, mode: str) -> None:
        if mode == RESET:
            self.cuts += 1
            linger = b"\x01\x00\x00\x00\x00\x00\x00\x00"  # RST on close
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            self._close(client)
            return
        if mode in (STALL, HANDSHAKE_STALL):
            self.cuts += 1
            self._silent(client, answer=mode == HANDSHAKE_STALL)
            return
        try:
            server = socket.create_connection(self.target, timeout=5)
        except OSError:
            self._close(client)
            return
        self._track(server)
        with self._lock:
            self._upstream.add(server)
        budget = self.cut_after if mode == CUT else None
        upstream = threading.Thread(target=self._pump, args=(client, server, None), daemon=True)
        upstream.start()
        if self._pump(server, client, budget):
            self.cuts += 1
        if self._frozen.is_set():
            self._stop.wait()  # frozen: hold the client's socket open, silent, until close()
        self._close(client, server)
        upstream.join(timeout=1)

    def _silent(self, client: socket.socket, *, answer: bool) -> None:
        """Read and never answer; with ``answer``, first say yes to the SSLRequest
        (and no to a GSSENCRequest), as a server that hangs mid-handshake."""
        client.settimeout(0.2)
        while not self._stop.is_set():
            try:
                data = client.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            if answer and len(data) >= 8:
                code = int.from_bytes(data[4:8], "big")
                with contextlib.suppress(OSError):
                    client.sendall(b"N" if code == GSSENC_REQUEST else b"S")
                answer = code == GSSENC_REQUEST
        self._close(client)

    def freeze(self, *, vanish_upstream: bool = False) -> None:
        """Forward nothing more, either way, on open connections and new ones; close nothing.

        With ``vanish_upstream`` (needs CAP_NET_ADMIN) our sockets to the server
        are also dropped without a FIN or RST (TCP repair mode), as a host that
        is gone: the server hears of it only when it sends (a keepalive probe,
        a query's result) and gets a reset.  Without it, our kernel keeps
        acknowledging the server's keepalives, so the server never notices.
        """
        self.mode = STALL
        self._frozen.set()
        if vanish_upstream:
            with self._lock:
                upstream = list(self._upstream)
            for sock in upstream:
                # In repair mode close() sends nothing; a shutdown() first would send a FIN.
                sock.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, 1)
                sock.close()
                with self._lock:
                    self._open.discard(sock)
                    self._upstream.discard(sock)

    def _pump(self, source: socket.socket, sink: socket.socket, budget: int | None) -> bool:
        """Copy ``source`` to ``sink``; True when ``budget`` bytes ran out (a cut)."""
        source.settimeout(0.2)
        while not self._stop.is_set() and not self._frozen.is_set():
            try:
                data = source.recv(4096 if budget is None else max(1, min(4096, budget)))
            except TimeoutError:
                continue
            except OSError:
                return False
            if not data:
                with contextlib.suppress(OSError):
                    sink.shutdown(socket.SHUT_WR)
                return False
            try:
                sink.sendall(data)
            except OSError:
                return False
            if budget is not None:
                budget -= len(data)
                if budget <= 0:
                    return True
        return False

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        with self._lock:
            socks = list(self._open)
        self._close(*socks)
        self._thread.join(timeout=2)


class BlackHole:
    """A TCP port whose SYNs go unanswered: a listener with a full accept queue.

    Linux drops a SYN when the listener's accept queue is full, so a connect
    waits (retransmitting SYNs) until its own timeout: what a firewall that
    drops packets looks like, on any loopback address, without iptables.
    """

    def __init__(self, address: str = "127.0.0.1", port: int = 0) -> None:
        self.host = address
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((address, port))
        self._listener.listen(0)
        self.port = int(self._listener.getsockname()[1])
        self._fillers = []
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect((address, self.port))
            self._fillers.append(filler)
        time.sleep(0.05)
        assert not self.answers(), "the black hole accepted a connection"

    def answers(self, timeout: float = 0.3) -> bool:
        probe = socket.socket()
        probe.settimeout(timeout)
        try:
            probe.connect((self.host, self.port))
        except OSError:
            return False
        finally:
            probe.close()
        return True

    def close(self) -> None:
        for sock in [*self._fillers, self._listener]:
            sock.close()


# A DNS server that reads every query and never answers (UDP and TCP port 53).
# It creates the file ``argv[2]`` when it listens and ``argv[2].asked`` at the
# first query.  It exits when the process that started it (the one that exec'd
# into the command under test) is gone, or after ``cap`` seconds.
_SILENT_RESOLVER = """
import os, select, socket, sys, time
parent, cap = os.getppid(), float(sys.argv[1])
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); udp.bind(("127.0.0.1", 53))
tcp = socket.socket(); tcp.bind(("127.0.0.1", 53)); tcp.listen(16)
open(sys.argv[2], "w").close()
held, end = [], time.monotonic() + cap
while time.monotonic() < end and os.getppid() == parent:
    ready, _, _ = select.select([udp, tcp], [], [], 0.2)
    for sock in ready:
        if sock is udp:
            udp.recvfrom(4096)
        else:
            held.append(tcp.accept()[0])
        open(sys.argv[2] + ".asked", "w").close()
"""


def silent_dns(
    command: Sequence[str],
    workdir: Path,
    hosts: Sequence[str] = (),
    resolver_options: str = "timeout:5 attempts:2",
    cap: float = 120,
) -> list[str]:
    """``command`` in private mount and network namespaces whose only resolver
    (127.0.0.1:53) reads every query and never answers.

    ``hosts`` are extra /etc/hosts lines; any other name needs DNS and waits.
    ``workdir / "resolver.ready.asked"`` appears once the first query arrived.
    The default resolver options are glibc's own (5 s, 2 attempts).  The new
    network namespace has only its own loopback: nothing leaves it.
    """
    hosts_file = workdir / "hosts"
    hosts_file.write_text("\n".join(["127.0.0.1 localhost", *hosts]) + "\n")
    resolv = workdir / "resolv.conf"
    resolv.write_text(f"nameserver 127.0.0.1\noptions {resolver_options}\n")
    ready = workdir / "resolver.ready"
    script = "; ".join(
        [
            "set -e",
            "ip link set lo up",
            f"mount --bind {shlex.quote(str(hosts_file))} /etc/hosts",
            f"mount --bind {shlex.quote(str(resolv))} /etc/resolv.conf",
            f"{shlex.quote(sys.executable)} -c {shlex.quote(_SILENT_RESOLVER)} {cap} "
            f"{shlex.quote(str(ready))} &",
            f"for i in $(seq 500); do [ -e {shlex.quote(str(ready))} ] && break; sleep 0.02; done",
            'exec "$@"',
        ]
    )
    return unshare(script.replace("&;", "&"), command, "--net")


def hosts_wrapped(command: Sequence[str], workdir: Path, lines: Sequence[str]) -> list[str]:
    """``command`` in a private mount namespace whose /etc/hosts has ``lines``
    (a name may have several addresses) and whose resolver refuses at once."""
    hosts_file = workdir / "hosts"
    hosts_file.write_text("\n".join(["127.0.0.1 localhost", *lines]) + "\n")
    resolv = workdir / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    script = " && ".join(
        [
            f"mount --bind {shlex.quote(str(hosts_file))} /etc/hosts",
            f"mount --bind {shlex.quote(str(resolv))} /etc/resolv.conf",
            'exec "$@"',
        ]
    )
    return unshare(script, command)


@contextlib.contextmanager
def catalog_lock(server: LocalServer, table: str = "pg_extension") -> Iterator[Any]:
    """Hold an ACCESS EXCLUSIVE lock on ``table`` in the app database until the
    block ends: every query that reads it waits (what a long CREATE EXTENSION
    or a stuck migration does)."""
    import psycopg

    conn = psycopg.connect(host=str(server.dir), port=server.port, user="postgres", dbname=APP_DB)
    try:
        conn.execute(f"LOCK TABLE pg_catalog.{table} IN ACCESS EXCLUSIVE MODE")
        yield conn
    finally:
        conn.rollback()
        conn.close()


def wait_for(predicate: Any, timeout: float, step: float = 0.02) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes (bounded)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())


def lock_waiters(server: LocalServer) -> int:
    """How many of the app role's sessions wait for a lock (behind :func:`catalog_lock`)."""
    with server.admin() as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = %s AND wait_event_type = 'Lock'",
            (APP_USER,),
        ).fetchone()
    return int(row[0]) if row else 0


def syn_sent(port: int) -> int:
    """How many IPv4 connections in this network namespace wait for a SYN-ACK from ``port``."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote_port = int(fields[2].split(":")[1], 16)
        if remote_port == port and fields[3] == "02":  # TCP_SYN_SENT
            count += 1
    return count


def terminate_when(child: Child, hanging: Callable[[], bool]) -> tuple[float, str]:
    """SIGTERM ``child`` once ``hanging()`` holds: (seconds from the signal to its exit,
    stderr)."""
    assert wait_for(lambda: hanging() or child.poll() is not None, 30), "it never hung"
    assert child.poll() is None, child.finish(timeout=10).stderr
    sent = time.monotonic()
    child.proc.terminate()
    try:
        child.proc.wait(timeout=30)
    finally:
        child.kill()
    took = time.monotonic() - sent
    return took, child.finish(timeout=10).stderr
