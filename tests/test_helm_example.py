"""The Helm example, rendered by the real helm and checked against Kubernetes' schemas: its hook
jobs share one claim for the backups, never write into the read-only ConfigMap, read the database
URL from a Secret; and its hooks script, run against a real site as Helm would (pre-upgrade,
deploy, post-upgrade; pre-rollback), expands before, contracts after, and restores the database
on rollback where the schema moved."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from sqlalchemy import inspect

from helm_chart import CHART, Manifest, helm, hook_jobs, one, render, validate, value_flags
from stairway import context, operations
from stairway.database import dispose_all
from stairway.quickstart import write_site

URL = {"database.url": "postgresql://app:s3cret@db.example.org:5432/app"}
VALUE_SETS = {
    "chart-made secret and claim": URL,
    "existing secret and claim": {
        "database.existingSecret": "identity-sync-db",
        "database.secretKey": "url",
        "storage.existingClaim": "stairway-backups",
    },
    "shared storage class": URL
    | {"storage.storageClass": "nfs-client", "storage.accessMode": "ReadWriteMany"},
    "moved paths and more site": URL
    | {
        "storage.mountPath": "/srv/stairway",
        "site.renderedPath": "/tmp/site/site.toml",
        "site.templatePath": "/opt/site",
        "site.extra": '[sessions]\nredis = "redis://redis:6379/0"',
    },
}


@pytest.fixture(scope="module", params=list(VALUE_SETS), ids=list(VALUE_SETS))
def chart(request: pytest.FixtureRequest) -> tuple[dict[str, str], list[Manifest]]:
    values = VALUE_SETS[request.param]
    return values, render(values)


def test_every_rendered_object_is_valid_kubernetes(
    chart: tuple[dict[str, str], list[Manifest]],
) -> None:
    values, manifests = chart
    kinds = {m["kind"] for m in manifests}
    assert {"Deployment", "ConfigMap", "Job"} <= kinds
    for manifest in manifests:
        validate(manifest)
    assert helm("lint", "--strict", str(CHART), *value_flags(values)).returncode == 0


def test_a_chart_without_a_database_is_refused_saying_what_to_set() -> None:
    refused = helm("template", "rel", str(CHART))
    assert refused.returncode != 0
    assert "database.existingSecret" in refused.stderr and "database.url" in refused.stderr


def test_an_invalid_object_is_caught_by_the_schema_check() -> None:
    job = hook_jobs(render(URL))["pre-upgrade"]
    job["spec"]["template"]["spec"]["containers"][0]["volumeMount"] = []
    with pytest.raises(Exception, match="volumeMount"):
        validate(job)


Pod = dict[str, Any]


def containers(manifests: list[Manifest]) -> list[tuple[Pod, Pod]]:
    """Every container of the hook jobs and the Deployment, each with its pod's spec."""
    pods = [job["spec"]["template"]["spec"] for job in hook_jobs(manifests).values()]
    found = [(pod, pod["containers"][0]) for pod in pods]
    deployment = one(manifests, "Deployment")["spec"]["template"]["spec"]
    found += [(deployment, c) for c in deployment["initContainers"] + deployment["containers"]]
    return found


def env(container: Pod) -> dict[str, Pod]:
    return {e["name"]: e for e in container.get("env", [])}


def mounts(pod: Pod, container: Pod) -> dict[str, Pod]:
    """The container's mount paths, each with its volume (and whether it is mounted readOnly)."""
    volumes = {v["name"]: v for v in pod["volumes"]}
    return {
        m["mountPath"]: volumes[m["name"]] | {"readOnly": m.get("readOnly", False)}
        for m in container["volumeMounts"]
    }


def volume_at(pod: Pod, container: Pod, path: str) -> Pod:
    """The volume holding ``path`` in the container: the deepest mount above it."""
    found = mounts(pod, container)
    above = [m for m in found if PurePosixPath(path).is_relative_to(m)]
    assert above, f"{path} is on no volume: the container's own filesystem is lost with it"
    return found[max(above, key=len)]


def written(container: Pod) -> list[str]:
    """What the container writes: the site file it renders or is given, and the hooks' state."""
    paths = [str(env(container)[k]["value"]) for k in WRITTEN if k in env(container)]
    args = container.get("args", [])
    return paths + ([args[args.index("--site") + 1]] if "--site" in args else [])


WRITTEN = ("STAIRWAY_SITE", "STAIRWAY_HOOKS_STATE")


def site_template(manifests: list[Manifest]) -> dict[str, Any]:
    return tomllib.loads(one(manifests, "ConfigMap")["data"]["site.toml"])


def test_every_hook_job_mounts_the_same_claim_where_the_site_keeps_its_backups(
    chart: tuple[dict[str, str], list[Manifest]],
) -> None:
    values, manifests = chart
    assert set(hook_jobs(manifests)) == {"pre-upgrade", "post-upgrade", "pre-rollback"}
    backups = site_template(manifests)["site"]["backup_dir"]
    claims = set()
    for pod, container in containers(manifests)[:3]:
        state = str(env(container)["STAIRWAY_HOOKS_STATE"]["value"])
        for path in (backups, state):
            claims.add(volume_at(pod, container, path)["persistentVolumeClaim"]["claimName"])
    made = [m["metadata"]["name"] for m in manifests if m["kind"] == "PersistentVolumeClaim"]
    assert claims == {values.get("storage.existingClaim") or made[0]}


def test_the_claim_outlives_the_hooks_and_the_release(
    chart: tuple[dict[str, str], list[Manifest]],
) -> None:
    values, manifests = chart
    claims = [m for m in manifests if m["kind"] == "PersistentVolumeClaim"]
    if "storage.existingClaim" in values:
        assert claims == [], "the operator's claim is used, none is made"
        return
    annotations = one(manifests, "PersistentVolumeClaim")["metadata"]["annotations"]
    assert "helm.sh/hook" not in annotations
    assert annotations["helm.sh/resource-policy"] == "keep"
    assert claims[0]["spec"]["accessModes"] == [values.get("storage.accessMode", "ReadWriteOnce")]


def test_the_configmap_is_read_only_and_nothing_is_written_under_it(
    chart: tuple[dict[str, str], list[Manifest]],
) -> None:
    _, manifests = chart
    for pod, container in containers(manifests):
        read_only = [p for p, v in mounts(pod, container).items() if "configMap" in v]
        assert read_only, "the site template and hooks.sh come from the ConfigMap"
        for path in read_only:
            assert mounts(pod, container)[path]["readOnly"] is True
            assert not any(PurePosixPath(w).is_relative_to(path) for w in written(container))


def test_the_site_file_the_commands_use_lies_on_a_writable_volume(
    chart: tuple[dict[str, str], list[Manifest]],
) -> None:
    values, manifests = chart
    for pod, container in containers(manifests):
        assert written(container), f"{container['name']} names its site file"
        for path in written(container):
            volume = volume_at(pod, container, path)
            assert volume["readOnly"] is False
            assert "emptyDir" in volume or "persistentVolumeClaim" in volume
    rendered = {written(c)[0] for _, c in containers(manifests)}
    assert rendered == {values.get("site.renderedPath", "/run/stairway/site.toml")}


def test_the_database_url_comes_from_a_secret(
    chart: tuple[dict[str, str], list[Manifest]],
) -> None:
    values, manifests = chart
    assert site_template(manifests)["site"]["database"] == "@STAIRWAY_DATABASE_URL@"
    name = values.get("database.existingSecret", "rel-database")
    key = values.get("database.secretKey", "database-url")
    renderers = [c for _, c in containers(manifests) if "STAIRWAY_SITE_TEMPLATE" in env(c)]
    assert len(renderers) == 4, "each hook job and the Deployment's init container"
    for container in renderers:
        url = env(container)["STAIRWAY_DATABASE_URL"]
        assert url["valueFrom"]["secretKeyRef"] == {"name": name, "key": key}
    secrets = [m for m in manifests if m["kind"] == "Secret"]
    if "database.existingSecret" in values:
        assert secrets == []
    else:
        assert secrets[0]["stringData"] == {key: values["database.url"]}


def test_hooks_run_after_their_configmap_and_are_kept_only_when_they_fail() -> None:
    manifests = render(URL)
    weight = int(one(manifests, "ConfigMap")["metadata"]["annotations"]["helm.sh/hook-weight"])
    configmap_hooks = one(manifests, "ConfigMap")["metadata"]["annotations"]["helm.sh/hook"]
    for phase, job in hook_jobs(manifests).items():
        annotations = job["metadata"]["annotations"]
        assert phase in configmap_hooks.split(",") or phase == "post-upgrade"
        assert int(annotations["helm.sh/hook-weight"]) > weight
        assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
        assert job["spec"]["template"]["spec"]["containers"][0]["command"][-1] == phase
    assert one(manifests, "Deployment")["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def hook(phase: str, site: Path, target: str) -> subprocess.CompletedProcess[str]:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = os.environ | {"STAIRWAY_SITE": str(site), "TARGET": target, "PATH": path}
    return subprocess.run(
        ["/bin/sh", str(CHART / "hooks.sh"), phase], env=env, capture_output=True, text=True
    )


def helm_site(directory: Path) -> Path:
    """The example site as the chart's ConfigMap has it: without a ``[service]`` section, since
    Kubernetes, not Stairway, starts and stops the pods."""
    site_file = write_site(directory).site_file
    text = site_file.read_text("utf-8")
    start, end = text.index("[service]"), text.index("[secrets]")
    site_file.write_text(text[:start] + text[end:], "utf-8")
    return site_file


def columns(site: Path) -> set[str]:
    ctx = context.open_context(site, None)
    found = {c["name"] for c in inspect(ctx.engine).get_columns("connectors")}
    dispose_all()
    return found


def test_the_hooks_expand_before_contract_after_and_restore_on_rollback(tmp_path: Path) -> None:
    site = helm_site(tmp_path / "demo")
    operations.init(context.open_context(site, None), "2.0.0")
    dispose_all()
    before = hook("pre-upgrade", site, "2.1.0")
    assert before.returncode == 0, before.stderr
    assert {"type", "kind"} <= columns(site), "expanded; 2.0.0 pods still work"
    after = hook("post-upgrade", site, "2.1.0")
    assert after.returncode == 0, after.stderr
    assert "type" not in columns(site), "contracted once the new pods are up"
    back = hook("pre-rollback", site, "2.0.0")
    assert back.returncode == 0, back.stderr
    assert "type" in columns(site)
    assert "kind" not in columns(site), "the database as the 2.0.0 pods left it"
    state = operations.status(context.open_context(site, None))
    assert state.state.level == 8
    dispose_all()


def test_a_release_that_needs_downtime_fails_the_pre_upgrade_hook_before_any_change(
    tmp_path: Path,
) -> None:
    site = helm_site(tmp_path / "demo")
    operations.init(context.open_context(site, None), "1.0.4")
    dispose_all()
    refused = hook("pre-upgrade", site, "2.0.0")
    assert refused.returncode == 3, refused.stderr
    state = operations.status(context.open_context(site, None))
    assert state.state.level == 4, "nothing applied"
    dispose_all()
