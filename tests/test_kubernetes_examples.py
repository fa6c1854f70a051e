"""The Kubernetes examples for more than one machine (examples/kubernetes/): every object is
valid against Kubernetes' schemas; the Indexed Job's pods, with their completion indexes, run
`stairway import` with every shard once and arguments the real command line accepts; the control
plane's replicas run a `stairway serve` it accepts; and the site renderer writes the database URL
from the Secret as a TOML string, whatever its characters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import pytest
import typer.main
from hypothesis import given, settings
from hypothesis import strategies as st

from helm_chart import CHART, EXAMPLES, Manifest, load_manifests, one, validate
from stairway.cli import app
from stairway.transfer.shards import Shard

KUBERNETES = EXAMPLES / "kubernetes"


def manifests(name: str) -> list[Manifest]:
    return load_manifests(KUBERNETES / name)


def parsed(argv: list[str]) -> dict[str, Any]:
    """``stairway ARGV`` parsed by the real command line, not run: its parameters."""
    group = typer.main.get_command(app)
    parent = group.context_class(group, info_name="stairway")
    command = group.get_command(parent, argv[0])  # type: ignore[attr-defined]
    assert command is not None, f"no stairway {argv[0]}"
    return dict(command.make_context(argv[0], argv[1:], parent=parent).params)


@pytest.mark.parametrize("name", sorted(p.name for p in KUBERNETES.glob("*.yaml")))
def test_every_object_is_valid_kubernetes(name: str) -> None:
    found = manifests(name)
    assert found
    for manifest in found:
        validate(manifest)


def argv_of(script: str, env: dict[str, str], shim: Path) -> list[str]:
    """What ``sh -c script`` runs ``stairway`` with: a stand-in on PATH prints its arguments."""
    shim.mkdir(exist_ok=True)
    stand_in = shim / "stairway"
    stand_in.write_text(
        f"#!{sys.executable}\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n", "utf-8"
    )
    stand_in.chmod(0o755)
    done = subprocess.run(
        ["/bin/sh", "-c", script],
        env=env | {"PATH": f"{shim}{os.pathsep}/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    return list(json.loads(done.stdout))


def test_the_indexed_job_imports_every_shard_once(tmp_path: Path) -> None:
    job = one(manifests("sharded-import.yaml"), "Job")
    assert job["spec"]["completionMode"] == "Indexed"
    pods = job["spec"]["completions"]
    assert pods > 1 and job["spec"]["parallelism"] == pods
    container = job["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert container["command"][:2] == ["/bin/sh", "-c"]
    shards = []
    for index in range(pods):
        argv = argv_of(
            container["command"][2], env | {"JOB_COMPLETION_INDEX": str(index)}, tmp_path
        )
        params = parsed(argv)
        assert argv[0] == "import" and params["workers"] >= 1
        shards.append(Shard.parse(params["shard"]))
    assert sorted(s.index for s in shards) == list(range(pods))
    assert {s.of for s in shards} == {pods}


def test_the_control_plane_runs_serve_replicas_the_command_line_accepts() -> None:
    found = manifests("control-plane.yaml")
    deployment = one(found, "Deployment")
    assert deployment["spec"]["replicas"] > 1, "replicas share one PostgreSQL database"
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["stairway"]
    params = parsed(container["args"])
    assert params["host"] == "0.0.0.0", "reachable from the Service, not only inside the pod"
    assert one(found, "Service")["spec"]["ports"][0]["targetPort"] == params["port"]
    assert str(params["site"]).startswith("/run/stairway/"), "the rendered site, in the emptyDir"


def test_an_unknown_argument_is_caught_by_the_parse() -> None:
    with pytest.raises(Exception, match="--replicas"):
        parsed(["serve", "--replicas", "2"])


def site_yaml_script(directory: Path) -> Path:
    data = one(manifests("site.yaml"), "ConfigMap")["data"]
    for name in ("render-site.sh", "site.toml"):
        (directory / name).write_text(data[name], "utf-8")
    return directory / "render-site.sh"


# Anything an environment variable can hold: no NUL, no lone surrogates.
URLS = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), min_size=1)


@settings(max_examples=8)
@given(url=URLS)
def test_the_site_renderers_write_the_url_as_toml_whatever_it_holds(url: str) -> None:
    # tmp_path is per test, not per example: each example gets a directory of its own
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        env = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin:/bin"}
        env["STAIRWAY_DATABASE_URL"] = url
        script = site_yaml_script(directory)
        plain = [str(script), str(directory / "site.toml"), str(directory / "plain.toml")]
        subprocess.run(["/bin/sh", *plain], env=env, check=True, capture_output=True)
        charted = env | {
            "STAIRWAY_SITE": str(directory / "charted.toml"),
            "STAIRWAY_SITE_TEMPLATE": str(directory / "site.toml"),
        }
        hooks = ["/bin/sh", str(CHART / "hooks.sh"), "render"]
        subprocess.run(hooks, env=charted, check=True, capture_output=True)
        for rendered in ("plain.toml", "charted.toml"):
            site = tomllib.loads((directory / rendered).read_text("utf-8"))
            assert site["site"]["database"] == url
            assert (directory / rendered).stat().st_mode & 0o077 == 0, "the password stays private"
