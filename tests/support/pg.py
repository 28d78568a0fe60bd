"""Throwaway PostgreSQL servers for the integration tests.

Two backends, one interface:

- ``LocalServer`` runs this machine's PostgreSQL binaries (``initdb``,
  ``pg_ctl``).  PostgreSQL refuses to run as root, so as root every server
  command runs as the unprivileged ``postgres`` user.
- ``DockerServer`` runs testcontainers' PostgreSQL where a Docker engine
  answers; it backs the scenarios that need nothing but a plain server.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from tests.support.cli import unshare

# A password no message could contain by chance; it has characters that need
# quoting in a conninfo string and in a URL.
APP_PASSWORD = "Zq8-pre'fl ight@:/%Secr3t"
APP_USER = "balancer"
APP_DB = "balancer"
SUPERUSER = "postgres"

# Names the TLS scenarios give the server (its certificate carries both).
RDS_HOST = "balancer.c9akciq32.eu-west-1.rds.amazonaws.com"
CNPG_HOST = "balancer-postgres-rw"


def pg_bindir() -> Path | None:
    """Where ``initdb`` and ``pg_ctl`` live, or None."""
    override = os.environ.get("PREFLIGHT_PG_BIN")
    candidates = [override] if override else []
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    found = shutil.which("pg_ctl")
    if found:
        candidates.append(str(Path(found).parent))
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").exists():
            return Path(candidate)
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_server_user(argv: Sequence[str]) -> list[str]:
    """``argv`` run as the unprivileged server user when we are root."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return list(argv)


@dataclass(frozen=True)
class Installation:
    """A PostgreSQL installation: its ``bin`` directory and how its programs run
    as the server user (this machine's, or inside a root: ``tests/support/versions.py``)."""

    name: str
    bindir: Path
    as_server_user: Callable[[Sequence[str]], list[str]] = _as_server_user

    def run(self, program: str, *args: str) -> list[str]:
        """The command line of ``program`` (initdb, pg_ctl, ...) as the server user."""
        return self.as_server_user([str(self.bindir / program), *args])


def local_installation() -> Installation:
    """This machine's PostgreSQL (``pg_bindir``)."""
    bindir = pg_bindir()
    assert bindir is not None
    return Installation("local", bindir)


def _chown_to_server_user(path: Path) -> None:
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        for root, dirs, files in os.walk(path):
            os.chown(root, entry.pw_uid, entry.pw_gid)
            for name in dirs + files:
                os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)


def docker_engine_answers() -> bool:
    """True when a Docker engine (not just the client) is there."""
    if not shutil.which("docker"):
        return False
    try:
        done = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and bool(done.stdout.strip())


@dataclass
class ServerConfig:
    """What a test wants of a server."""

    settings: dict[str, Any] = field(default_factory=dict)
    hba: Sequence[str] = (
        "local all all trust",
        "local replication all trust",
        "host all all 127.0.0.1/32 scram-sha-256",
        "host all all ::1/128 scram-sha-256",
    )
    tls: tuple[str, str] | None = None  # (certificate chain PEM, key PEM)
    # Extra SQL-only extensions {name: control file text}, visible to this server
    # alone through a private mount namespace (the machine's files stay as they are).
    extensions: dict[str, str] = field(default_factory=dict)


# Debian 12 ships no pgvector; the manifest tests need a server that offers
# "vector", so they get this empty stand-in (named as such in its comment).
VECTOR_STANDIN = {
    "vector": "comment = 'test stand-in for pgvector (no objects)'\n"
    "default_version = '0.0.0'\nrelocatable = true\ntrusted = true\n"
}


class Template:
    """One ``initdb`` per test session; every server starts from a copy."""

    def __init__(self, base: Path, installation: Installation | None = None) -> None:
        self.base = base
        self.installation = installation or local_installation()
        self._datadir: Path | None = None

    def datadir(self) -> Path:
        if self._datadir is None:
            datadir = self.base / f"template-{self.installation.name}"
            datadir.mkdir()
            _chown_to_server_user(datadir)
            subprocess.run(
                self.installation.run(
                    "initdb",
                    "-D",
                    str(datadir),
                    "-U",
                    SUPERUSER,
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "--no-sync",
                    "-E",
                    "UTF8",
                    "--locale=C",
                ),
                check=True,
                capture_output=True,
            )
            self._datadir = datadir
        return self._datadir


class LocalServer:
    """A PostgreSQL server from this machine's binaries, on 127.0.0.1."""

    backend = "local"

    def __init__(self, template: Template, name: str, config: ServerConfig | None = None) -> None:
        self.installation = template.installation
        self.bindir = self.installation.bindir
        self.config = config or ServerConfig()
        self.port = free_port()
        self.host = "127.0.0.1"
        self.dir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=template.base))
        self.datadir = self.dir / "data"
        self.logfile = self.dir / "server.log"
        shutil.copytree(template.datadir(), self.datadir, symlinks=True)
        self._configure()
        _chown_to_server_user(self.dir)
        os.chmod(self.datadir, 0o700)

    def _configure(self) -> None:
        settings: dict[str, Any] = {
            "listen_addresses": "'127.0.0.1'",
            "port": self.port,
            "unix_socket_directories": f"'{self.dir}'",
            "fsync": "off",
            "full_page_writes": "off",
            "log_line_prefix": "'%m [%p] '",
        }
        if self.config.tls is not None:
            chain, key = self.config.tls
            (self.datadir / "server.crt").write_text(chain)
            (self.datadir / "server.key").write_text(key)
            os.chmod(self.datadir / "server.key", 0o600)
            settings |= {
                "ssl": "on",
                "ssl_cert_file": "'server.crt'",
                "ssl_key_file": "'server.key'",
            }
        settings |= self.config.settings
        with open(self.datadir / "postgresql.conf", "a") as conf:
            for key, value in settings.items():
                conf.write(f"{key} = {value}\n")
        (self.datadir / "pg_hba.conf").write_text("\n".join(self.config.hba) + "\n")

    @classmethod
    def standby_of(cls, primary: LocalServer, template: Template, name: str) -> LocalServer:
        """A streaming standby of ``primary`` (pg_basebackup -R), not yet started."""
        standby = cls.__new__(cls)
        standby.installation = primary.installation
        standby.bindir = primary.bindir
        standby.config = ServerConfig()
        standby.port = free_port()
        standby.host = "127.0.0.1"
        standby.dir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=template.base))
        standby.datadir = standby.dir / "data"
        standby.logfile = standby.dir / "server.log"
        _chown_to_server_user(standby.dir)
        subprocess.run(
            primary.installation.run(
                "pg_basebackup",
                "-h",
                str(primary.dir),
                "-p",
                str(primary.port),
                "-U",
                SUPERUSER,
                "-D",
                str(standby.datadir),
                "-R",
                "-X",
                "stream",
                "--no-sync",
                "--checkpoint=fast",
            ),
            check=True,
            capture_output=True,
        )
        with open(standby.datadir / "postgresql.conf", "a") as conf:
            conf.write(f"port = {standby.port}\nunix_socket_directories = '{standby.dir}'\n")
        _chown_to_server_user(standby.dir)
        return standby

    def extension_mount(self) -> str | None:
        """A shell step that shows this server its extra extensions, or None.

        The step bind-mounts a copy of the extension directory over the
        system one; run it inside a private mount namespace only.
        """
        if not self.config.extensions:
            return None
        sharedir = subprocess.run(
            [str(self.bindir / "pg_config"), "--sharedir"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        system_dir = Path(sharedir) / "extension"
        overlay = self.dir / "extension"
        if not overlay.exists():
            shutil.copytree(system_dir, overlay)
            for name, control in self.config.extensions.items():
                (overlay / f"{name}.control").write_text(control)
                (overlay / f"{name}--0.0.0.sql").write_text("-- no objects\n")
        return f"mount --bind '{overlay}' '{system_dir}'"

    def _extension_overlay(self) -> list[str]:
        step = self.extension_mount()
        if step is None:
            return []
        return unshare(f'{step} && exec "$@"', [])

    def server_command(self, action: str, *options: str) -> list[str]:
        """``pg_ctl`` for this server, run as the unprivileged server user."""
        return self.installation.run(
            "pg_ctl", "-D", str(self.datadir), "-l", str(self.logfile), "-s", *options, action
        )

    def start(self, wait: bool = True) -> None:
        options = ["-w", "-t", "30"] if wait else ["-W"]
        subprocess.run(
            [*self._extension_overlay(), *self.server_command("start", *options)], check=True
        )

    def stop(self) -> None:
        subprocess.run(
            self.server_command("stop", "-m", "immediate", "-w"), check=False, capture_output=True
        )

    def wait_ready(self, timeout: float = 30) -> None:
        """Wait until the superuser can connect over the socket."""
        end = time.monotonic() + timeout
        while True:
            try:
                with self.admin():
                    return
            except psycopg.OperationalError:
                if time.monotonic() > end:
                    raise
                time.sleep(0.05)

    @contextlib.contextmanager
    def admin(self, dbname: str = "postgres") -> Iterator[psycopg.Connection[Any]]:
        """A superuser connection over the Unix socket (trust)."""
        with psycopg.connect(
            host=str(self.dir),
            port=self.port,
            user=SUPERUSER,
            dbname=dbname,
            autocommit=True,
        ) as conn:
            yield conn

    def log_text(self) -> str:
        try:
            return self.logfile.read_text(errors="replace")
        except OSError:
            return ""

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


# What the ``make_server`` fixture gives a test: ``make(name, *, start, app, **config)``.
ServerFactory = Callable[..., LocalServer]


class DockerServer:
    """testcontainers' PostgreSQL, for machines with a Docker engine."""

    backend = "docker"

    def __init__(self) -> None:
        from testcontainers.community.postgres import PostgresContainer

        self._container = PostgresContainer(
            "postgres:15",
            username=SUPERUSER,
            password=APP_PASSWORD + "-admin",
            dbname="postgres",
            driver=None,
        )
        self._container.start()
        self.host = self._container.get_container_host_ip()
        self.port = int(self._container.get_exposed_port(5432))

    @contextlib.contextmanager
    def admin(self, dbname: str = "postgres") -> Iterator[psycopg.Connection[Any]]:
        with psycopg.connect(
            host=self.host,
            port=self.port,
            user=SUPERUSER,
            password=APP_PASSWORD + "-admin",
            dbname=dbname,
            autocommit=True,
        ) as conn:
            yield conn

    def log_text(self) -> str:
        out, err = self._container.get_logs()
        return (out + err).decode(errors="replace")

    def destroy(self) -> None:
        self._container.stop()


def create_app_database(server: LocalServer | DockerServer) -> None:
    """The balancer's role and database, with the distinctive password."""
    with server.admin() as conn:
        conn.execute(
            psycopg.sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                psycopg.sql.Identifier(APP_USER), psycopg.sql.Literal(APP_PASSWORD)
            )
        )
        conn.execute(
            psycopg.sql.SQL("CREATE DATABASE {} OWNER {}").format(
                psycopg.sql.Identifier(APP_DB), psycopg.sql.Identifier(APP_USER)
            )
        )


@contextlib.contextmanager
def app_server(
    template: Template, name: str, config: ServerConfig | None = None
) -> Iterator[LocalServer]:
    """A started local server with balancer's role and database, destroyed afterwards."""
    server = LocalServer(template, name, config)
    server.start()
    try:
        create_app_database(server)
        yield server
    finally:
        server.destroy()
