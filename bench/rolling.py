"""``rolling``: two identity-sync instances behind nginx on PostgreSQL with sessions in Redis,
logged-in clients asking all the time; ``upgrade --rolling`` from 2.0.0 to 2.1.0.

Each run builds a fresh cluster and lets the clients warm it up. A subject run measures the
longest request latency during the upgrade; a baseline run, on a cluster of its own with
nothing going on, the longest over as long a time (the last upgrade's duration). Stairway's
own bar is at most 10 times it: a request may wait while the instance it reached drains and
nginx passes it on, never fail. ``MIN_REPEATS`` runs of each, alternating who goes first.
Needs nginx and a Redis; without them the benchmark is recorded as not run.
"""

from __future__ import annotations

import os
import statistics
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory

import redis

from bench.harness import (
    MIN_REPEATS,
    NotRun,
    Paired,
    Result,
    Sizes,
    alternate,
    require_tool,
    temp_database,
)
from stairway import context
from stairway.examples.identity_sync.cluster import NGINX, Crowd, build_cluster
from stairway.upgrade import upgrade

NAME = "rolling"
GOAL = 10.0
REDIS_URL = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0")
WARM_S = 2.0


@dataclass(frozen=True)
class Window:
    """One run's requests in its measured window: the longest, how many, how many failed."""

    longest: float
    served: int
    failed: int
    seconds: float


def run(sizes: Sizes) -> Result:
    _require()
    quick = sizes.objects < 1_000_000
    clients, steady_s = (4, 5.0) if quick else (8, 15.0)
    upgrades: list[Window] = []
    steadies: list[Window] = []

    def subject() -> float:
        upgrades.append(_measure(clients, None))
        return upgrades[-1].longest

    def baseline() -> float:
        steadies.append(_measure(clients, upgrades[-1].seconds if upgrades else steady_s))
        return steadies[-1].longest

    runs = alternate(subject, baseline, MIN_REPEATS)
    return _result(clients, runs, upgrades, steadies)


def _require() -> None:
    require_tool("nginx", "nginx", fallback=NGINX)
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as error:
        raise NotRun(
            f"no Redis answers at {REDIS_URL}: {error}",
            hint="apt-get install redis-server (and start it), or point BENCH_REDIS at one",
        ) from error


def _measure(clients: int, steady_s: float | None) -> Window:
    """A fresh cluster under ``clients`` clients: the upgrade's window, or a quiet one."""
    prefix = f"stairway-bench-{uuid.uuid4().hex[:8]}"
    with temp_database("rolling") as db, TemporaryDirectory() as scratch:
        with build_cluster(Path(scratch), db.url, REDIS_URL, prefix) as cluster:
            crowd = Crowd(cluster.url, clients)
            crowd.start()
            time.sleep(WARM_S)
            failed_before = len(crowd.failures)
            began = time.monotonic()
            if steady_s is None:
                upgrade(context.open_context(cluster.site, None), "2.1.0", rolling=True)
            else:
                time.sleep(steady_s)
            ended = time.monotonic()
            crowd.finish()
        _forget(prefix)
    during = crowd.latencies(began, ended)
    failed = len(crowd.failures) - failed_before
    return Window(max(during, default=0.0), len(during), failed, ended - began)


def _result(clients: int, runs: Paired, upgrades: list[Window], steadies: list[Window]) -> Result:
    served, failed = sum(w.served for w in upgrades), sum(w.failed for w in upgrades)
    took = sum(w.seconds for w in upgrades)
    return Result(
        name=NAME,
        subject=f"longest request during upgrade --rolling ({clients} clients)",
        baseline="longest request in as long a steady state on an identical cluster",
        runs=runs,
        goal=GOAL,
        timings={
            "during_s": list(runs.subject),
            "steady_s": list(runs.baseline),
            "upgrade_s": [w.seconds for w in upgrades],
            "failed_during": [float(w.failed) for w in upgrades],
            "failed_steady": [float(w.failed) for w in steadies],
        },
        details={
            "served_during": served,
            "failed": failed,
            "upgrade_median_s": statistics.median(w.seconds for w in upgrades),
            "requests_per_s_during": served / took,
        },
        notes=[
            f"{served:,} requests served during {len(upgrades)} upgrades ({took:.1f} s in all), "
            f"{failed} failed",
        ],
        absolute={"failed requests": (float(failed), "<=", 0.0)},
    )


def _forget(prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)
    client.close()
