"""Run the preflight where a real server listens on the port the manifests name.

The rendered settings say ``SQL_PORT=5432``; the test servers normally listen
on a free port. So the server is restarted on 5432 inside a private network
namespace (loopback only), and the preflight runs there too, with a private
/etc/hosts that resolves the manifests' host names to 127.0.0.1.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.support import cli
from tests.support.pg import LocalServer


def run_against(
    server: LocalServer,
    port: int,
    env: Mapping[str, str],
    hosts: Mapping[str, str],
    workdir: Path,
    *args: str,
    mounts: Mapping[str, Path] | None = None,
    timeout: float = 120,
) -> cli.Run:
    """The CLI with ``env``, against ``server`` moved to 127.0.0.1:``port``."""
    server.stop()
    steps = ["ip link set lo up", server.extension_mount() or "true"]
    start = server.server_command(
        "start", "-w", "-t", "30", "-o", f"-p {port} -c listen_addresses=127.0.0.1"
    )
    stop = server.server_command("stop", "-w", "-m", "immediate")
    steps.append(shlex.join(start))
    script = " && ".join(steps) + f'; "$@"; rc=$?; {shlex.join(stop)}; exit $rc'
    inner = cli.isolated(cli.preflight_command(*args), hosts, workdir, mounts)
    command: Sequence[str] = cli.unshare(script, inner, "--net")
    return cli.run_command(command, env, timeout=timeout)
