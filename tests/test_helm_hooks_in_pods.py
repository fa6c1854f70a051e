"""The chart's hook Jobs, run as a cluster would run them: each hook's container command, args
and environment taken from the YAML helm renders, run as a process of its own in a directory of
its own (a pod), with one shared directory for the claim and a read-only one for the ConfigMap,
against a real PostgreSQL database. The rollback hook finds and restores the backup the upgrade
hook took, and nothing is written where the ConfigMap is mounted."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect

from helm_chart import Manifest, hook_jobs, one, render
from stairway import context, operations
from stairway.database import dispose_all
from stairway.quickstart import demo_catalog

SECRET = ("identity-sync-db", "url")

Pod = dict[str, Any]


class Cluster:
    """Directories standing for the volumes (the claim shared by every pod, the ConfigMap
    read-only, an emptyDir of each pod's own) and the Secret the pods' environment reads."""

    def __init__(self, root: Path, configmap: dict[str, str], database: str) -> None:
        self.root = root
        self.claim = root / "claim"
        self.claim.mkdir()
        self.configmap = root / "configmap"
        self.secrets = {SECRET: database}
        self.pods = 0
        self._configmap_data = configmap

    def volume(self, volume: Pod, pod: Path) -> Path:
        """The directory a volume of ``pod`` stands for."""
        if "persistentVolumeClaim" in volume:
            return self.claim
        if "configMap" in volume:
            return self.configmap
        assert "emptyDir" in volume, volume
        return pod / volume["name"]

    def mounts(self, job: Manifest, pod: Path) -> dict[str, Path]:
        """The job container's mount paths, each with the directory standing for its volume."""
        spec = job["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in spec["volumes"]}
        found = spec["containers"][0]["volumeMounts"]
        return {m["mountPath"]: self.volume(volumes[m["name"]], pod) for m in found}

    def publish(self, mounts: dict[str, Path]) -> None:
        """The ConfigMap's files as a pod sees them, read-only (0555 on files and directory)."""
        self.configmap.mkdir()
        for name, text in self._configmap_data.items():
            (self.configmap / name).write_text(local(text, mounts), "utf-8")
            (self.configmap / name).chmod(0o555)
        self.configmap.chmod(0o555)

    def run(self, job: Manifest) -> subprocess.CompletedProcess[str]:
        """The job's container as a process in a new pod's working directory."""
        self.pods += 1
        pod = self.root / f"pod-{self.pods}"
        pod.mkdir()
        mounts = self.mounts(job, pod)
        if not self.configmap.exists():
            self.publish(mounts)
        container = job["spec"]["template"]["spec"]["containers"][0]
        argv = [local(a, mounts) for a in container.get("command", []) + container.get("args", [])]
        env = {e["name"]: self.value(e, mounts) for e in container["env"]}
        return subprocess.run(
            argv, cwd=pod, env=image_env(pod) | env, capture_output=True, text=True, timeout=240
        )

    def value(self, entry: Pod, mounts: dict[str, Path]) -> str:
        """An environment variable's value, from the Secret when it names one."""
        if "valueFrom" in entry:
            ref = entry["valueFrom"]["secretKeyRef"]
            return self.secrets[(ref["name"], ref["key"])]
        return local(str(entry["value"]), mounts)


def local(text: str, mounts: dict[str, Path]) -> str:
    """``text`` with each mount path replaced by the directory standing for it."""
    for path in sorted(mounts, key=len, reverse=True):
        text = text.replace(path, str(mounts[path]))
    return text


def image_env(pod: Path) -> dict[str, str]:
    """What the product's image provides: stairway and python3 on PATH, nothing else set."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    found = {"PATH": path, "HOME": str(pod), "LANG": "C.UTF-8"}
    if "PYTHONPATH" in os.environ:  # this checkout's stairway, as the image would hold it
        found["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return found


def fingerprint(directory: Path) -> dict[str, str]:
    """Every file under ``directory`` with its SHA-256: root ignores 0555, so look."""
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


@pytest.mark.heavy  # six stairway processes, each a cold start: about a minute on a busy machine
def test_the_rollback_hook_restores_the_backup_the_upgrade_hook_took_in_another_pod(
    tmp_path: Path, pg_database: str
) -> None:
    manifests = render(
        {
            "database.existingSecret": SECRET[0],
            "database.secretKey": SECRET[1],
            "site.catalog": str(demo_catalog()),
        }
    )
    jobs = hook_jobs(manifests)
    cluster = Cluster(tmp_path, one(manifests, "ConfigMap")["data"], pg_database)
    operator = operator_site(tmp_path / "operator", pg_database)
    operations.init(context.open_context(operator, None), "2.0.0")
    dispose_all()
    upgrade = cluster.run(jobs["pre-upgrade"])
    assert upgrade.returncode == 0, upgrade.stderr
    assert {"type", "kind"} <= connector_columns(operator), "expanded for 2.1.0"
    published = fingerprint(cluster.configmap)
    rollback = cluster.run(jobs["pre-rollback"])
    assert rollback.returncode == 0, rollback.stderr
    assert "nothing to restore" not in rollback.stderr
    assert "kind" not in connector_columns(operator), "the database as 2.0.0 left it"
    assert operations.status(context.open_context(operator, None)).state.level == 8
    dispose_all()
    assert fingerprint(cluster.configmap) == published
    assert not (cluster.configmap / "helm-hooks").exists()
    for pod in ("pod-1", "pod-2"):
        assert (tmp_path / pod / "site" / "site.toml").is_file(), "rendered in the pod's emptyDir"


def test_without_the_shared_claim_the_rollback_hook_would_find_nothing(
    tmp_path: Path, pg_database: str
) -> None:
    """The broken chart's situation, as a control: a pod whose state directory is not the one
    the upgrade hook wrote to finds no backup, and says so."""
    manifests = render({"database.existingSecret": SECRET[0], "database.secretKey": SECRET[1]})
    cluster = Cluster(tmp_path, one(manifests, "ConfigMap")["data"], pg_database)
    rollback = cluster.run(hook_jobs(manifests)["pre-rollback"])
    assert rollback.returncode == 0, rollback.stderr
    assert "nothing to restore" in rollback.stderr


def operator_site(directory: Path, database: str) -> Path:
    """A site file of the same database and catalog, for the test's own look at it."""
    directory.mkdir()
    site = directory / "site.toml"
    site.write_text(
        f'[site]\ndatabase = "{database}"\ncatalog = "{demo_catalog()}"\n', encoding="utf-8"
    )
    return site


def connector_columns(site: Path) -> set[str]:
    ctx = context.open_context(site, None)
    found = {c["name"] for c in inspect(ctx.engine).get_columns("connectors")}
    dispose_all()
    return found
