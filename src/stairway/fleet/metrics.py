"""The control plane's Prometheus metrics, in a registry of the app's own.

Counters move where the server acts: an upgrade sent, an upgrade's outcome, an evaluator tick.
What the database already knows is read when Prometheus scrapes, not mirrored: agents by state
and version, background migrations' progress, the number of audit entries. Each app has its
own ``CollectorRegistry``, so several apps in one process (tests, a product mounting the control
plane) do not share or clash.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine

from stairway import audit
from stairway.fleet import store
from stairway.schema import background

TICK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The counters the server moves, and the registry that also reads the database."""

    def __init__(self, engine: Engine) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.sent = Counter(
            "stairway_fleet_upgrades_sent", "Upgrade offers sent to agents", registry=self.registry
        )
        self.succeeded = Counter(
            "stairway_fleet_upgrades_succeeded",
            "Agents that said hello on the version they were upgraded to",
            registry=self.registry,
        )
        self.failed = Counter(
            "stairway_fleet_upgrades_failed",
            "Upgrades an agent could not take: download, verify, snapshot, or rolled back",
            ["stage"],
            registry=self.registry,
        )
        self.ticks = Counter(
            "stairway_fleet_evaluator_ticks", "Evaluations of the policy", registry=self.registry
        )
        self.tick_seconds = Histogram(
            "stairway_fleet_evaluator_tick_seconds",
            "How long one evaluation of the policy took",
            buckets=TICK_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(DatabaseCollector(engine))

    def exposition(self) -> bytes:
        """The text format; reads the database, so call it off the event loop."""
        return generate_latest(self.registry)


class DatabaseCollector(Collector):
    """Gauges read from the site database at each scrape."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def describe(self) -> list[Metric]:
        """Nothing: what the database holds is read at scrape time only."""
        return []  # read at scrape time only: describing would query the database on register

    def collect(self) -> Iterator[Metric]:
        """Agents by state and version, background migrations' progress, and audit entries."""
        yield self._agents()
        yield self._background()
        yield self._audit()

    def _agents(self) -> GaugeMetricFamily:
        gauge = GaugeMetricFamily(
            "stairway_fleet_agents", "Agents by state and version", labels=["state", "version"]
        )
        with self.engine.connect() as conn:
            counted = store.census(conn)
        for state, version, count in counted:
            gauge.add_metric([state, version], count)
        return gauge

    def _background(self) -> GaugeMetricFamily:
        gauge = GaugeMetricFamily(
            "stairway_background_migration_progress",
            "Fraction of each background migration done (1 when finished)",
            labels=["number", "label", "state"],
        )
        for job in background.jobs(self.engine):
            gauge.add_metric([str(job.number), job.label, job.state], job.fraction)
        return gauge

    def _audit(self) -> GaugeMetricFamily:
        with self.engine.connect() as conn:
            last = audit.head(conn)
        return GaugeMetricFamily(
            "stairway_audit_entries",
            "Entries in the audit log (numbered from 1, never reused)",
            value=last.id if last else 0,
        )
