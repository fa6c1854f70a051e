"""Signed licences: Ed25519 and RSA-4096 licences verified; tampered, expired, foreign and
too-narrow licences are findings that stop an upgrade before it starts, and a licence that stops
holding during the upgrade fails its smoke check and rolls the upgrade back."""

from __future__ import annotations

import base64
import sys
from datetime import date, timedelta
from pathlib import Path

import orjson
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import given
from hypothesis import strategies as st

from cli_runner import stairway
from stairway import licence
from stairway.errors import LicenceError
from stairway.versions import Version
from test_upgrade import build_site, fingerprint, stairway_stop

TODAY = date(2026, 11, 24)


def terms(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "id": "L-1",
        "product": "people",
        "customer": "Acme",
        "issued": "2026-01-01",
        "expires": "2027-12-31",
        "versions": ">=1.0,<3",
        "seats": 500,
    }
    return base | changes


@pytest.fixture
def vendor(tmp_path: Path) -> tuple[Path, Path]:
    return licence.generate_key(tmp_path / "vendor")


def issued(vendor: tuple[Path, Path], where: Path, **changes: object) -> Path:
    licence.issue(vendor[0], terms(**changes), where)
    return where


def problems(path: Path, key: Path, version: str = "2.0.0") -> list[str]:
    _terms, found = licence.check(path, key, "people", Version.parse(version), TODAY)
    return [f"{p.severity}: {p.message}" for p in found]


def test_a_licence_as_issued_holds_and_keeps_its_extra_terms(
    vendor: tuple[Path, Path], tmp_path: Path
) -> None:
    path = issued(vendor, tmp_path / "licence.json")
    assert problems(path, vendor[1]) == []
    read = licence.read_verified(path, vendor[1])
    assert read.customer == "Acme" and read.model_extra == {"seats": 500}


def test_expired_expiring_foreign_and_too_narrow_licences_are_named(
    vendor: tuple[Path, Path], tmp_path: Path
) -> None:
    expired = issued(vendor, tmp_path / "a.json", expires="2026-11-01")
    assert problems(expired, vendor[1]) == ["critical: the licence L-1 expired on 2026-11-01"]
    soon = issued(vendor, tmp_path / "b.json", expires=str(TODAY + timedelta(days=10)))
    assert problems(soon, vendor[1])[0].startswith("warning: the licence L-1 expires on")
    foreign = issued(vendor, tmp_path / "c.json", product="billing")
    assert problems(foreign, vendor[1]) == ["critical: the licence L-1 is for billing, not people"]
    narrow = issued(vendor, tmp_path / "d.json")
    assert problems(narrow, vendor[1], "3.0.0") == [
        "critical: the licence L-1 covers versions >=1.0,<3, not 3.0.0"
    ]


def test_a_tampered_licence_or_one_signed_by_another_key_does_not_verify(
    vendor: tuple[Path, Path], tmp_path: Path
) -> None:
    path = issued(vendor, tmp_path / "licence.json")
    document = orjson.loads(path.read_bytes())
    document["licence"]["expires"] = "2099-12-31"
    path.write_bytes(orjson.dumps(document))
    (found,) = problems(path, vendor[1])
    assert "does not verify" in found and found.startswith("critical")
    other = licence.generate_key(tmp_path / "other")
    assert "does not verify" in problems(issued(other, tmp_path / "o.json"), vendor[1])[0]


def rsa_licence(tmp_path: Path, algorithm: str) -> tuple[Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=4096)
    public = tmp_path / f"{algorithm}.pub.pem"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    body = licence.signed_bytes(terms())
    if algorithm == "rsa-pss-sha256":
        pss = padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.MAX_LENGTH)
        signature = key.sign(body, pss, hashes.SHA256())
    else:
        signature = key.sign(body, padding.PKCS1v15(), hashes.SHA256())
    path = tmp_path / f"{algorithm}.json"
    document = {"licence": terms(), "algorithm": algorithm, "signature": ""}
    document["signature"] = base64.b64encode(signature).decode()
    path.write_bytes(orjson.dumps(document))
    return path, public


@pytest.mark.parametrize("algorithm", ["rsa-pss-sha256", "rsa-pkcs1v15-sha256"])
def test_rsa_4096_licences_as_products_issue_them_verify(tmp_path: Path, algorithm: str) -> None:
    path, public = rsa_licence(tmp_path, algorithm)
    assert problems(path, public) == []


def test_a_licence_cannot_pick_another_algorithm_than_the_key_is_for(
    vendor: tuple[Path, Path], tmp_path: Path
) -> None:
    path, public = rsa_licence(tmp_path, "rsa-pss-sha256")
    document = orjson.loads(path.read_bytes())
    document["algorithm"] = "rsa-pkcs1v15-sha256"
    path.write_bytes(orjson.dumps(document))
    assert "does not verify" in problems(path, public)[0]
    document["algorithm"] = "ed25519"
    path.write_bytes(orjson.dumps(document))
    assert "which the vendor's RSA-4096 key does not sign" in problems(path, public)[0]


@given(cut=st.integers(min_value=0, max_value=400), noise=st.binary(max_size=8))
def test_a_damaged_licence_file_is_only_ever_refused_cleanly(
    tmp_path_factory: pytest.TempPathFactory, cut: int, noise: bytes
) -> None:
    root = tmp_path_factory.mktemp("damaged")
    key = licence.generate_key(root / "vendor")
    path = issued(key, root / "licence.json")
    raw = path.read_bytes()
    path.write_bytes(raw[:cut] + noise + raw[cut + len(noise) :])
    found = problems(path, key[1])  # never raises: a damaged file is a finding
    if _meaning(path.read_bytes()) != _meaning(raw):
        assert found and found[0].startswith("critical"), found
    else:
        assert found == [], "spacing is not meaning: the same licence still holds"


def _meaning(raw: bytes) -> object:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def licensed_site(
    root: Path, database_url: str, vendor: tuple[Path, Path], **changes: object
) -> Path:
    site = build_site(root, database_url)
    manifest = root / "catalog" / "stairway.toml"
    (root / "catalog" / "licence.pub").write_bytes(vendor[1].read_bytes())
    manifest.write_text(manifest.read_text() + '\n[licence]\nkey = "licence.pub"\n')
    issued(vendor, root / "etc" / "licence.json", **changes)
    site.write_text(site.read_text() + '\n[licence]\nfile = "etc/licence.json"\n')
    return site


@pytest.fixture
def stop_service(tmp_path: Path) -> object:
    yield None
    if (tmp_path / "site.toml").exists():
        stairway_stop(tmp_path / "site.toml")


def test_a_licence_that_does_not_cover_the_target_stops_the_upgrade_before_it_starts(
    tmp_path: Path, database_url: str, vendor: tuple[Path, Path], stop_service: object
) -> None:
    site = licensed_site(tmp_path, database_url, vendor, versions=">=1.0,<2")
    code, out, err = stairway("verify", "--to", "2.0.0", "--json", "--site", str(site))
    assert code == 2 and "covers versions >=1.0,<2, not 2.0.0" in out, err
    before = fingerprint(site)
    code, _out, err = stairway("upgrade", "--to", "2.0.0", "--site", str(site))
    assert code == 2 and "licence" in err
    assert fingerprint(site) == before
    code, out, err = stairway("licence", "check", "--site", str(site))
    assert code == 0 and "covers 1.0.0" in out, err


def test_a_site_without_the_licence_its_product_needs_is_told_where_to_put_it(
    tmp_path: Path, database_url: str, vendor: tuple[Path, Path], stop_service: object
) -> None:
    site = licensed_site(tmp_path, database_url, vendor)
    site.write_text(site.read_text().replace('[licence]\nfile = "etc/licence.json"\n', ""))
    code, out, err = stairway("licence", "check", "--site", str(site))
    assert code == 2 and "names no licence file" in out + err and "[licence] file" in err


def test_a_licence_that_stops_holding_during_the_upgrade_fails_the_smoke_check_and_rolls_back(
    tmp_path: Path, database_url: str, vendor: tuple[Path, Path], stop_service: object
) -> None:
    site = licensed_site(tmp_path, database_url, vendor)
    lapsed = issued(vendor, tmp_path / "lapsed.json", expires="2020-01-01")
    script = tmp_path / "swap.py"
    script.write_text(
        f"import shutil\nshutil.copy({str(lapsed)!r}, {str(tmp_path / 'etc' / 'licence.json')!r})\n"
    )
    swap = f"{sys.executable} {script}"
    manifest = tmp_path / "catalog" / "stairway.toml"
    manifest.write_text(manifest.read_text() + f'\n[[smoke]]\nname = "swap"\ncommand = "{swap}"\n')
    code, _out, err = stairway("upgrade", "--to", "2.0.0", "--site", str(site))
    assert code == 1 and "smoke check licence: the licence L-1 expired on 2020-01-01" in err
    assert "Rolled back" in err


def test_issue_refuses_terms_that_make_no_licence(
    vendor: tuple[Path, Path], tmp_path: Path
) -> None:
    with pytest.raises(LicenceError, match="--versions"):
        licence.issue(vendor[0], terms(versions="about two"), tmp_path / "x.json")
    code, _out, err = stairway(
        "licence", "issue", "--key", str(vendor[0]), "--product", "people", "--customer", "A",
        "--versions", ">=2", "--expires", "not a date", "--out", str(tmp_path / "y.json"),
    )  # fmt: skip
    assert code != 0 and "not valid licence terms" in err
    assert not (tmp_path / "y.json").exists()
