"""Log records on stderr: text for people, JSON lines for machines, never on stdout; the level
from -v, --log-level or the environment."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from cli_runner import stairway
from stairway import logs
from test_upgrade import build_site, stairway_stop


@pytest.fixture(autouse=True)
def logging_restored() -> Iterator[None]:
    """A command configures the root logger of this process; each test gets it back as it was."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def people_site(tmp_path: Path, database_url: str) -> Iterator[Path]:
    site = build_site(tmp_path, database_url)
    yield site
    stairway_stop(site)


def test_an_upgrade_logs_json_lines_on_stderr_and_only_json_on_stdout(people_site: Path) -> None:
    site = str(people_site)
    code, out, err = stairway("upgrade", "--to", "2.0.0", "--site", site, "--json")
    assert code == 0, err
    assert err == "", "at the default level a successful upgrade logs nothing"
    assert orjson.loads(out)["to"] == "2.0.0"

    code, out, err = stairway(
        "-v", "--log-format", "json", "upgrade", "--to", "3.0.0", "--site", site, "--json"
    )
    assert code == 0, err
    assert orjson.loads(out)["to"] == "3.0.0", "stdout holds the result and nothing else"
    lines = [orjson.loads(line) for line in err.splitlines()]
    assert lines, "-v logs the upgrade's progress"
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    steps = [line for line in lines if line["logger"] == "stairway.upgrade"]
    assert any(" begun: " in line["message"] for line in steps)
    assert any(" done in " in line["message"] for line in steps)
    assert {line["level"] for line in steps} == {"INFO"}


def test_the_level_comes_from_log_level_then_v_then_the_environment(
    site_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STAIRWAY_LOG_LEVEL", "error")
    root = logging.getLogger()
    assert stairway("status", "--site", str(site_file), "--json")[0] in (0, 2)
    assert root.level == logging.ERROR
    stairway("-v", "status", "--site", str(site_file), "--json")
    assert root.level == logging.INFO
    stairway("-vv", "status", "--site", str(site_file), "--json")
    assert root.level == logging.DEBUG
    stairway("-v", "--log-level", "DEBUG", "status", "--site", str(site_file), "--json")
    assert root.level == logging.DEBUG
    stairway("-vv", "--log-level", "warning", "status", "--site", str(site_file), "--json")
    assert root.level == logging.WARNING


def test_an_unknown_level_is_refused() -> None:
    code, _, err = stairway("--log-level", "LOUD", "status")
    assert code == 2 and "'LOUD' is not a log level" in err


def test_the_format_comes_from_the_environment_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STAIRWAY_LOG_FORMAT", "json")
    stairway("check", "--help")
    [handler] = [h for h in logging.getLogger().handlers if isinstance(h, logs.StderrHandler)]
    assert isinstance(handler.formatter, logs.JsonFormatter)


def record(**extra: object) -> logging.LogRecord:
    made = logging.LogRecord(
        "stairway.server", logging.ERROR, __file__, 1, "went %s", ("bad",), None
    )
    made.__dict__.update(extra)
    return made


def test_the_json_formatter_carries_the_exception_the_request_id_and_extras() -> None:
    try:
        raise RuntimeError("the disk said no")
    except RuntimeError:
        failed = record(exc_info=sys.exc_info(), request_id="r-17", step=3)
    said = orjson.loads(logs.JsonFormatter().format(failed))
    assert said["level"] == "ERROR" and said["logger"] == "stairway.server"
    assert said["message"] == "went bad" and said["request_id"] == "r-17" and said["step"] == 3
    assert "Traceback" in said["exc"] and "RuntimeError: the disk said no" in said["exc"]
    assert said["time"].endswith("+00:00")
    plain = orjson.loads(logs.JsonFormatter().format(record()))
    assert set(plain) == {"time", "level", "logger", "message"}


def test_the_text_formatter_names_the_request() -> None:
    said = logs.TextFormatter().format(record(request_id="r-17"))
    assert "ERROR stairway.server: went bad [request r-17]" in said


def test_level_for_prefers_the_option_then_v_then_the_environment() -> None:
    assert logs.level_for(0, None, None) == "WARNING"
    assert logs.level_for(1, None, "ERROR") == "INFO"
    assert logs.level_for(2, None, None) == "DEBUG"
    assert logs.level_for(1, "debug", None) == "DEBUG"
    assert logs.level_for(0, None, "error") == "ERROR"
    with pytest.raises(ValueError, match="not a log level"):
        logs.level_for(0, "loud", None)
