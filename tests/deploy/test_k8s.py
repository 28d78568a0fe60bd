"""The kustomize overlays: rendered, validated, and exercised with real servers.

The decisive tests take the rendered init container's env/envFrom and volume
mounts, resolve them from example objects (what the operator or the user would
create), and run the preflight with exactly that environment against a real
PostgreSQL whose name resolves as the manifest says.
"""

from __future__ import annotations

import base64
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from tests.conftest import CNPG_HOST, RDS_HOST, ServerFactory, need_root, unavailable
from tests.support import cli, k8s
from tests.support.pg import APP_DB, APP_PASSWORD, APP_USER, VECTOR_STANDIN, LocalServer

pytestmark = pytest.mark.slow

OVERLAYS = ["cloudnativepg", "cloudnativepg-tls", "aws-rds"]
KUBERNETES_VERSION = "1.32.0"


@pytest.fixture(scope="module", autouse=True)
def kubectl() -> None:
    if shutil.which("kubectl") is None:
        unavailable("kubectl (with kustomize) is not installed")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_builtin_kinds_validate_strictly(overlay: str) -> None:
    """Every built-in object passes kubernetes-validate --strict."""
    for doc in k8s.render(overlay):
        if doc["apiVersion"].startswith("postgresql.cnpg.io/"):
            continue
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("overlay", ["cloudnativepg", "cloudnativepg-tls"])
def test_cluster_matches_the_crd(overlay: str) -> None:
    """The Cluster validates against CloudNativePG's CRD, with no unknown fields."""
    if not k8s.CRD.exists():
        unavailable(f"the CloudNativePG CRD is not at {k8s.CRD}")
    cluster = k8s.find(k8s.render(overlay), "Cluster", "balancer-postgres")
    schema = k8s.crd_schema()
    jsonschema.validate(cluster, schema)
    assert k8s.unknown_fields(cluster, schema) == []
    initdb = cluster["spec"]["bootstrap"]["initdb"]
    assert (initdb["database"], initdb["owner"]) == ("balancer", "balancer")


def test_crd_check_catches_a_typo() -> None:
    """The unknown-field check is not vacuous: a misspelt field is reported."""
    cluster = k8s.find(k8s.render("cloudnativepg"), "Cluster", "balancer-postgres")
    cluster["spec"]["instancess"] = 3
    assert k8s.unknown_fields(cluster, k8s.crd_schema()) == [".spec.instancess"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_init_container_meets_restricted_pod_security(overlay: str) -> None:
    """The init container and pod meet the "restricted" Pod Security Standard."""
    deployment = k8s.find(k8s.render(overlay), "Deployment", "balancer")
    pod = deployment["spec"]["template"]["spec"]
    init = k8s.container(deployment, "db-preflight")
    context = init["securityContext"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert context["runAsNonRoot"] is True
    assert isinstance(context["runAsUser"], int)
    assert context["runAsUser"] > 0
    assert context["seccompProfile"]["type"] == "RuntimeDefault"
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    assert "add" not in context["capabilities"]
    assert set(init["resources"]["requests"]) == {"cpu", "memory"}
    assert set(init["resources"]["limits"]) == {"cpu", "memory"}
    assert init["terminationMessagePolicy"] == "FallbackToLogsOnError"


def _secret(name: str, **data: str) -> dict[str, Any]:
    encoded = {k.replace("__", "."): base64.b64encode(v.encode()).decode() for k, v in data.items()}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": encoded}


def _cnpg_app_secret(server: LocalServer, **override: str) -> dict[str, Any]:
    """balancer-postgres-app as the operator writes it (port: the test server's)."""
    data = {
        "host": CNPG_HOST,
        "port": str(server.port),
        "dbname": APP_DB,
        "username": APP_USER,
        "password": APP_PASSWORD,
        "uri": f"postgresql://{APP_USER}:***@{CNPG_HOST}:{server.port}/{APP_DB}",
        **override,
    }
    return _secret("balancer-postgres-app", **data)


def _run_init_container(
    overlay: str,
    objects: list[dict[str, Any]],
    hosts: dict[str, str],
    tmp_path: Path,
    *args: str,
    deployment: dict[str, Any] | None = None,
) -> cli.Run:
    if deployment is None:
        deployment = k8s.find(k8s.render(overlay), "Deployment", "balancer")
    init = k8s.container(deployment, "db-preflight")
    env = {**cli.base_env(), **k8s.resolve_env(init, objects)}
    env["PREFLIGHT_TERMINATION_LOG"] = str(tmp_path / "termination-log")
    mounts = k8s.resolve_volumes(deployment, init, objects, tmp_path)
    result = cli.run(env, *args, hosts=hosts, workdir=tmp_path, mounts=mounts)
    termination = tmp_path / "termination-log"
    cli.assert_no_secret(
        APP_PASSWORD,
        result.stdout,
        result.stderr,
        termination.read_text() if termination.exists() else "",
    )
    return result


@pytest.fixture
def cnpg_server(make_server: ServerFactory) -> LocalServer:
    """A server like the Cluster bootstraps: database balancer, vector created."""
    server = make_server("cnpg", extensions=VECTOR_STANDIN)
    with server.admin(APP_DB) as conn:
        conn.execute("CREATE EXTENSION vector")
    return server


def test_cloudnativepg_overlay_runs(cnpg_server: LocalServer, tmp_path: Path) -> None:
    """The cloudnativepg overlay's env, from the operator's secret: exit 0, no TLS, rw."""
    need_root()
    result = _run_init_container(
        "cloudnativepg", [_cnpg_app_secret(cnpg_server)], {CNPG_HOST: "127.0.0.1"}, tmp_path
    )
    assert result.code == 0, result.stderr
    plan = result.event("preflight.plan")
    assert (plan["kind"], plan["host"], plan["sslmode"], plan["target_session_attrs"]) == (
        "cloudnativepg",
        CNPG_HOST,
        "disable",
        "read-write",
    )
    ready = result.event("preflight.ready")
    assert ready["tls"] is False
    assert ready["extensions"]["installed"] == ["vector"]


@pytest.mark.parametrize(
    ("variable", "wrong_key", "code", "reason"),
    [
        ("SQL_PASSWORD", "username", 4, "auth_failed"),
        ("SQL_DATABASE", "password", 5, "database_missing"),
        ("SQL_HOST", "dbname", 10, "dns"),
    ],
)
def test_cloudnativepg_wrong_secret_key_fails_with_its_code(
    cnpg_server: LocalServer,
    tmp_path: Path,
    variable: str,
    wrong_key: str,
    code: int,
    reason: str,
) -> None:
    """A variable mapped to the wrong secret key fails with the documented code."""
    need_root()
    deployment = k8s.with_env_key(
        k8s.find(k8s.render("cloudnativepg"), "Deployment", "balancer"), variable, wrong_key
    )
    result = _run_init_container(
        "cloudnativepg",
        [_cnpg_app_secret(cnpg_server)],
        {CNPG_HOST: "127.0.0.1"},
        tmp_path,
        "--timeout",
        "2",
        deployment=deployment,
    )
    assert result.code == code, result.stderr
    assert result.event("preflight.failed")["reason"] == reason


def test_cloudnativepg_tls_overlay_mounts_only_the_ca_certificate(
    make_server: ServerFactory, server_tls: tuple[str, str], ca: Any, tmp_path: Path
) -> None:
    """verify-ca against the operator's CA: exit 0 over TLS; ca.key is never mounted."""
    need_root()
    server = make_server("cnpg-tls", tls=server_tls, extensions=VECTOR_STANDIN)
    ca_secret = _secret(
        "balancer-postgres-ca",
        ca__crt=ca.cert_pem.bytes().decode(),
        ca__key="PRIVATE-KEY-MUST-NOT-BE-MOUNTED",
    )
    result = _run_init_container(
        "cloudnativepg-tls",
        [_cnpg_app_secret(server), ca_secret],
        {CNPG_HOST: "127.0.0.1"},
        tmp_path,
    )
    assert result.code == 0, result.stderr
    assert result.event("preflight.plan")["sslmode"] == "verify-ca"
    assert result.event("preflight.ready")["tls"] is True
    mounted = sorted(p.name for p in (tmp_path / "volume-src-postgres-ca").iterdir())
    assert mounted == ["ca.crt"]


def test_aws_rds_overlay_runs_with_verify_full(
    make_server: ServerFactory, server_tls: tuple[str, str], ca: Any, tmp_path: Path
) -> None:
    """The aws-rds overlay: SQL_* from the user's secret, the CA bundle from the
    ConfigMap at its fixed path, verify-full against an RDS-style endpoint: exit 0."""
    need_root()
    server = make_server(
        "rds",
        tls=server_tls,
        extensions=VECTOR_STANDIN,
        hba=("local all all trust", "hostssl all all 127.0.0.1/32 scram-sha-256"),
    )
    example = k8s.ROOT / "k8s/overlays/aws-rds/examples/balancer-db-secret.example.yaml"
    import yaml

    secret = yaml.safe_load(example.read_text())
    secret["stringData"] |= {
        "SQL_HOST": RDS_HOST,
        "SQL_PORT": str(server.port),
        "SQL_PASSWORD": APP_PASSWORD,
    }
    bundle = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "rds-ca-bundle"},
        "data": {"global-bundle.pem": ca.cert_pem.bytes().decode()},
    }
    result = _run_init_container("aws-rds", [secret, bundle], {RDS_HOST: "127.0.0.1"}, tmp_path)
    assert result.code == 0, result.stderr
    plan = result.event("preflight.plan")
    assert (plan["kind"], plan["sslmode"]) == ("aws-rds", "verify-full")
    ready = result.event("preflight.ready")
    assert ready["tls"] is True
    assert ready["extensions"]["available_creatable"] == ["vector"]


def test_aws_rds_secret_example_is_a_template() -> None:
    """The example secret is not part of the overlay and says it is a template."""
    rendered = k8s.render("aws-rds")
    assert not [d for d in rendered if d["kind"] == "Secret"]
    example = k8s.ROOT / "k8s/overlays/aws-rds/examples/balancer-db-secret.example.yaml"
    assert "TEMPLATE" in example.read_text()
