"""A rolling upgrade for real: two instances of the example product on PostgreSQL behind nginx
(Debian's), sessions in Redis, logged-in clients requesting throughout `upgrade --rolling` from
2.0.0 to 2.1.0. No request fails, every client keeps its session, and the contract change waits
for the last 2.0.0 instance."""

from __future__ import annotations

import http.cookiejar
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest
from sqlalchemy import inspect

from cli_runner import stairway
from conftest import REDIS_URL
from fleet_harness import free_port, wait_until
from stairway import commands, releases
from stairway.database import dispose_all
from stairway.journal import Journal
from stairway.quickstart import demo_catalog, write_site

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
NGINX_CONF = """
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/nginx-error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log {root}/nginx-access.log;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    upstream product {{
        server 127.0.0.1:{one} max_fails=0;
        server 127.0.0.1:{two} max_fails=0;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://product;
            proxy_next_upstream error timeout http_503 non_idempotent;
            proxy_next_upstream_tries 4;
            proxy_connect_timeout 2s;
        }}
    }}
}}
"""


@dataclass
class Rolling:
    root: Path
    site: Path
    ports: tuple[int, int]
    front: int
    nginx: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.front}"

    def product(self, action: str, instance: int) -> None:
        command = [sys.executable, "-m", "stairway.examples.identity_sync", action]
        command += ["--site", str(self.site), "--instance", str(instance)]
        command += ["--port", str(self.ports[instance - 1])]
        subprocess.run(command, env=os.environ | self.env, check=True)


def _skip_without_nginx() -> None:
    if not Path(NGINX).exists():
        if os.environ.get("CI") == "true":
            pytest.fail("nginx is missing: .ci/run installs it")
        pytest.skip("nginx is not installed here")


@pytest.fixture
def rolling_site(
    tmp_path: Path, pg_database: str, redis_prefix: tuple[object, str]
) -> Iterator[Rolling]:
    _skip_without_nginx()
    demo = write_site(tmp_path / "site")
    ports = (free_port(), free_port())
    env = {"IDENTITY_SYNC_REDIS": REDIS_URL, "IDENTITY_SYNC_SESSION_PREFIX": redis_prefix[1]}
    serve = f"env IDENTITY_SYNC_REDIS={REDIS_URL} IDENTITY_SYNC_SESSION_PREFIX={redis_prefix[1]}"
    serve += f" {sys.executable} -m stairway.examples.identity_sync"
    site = demo.site_file
    demo.site_file.write_text(
        f'[site]\ndatabase = "{pg_database}"\ncatalog = "{demo_catalog()}"\n'
        'data_dir = "data"\nbackup_dir = "backups"\n'
        'config_files = ["etc/identity-sync.toml", "etc/standalone.xml"]\n'
        'releases_dir = "releases"\nartifacts = "artifacts"\nrelease_key = "keys/release.pub"\n\n'
        f'[service]\nstart = "{serve} start --site {site} --port {{port}} '
        '--instance {instance}"\n'
        f'stop = "{serve} stop --site {site} --instance {{instance}}"\n'
        'health = "{url}/health"\ndrain = "{url}/drain"\nhealth_timeout = 30\n'
        f'instances = ["http://127.0.0.1:{ports[0]}", "http://127.0.0.1:{ports[1]}"]\n\n'
        '[secrets]\nkey_file = "keys/site.key"\n'
    )
    ctx = commands.open_context(demo.site_file, None)
    commands.init(ctx, "2.0.0")
    where = ctx.site.site
    assert where.artifacts and where.release_key and where.releases_dir
    found = releases.check_release(where.artifacts, where.release_key, "identity-sync", "2.0.0")
    releases.install_release(where.artifacts, where.releases_dir, found)
    releases.switch_current(where.releases_dir, "2.0.0")
    dispose_all()
    running = Rolling(tmp_path, demo.site_file, ports, free_port(), env=env)
    for instance in (1, 2):
        running.product("start", instance)
    for port in ports:
        wait_until(lambda p=port: _status(f"http://127.0.0.1:{p}/health") == 200, 30, "instance")
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(root=tmp_path, one=ports[0], two=ports[1], port=running.front)
    )
    running.nginx = subprocess.Popen(
        [NGINX, "-c", str(conf), "-p", str(tmp_path), "-g", "daemon off;"],
        stderr=subprocess.DEVNULL,
    )
    wait_until(lambda: _status(f"{running.url}/health") == 200, 30, "nginx")
    try:
        yield running
    finally:
        running.nginx.terminate()
        running.nginx.wait(timeout=10)
        for instance in (1, 2):
            running.product("stop", instance)
        dispose_all()


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as err:
        return int(err.code)
    except (urllib.error.URLError, OSError):
        return 0


@dataclass
class Client:
    name: str
    opener: urllib.request.OpenerDirector
    failures: list[str] = field(default_factory=list)
    releases: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)

    def call(self, url: str, body: dict[str, str] | None = None) -> dict[str, object] | None:
        data = orjson.dumps(body) if body is not None else None
        request = urllib.request.Request(url, data, {"Content-Type": "application/json"})
        began = time.monotonic()
        try:
            with self.opener.open(request, timeout=30) as answer:
                said = orjson.loads(answer.read())
        except (urllib.error.URLError, OSError) as err:
            self.failures.append(f"{url}: {err}")
            return None
        finally:
            self.latencies.append(time.monotonic() - began)
        return dict(said)


def load(front: str, clients: int, stop: threading.Event) -> list[Client]:
    crowd = []
    for n in range(clients):
        jar = http.cookiejar.CookieJar()
        client = Client(
            f"user{n}", urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        )
        said = client.call(f"{front}/login", {"user": client.name})
        assert said is not None and said["user"] == client.name
        crowd.append(client)

    def work(client: Client) -> None:
        while not stop.is_set():
            said = client.call(f"{front}/me")
            if said is not None:
                if said.get("user") != client.name:
                    client.failures.append(f"session lost: {said}")
                client.releases.append(str(said.get("release")))
            time.sleep(0.01)

    for client in crowd:
        threading.Thread(target=work, args=(client,), daemon=True).start()
    return crowd


def test_a_rolling_upgrade_behind_nginx_fails_no_request_and_keeps_every_session(
    rolling_site: Rolling,
) -> None:
    stop = threading.Event()
    crowd = load(rolling_site.url, 8, stop)
    time.sleep(1.0)
    code, out, err = stairway(
        "upgrade", "--rolling", "--to", "2.1.0", "--site", str(rolling_site.site)
    )
    time.sleep(1.0)
    stop.set()
    time.sleep(0.2)
    assert code == 0, err + out
    failures = [f for c in crowd for f in c.failures]
    assert failures == [], failures[:5]
    assert all(c.releases[0] == "2.0.0" and c.releases[-1] == "2.1.0" for c in crowd)
    assert sum(len(c.releases) for c in crowd) > 200, "the clients kept asking throughout"
    for port in rolling_site.ports:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health") as answer:
            assert orjson.loads(answer.read())["release"] == "2.1.0"
    ctx = commands.open_context(rolling_site.site, None)
    columns = {c["name"] for c in inspect(ctx.engine).get_columns("connectors")}
    assert "kind" in columns and "type" not in columns, "expand, then the deferred contract"
    (last,) = Journal(commands.backup_dir(ctx)).history()[-1:]
    kinds = [s["kind"] for s in last.plan["steps"]]
    finished = {r.step: r.at for r in last.records if r.event == "done"}
    begun = {r.step: r.at for r in last.records if r.event == "begin"}
    instances = [i for i, k in enumerate(kinds) if k == "instance"]
    contract = kinds.index("contract")
    assert begun[contract] >= max(finished[i] for i in instances), "contract after the last one"
    assert kinds.index("expand") < min(instances)


def test_contract_changes_refuse_while_an_old_instance_serves_and_name_it(
    rolling_site: Rolling,
) -> None:
    site = str(rolling_site.site)
    code, _out, err = stairway("migrate", "--to", "2.1.0", "--phase", "expand", "--site", site)
    assert code == 0, err
    code, _out, err = stairway("migrate", "--to", "2.1.0", "--phase", "contract", "--site", site)
    assert code != 0
    assert "contract change 0010_drop_connector_type of 2.1.0 waits for" in err
    assert f"instance 1 (http://127.0.0.1:{rolling_site.ports[0]}) runs 2.0.0" in err


def test_a_path_that_needs_downtime_or_a_site_with_one_instance_is_refused(
    tmp_path: Path,
) -> None:
    demo = write_site(tmp_path / "demo")
    commands.init(commands.open_context(demo.site_file, None), "1.0.0")
    dispose_all()
    code, _out, err = stairway(
        "upgrade", "--rolling", "--to", "2.0.0", "--site", str(demo.site_file)
    )
    assert code == 2 and "a rolling upgrade to 2.0.0 is refused" in err
    assert "0007_rename_ldap_connector [offline]" in err
    assert "not marked rolling" in err and "fewer than two" in err
    assert "must name the instance" in err
    code, _out, _err = stairway("plan", "--to", "2.0.0", "--rolling", "--site", str(demo.site_file))
    assert code == 3
