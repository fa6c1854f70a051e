"""The Helm example: its hook jobs are well-formed and run the right phase, and its hooks script,
run against a real site as Helm would (pre-upgrade, deploy, post-upgrade; pre-rollback), expands
before, contracts after, and restores the database on rollback where the schema moved."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML
from sqlalchemy import inspect

from stairway import context, operations
from stairway.database import dispose_all
from stairway.quickstart import write_site

CHART = Path(__file__).parent.parent / "examples" / "helm" / "identity-sync"


def rendered(path: Path) -> dict[str, object]:
    """The template with Helm's expressions replaced by plain values (no helm binary here)."""
    text = re.sub(r"\{\{[^}]*\}\}", "1", path.read_text())
    return dict(YAML(typ="safe").load(text))


@pytest.mark.parametrize("phase", ["pre-upgrade", "post-upgrade", "pre-rollback"])
def test_each_hook_job_runs_its_phase_of_the_hooks_script(phase: str) -> None:
    job = rendered(CHART / "templates" / f"{phase}-job.yaml")
    metadata = job["metadata"]
    assert isinstance(metadata, dict) and metadata["annotations"]["helm.sh/hook"] == phase
    container = job["spec"]["template"]["spec"]["containers"][0]  # type: ignore[index]
    assert container["command"][-2:] == ["/opt/identity-sync/hooks.sh", phase]
    names = {e["name"] for e in container["env"]}
    assert names == {"STAIRWAY_SITE", "TARGET"}
    deployment = rendered(CHART / "templates" / "deployment.yaml")
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0  # type: ignore[index]


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
