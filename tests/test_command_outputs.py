"""What commands say about what they did: ``serve --public-url`` beats site.toml's, ``plan`` to
the release the site is at has nothing to do, ``migrate --down-to`` reverts (and says so)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from cli_runner import stairway


@pytest.fixture
def initialised(site_file: Path) -> Path:
    code, _, err = stairway("init", "--version", "1.0.0", "--site", str(site_file))
    assert code == 0, err
    return site_file


def test_serve_public_url_beats_the_sites(
    initialised: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with initialised.open("a", encoding="utf-8") as site:
        site.write('\n[fleet]\npublic_url = "https://from-site-toml.example"\n')
    served: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **_options: served.append(app))
    given = "https://cp.example.org/stairway"
    code, _, err = stairway("serve", "--public-url", given, "--site", str(initialised))
    assert code == 0, err
    assert served[0].state.fleet.config.public_url == given
    code, _, err = stairway("serve", "--port", "8799", "--site", str(initialised))
    assert code == 0, err
    assert served[1].state.fleet.config.public_url == "https://from-site-toml.example"


def test_plan_to_the_current_release_has_nothing_to_do(initialised: Path) -> None:
    code, out, err = stairway("plan", "--to", "1.0.0", "--rolling", "--site", str(initialised))
    said = " ".join(out.split())
    assert code == 0, err
    assert "nothing to do: the site is at 1.0.0" in said
    assert "needs downtime" not in said and "rolling-safe: no" not in said
    code, out, _ = stairway("plan", "--to", "1.0.0", "--json", "--site", str(initialised))
    shown = json.loads(out)
    assert (code, shown["nothing_to_do"], shown["steps"]) == (0, True, [])
    code, out, _ = stairway("plan", "--to", "1.0.4", "--site", str(initialised))
    assert code == 0 and "needs downtime" in " ".join(out.split())


def test_migrate_down_to_says_reverting(initialised: Path) -> None:
    stairway("migrate", "--to", "1.0.4", "--site", str(initialised))
    stairway("migrate", "--to", "2.0.0", "--phase", "expand", "--site", str(initialised))
    code, out, err = stairway("migrate", "--down-to", "3", "--site", str(initialised))
    assert code == 0, err
    assert "reverting 0004" in out and "applying" not in out
    assert "reverted 1 change(s)" in out
