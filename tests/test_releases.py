"""Signed release artifacts: checked before they are unpacked, swapped in with one rename,
refused when tampered or signed by another key, and swapped back by a rollback."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest
import zstandard

from cli_runner import stairway
from stairway import releases
from stairway.errors import ReleaseError
from test_upgrade import build_site, fingerprint, stairway_stop


def publish(root: Path, version: str, key: Path, product: str = "people") -> Path:
    """A release tree packed, signed, and put where sites find it; returns the artifact."""
    tree = root / "trees" / version
    (tree / "bin").mkdir(parents=True, exist_ok=True)
    (tree / "bin" / "people").write_text(f"#!/bin/sh\necho people {version}\n", "utf-8")
    (tree / "bin" / "people").chmod(0o755)
    artifacts = root / "artifacts"
    artifacts.mkdir(exist_ok=True)
    artifact = artifacts / f"{product}-{version}.tar.zst"
    releases.pack_release(tree, artifact)
    releases.sign_release(key, artifact, product, version)
    return artifact


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return releases.generate_key(tmp_path / "keys")


def test_a_signed_release_is_checked_installed_once_and_made_current(
    tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    private, public = keys
    assert oct(private.stat().st_mode & 0o777) == "0o600"
    artifact = publish(tmp_path, "2.0.0", private)
    manifest = releases.check_release(artifact.parent, public, "people", "2.0.0")
    where = tmp_path / "releases"
    installed = releases.install_release(artifact.parent, where, manifest)
    assert (installed / "bin" / "people").read_text("utf-8").endswith("people 2.0.0\n")
    assert os.access(installed / "bin" / "people", os.X_OK)
    mtime = (installed / "bin" / "people").stat().st_mtime_ns
    assert releases.install_release(artifact.parent, where, manifest) == installed
    assert (installed / "bin" / "people").stat().st_mtime_ns == mtime, "installed once"
    assert releases.switch_current(where, "2.0.0") is None
    assert (where / "current" / "bin" / "people").exists()
    publish(tmp_path, "3.0.0", private)
    manifest3 = releases.check_release(artifact.parent, public, "people", "3.0.0")
    releases.install_release(artifact.parent, where, manifest3)
    assert releases.switch_current(where, "3.0.0") == "2.0.0"
    assert releases.current_release(where) == "3.0.0"


def test_a_tampered_artifact_is_refused(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    artifact = publish(tmp_path, "2.0.0", keys[0])
    raw = bytearray(artifact.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    artifact.write_bytes(bytes(raw))
    with pytest.raises(ReleaseError, match="does not match its signed SHA-256"):
        releases.check_release(artifact.parent, keys[1], "people", "2.0.0")


def test_another_key_or_an_edited_manifest_fails_the_signature(
    tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    other, _ = releases.generate_key(tmp_path / "other")
    artifact = publish(tmp_path, "2.0.0", other)
    with pytest.raises(ReleaseError, match="does not verify") as caught:
        releases.check_release(artifact.parent, keys[1], "people", "2.0.0")
    assert "do not install it" in caught.value.hint
    publish(tmp_path, "2.0.0", keys[0])
    manifest = releases.manifest_path(artifact.parent, "2.0.0")
    manifest.write_bytes(manifest.read_bytes().replace(b'"size":', b'"size": 1 ,"x":'))
    with pytest.raises(ReleaseError, match="does not verify"):
        releases.check_release(artifact.parent, keys[1], "people", "2.0.0")


def test_a_release_signed_for_another_version_is_refused(
    tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    artifact = publish(tmp_path, "2.0.0", keys[0])
    for suffix in ("", ".sig"):
        source = releases.manifest_path(artifact.parent, "2.0.0").with_suffix(".json" + suffix)
        target = releases.manifest_path(artifact.parent, "3.0.0").with_suffix(".json" + suffix)
        target.write_bytes(source.read_bytes())
    with pytest.raises(ReleaseError, match=r"is signed for people 2\.0\.0, not people 3\.0\.0"):
        releases.check_release(artifact.parent, keys[1], "people", "3.0.0")


@pytest.mark.parametrize("kind", ["symlink", "parent"])
def test_a_signed_artifact_with_a_link_or_escaping_name_is_not_unpacked(
    tmp_path: Path, keys: tuple[Path, Path], kind: str
) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("bin/evil" if kind == "symlink" else "../evil")
        if kind == "symlink":
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)
        else:
            info.size = 4
            tar.addfile(info, io.BytesIO(b"evil"))
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    artifact = artifacts / "people-2.0.0.tar.zst"
    artifact.write_bytes(zstandard.ZstdCompressor().compress(buffer.getvalue()))
    releases.sign_release(keys[0], artifact, "people", "2.0.0")
    manifest = releases.check_release(artifacts, keys[1], "people", "2.0.0")
    with pytest.raises(ReleaseError, match="is refused"):
        releases.install_release(artifacts, tmp_path / "releases", manifest)
    assert not (tmp_path / "evil").exists() and not (tmp_path / "releases" / "2.0.0").exists()


def test_a_tree_unpacking_past_its_limit_is_refused(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "upgrades").mkdir(parents=True)
    for name in ("a", "b"):
        (tree / "upgrades" / name).write_bytes(b"x" * 100)
    artifact = tmp_path / "tree.tar.zst"
    releases.pack_release(tree, artifact)
    releases.unpack(artifact, tmp_path / "whole", limit=200)
    assert (tmp_path / "whole" / "upgrades" / "b").read_bytes() == b"x" * 100
    with pytest.raises(ReleaseError, match="unpacks to more than 199 bytes"):
        releases.unpack(artifact, tmp_path / "cut", limit=199)


# --- in an upgrade ----------------------------------------------------------------------------


def release_site(tmp_path: Path, database_url: str, keys: tuple[Path, Path]) -> Path:
    site = build_site(tmp_path, database_url)
    for version in ("1.0.0", "2.0.0"):
        publish(tmp_path, version, keys[0])
    site.write_text(
        site.read_text("utf-8").replace(
            "[site]\n",
            f'[site]\nreleases_dir = "releases"\nartifacts = "artifacts"\n'
            f'release_key = "{keys[1]}"\n',
        ),
        "utf-8",
    )
    manifest = releases.check_release(tmp_path / "artifacts", keys[1], "people", "1.0.0")
    releases.install_release(tmp_path / "artifacts", tmp_path / "releases", manifest)
    releases.switch_current(tmp_path / "releases", "1.0.0")
    return site


def test_upgrade_swaps_the_release_and_rollback_swaps_it_back(
    tmp_path: Path, database_url: str, keys: tuple[Path, Path]
) -> None:
    site = release_site(tmp_path, database_url, keys)
    try:
        code, _, err = stairway("upgrade", "--to", "2.0.0", "--site", str(site))
        assert code == 0, err
        assert releases.current_release(tmp_path / "releases") == "2.0.0"
        assert (tmp_path / "releases" / "1.0.0").is_dir(), "the previous release stays"
        code, _, err = stairway("rollback", "--yes", "--site", str(site))
        assert code == 0, err
        assert releases.current_release(tmp_path / "releases") == "1.0.0"
    finally:
        stairway_stop(site)


def test_a_tampered_artifact_stops_the_upgrade_before_anything_is_stopped(
    tmp_path: Path, database_url: str, keys: tuple[Path, Path]
) -> None:
    site = release_site(tmp_path, database_url, keys)
    artifact = tmp_path / "artifacts" / "people-2.0.0.tar.zst"
    artifact.write_bytes(artifact.read_bytes()[:-10] + b"0123456789")
    before = fingerprint(site)
    code, _, err = stairway("upgrade", "--to", "2.0.0", "--site", str(site))
    assert code == 2 and "does not match its signed SHA-256" in err
    assert fingerprint(site) == before
    assert not (tmp_path / "starts").exists(), "the service was never stopped"
    backups = tmp_path / "backups"
    assert not list(backups.glob("*.tar.zst")) and not list(backups.glob("*.journal")), (
        "no backup kept, no journal: nothing began"
    )
    assert releases.current_release(tmp_path / "releases") == "1.0.0"
