"""identity-sync as two instances behind nginx on loopback, with logged-in clients: what the
rolling-upgrade test and benchmark run against.

``build_cluster`` writes a demo site on the given database with sessions in Redis, the site's
``[service]`` naming both instances (start, stop, drain and health per instance), installs
2.0.0, starts both instances and an nginx (Debian's) that balances them and passes a request
to the other instance when one answers 503 or is down. ``Crowd`` logs clients in and keeps them
asking ``/me``, recording every failure, release seen and latency.
"""

from __future__ import annotations

import http.cookiejar
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from stairway import context, operations, releases
from stairway.database import dispose_all
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
class Cluster:
    """Two running instances of identity-sync and the nginx in front of them."""

    root: Path
    site: Path
    ports: tuple[int, int]
    front: int
    env: dict[str, str]
    nginx: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The address of nginx, which balances the two instances."""
        return f"http://127.0.0.1:{self.front}"

    def product(self, action: str, instance: int) -> None:
        """Run the product's ``start`` or ``stop`` for instance 1 or 2; raises if it fails."""
        command = [sys.executable, "-m", "stairway.examples.identity_sync", action]
        command += ["--site", str(self.site), "--instance", str(instance)]
        command += ["--port", str(self.ports[instance - 1])]
        subprocess.run(command, env=os.environ | self.env, check=True)


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def build_cluster(root: Path, database_url: str, redis_url: str, prefix: str) -> Iterator[Cluster]:
    """Run identity-sync as two instances behind nginx for the block; stop them after.

    Args:
        root: A directory for the site, nginx's configuration and its logs.
        database_url: The site's database.
        redis_url: The Redis that holds the sessions.
        prefix: The session keys' prefix, so that runs sharing a Redis stay apart.

    Raises:
        RuntimeError: An instance or nginx did not answer its health URL within 30 seconds.
    """
    demo = write_site(root / "site")
    ports = (free_port(), free_port())
    env = {"IDENTITY_SYNC_REDIS": redis_url, "IDENTITY_SYNC_SESSION_PREFIX": prefix}
    _write_site(demo.site_file, database_url, ports, env)
    _install(demo.site_file)
    cluster = Cluster(root, demo.site_file, ports, free_port(), env)
    try:
        for instance in (1, 2):
            cluster.product("start", instance)
        for port in ports:
            _wait(f"http://127.0.0.1:{port}/health", "an instance")
        conf = root / "nginx.conf"
        conf.write_text(
            NGINX_CONF.format(root=root, one=ports[0], two=ports[1], port=cluster.front)
        )
        cluster.nginx = subprocess.Popen(
            [NGINX, "-c", str(conf), "-p", str(root), "-g", "daemon off;"],
            stderr=subprocess.DEVNULL,
        )
        _wait(f"{cluster.url}/health", "nginx")
        yield cluster
    finally:
        if cluster.nginx is not None:
            cluster.nginx.terminate()
            cluster.nginx.wait(timeout=10)
        for instance in (1, 2):
            cluster.product("stop", instance)
        dispose_all()


def _write_site(site: Path, database_url: str, ports: tuple[int, int], env: dict[str, str]) -> None:
    serve = "env " + " ".join(f"{k}={v}" for k, v in env.items())
    serve += f" {sys.executable} -m stairway.examples.identity_sync"
    site.write_text(
        f'[site]\ndatabase = "{database_url}"\ncatalog = "{demo_catalog()}"\n'
        'data_dir = "data"\nbackup_dir = "backups"\n'
        'config_files = ["etc/identity-sync.toml", "etc/standalone.xml"]\n'
        'releases_dir = "releases"\nartifacts = "artifacts"\nrelease_key = "keys/release.pub"\n\n'
        f'[service]\nstart = "{serve} start --site {site} --port {{port}} '
        '--instance {instance}"\n'
        f'stop = "{serve} stop --site {site} --instance {{instance}}"\n'
        'health = "{url}/health"\ndrain = "{url}/drain"\nhealth_timeout = 30\n'
        f'instances = ["http://127.0.0.1:{ports[0]}", "http://127.0.0.1:{ports[1]}"]\n\n'
        '[secrets]\nkey_file = "keys/site.key"\n',
        "utf-8",
    )


def _install(site: Path) -> None:
    """The site at 2.0.0, running the 2.0.0 release."""
    ctx = context.open_context(site, None)
    operations.init(ctx, "2.0.0")
    where = ctx.site.site
    assert where.artifacts and where.release_key and where.releases_dir
    found = releases.check_release(where.artifacts, where.release_key, "identity-sync", "2.0.0")
    releases.install_release(where.artifacts, where.releases_dir, found)
    releases.switch_current(where.releases_dir, "2.0.0")
    dispose_all()


def status_of(url: str) -> int:
    """The HTTP status ``url`` answers with, or 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as err:
        return int(err.code)
    except (urllib.error.URLError, OSError):
        return 0


def _wait(url: str, what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if status_of(url) == 200:
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not come up at {url}")


@dataclass
class Client:
    """One logged-in user with its cookies, and what it saw: failures, releases, latencies."""

    name: str
    opener: urllib.request.OpenerDirector
    failures: list[str] = field(default_factory=list)
    releases: list[str] = field(default_factory=list)
    latencies: list[tuple[float, float]] = field(default_factory=list)  # (when, seconds)

    def call(self, url: str, body: dict[str, str] | None = None) -> dict[str, object] | None:
        """GET ``url``, or POST ``body`` as JSON; the answer, or None after recording a failure."""
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
            self.latencies.append((began, time.monotonic() - began))
        return dict(said)


@dataclass
class Crowd:
    """Logged-in clients asking ``/me`` in a loop until stopped."""

    front: str
    size: int = 8
    clients: list[Client] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        """Log every client in and start each asking ``/me`` in a thread of its own.

        Raises RuntimeError when a client cannot log in.
        """
        for n in range(self.size):
            jar = http.cookiejar.CookieJar()
            opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
            client = Client(f"user{n}", opener)
            said = client.call(f"{self.front}/login", {"user": client.name})
            if said is None or said.get("user") != client.name:
                raise RuntimeError(f"{client.name} could not log in: {client.failures}")
            self.clients.append(client)
        for client in self.clients:
            thread = threading.Thread(target=self._work, args=(client,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def finish(self) -> None:
        """Stop the clients and wait for their threads."""
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=40)

    def _work(self, client: Client) -> None:
        while not self.stop.is_set():
            said = client.call(f"{self.front}/me")
            if said is not None:
                if said.get("user") != client.name:
                    client.failures.append(f"session lost: {said}")
                client.releases.append(str(said.get("release")))
            time.sleep(0.01)

    @property
    def failures(self) -> list[str]:
        """Every client's failures: requests unanswered, and sessions lost."""
        return [f for c in self.clients for f in c.failures]

    def latencies(self, since: float = 0.0, until: float = float("inf")) -> list[float]:
        """The seconds of every request begun between ``since`` and ``until`` (monotonic)."""
        return [s for c in self.clients for when, s in c.latencies if since <= when < until]
