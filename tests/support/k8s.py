"""Render kustomize overlays, validate them, and turn a container's env into a dict."""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"


def kustomize(directory: Path) -> str:
    """``kubectl kustomize <directory>``: the rendered stream, as text."""
    done = subprocess.run(
        ["kubectl", "kustomize", str(directory)], capture_output=True, text=True, check=True
    )
    return done.stdout


def documents(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def render(overlay: str) -> list[dict[str, Any]]:
    """``kubectl kustomize k8s/overlays/<overlay>``, parsed."""
    return documents(kustomize(K8S / "overlays" / overlay))


def document_text(text: str, kind: str) -> str:
    """The one document of ``kind`` in a rendered stream, exactly as kubectl wrote it."""
    (found,) = [doc for doc in text.split("\n---\n") if f"\nkind: {kind}\n" in f"\n{doc}"]
    return found


def without_blocks(text: str, *keys: str, indent: int = 6) -> str:
    """``text`` with the YAML blocks ``<indent spaces><key>:`` (and what nests in them) cut."""
    kept: list[str] = []
    cutting = False
    for line in text.splitlines():
        depth = len(line) - len(line.lstrip(" "))
        if cutting and (depth > indent or line.startswith(" " * indent + "- ")):
            continue
        cutting = depth == indent and line.strip().rstrip(":") in keys and line.endswith(":")
        if not cutting:
            kept.append(line)
    return "".join(f"{line}\n" for line in kept)


def find(docs: Iterable[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def container(deployment: Mapping[str, Any], name: str, init: bool = True) -> dict[str, Any]:
    spec = deployment["spec"]["template"]["spec"]
    (found,) = [c for c in spec["initContainers" if init else "containers"] if c["name"] == name]
    return dict(found)


class MissingKey(LookupError):
    """The kubelet would refuse to start the pod (CreateContainerConfigError)."""


def _data(obj: Mapping[str, Any]) -> dict[str, str]:
    """A Secret's or ConfigMap's data as text (stringData and base64 data)."""
    data = obj.get("data") or {}
    if obj["kind"] == "ConfigMap":
        values = dict(data)
    else:
        values = {k: base64.b64decode(v).decode() for k, v in data.items()}
    values.update(obj.get("stringData") or {})
    return values


def resolve_env(spec: Mapping[str, Any], objects: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """The environment the kubelet would give the container, from example objects."""
    by_ref = {(o["kind"], o["metadata"]["name"]): _data(o) for o in objects}
    env: dict[str, str] = {}
    for source in spec.get("envFrom", []):
        if "secretRef" in source:
            env.update(by_ref[("Secret", source["secretRef"]["name"])])
        if "configMapRef" in source:
            env.update(by_ref[("ConfigMap", source["configMapRef"]["name"])])
    for item in spec.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
            continue
        ref = item["valueFrom"]
        kind, key_ref = (
            ("Secret", ref["secretKeyRef"])
            if "secretKeyRef" in ref
            else ("ConfigMap", ref["configMapKeyRef"])
        )
        data = by_ref[(kind, key_ref["name"])]
        if key_ref["key"] not in data:
            raise MissingKey(f"{kind} {key_ref['name']} has no key {key_ref['key']}")
        env[item["name"]] = data[key_ref["key"]]
    return env


def resolve_volumes(
    deployment: Mapping[str, Any],
    spec: Mapping[str, Any],
    objects: Iterable[Mapping[str, Any]],
    workdir: Path,
) -> dict[str, Path]:
    """{mountPath: host directory holding the files the volume would show}."""
    by_ref = {(o["kind"], o["metadata"]["name"]): _data(o) for o in objects}
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"].get("volumes", [])}
    mounts: dict[str, Path] = {}
    for mount in spec.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        if "secret" in volume:
            data, source = by_ref[("Secret", volume["secret"]["secretName"])], volume["secret"]
        else:
            data, source = by_ref[("ConfigMap", volume["configMap"]["name"])], volume["configMap"]
        items = source.get("items") or [{"key": k, "path": k} for k in data]
        directory = workdir / f"volume-src-{mount['name']}"
        directory.mkdir()
        for item in items:
            (directory / item["path"]).write_text(data[item["key"]])
        mounts[mount["mountPath"]] = directory
    return mounts


# What balancer's migrate step runs (k8s component and compose service alike).
MIGRATE_COMMAND = [
    "python",
    "-m",
    "preflight.django",
    "migrate",
    "--then",
    "createsu",
    "--then",
    "populatedb",
]
