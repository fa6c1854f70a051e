"""``stairway service start|stop|status`` on the example product with its real service, and a
health answer that must prove the release: a process answering 2xx without naming its release,
or naming another, does not pass for the one the site holds."""

from __future__ import annotations

import http.server
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import orjson
import pytest

from example_sites import ExampleSite, ExampleSites, example_sites, free_port
from stairway import service


@pytest.fixture(params=["sqlite"], scope="module")
def sites(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ExampleSites]:
    yield from example_sites(request, tmp_path_factory)


@pytest.fixture
def site(sites: ExampleSites, request: pytest.FixtureRequest) -> Iterator[ExampleSite]:
    made = sites.new(request.node.name.replace("[", "-").rstrip("]"), running=False)
    yield made
    made.stop()


def test_start_status_stop_through_the_sites_service(site: ExampleSite) -> None:
    down = site.cli("service", "status", "--json")
    assert down.returncode == 3, down.stderr
    assert orjson.loads(down.stdout)["state"] == "down"
    started = site.cli("service", "start")
    assert started.returncode == 0, started.stderr
    assert "answers as release 1.0.0" in started.stdout
    assert (site.health() or {}).get("release") == "1.0.0"
    status = site.cli("service", "status", "--json")
    assert status.returncode == 0, status.stderr
    said = orjson.loads(status.stdout)
    assert (said["state"], said["release"], said["schema"]) == ("serving", "1.0.0", 3)
    stopped = site.cli("service", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert site.health() is None
    assert site.cli("service", "status").returncode == 3


def test_service_refuses_a_site_without_a_service(tmp_path: Path, site: ExampleSite) -> None:
    text = site.site.read_text("utf-8")
    site.site.write_text(text[: text.index("[service]")], "utf-8")
    refused = site.cli("service", "start")
    assert refused.returncode == 2
    assert "declares no way to run the product" in refused.stderr
    assert "Traceback" not in refused.stderr


class _Answering(http.server.BaseHTTPRequestHandler):
    body = b""
    headers_out: ClassVar[dict[str, str]] = {}

    def do_GET(self) -> None:
        self.send_response(200)
        for name, value in self.headers_out.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def answering() -> Iterator[tuple[type[_Answering], str]]:
    handler = type("Handler", (_Answering,), {"body": b"", "headers_out": {}})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield handler, f"http://127.0.0.1:{server.server_address[1]}/health"
    finally:
        server.shutdown()
        server.server_close()


def _section(url: str, source: str = "json:release") -> service.ServiceSection:
    return service.ServiceSection(health=url, health_timeout=0.5, health_release=source)


@pytest.mark.parametrize(
    ("body", "headers", "source", "wrong"),
    [
        (b"OK", {}, "json:release", "does not name its release (no `release` in its JSON)"),
        (b'{"status": "up"}', {}, "json:release", "does not name its release"),
        (b'{"release": "1.0.0"}', {}, "json:release", "answers as release 1.0.0, not 2.0.0"),
        (b'{"version": "1.0.0"}', {}, "json:release", "answers as release 1.0.0"),
        (b'{"release": "2.0.0", "schema": 3}', {}, "json:release", "at schema 3, the database"),
        (b"OK", {"X-Release": "1.0.0"}, "header:X-Release", "answers as release 1.0.0"),
        (b"OK", {}, "header:X-Release", "no X-Release header"),
    ],
)
def test_an_answer_that_does_not_prove_the_release_is_not_healthy(
    answering: tuple[type[_Answering], str],
    body: bytes,
    headers: dict[str, str],
    source: str,
    wrong: str,
) -> None:
    handler, url = answering
    handler.body, handler.headers_out = body, headers
    with pytest.raises(service.UpgradeError) as failed:
        service.wait_healthy(_section(url, source), service.Expected("2.0.0", 8))
    assert wrong in failed.value.message


@pytest.mark.parametrize(
    ("body", "headers", "source"),
    [
        (b'{"release": "2.0.0", "schema": 8}', {}, "json:release"),
        (b'{"version": "2.0.0"}', {}, "json:release"),
        (b'{"build": "2.0.0"}', {}, "json:build"),
        (b"OK", {"X-Release": "2.0.0"}, "header:X-Release"),
        (b"OK", {}, "none"),
    ],
)
def test_an_answer_naming_the_release_where_the_site_says_is_healthy(
    answering: tuple[type[_Answering], str], body: bytes, headers: dict[str, str], source: str
) -> None:
    handler, url = answering
    handler.body, handler.headers_out = body, headers
    assert service.wait_healthy(_section(url, source), service.Expected("2.0.0", 8))


def test_a_product_that_exits_after_start_fails_at_once_with_its_log(tmp_path: Path) -> None:
    crash = "import sys; print('address already in use: 8080', file=sys.stderr); sys.exit(1)"
    section = service.ServiceSection(
        run=f'{sys.executable} -c "{crash}"',
        health=f"http://127.0.0.1:{free_port()}/health",
        health_timeout=60,
    )
    service.run_command(section, "start", tmp_path)
    began = time.monotonic()
    with pytest.raises(service.UpgradeError) as failed:
        service.wait_healthy(section, service.Expected("2.0.0"), tmp_path)
    assert time.monotonic() - began < 20, "not the whole health timeout"
    assert "exited after it was started" in failed.value.message
    assert "address already in use: 8080" in failed.value.message
