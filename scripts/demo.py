"""`make demo`: a throwaway PostgreSQL, the preflight against it, and the plans.

1. ``preflight explain`` for the example configuration of every kind (no network);
2. a real check against a local server that is up (exit 0);
3. the same with a wrong password (exit 4, no retries) and against a port
   where nothing listens (exit 10 after a 3 s deadline).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import pg  # the throwaway-server helper the tests use

EXAMPLES = {
    "CloudNativePG (-rw service)": {"SQL_HOST": "balancer-postgres-rw"},
    "AWS RDS with the CA bundle": {
        "SQL_HOST": "balancer.c9akciq32.eu-west-1.rds.amazonaws.com",
        "SQL_SSL_ROOT_CERT": "/etc/ssl/certs/rds-global-bundle.pem",
    },
    "docker compose service": {"SQL_HOST": "db"},
    "external host": {"SQL_HOST": "db.example.com"},
}


def preflight(env: dict[str, str], *args: str) -> int:
    print(f"$ preflight {' '.join(args)}".rstrip(), flush=True)
    done = subprocess.run([sys.executable, "-m", "preflight", *args], env=env, check=False)
    print(f"exit code {done.returncode}\n", flush=True)
    return done.returncode


def main() -> int:
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("SQL_", "PREFLIGHT_"))}
    base_env["PREFLIGHT_LOG_FORMAT"] = "console"
    app = {"SQL_DATABASE": pg.APP_DB, "SQL_USER": pg.APP_USER, "SQL_PASSWORD": "example"}
    for title, variables in EXAMPLES.items():
        print(f"== {title}")
        preflight({**base_env, **app, **variables}, "explain")

    workdir = Path(tempfile.mkdtemp(prefix="preflight-demo-"))
    os.chmod(workdir, 0o755)  # noqa: S103 - the server user must enter it
    server = pg.LocalServer(pg.Template(workdir), "demo")
    try:
        server.start()
        pg.create_app_database(server)
        env = {
            **base_env,
            **app,
            "SQL_PASSWORD": pg.APP_PASSWORD,
            "SQL_HOST": server.host,
            "SQL_PORT": str(server.port),
        }
        print(f"== a real check against the throwaway server on port {server.port}")
        ready = preflight(env)
        print("== a wrong password: exit 4 at once, no retries")
        wrong = preflight({**env, "SQL_PASSWORD": "wrong"})
        print("== nothing listening: retries until the 3 s deadline, exit 10")
        down = preflight({**env, "SQL_PORT": str(pg.free_port()), "PREFLIGHT_TIMEOUT": "3"})
    finally:
        server.destroy()
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    ok = (ready, wrong, down) == (0, 4, 10)
    print("demo:", "as expected" if ok else f"unexpected exit codes {(ready, wrong, down)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
