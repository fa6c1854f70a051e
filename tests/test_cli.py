"""The command line end to end: output, --json, and the exit codes of the design."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cli_runner import stairway


@pytest.fixture
def initialised(site_file: Path) -> Path:
    code, _, err = stairway("init", "--version", "1.0.0", "--site", str(site_file))
    assert code == 0, err
    return site_file


def test_init_then_status(initialised: Path) -> None:
    code, out, _ = stairway("status", "--site", str(initialised), "--json")
    assert code == 0
    status = json.loads(out)
    assert status["release"] == "1.0.0" and status["level"] == 2
    assert [c["number"] for c in status["applied"]] == [1, 2]


def test_plan_walks_the_required_stop(initialised: Path) -> None:
    code, out, _ = stairway("plan", "--to", "2.0.0", "--site", str(initialised), "--json")
    assert code == 0
    plan = json.loads(out)
    assert [s["to"] for s in plan["steps"]] == ["1.0.4", "2.0.0"]
    assert [c["number"] for c in plan["steps"][1]["changes"]] == [4, 5]
    assert plan["rolling_safe"] is False and "0005_drop_note" in plan["blocking_rolling"]


def test_plan_rolling_exit_code(initialised: Path) -> None:
    assert stairway("migrate", "--to", "1.0.4", "--site", str(initialised))[0] == 0
    assert stairway("migrate", "--to", "2.0.0", "--site", str(initialised))[0] == 0
    assert stairway("plan", "--to", "2.1.0", "--rolling", "--site", str(initialised))[0] == 0
    code, out, _ = stairway("plan", "--to", "2.1.0", "--site", str(initialised))
    assert code == 0 and "rolling-safe: yes" in out


def test_plan_rolling_refuses_a_contract_path(initialised: Path) -> None:
    code, out, _ = stairway("plan", "--to", "2.0.0", "--rolling", "--site", str(initialised))
    assert code == 3 and "0005_drop_note" in out


@pytest.mark.parametrize(
    ("target", "message"),
    [("0.1.0", "no release 0.1.0"), ("9.0.0", "no release 9.0.0"), ("two", "not a version")],
)
def test_plan_refusals_exit_2(initialised: Path, target: str, message: str) -> None:
    code, _, err = stairway("plan", "--to", target, "--site", str(initialised))
    assert code == 2 and message in err and "hint:" in err


def test_migrate_refuses_to_skip_a_required_stop(initialised: Path) -> None:
    code, _, err = stairway("migrate", "--to", "2.0.0", "--site", str(initialised))
    assert code == 2 and "skips required stops" in err


def test_migrate_dry_run_prints_sql_and_changes_nothing(initialised: Path) -> None:
    code, out, _ = stairway("migrate", "--to", "1.0.4", "--dry-run", "--site", str(initialised))
    assert code == 0 and "ALTER TABLE customers ADD COLUMN email TEXT;" in out
    code, out, _ = stairway("status", "--site", str(initialised), "--json")
    assert json.loads(out)["level"] == 2


def test_migrate_phase_expand_stops_at_the_first_contract(initialised: Path) -> None:
    stairway("migrate", "--to", "1.0.4", "--site", str(initialised))
    code, out, _ = stairway(
        "migrate", "--to", "2.0.0", "--phase", "expand", "--site", str(initialised), "--json"
    )
    assert code == 0 and [c["number"] for c in json.loads(out)["applied"]] == [4]
    status = json.loads(stairway("status", "--site", str(initialised), "--json")[1])
    assert status["release"] == "1.0.4" and status["level"] == 4


def test_failed_change_exits_1(initialised: Path, shop_catalog: Path) -> None:
    (shop_catalog / "schema" / "0003_customer_email.sql").write_text(
        "-- phase: expand\nALTER TABLE nowhere ADD COLUMN email TEXT;\n", encoding="utf-8"
    )
    code, _, err = stairway("migrate", "--to", "1.0.4", "--site", str(initialised))
    assert code == 1 and "0003_customer_email failed" in err


def test_missing_site_file_exits_2(tmp_path: Path) -> None:
    code, _, err = stairway("status", "--site", str(tmp_path / "nope.toml"))
    assert code == 2 and "no site file" in err


def test_bad_site_key_exits_2(tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    site.write_text('[site]\ndatabase = "sqlite:///x.db"\ndatabse = "oops"\n', encoding="utf-8")
    code, _, err = stairway("status", "--site", str(site))
    assert code == 2 and "site.databse" in err


def test_init_twice_is_refused(initialised: Path) -> None:
    code, _, err = stairway("init", "--version", "1.0.0", "--site", str(initialised))
    assert code == 2 and "already holds a Stairway site" in err


def test_down_migration_through_the_cli(initialised: Path) -> None:
    stairway("migrate", "--to", "1.0.4", "--site", str(initialised))
    stairway("migrate", "--to", "2.0.0", "--phase", "expand", "--site", str(initialised))
    code, _, err = stairway("migrate", "--down-to", "3", "--site", str(initialised))
    assert code == 0, err  # 0004 declares LOSES = "nothing"
    code, _, err = stairway("migrate", "--down-to", "2", "--site", str(initialised))
    assert code == 2 and "schema-only rollback" in err


def test_version_prints_the_installed_version() -> None:
    code, out, _ = stairway("--version")
    assert code == 0 and re.fullmatch(r"stairway \d+\.\d+\.\d+\S*\n", out)


@pytest.mark.parametrize("words", [(), ("plan",), ("secrets", "set"), ("export", "verify")])
def test_h_is_help_and_flags_show_no_type(words: tuple[str, ...]) -> None:
    code, out, _ = stairway(*words, "-h")
    assert code == 0 and "Usage:" in out and "--help" in out
    assert "<bool>" not in out


def test_the_root_help_offers_shell_completion_and_logging() -> None:
    code, out, _ = stairway("--help")
    assert code == 0
    for option in ("--install-completion", "--show-completion", "--verbose", "--log-format"):
        assert option in out
