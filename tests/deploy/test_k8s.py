"""The kustomize component on balancer's real Deployment, and its overlays.

The inputs are stand-ins written from the cluster repositories' facts
(k8s/balancer/: the Deployment as balancer-main publishes it, the sandbox's
ConfigMap, the live cluster's empty one). The tests render each overlay with
``kubectl kustomize``, validate it, check that nothing but the init containers
(and their volumes) changed, and then run the preflight with exactly the init
container's environment, resolved from the objects the clusters hold, against
real servers whose names resolve as the settings say.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from tests.deploy.netns import run_against
from tests.support import cli, k8s
from tests.support.ci import unavailable
from tests.support.pg import (
    APP_DB,
    APP_PASSWORD,
    APP_USER,
    RDS_HOST,
    VECTOR_STANDIN,
    LocalServer,
    ServerFactory,
)

pytestmark = pytest.mark.slow

KUBERNETES_VERSION = "1.32.0"
SANDBOX_HOST = "shared-cluster-rw.cloudnative-pg.svc.cluster.local"
# overlay -> the stand-in it renders against
OVERLAYS = {
    "sandbox": "sandbox",
    "sandbox-verify-ca": "sandbox",
    "sandbox-migrate": "sandbox",
    "live": "live",
}
PREFLIGHT_IMAGE = "ghcr.io/codeforphilly/django-db-preflight"
APP_IMAGE = "ghcr.io/codeforphilly/balancer-main/app"


@pytest.fixture(scope="module", autouse=True)
def kubectl() -> None:
    if shutil.which("kubectl") is None:
        unavailable("kubectl (with kustomize) is not installed")


def _deployment(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return k8s.find(docs, "Deployment", "balancer")


def _init_names(deployment: dict[str, Any]) -> list[str]:
    return [c["name"] for c in deployment["spec"]["template"]["spec"].get("initContainers", [])]


# -- the stand-ins say what the clusters hold ---------------------------------


@pytest.mark.parametrize(
    ("stand_in", "tag", "config"),
    [
        (
            "sandbox",
            "0.0.0-dev.20260211012449",
            {
                "DEBUG": "true",
                "LOGIN_REDIRECT_URL": "",
                "REACT_APP_API_BASE_URL": "https://balancer.sandbox.k8s.phl.io/",
                "SQL_ENGINE": "django.db.backends.postgresql",
                "SQL_HOST": SANDBOX_HOST,
                "SQL_PORT": "5432",
                "SQL_DATABASE": "balancer",
                "SQL_USER": "balancer",
            },
        ),
        ("live", "1.1.5", None),
    ],
)
def test_stand_in_is_balancer_as_deployed(
    stand_in: str, tag: str, config: dict[str, str] | None
) -> None:
    """The stand-in renders balancer's Deployment and ConfigMap as the cluster repo does."""
    docs = k8s.documents(k8s.kustomize(k8s.K8S / "balancer" / stand_in))
    deployment = _deployment(docs)
    assert deployment["metadata"] == {
        "labels": {"app": "balancer"},
        "name": "balancer",
        "namespace": "balancer",
    }
    spec = deployment["spec"]
    assert spec["replicas"] == 1
    assert spec["selector"] == {"matchLabels": {"app": "balancer"}}
    assert spec["template"]["metadata"]["labels"] == {"app": "balancer"}
    assert "initContainers" not in spec["template"]["spec"]
    (app,) = spec["template"]["spec"]["containers"]
    assert (app["name"], app["image"]) == ("app", f"{APP_IMAGE}:{tag}")
    assert app["envFrom"] == [
        {"secretRef": {"name": "balancer-config"}},
        {"configMapRef": {"name": "balancer-config"}},
    ]
    assert app["ports"] == [{"containerPort": 8000}]
    assert app["readinessProbe"]["httpGet"] == {"path": "/admin/", "port": 8000}
    configmap = k8s.find(docs, "ConfigMap", "balancer-config")
    assert configmap["metadata"]["namespace"] == "balancer"
    assert configmap.get("data") == config


# -- the component adds the init container and changes nothing else ----------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_validates_strictly(overlay: str) -> None:
    """Every object of the overlay passes kubernetes-validate --strict."""
    docs = k8s.render(overlay)
    assert {d["kind"] for d in docs} == {"Deployment", "ConfigMap"}
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize(("overlay", "stand_in"), OVERLAYS.items())
def test_only_init_containers_and_their_volumes_change(overlay: str, stand_in: str) -> None:
    """Byte for byte, the rendered Deployment minus initContainers and volumes is the input."""
    before = k8s.kustomize(k8s.K8S / "balancer" / stand_in)
    after = k8s.kustomize(k8s.K8S / "overlays" / overlay)
    assert "initContainers" not in before
    assert "initContainers" in after
    assert "volumes" not in before
    changed = k8s.without_blocks(
        k8s.document_text(after, "Deployment"), "initContainers", "volumes"
    )
    assert changed == k8s.document_text(before, "Deployment")
    assert k8s.document_text(after, "ConfigMap") == k8s.document_text(before, "ConfigMap")


def test_block_cutting_sees_a_changed_app_container() -> None:
    """The byte comparison is not vacuous: a changed app container is noticed."""
    after = k8s.document_text(k8s.kustomize(k8s.K8S / "overlays" / "sandbox"), "Deployment")
    before = k8s.document_text(k8s.kustomize(k8s.K8S / "balancer" / "sandbox"), "Deployment")
    tampered = after.replace("containerPort: 8000", "containerPort: 8001")
    assert k8s.without_blocks(tampered, "initContainers", "volumes") != before


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_init_container_reads_the_apps_settings(overlay: str) -> None:
    """db-preflight runs first, reads the app's envFrom and requires vector."""
    deployment = _deployment(k8s.render(overlay))
    app = k8s.container(deployment, "app", init=False)
    init = k8s.container(deployment, "db-preflight")
    assert _init_names(deployment)[0] == "db-preflight"
    assert init["envFrom"] == app["envFrom"]
    env = {e["name"]: e.get("value") for e in init["env"]}
    assert env["PREFLIGHT_REQUIRE_EXTENSIONS"] == "vector"
    assert init["image"].startswith(f"{PREFLIGHT_IMAGE}:")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_init_container_meets_restricted_pod_security(overlay: str) -> None:
    """The init container alone carries the "restricted" security context and limits."""
    init = k8s.container(_deployment(k8s.render(overlay)), "db-preflight")
    context = init["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["runAsUser"] == 10001
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert init["resources"] == {
        "requests": {"cpu": "10m", "memory": "32Mi"},
        "limits": {"cpu": "200m", "memory": "64Mi"},
    }
    assert init["terminationMessagePolicy"] == "FallbackToLogsOnError"


def test_component_image_is_this_version() -> None:
    """The component and the compose override name the image of pyproject's version."""
    version = tomllib.loads((k8s.ROOT / "pyproject.toml").read_text())["project"]["version"]
    expected = f"{PREFLIGHT_IMAGE}:{version}"
    init = k8s.container(_deployment(k8s.render("sandbox")), "db-preflight")
    assert init["image"] == expected
    override = (k8s.ROOT / "compose" / "docker-compose.preflight.yml").read_text()
    assert f"image: {expected}\n" in override


# -- migrate (issue 12) --------------------------------------------------------


def test_migrate_runs_after_the_preflight_in_the_apps_image() -> None:
    """migrate follows db-preflight, in the app's image, with the app's envFrom."""
    deployment = _deployment(k8s.render("sandbox-migrate"))
    app = k8s.container(deployment, "app", init=False)
    migrate = k8s.container(deployment, "migrate")
    assert _init_names(deployment) == ["db-preflight", "migrate"]
    assert migrate["image"] == app["image"]
    assert migrate["envFrom"] == app["envFrom"]
    assert migrate["command"] == k8s.MIGRATE_COMMAND
    assert {"name": "DJANGO_SETTINGS_MODULE", "value": "balancer_backend.settings"} in migrate[
        "env"
    ]


def _cluster_repo(tmp_path: Path, components: list[str]) -> Path:
    """A copy of the sandbox stand-in with components copied in beside it, as the guide says."""
    app = tmp_path / "balancer" / "app"
    shutil.copytree(k8s.K8S / "balancer" / "sandbox", app)
    shutil.copytree(k8s.K8S / "balancer" / "base", tmp_path / "balancer" / "base")
    for name in components:
        shutil.copytree(k8s.K8S / "components" / name, app / name)
    with open(app / "kustomization.yaml", "a") as kustomization:
        kustomization.write("components:\n" + "".join(f"  - {n}\n" for n in components))
    return app


def test_components_work_inside_the_cluster_repos_kustomization(tmp_path: Path) -> None:
    """Copied into the kustomization that sets namespace and image tag, both components work."""
    deployment = _deployment(
        k8s.documents(k8s.kustomize(_cluster_repo(tmp_path, ["db-preflight", "migrate"])))
    )
    assert deployment["metadata"]["namespace"] == "balancer"
    assert _init_names(deployment) == ["db-preflight", "migrate"]
    assert k8s.container(deployment, "migrate")["image"] == f"{APP_IMAGE}:0.0.0-dev.20260211012449"


def test_migrate_without_the_preflight_does_not_render(tmp_path: Path) -> None:
    """Listing migrate without (or before) db-preflight fails the render."""
    directory = _cluster_repo(tmp_path, ["migrate", "db-preflight"])
    done = subprocess.run(
        ["kubectl", "kustomize", str(directory)], capture_output=True, text=True, check=False
    )
    assert done.returncode != 0
    assert "test" in done.stderr


# -- the init container's environment against real servers --------------------


def _secret(name: str, **data: str) -> dict[str, Any]:
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": encoded}


def _configmap(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def _run_init_container(
    overlay: str,
    server: LocalServer,
    cluster_objects: list[dict[str, Any]],
    hosts: dict[str, str],
    tmp_path: Path,
    *args: str,
) -> cli.Run:
    """The rendered init container's env and mounts, resolved from the overlay's own
    objects plus ``cluster_objects``, run against ``server`` on port 5432."""
    docs = k8s.render(overlay)
    deployment = _deployment(docs)
    init = k8s.container(deployment, "db-preflight")
    objects = [*docs, *cluster_objects]
    env = {**cli.base_env(), **k8s.resolve_env(init, objects)}
    env["PREFLIGHT_TERMINATION_LOG"] = str(tmp_path / "termination-log")
    mounts = k8s.resolve_volumes(deployment, init, objects, tmp_path)
    result = run_against(server, 5432, env, hosts, tmp_path, *args, mounts=mounts)
    termination = tmp_path / "termination-log"
    cli.assert_no_secret(
        APP_PASSWORD,
        result.stdout,
        result.stderr,
        termination.read_text() if termination.exists() else "",
    )
    return result


def _with_vector(server: LocalServer) -> LocalServer:
    """vector installed in the app's database (sandbox: the Database resource ensures it)."""
    with server.admin(APP_DB) as conn:
        conn.execute("CREATE EXTENSION vector")
    return server


# The sandbox's SealedSecret balancer-config, unsealed: the password and app keys.
SANDBOX_SECRET = _secret("balancer-config", SQL_PASSWORD=APP_PASSWORD, SECRET_KEY="not-used")


@pytest.mark.root
def test_sandbox_overlay_reaches_the_shared_cluster(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    """Sandbox: ConfigMap + Secret env, the shared cluster's -rw name: exit 0, read-write."""
    server = _with_vector(make_server("sandbox", extensions=VECTOR_STANDIN))
    result = _run_init_container(
        "sandbox", server, [SANDBOX_SECRET], {SANDBOX_HOST: "127.0.0.1"}, tmp_path
    )
    assert result.code == 0, result.stderr
    plan = result.event("preflight.plan")
    assert (plan["kind"], plan["host"], plan["port"], plan["database"], plan["user"]) == (
        "cloudnativepg",
        SANDBOX_HOST,
        5432,
        APP_DB,
        APP_USER,
    )
    # No TLS settings in the sandbox: libpq's default, as the app has today.
    assert (plan["sslmode"], plan["target_session_attrs"]) == ("prefer", "read-write")
    ready = result.event("preflight.ready")
    assert ready["tls"] is False
    assert ready["extensions"]["installed"] == ["vector"]


@pytest.mark.root
def test_sandbox_overlay_wrong_password_fails_at_once(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    """A wrong SQL_PASSWORD in the Secret fails with auth_failed (4), no retries."""
    server = _with_vector(make_server("sandbox-auth", extensions=VECTOR_STANDIN))
    wrong = _secret("balancer-config", SQL_PASSWORD=APP_PASSWORD + "-rotated")
    result = _run_init_container("sandbox", server, [wrong], {SANDBOX_HOST: "127.0.0.1"}, tmp_path)
    assert result.code == 4, result.stderr
    assert result.event("preflight.failed")["reason"] == "auth_failed"
    assert APP_PASSWORD + "-rotated" not in result.stderr


@pytest.fixture
def tls_server(make_server: ServerFactory, server_tls: tuple[str, str]) -> LocalServer:
    """A server that takes only TLS connections from the network, vector installed."""
    return _with_vector(
        make_server(
            "tls",
            tls=server_tls,
            extensions=VECTOR_STANDIN,
            hba=("local all all trust", "hostssl all all 127.0.0.1/32 scram-sha-256"),
        )
    )


@pytest.mark.root
def test_sandbox_verify_ca_with_the_copied_ca(
    tls_server: LocalServer, ca: Any, tmp_path: Path
) -> None:
    """verify-ca against the CA copied into namespace balancer as a ConfigMap: exit 0."""
    copied = _configmap("shared-cluster-ca", **{"ca.crt": ca.cert_pem.bytes().decode()})
    result = _run_init_container(
        "sandbox-verify-ca",
        tls_server,
        [SANDBOX_SECRET, copied],
        {SANDBOX_HOST: "127.0.0.1"},
        tmp_path,
    )
    assert result.code == 0, result.stderr
    plan = result.event("preflight.plan")
    assert (plan["sslmode"], plan["sslrootcert"]) == ("verify-ca", "/etc/ssl/shared-cluster/ca.crt")
    assert result.event("preflight.ready")["tls"] is True


@pytest.mark.root
def test_sandbox_verify_ca_with_a_stale_copy_fails(tls_server: LocalServer, tmp_path: Path) -> None:
    """A copy of another (say, the renewed operator's previous) CA: tls_untrusted, exit 6."""
    import trustme

    stale = trustme.CA(organization_name="an older CA")
    copied = _configmap("shared-cluster-ca", **{"ca.crt": stale.cert_pem.bytes().decode()})
    result = _run_init_container(
        "sandbox-verify-ca",
        tls_server,
        [SANDBOX_SECRET, copied],
        {SANDBOX_HOST: "127.0.0.1"},
        tmp_path,
    )
    assert result.code == 6, result.stderr
    assert result.event("preflight.failed")["reason"] == "tls_untrusted"


@pytest.mark.root
def test_live_overlay_verifies_rds_fully(tls_server: LocalServer, ca: Any, tmp_path: Path) -> None:
    """Live: every SQL_* from the Secret, empty ConfigMap, RDS bundle: verify-full, exit 0."""
    secret = _secret(
        "balancer-config",
        SQL_ENGINE="django.db.backends.postgresql",
        SQL_HOST=RDS_HOST,
        SQL_PORT="5432",
        SQL_DATABASE=APP_DB,
        SQL_USER=APP_USER,
        SQL_PASSWORD=APP_PASSWORD,
        SECRET_KEY="not-used",
    )
    bundle = _configmap("rds-ca-bundle", **{"global-bundle.pem": ca.cert_pem.bytes().decode()})
    result = _run_init_container(
        "live", tls_server, [secret, bundle], {RDS_HOST: "127.0.0.1"}, tmp_path
    )
    assert result.code == 0, result.stderr
    plan = result.event("preflight.plan")
    assert (plan["kind"], plan["sslmode"], plan["host"]) == ("aws-rds", "verify-full", RDS_HOST)
    ready = result.event("preflight.ready")
    assert ready["tls"] is True
    assert ready["extensions"]["installed"] == ["vector"]


@pytest.mark.root
def test_live_overlay_rejects_a_certificate_for_another_host(
    tls_server: LocalServer, ca: Any, tmp_path: Path
) -> None:
    """verify-full checks the host name: an RDS name the certificate lacks fails with 6."""
    other = re.sub(r"^[^.]+", "other-instance", RDS_HOST)
    secret = _secret(
        "balancer-config",
        SQL_HOST=other,
        SQL_PORT="5432",
        SQL_DATABASE=APP_DB,
        SQL_USER=APP_USER,
        SQL_PASSWORD=APP_PASSWORD,
    )
    bundle = _configmap("rds-ca-bundle", **{"global-bundle.pem": ca.cert_pem.bytes().decode()})
    result = _run_init_container(
        "live", tls_server, [secret, bundle], {other: "127.0.0.1"}, tmp_path
    )
    assert result.code == 6, result.stderr
    assert result.event("preflight.failed")["reason"] == "tls_hostname"
