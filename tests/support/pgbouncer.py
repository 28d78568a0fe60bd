"""A real PgBouncer (Debian's ``pgbouncer``) in front of a throwaway server.

CloudNativePG's ``Pooler`` is PgBouncer; these tests run the same program,
on 127.0.0.1, as the unprivileged server user (PgBouncer refuses root).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from tests.support.pg import APP_DB, APP_PASSWORD, APP_USER, free_port


def pgbouncer_binary() -> str | None:
    """The pgbouncer executable, or None when the package is not installed."""
    return shutil.which("pgbouncer") or (
        "/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None
    )


def _quote(text: str) -> str:
    """A value for PgBouncer's auth_file: double quotes, doubled inside."""
    return '"' + text.replace('"', '""') + '"'


class PgBouncer:
    """One PgBouncer process; ``start`` and ``stop`` may be called again and again."""

    def __init__(
        self,
        base: Path,
        backend_port: int,
        *,
        pool_mode: str = "session",
        backend_host: str = "127.0.0.1",
        settings: Mapping[str, str | int] | None = None,
        password: str = APP_PASSWORD,
        any_database: bool = False,
    ) -> None:
        binary = pgbouncer_binary()
        assert binary is not None, "pgbouncer is not installed"
        self.binary = binary
        self.host = "127.0.0.1"
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="pgbouncer-", dir=base))
        self.logfile = self.dir / "pgbouncer.log"
        self.process: subprocess.Popen[bytes] | None = None
        (self.dir / "userlist.txt").write_text(f"{_quote(APP_USER)} {_quote(password)}\n")
        options: dict[str, str | int] = {
            "listen_addr": self.host,
            "listen_port": self.port,
            "unix_socket_dir": "",
            "auth_type": "scram-sha-256",
            "auth_file": str(self.dir / "userlist.txt"),
            "pool_mode": pool_mode,
            "logfile": str(self.logfile),
            "pidfile": str(self.dir / "pgbouncer.pid"),
            "max_client_conn": 100,
            "default_pool_size": 5,
            "ignore_startup_parameters": "extra_float_digits",
        }
        options.update(settings or {})
        lines = [
            "[databases]",
            f"{APP_DB} = host={backend_host} port={backend_port} dbname={APP_DB}",
            # Any other name: the server's database of that name (tests make one each).
            *([f"* = host={backend_host} port={backend_port}"] if any_database else []),
            "[pgbouncer]",
            *(f"{key} = {value}" for key, value in options.items()),
        ]
        (self.dir / "pgbouncer.ini").write_text("\n".join(lines) + "\n")
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            for path in self.dir.iterdir():
                shutil.chown(path, "postgres", "postgres")
        os.chmod(self.dir / "userlist.txt", 0o600)

    def start(self, timeout: float = 10) -> None:
        """Start PgBouncer and wait until it accepts TCP connections."""
        assert self.process is None or self.process.poll() is not None
        as_root = os.geteuid() == 0
        self.process = subprocess.Popen(
            [self.binary, str(self.dir / "pgbouncer.ini")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            user="postgres" if as_root else None,
            group="postgres" if as_root else None,
            extra_groups=[] if as_root else None,
        )
        end = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection((self.host, self.port), timeout=1):
                    return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > end:
                    raise RuntimeError(f"pgbouncer did not start: {self.log_text()}") from None
                time.sleep(0.02)

    def stop(self) -> None:
        """Stop at once (SIGINT: PgBouncer's immediate shutdown)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(2)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_text(self) -> str:
        try:
            return self.logfile.read_text(errors="replace")
        except OSError:
            return ""

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
