"""``rolling``: two identity-sync instances behind nginx on PostgreSQL with sessions in Redis,
eight logged-in clients asking all the time; ``upgrade --rolling`` from 2.0.0 to 2.1.0.

Measured in one run: the requests served and failed during the upgrade, and the longest request
latency during the upgrade against the longest over as long a time of steady state before it
(the baseline; Stairway's own bar is at most 10 times it: a request may wait while the instance
it reached drains and nginx passes it on, never fail).
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from tempfile import TemporaryDirectory

import redis

from bench.harness import Result, Sizes, temp_database
from stairway import context
from stairway.examples.identity_sync.cluster import Crowd, build_cluster
from stairway.upgrade import upgrade

NAME = "rolling"
GOAL = 10.0
REDIS_URL = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0")


def run(sizes: Sizes) -> Result:
    quick = sizes.objects < 1_000_000
    clients, steady_s = (4, 5.0) if quick else (8, 15.0)
    prefix = f"stairway-bench-{uuid.uuid4().hex[:8]}"
    with temp_database("rolling") as db, TemporaryDirectory() as scratch:
        with build_cluster(Path(scratch), db.url, REDIS_URL, prefix) as cluster:
            crowd = Crowd(cluster.url, clients)
            crowd.start()
            time.sleep(steady_s)  # the baseline: the same clients with nothing going on
            began = time.monotonic()
            ctx = context.open_context(cluster.site, None)
            upgrade(ctx, "2.1.0", rolling=True)
            ended = time.monotonic()
            crowd.finish()
        _forget(prefix)
    took = ended - began
    steady = crowd.latencies(began - steady_s + 0.5, began)
    during = crowd.latencies(began, ended)
    longest_steady, longest_during = max(steady), max(during)
    served, failed = len(during), len(crowd.failures)
    return Result(
        name=NAME,
        subject=f"longest request during upgrade --rolling ({clients} clients)",
        baseline="longest request in the steady state before it",
        subject_seconds=longest_during,
        baseline_seconds=longest_steady,
        goal=GOAL,
        timings={"during_s": [longest_during], "steady_s": [longest_steady]},
        details={
            "served_during": served,
            "failed": failed,
            "upgrade_s": took,
            "requests_per_s_during": served / took,
        },
        notes=[
            f"{served:,} requests served during the {took:.1f} s upgrade, {failed} failed",
            f"longest {longest_during * 1000:.0f} ms during it, {longest_steady * 1000:.0f} ms "
            "before it",
        ],
        absolute={"failed requests": (float(failed), "<=", 0.0)},
    )


def _forget(prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)
    client.close()
