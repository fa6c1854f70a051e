"""Agent builds: published beside the control plane, signed, offered to agents, checked by them.

A build is one file (a Python zipapp for the example's agents) with a release manifest naming
its product (``<product>-agent``), version, size and SHA-256, signed with the product's Ed25519
release key. The upgrade message carries the manifest's fields and the signature, so an agent
checks the signature with the key it trusts before it downloads anything, and the SHA-256 and
size of what it downloaded before it writes it in place.
"""

from __future__ import annotations

import base64
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from stairway.errors import ReleaseError
from stairway.fleet.messages import Upgrade
from stairway.releases import ReleaseManifest, manifest_path, sign_release, verify_signature


@dataclass(frozen=True)
class Build:
    """A published agent build: its release manifest and the signature over it."""

    manifest: ReleaseManifest
    signature: str  # base64, over manifest.encode()

    def offer(self, base_url: str) -> Upgrade:
        """The upgrade message for this build."""
        return Upgrade(
            url=f"{base_url.rstrip('/')}/artifacts/{self.manifest.artifact}",
            manifest=orjson.loads(self.manifest.encode()),
            signature=self.signature,
        )


def build_name(version: str) -> str:
    """The file name of the agent build of ``version``."""
    return f"agent-{version}.pyz"


def publish(builds: Path, key_file: Path, build_file: Path, product: str, version: str) -> Build:
    """Copy ``build_file`` into ``builds`` as the agent build of ``version`` and sign it.

    Args:
        builds: The directory of published builds; made if missing.
        key_file: The product's Ed25519 release key.
        build_file: The agent build to publish.
        product: The product, whose agent builds are named ``<product>-agent``.
        version: The build's version.

    Raises:
        ReleaseError: ``build_file`` does not exist.
    """
    if not build_file.is_file():
        raise ReleaseError(f"{build_file} does not exist", hint="give the agent build's path")
    builds.mkdir(parents=True, exist_ok=True)
    artifact = builds / build_name(version)
    temporary = artifact.with_name(artifact.name + ".tmp")
    shutil.copyfile(build_file, temporary)
    temporary.replace(artifact)
    sign_release(key_file, artifact, f"{product}-agent", version)
    found = find(builds, version)
    assert found is not None
    return found


def find(builds: Path | None, version: str) -> Build | None:
    """The published and signed build of ``version``; None if there is none."""
    if builds is None:
        return None
    path = manifest_path(builds, version)
    signature = path.with_name(path.name + ".sig")
    if not (path.is_file() and signature.is_file()):
        return None
    manifest = ReleaseManifest(**orjson.loads(path.read_bytes()))
    return Build(manifest, signature.read_text().strip())


def check_offer(key_file: Path, offer: Upgrade | dict[str, Any], product: str) -> ReleaseManifest:
    """The manifest of an upgrade message, once its signature and product check out."""
    try:
        upgrade = offer if isinstance(offer, Upgrade) else Upgrade.model_validate(offer)
        manifest = ReleaseManifest(**upgrade.manifest)
        signature = base64.b64decode(upgrade.signature, validate=True)
    except (TypeError, ValueError):  # pydantic's ValidationError is a ValueError
        raise ReleaseError(
            "the upgrade message is malformed",
            hint="the server and this agent speak different protocols: compare their builds",
        ) from None
    verify_signature(key_file, manifest.encode(), base64.b64encode(signature), "the agent build")
    if manifest.product != f"{product}-agent":
        raise ReleaseError(
            f"the build is signed for {manifest.product}, not {product}-agent",
            hint="publish the product's own agent build",
        )
    return manifest
